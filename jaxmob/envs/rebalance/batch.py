"""One params batch for many cities: what `jaxmob.parallel` splits over devices."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import jax
import numpy as np

from .city.core import City
from .city.pad import stack_cities, take_city
from ...core.sharding import batch_size
from .env import RebalanceEnv, default_max_trips, default_pipeline_steps


def stack_params(env, cities, *, days: Sequence | None = None, pipeline_steps: int | None = None,
                 max_trips: int | None = None, validate: bool = True, **make_params_kw):
    """`(env_b, params)`: one params batch for many cities, and the env to step it with.

    `cities` is a list of Cities (padded to the largest; see `stack_cities`) or
    an already stacked batch (e.g. from `sample_city` under `vmap`). A batch
    needs one static P (pipeline steps) and M (trip slots), so `env_b` is `env`
    with both fixed: by default the largest per-city default (the city's
    longest travel or move time; the contract's slot quantile), so no city is
    clipped or truncated more than alone. `days` (replay mode) holds one list
    of DayTrips per city, all of the same length. Tables are built per city by
    `env.make_params` (NumPy, ~50 ms for 64 regions) and stacked; leaves are
    NumPy arrays, ready for `shard_batch`. Each city is first checked by
    `City.create` (`validate=False` skips that, e.g. for trusted batches).
    """
    batch = jax.tree.map(np.asarray, cities if isinstance(cities, City) else stack_cities(cities))
    n = batch_size(batch)
    singles = [take_city(batch, i, validate=validate) for i in range(n)]
    if days is not None and len(days) != n:
        raise ValueError(f"stack_params: days must hold one list of DayTrips per city ({n}), got {len(days)}")
    per_city_days = list(days) if days is not None else [None] * n
    cfg = env.config
    P = pipeline_steps or cfg.pipeline_steps or max(default_pipeline_steps(c, cfg.relocation_delay) for c in singles)
    M = max_trips or cfg.max_trips_per_step or max(
        default_max_trips(c, d or [], float(np.max(make_params_kw.get("demand_scale", 1.0))), cfg.mode)
        for c, d in zip(singles, per_city_days))
    env_b = RebalanceEnv(replace(cfg, pipeline_steps=int(P), max_trips_per_step=int(M)), env.shaping)
    params = [env_b.make_params(c, days=d, **make_params_kw) for c, d in zip(singles, per_city_days)]
    return env_b, jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *params)
