"""tribench's version: one number, read by setuptools (``pyproject.toml``) and recorded in every run file. A
module of its own, so the engine can name the version without importing the package's API."""

__version__ = "0.2.0"
