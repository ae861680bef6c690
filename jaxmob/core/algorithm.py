"""The algorithm plug-in: what the trainer, sweep and CLI need to know about a
learner, declared as data (the mirror of `task.Task` for environments).

A `LearnerCore` is one training loop (PPO, deterministic policy gradients):
the action kind it trains, how it compiles a training chunk, which of the
generic config fields it traces. An `Algorithm` is a core plus a policy
factory and the algorithm's own options (a frozen dataclass whose fields carry
their `--flag` help, as environment options do), with the names of those
options that are traced (swept in one program) and what it needs to know about
the agents (`Agents.tokens`, `Agents.graph`). Adding a learner is its module,
with its `Algorithm` record, plus one line in `jaxmob.core.registry`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

ACTION_KINDS = ("discrete", "continuous")


@dataclass(frozen=True)
class LearnerCore:
    """One training loop shared by several algorithms.

    make_train(env, env_params, policy, config) -> (init(key, hyper), update_chunk(runner, n))
    hyper(config, shaping: dict, algo: dict) -> the traced hyperparameters of one run
    validate(config) -> None, ValueError "field: problem" for a value this core cannot use
    """

    name: str
    action_kind: str
    traced: tuple  # generic TrainConfig fields it traces (sweepable in one program)
    make_train: Callable
    hyper: Callable
    validate: Callable | None = None


@dataclass(frozen=True)
class Algorithm:
    """One learner: a core, a policy factory and its own options.

    make_policy(env, env_params, config) -> the policy object the core trains
    validate(config) -> None, ValueError "option: problem" (the options' own checks)
    """

    name: str
    summary: str  # one line for `--alg` help
    core: LearnerCore
    make_policy: Callable
    Options: Any = None  # frozen dataclass of its own options (fields carry `help` metadata), or None
    traced: tuple = ()  # its options that are traced hyperparameters
    needs: tuple = ()  # fields of `Agents` it needs: "tokens", "graph"
    validate: Callable | None = None

    @property
    def option_names(self) -> tuple:
        return tuple(f.name for f in dataclasses.fields(self.Options)) if self.Options else ()

    def options_from(self, values: dict):
        """`Options` from a mapping (JSON lists become tuples), unknown names refused; None without options."""
        unknown = sorted(set(values) - set(self.option_names))
        if unknown:
            raise TypeError(f"algorithm {self.name!r} has no option(s) {', '.join(unknown)}"
                            + (f"; its options: {', '.join(self.option_names)}" if self.Options else " (it has none)"))
        if self.Options is None:
            return None
        return self.Options(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def traced_values(self, options) -> dict:
        return {n: getattr(options, n) for n in self.traced}
