"""Errors every environment's loaders share, so the CLI can turn each into one clear line."""
from __future__ import annotations


class LoaderError(ValueError):
    """A data file cannot be loaded; the message names the file and the problem."""


class BoundNotSolved(RuntimeError):
    """A bound's LP did not reach an optimum (its time limit, or the solver's failure), so there is
    no bound to report; the message says why."""


def check_fields(checks) -> None:
    """Raise ValueError "name: problem" for the first `(ok, name, problem)` that fails, so a config or
    option check always names the field (the trainer turns it into a ConfigError)."""
    for ok, name, problem in checks:
        if not ok:
            raise ValueError(f"{name}: {problem}")
