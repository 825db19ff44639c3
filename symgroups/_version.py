"""The package version, kept in one place for setup.cfg and the cache."""

__version__ = "0.1.0"
