"""The vecdb version (one place; the package, the server and the bench read it)."""

__version__ = "0.1.0"
