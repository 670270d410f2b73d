"""Fixed-point hardware model."""
