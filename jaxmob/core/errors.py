"""Errors every environment's loaders share, so the CLI can turn each into one clear line."""
from __future__ import annotations


class LoaderError(ValueError):
    """A data file cannot be loaded; the message names the file and the problem."""
