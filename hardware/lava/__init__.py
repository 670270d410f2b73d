"""Lava processes and models (Lava imports live here only)."""
