"""`jaxmob.make`: an environment and its params in one line, for a loop of your own (gymnax style).

    env, params = jaxmob.make("rebalance-v1", scenario="manhattan-106")
    obs, state = env.reset(key, params)
    obs, state, reward, done, info = env.step(key, state, action, params)

The environment is the pure one the trainer uses (`jaxmob.core.env.Environment`): `reset` and
`step` are functions of explicit pytrees, so `jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))`
steps many cities at once; `env.observation_spec(params)`, `env.action_spec(params)` and
`env.agents(params)` say what goes in and out. The params are those of the training days
(`make(..., split="validation" | "test")` gives the held-out days' params instead, one per day).

Ids are versioned: `NAME-vK` names version K of an environment's dynamics, and a bare NAME is
its current version. A change that alters what a step does raises K (`Task.version`), so a
number reported against `rebalance-v1` stays comparable. `routing` has no entry here: its
policies are online planners over its own step (`jaxmob.envs.routing.env`), not an agent loop.
"""
from __future__ import annotations

import re

__all__ = ["make", "env_ids"]


def env_ids() -> list:
    """Every environment id `make` takes (each env's current version)."""
    from .core.registry import get, names

    return [f"{n}-v{get(n).version}" for n in names() if get(n).build is not None]


def _task(env_id: str):
    from .core.registry import get, names

    m = re.fullmatch(r"(?P<name>[a-z_]+)(-v(?P<version>\d+))?", env_id)
    if m is None or m["name"] not in names():
        raise ValueError(f"unknown environment id {env_id!r}; choose from {', '.join(env_ids())}")
    task = get(m["name"])
    if task.build is None:
        raise ValueError(f"{m['name']} has no agent loop to make: its policies are online planners "
                         f"(`python -m jaxmob eval --env {m['name']}`); choose from {', '.join(env_ids())}")
    if m["version"] is not None and int(m["version"]) != task.version:
        raise ValueError(f"{env_id}: this jaxmob has {m['name']}-v{task.version} (the dynamics changed); "
                         f"results reported against {env_id} came from another version")
    return task


def make(env_id: str, scenario: str | None = None, split: str = "train", **options):
    """(env, params) of environment `env_id` on `scenario` (default: its bundled default), with
    the environment's own `options` (e.g. `horizon=...`); `split="validation"` or `"test"` gives
    (env, {day: params}) of the scenario's held-out days instead."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be train, validation or test, got {split!r}")
    built = build(env_id, scenario, **options)
    if split == "train":
        return built.env, built.env_params
    return built.eval_env, dict(built.validation if split == "validation" else built.test)


def build(env_id: str, scenario: str | None = None, **options):
    """The environment's `Built` (training env and params, evaluation env, held-out days' params)
    for `make`'s arguments."""
    config = config_for(env_id, scenario, **options)
    return config.task.build(config, config.task.load(config.scenario))


def config_for(env_id: str, scenario: str | None = None, **options):
    """The `TrainConfig` `build` builds from: the env's options and its default learner's generic
    fields (nothing trains), checked by the env (`Task.validate`)."""
    from .config import ConfigError, TrainConfig, default_alg
    from .core.registry import algorithms_for

    task = _task(env_id)
    unknown = sorted(o for o in options if not task.is_option(o))
    if unknown:
        known = sorted(f for f in task.Options.__dataclass_fields__)
        raise TypeError(f"{task.name} has no option(s) {', '.join(unknown)}; its options: {', '.join(known)}")
    scenario = scenario or task.default_scenario
    if not task.knows(scenario):
        raise ValueError(f"{task.name} has no scenario {scenario!r}; bundled: {', '.join(task.scenarios())}")
    error = None
    for alg in dict.fromkeys([default_alg(task.name), *algorithms_for(task)]):  # (amod's action kind follows the learner)
        config = TrainConfig(env=task.name, alg=alg, scenario=scenario, progress=False, rollout_steps=1, **options)
        try:
            task.validate(config)  # the environment's options only: nothing here trains
            return config
        except ValueError as e:
            error = error or e
    raise ConfigError(str(error))
