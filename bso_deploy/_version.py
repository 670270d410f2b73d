"""The toolkit's version, in a module of its own so that writers of files (checkpoints, NIR metadata) can
record it without importing the package's public API."""

__version__ = "0.1.0"
