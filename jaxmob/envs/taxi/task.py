"""The taxi environment as a plug-in of the generic trainer (`--env taxi`).

Scenarios: `nyc-hex-synthetic`, the NYC-scale synthetic hex city of the
fleet-size experiments (250 cells, 280k orders a day, built by code, no data
file). It has no real days, so its evaluation episodes are fixed order-count
draws from its rates: two validation episodes (seeds 1000, 1001) choose the
checkpoint and three test episodes (seeds 2000-2002) are reported. Training
draws fresh Poisson orders every episode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..task import Built, Task


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TaxiOptions:
    """The taxi environment's own options (`--env taxi`)."""

    num_taxis: int = _f(8000, "fleet size (the paper: 6000, 8000, 10000)")
    max_wait: int = _f(2, "steps an unmatched order waits before it expires (10-minute steps)")
    reward: str = _f("both", "taxi reward: local (its cell's supply-demand balance) | global (mean over cells) | both (their mean)")
    horizon: int = _f(144, "steps per episode (144 x 10 min = one day)")
    demand_scale: float = _f(1.0, "multiplies the order rates of training episodes")


@dataclass(frozen=True)
class TaxiScenario:
    """A taxi city with named evaluation episodes (order counts per step and cell)."""

    city: object
    validation_days: tuple
    test_days: tuple
    episodes: dict

    @property
    def days(self) -> tuple:
        return tuple(self.episodes)


def draw_orders(city, seed: int, steps: int) -> np.ndarray:
    """One evaluation episode: Poisson order counts per step and cell from the city's rates."""
    S = city.demand_rate.shape[0]
    rate = city.demand_rate[np.arange(steps) % S]
    return np.random.default_rng(seed).poisson(rate).astype(np.int32)


@lru_cache(maxsize=4)
def _synthetic(steps: int) -> TaxiScenario:
    from .city import synthetic_hex_city

    city = synthetic_hex_city()
    names = {"val-1000": 1000, "val-1001": 1001, "test-2000": 2000, "test-2001": 2001, "test-2002": 2002}
    return TaxiScenario(city=city, validation_days=("val-1000", "val-1001"),
                        test_days=("test-2000", "test-2001", "test-2002"),
                        episodes={n: draw_orders(city, s, steps) for n, s in names.items()})


class TaxiTask(Task):
    name = "taxi"
    headline = "order_response_rate"
    Options = TaxiOptions
    default_scenario = "nyc-hex-synthetic"
    # PPO over thousands of taxi agents: fewer, shorter rollouts per update than the bike default
    defaults = dict(num_envs=2, rollout_steps=36, minibatches=4, total_updates=100)
    columns = ("order_response_rate", "revenue", "composite_index", "empty_km", "served", "orders")
    headers = ("ORR", "revenue", "composite", "empty km", "served", "orders")

    def scenarios(self) -> list:
        return ["nyc-hex-synthetic"]

    def load(self, name: str, steps: int = 144):
        if name not in self.scenarios():
            raise ValueError(f"unknown taxi scenario {name!r}; available: {', '.join(self.scenarios())}")
        return _synthetic(steps)

    def validate(self, config) -> None:
        from .env import MIXES

        o = config.options
        check = lambda ok, name, msg: None if ok else (_ for _ in ()).throw(ValueError(f"{name}: {msg}"))
        check(o.num_taxis >= 1, "num_taxis", f"must be >= 1, got {o.num_taxis}")
        check(o.max_wait >= 1, "max_wait", f"must be >= 1, got {o.max_wait}")
        check(o.reward in MIXES, "reward", f"must be one of {', '.join(MIXES)}, got {o.reward!r}")
        check(o.horizon >= 1 and o.horizon % config.rollout_steps == 0, "rollout_steps",
              f"must divide the horizon ({o.horizon}), got {config.rollout_steps}")
        check(o.demand_scale > 0, "demand_scale", f"must be positive, got {o.demand_scale}")

    def _env(self, options, mode: str):
        from .env import TaxiConfig, TaxiEnv

        return TaxiEnv(TaxiConfig(horizon=options.horizon, max_wait=options.max_wait, mode=mode, reward=options.reward))

    def build(self, config, scenario) -> Built:
        from .env import make_params

        o = config.options
        env = self._env(o, "poisson")
        params = make_params(scenario.city, num_taxis=o.num_taxis, seed=config.seed, demand_scale=o.demand_scale)
        eval_env = self._env(o, "replay")
        day_params = lambda episodes: self.episode_params(config, scenario, episodes)
        validation = tuple(config.validation_days) or scenario.validation_days
        test = tuple(config.test_days) or scenario.test_days
        return Built(scenario=scenario, env=env, env_params=params, eval_env=eval_env,
                     validation=day_params(self.episodes(scenario, validation)),
                     test=day_params(self.episodes(scenario, test)), day_params=day_params)

    def episode_params(self, config, scenario, episodes: dict) -> dict:
        """{name: TaxiParams} replaying each episode's order counts with the config's fleet."""
        from .env import make_params

        o = config.options
        return {n: make_params(scenario.city, num_taxis=o.num_taxis, seed=config.seed, replay_orders=orders[:o.horizon])
                for n, orders in episodes.items()}

    def episodes(self, scenario, names) -> dict:
        unknown = [n for n in names if n not in scenario.episodes]
        if unknown:
            raise ValueError(f"unknown episode(s) {', '.join(unknown)}; the scenario has {', '.join(scenario.episodes)}")
        return {n: scenario.episodes[n] for n in names}

    def baseline_rows(self, scenario, episodes: dict, config, *, bound: bool = True) -> dict:
        """Stay, random and the demand-gap greedy repositioner on each episode."""
        import jax

        from ...rollout import rollout
        from .baselines import demand_gap, random_policy, stay

        env = self._env(config.options, "replay")
        params = self.episode_params(config, scenario, episodes)
        key = jax.random.key(config.seed)
        rows = {}
        for name, p in params.items():
            rows[name] = []
            for label, policy in (("stay", stay), ("random", random_policy), ("greedy (demand gap)", demand_gap)):
                m = jax.device_get(rollout(policy, env, p, key))
                rows[name].append({"policy": label, **{k: float(v) for k, v in m.items()}})
        return rows

    def training_label(self, config) -> str:
        return f"training (Poisson orders, {config.options.num_taxis:,} taxis)"


TASK = TaxiTask()
