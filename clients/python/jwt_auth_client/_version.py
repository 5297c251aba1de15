"""The distribution's version, one place: pyproject.toml says the same (a test compares them)."""

__version__ = "0.2.0"
