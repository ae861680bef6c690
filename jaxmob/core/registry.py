"""Environments and algorithms by name: `--env NAME` -> its `Task`, `--alg NAME` -> its `Algorithm`.

Entries are `module:attribute` paths, imported on first use, so generic code
names a plug-in without importing it (and `jaxmob --help` stays fast). A new
environment is its package plus one line in `ENVIRONMENTS`; a new learner its
module plus one line in `ALGORITHMS`. `register` / `register_algorithm` add
one at run time (a user's own, or a test's).
"""
from __future__ import annotations

import importlib

ENVIRONMENTS = {
    "rebalance": "jaxmob.envs.rebalance.task:TASK",
    "taxi": "jaxmob.envs.taxi.task:TASK",
    "amod": "jaxmob.envs.amod.task:TASK",
    "routing": "jaxmob.envs.routing.task:TASK",
    "parking": "jaxmob.envs.parking.task:TASK",
}
ALGORITHMS = {
    "share_all": "jaxmob.algos.policies:SHARE_ALL",
    "ippo": "jaxmob.algos.policies:IPPO",
    "mappo": "jaxmob.algos.policies:MAPPO",
    "no_share": "jaxmob.algos.policies:NO_SHARE",
    "hagps": "jaxmob.algos.hagps:ALGORITHM",
    "madarl": "jaxmob.algos.madarl:ALGORITHM",
    "ddpg": "jaxmob.algos.dpg:DDPG",
    "ddpg_discrete": "jaxmob.algos.dpg:DDPG_DISCRETE",
    "ddpg_dist": "jaxmob.algos.dpg:DDPG_DIST",
    "maddpg": "jaxmob.algos.dpg:MADDPG",
    "sac_discrete": "jaxmob.algos.dpg:SAC_DISCRETE",
    "meta": "jaxmob.algos.dpg:META",
    "marl_gcn": "jaxmob.algos.marl_gcn:MARL_GCN",
    "marl_gcn_no_gat": "jaxmob.algos.marl_gcn:NO_GAT",
    "marl_gcn_no_hyper": "jaxmob.algos.marl_gcn:NO_HYPER",
    "marl_gcn_no_cl": "jaxmob.algos.marl_gcn:NO_CL",
}


class _Registry:
    def __init__(self, kind: str, entries: dict):
        self.kind, self.entries, self.loaded = kind, dict(entries), {}

    def register(self, name: str, entry) -> None:
        self.entries[name] = entry
        self.loaded.pop(name, None)

    def names(self) -> list:
        return list(self.entries)

    def get(self, name: str):
        if name not in self.entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {', '.join(self.names())}")
        if name not in self.loaded:
            entry = self.entries[name]
            if isinstance(entry, str):
                module, _, attribute = entry.partition(":")
                entry = getattr(importlib.import_module(module), attribute or "TASK")
            self.loaded[name] = entry
        return self.loaded[name]


_ENVS = _Registry("environment", ENVIRONMENTS)
_ALGS = _Registry("algorithm", ALGORITHMS)


def register(name: str, task) -> None:
    """Make `task` (a Task, or a `module:attribute` path to one) available as `--env name`."""
    _ENVS.register(name, task)


def names() -> list:
    """Every environment's name, sorted."""
    return sorted(_ENVS.names())


def get(name: str):
    """The Task registered as `name` (ValueError listing the known ones otherwise)."""
    return _ENVS.get(name)


def register_algorithm(name: str, algorithm) -> None:
    """Make `algorithm` (an Algorithm, or a `module:attribute` path to one) available as `--alg name`."""
    _ALGS.register(name, algorithm)


def algorithm_names() -> list:
    """Every algorithm's name, in registry order."""
    return _ALGS.names()


def algorithm(name: str):
    """The Algorithm registered as `name` (ValueError listing the known ones otherwise)."""
    return _ALGS.get(name)


def fits(task, alg) -> str | None:
    """Why algorithm record `alg` cannot train on environment `task`, or None where it can:
    the action kind must be one the environment has, and what it needs about the agents
    (token layout, graph) must be something the environment declares."""
    if task.planner_cli() is not None:
        return f"env {task.name} is run by its planners (nothing to train)"
    if alg.core.action_kind not in task.action_kinds:
        return (f"{alg.name} trains {alg.core.action_kind} actions; env {task.name} has "
                f"{' or '.join(task.action_kinds)} ones")
    missing = [n for n in alg.needs if n not in task.provides]
    if missing:
        return f"{alg.name} needs the agents' {' and '.join(missing)}; env {task.name} declares none"
    return None


def algorithms_for(task) -> list:
    """The algorithms that can train on environment `task`."""
    return [n for n in algorithm_names() if fits(task, algorithm(n)) is None]
