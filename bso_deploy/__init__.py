"""bso-deploy: train binary SNNs online, export through NIR, deploy to fixed-point hardware."""
__version__ = "0.1.0"
