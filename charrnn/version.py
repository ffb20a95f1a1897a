"""charrnn's version: one line that every module (and the package's metadata) reads."""

__version__ = "0.1.0"
