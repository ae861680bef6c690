"""Padding and stacking cities (NumPy), so cities of different sizes share one `vmap`.

A batch of cities is one `City` whose array leaves carry a leading batch axis.
`jax.vmap` needs every city in it to have the same shapes and the same static
metadata, so `stack_cities` pads each city to the largest region count with
inert padding regions (`pad_city`) and gives the batch one common set of
static fields. Padding regions are appended after the real ones, so a real
region keeps its index, its neighbours and every table entry between real
regions: an environment that honours `region_mask` behaves identically on the
padded city (see `tests/city/test_pad.py` and `docs/rebalance-dynamics.md`).
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from .core import City

ARRAY_FIELDS = ("centroid", "xy_km", "cell", "neighbors", "neighbor_mask", "travel_steps", "relocation_steps",
                "demand_rate", "od_prob", "price", "init_inventory", "capacity", "features", "region_mask")
STATIC_FIELDS = ("name", "region_ids", "grid", "grid_shape", "cell_km", "step_minutes", "od_bucket_steps",
                 "directions", "feature_names")
# Static fields that must agree across a stacked batch (they change the dynamics or shapes).
MUST_AGREE = ("grid", "directions", "step_minutes", "steps_per_day", "od_bucket_steps", "feature_names")


def city_fields(city: City) -> dict:
    """Keyword arguments that rebuild `city` through the validating `City.create`
    (arrays as NumPy), e.g. `City.create(**city_fields(c))` for a sampled city."""
    out = {k: np.asarray(getattr(city, k)) for k in ARRAY_FIELDS}
    out.update({k: getattr(city, k) for k in STATIC_FIELDS})
    return out


def take_city(batch: City, index: int, *, validate: bool = True) -> City:
    """City `index` of a stacked batch, as a NumPy City (validated by default)."""
    one = jax.tree.map(lambda x: np.asarray(x)[index], batch)
    return City.create(**city_fields(one)) if validate else one


def _pad_rows(x: np.ndarray, axis: int, count: int, value) -> np.ndarray:
    width = [(0, 0)] * x.ndim
    width[axis] = (0, count)
    return np.pad(x, width, constant_values=value)


def pad_city(city: City, r_max: int) -> City:
    """`city` with padding regions appended up to `r_max` regions (validated).

    Padding regions: no docks, bikes, demand or neighbours (their neighbour
    entries point at themselves, masked); travel and relocation time 1 step
    to and from them; OD rows that keep all mass on themselves and zero mass
    in every real row; position at the real regions' mean (so distances stay
    finite); zero features and price. Every real-region entry is unchanged.
    """
    R = city.num_regions
    if int(r_max) != r_max or r_max < R:
        raise ValueError(f"pad_city: r_max must be an integer >= the city's {R} regions, got {r_max!r}")
    r_max, extra = int(r_max), int(r_max) - R
    f = city_fields(city)
    if extra == 0:
        return City.create(**f)
    real = np.asarray(city.region_mask)
    new = np.arange(R, r_max)
    fill_at = lambda a: np.broadcast_to(a[real].mean(axis=0) if real.any() else a.mean(axis=0), (extra, a.shape[1]))
    f["centroid"] = np.concatenate([f["centroid"], fill_at(f["centroid"])])
    f["xy_km"] = np.concatenate([f["xy_km"], fill_at(f["xy_km"])])
    f["cell"] = _pad_rows(f["cell"], 0, extra, 0)
    f["neighbors"] = np.concatenate([f["neighbors"], np.repeat(new[:, None], f["neighbors"].shape[1], axis=1)])
    f["neighbor_mask"] = _pad_rows(f["neighbor_mask"], 0, extra, False)
    for name in ("travel_steps", "relocation_steps"):
        f[name] = _pad_rows(_pad_rows(f[name], 0, extra, 1), 1, extra, 1)
    f["price"] = _pad_rows(_pad_rows(f["price"], 0, extra, 0.0), 1, extra, 0.0)
    f["demand_rate"] = _pad_rows(f["demand_rate"], 1, extra, 0.0)
    od = _pad_rows(_pad_rows(f["od_prob"], 1, extra, 0.0), 2, extra, 0.0)
    od[:, new, new] = 1.0
    f["od_prob"] = od
    for name in ("init_inventory", "capacity"):
        f[name] = _pad_rows(f[name], 0, extra, 0)
    f["features"] = _pad_rows(f["features"], 0, extra, 0.0)
    f["region_mask"] = _pad_rows(f["region_mask"], 0, extra, False)
    f["region_ids"] = tuple(city.region_ids) + _fresh_ids(city.region_ids, extra)
    return City.create(**f)


def _fresh_ids(existing: Sequence, count: int) -> tuple:
    """`count` ids 'pad0', 'pad1', ... that do not collide with `existing`."""
    taken = set(existing)
    ids, i = [], 0
    while len(ids) < count:
        if f"pad{i}" not in taken:
            ids.append(f"pad{i}")
        i += 1
    return tuple(ids)


def _check_compatible(cities: Sequence[City]) -> None:
    first = cities[0]
    for i, c in enumerate(cities[1:], start=1):
        if not isinstance(c, City):
            raise TypeError(f"stack_cities: cities[{i}] must be a City, got {type(c).__name__}")
        for name in MUST_AGREE:
            if getattr(c, name) != getattr(first, name):
                raise ValueError(f"stack_cities: cities[{i}] ({c.name!r}) has {name}={getattr(c, name)!r}, "
                                 f"but cities[0] ({first.name!r}) has {getattr(first, name)!r}")
        if np.shape(c.od_prob)[0] != np.shape(first.od_prob)[0]:
            raise ValueError(f"stack_cities: cities[{i}] has {np.shape(c.od_prob)[0]} OD buckets, "
                             f"cities[0] has {np.shape(first.od_prob)[0]}")


def stack_cities(cities: Sequence[City], r_max: int | None = None, name: str | None = None) -> City:
    """One batched City (leading axis = city) from cities of possibly different sizes.

    Each city is padded to `r_max` (default: the largest) regions. The batch
    gets common static metadata: `name` (default 'batch-of-N'), region ids
    0..r_max-1, the largest grid shape and cell size (both display-only); grid,
    step length, OD buckets and feature names must agree (ValueError otherwise).
    """
    cities = list(cities)
    if not cities:
        raise ValueError("stack_cities: need at least one city")
    if not isinstance(cities[0], City):
        raise TypeError(f"stack_cities: cities[0] must be a City, got {type(cities[0]).__name__}")
    _check_compatible(cities)
    r_max = max(c.num_regions for c in cities) if r_max is None else int(r_max)
    padded = [pad_city(c, r_max) for c in cities]
    first = padded[0]
    arrays = {k: np.stack([np.asarray(getattr(c, k)) for c in padded]) for k in ARRAY_FIELDS}
    grid_shape = tuple(int(max(c.grid_shape[i] for c in padded)) for i in range(2))
    return City(**arrays, name=name or f"batch-of-{len(padded)}", region_ids=tuple(range(r_max)), grid=first.grid,
                grid_shape=grid_shape, cell_km=max(c.cell_km for c in padded), step_minutes=first.step_minutes,
                steps_per_day=first.steps_per_day, od_bucket_steps=first.od_bucket_steps,
                directions=first.directions, feature_names=first.feature_names)
