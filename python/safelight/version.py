"""The package version (one place: the package root, the CLI and pyproject.toml agree)."""

__version__ = "0.1.0"
