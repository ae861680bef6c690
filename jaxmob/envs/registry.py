"""Environments by name: `--env NAME` -> its `Task` plug-in.

Entries are module paths, imported on first use, so generic code names an
environment without importing it; `register` adds one at run time (a user's
own environment, or a test's).
"""
from __future__ import annotations

import importlib

from .task import Task

_ENTRIES: dict = {"rebalance": "jaxmob.envs.rebalance.task", "taxi": "jaxmob.envs.taxi.task", "amod": "jaxmob.envs.amod.task",
            "routing": "jaxmob.envs.routing.task", "parking": "jaxmob.envs.parking.task"}
_LOADED: dict = {}


def register(name: str, task) -> None:
    """Make `task` (a Task, or a module path whose `TASK` is one) available as `name`."""
    _ENTRIES[name] = task
    _LOADED.pop(name, None)


def names() -> list:
    return sorted(_ENTRIES)


def get(name: str) -> Task:
    """The Task registered as `name` (ValueError listing the known ones otherwise)."""
    if name not in _ENTRIES:
        raise ValueError(f"unknown environment {name!r}; choose from {', '.join(names())}")
    if name not in _LOADED:
        entry = _ENTRIES[name]
        _LOADED[name] = importlib.import_module(entry).TASK if isinstance(entry, str) else entry
    return _LOADED[name]
