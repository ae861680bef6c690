"""City distributions: draw thousands of varied synthetic cities inside `jit`/`vmap`.

`sample_city(key, spec)` builds a `City` directly as JAX arrays, so

    cities = jax.vmap(sample_city, in_axes=(0, None))(keys, spec)

is one compiled program that yields a stacked batch of cities. Every shape and
every piece of static metadata depends only on the `CitySpec` (never on the
key): a city of `cols x rows` regions fills indices `[0, cols * rows)` of an
`r_max`-region array and the rest are padding regions (`region_mask=False`,
no docks, no bikes, no demand, no neighbours, OD mass on themselves). Real
regions come first so padding never changes which index a real region has.

What varies per city (each drawn uniformly from the spec's `(low, high)` range):
grid size, trips per region and day, the strength of the morning (home -> centre)
and evening (centre -> home) commuting peaks, the position of the business
district, a number of event hotspots (each a place and a time window that both
emits and attracts trips), the gravity exponent of the OD model, travel speed,
docks per region and how full the docks start.

Samples are plain `City` pytrees; `jaxmob.envs.rebalance.city.pad.take_city` turns one element
of a batch back into a validated NumPy `City`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import jax
import jax.numpy as jnp

from ....core.geometry import EARTH_RADIUS_KM, HEX_DIRECTIONS, HEX_OFFSETS, SQUARE_DIRECTIONS, SQUARE_OFFSETS
from .core import City

FEATURE_NAMES = ("docks", "cbd", "dist_centre_km")
GRIDS = ("square", "hex")


@dataclass(frozen=True)
class CitySpec:
    """A distribution over synthetic bike-sharing cities (static: one compile per spec).

    r_max              regions per sampled city after padding (>= cols[1] * rows[1])
    grid               'square' or 'hex' (the same for every sample: it fixes K)
    cols, rows         (low, high) integer grid size range, inclusive
    trips_per_region   (low, high) expected departures per real region per day (the
                       city total scales with its size, keeping trips per bike sensible)
    peak_strength      (low, high) weight of the commuting peaks vs the all-day base
    hotspots           (low, high) integer number of event hotspots
    hotspot_strength   (low, high) weight of one hotspot at its peak
    gravity_exponent   (low, high) distance decay of the OD gravity model
    docks_per_region   (low, high) integer docks per real region, inclusive
    fill               (low, high) fraction of docks holding a bike at the start
    speed_kmh          (low, high) riding speed that turns distance into steps
    cell_km            cell size (static metadata, so the same for all samples)
    step_minutes       step length; must divide 1440
    od_buckets         OD time buckets per day; must divide the steps per day
    origin             (lat, lon) the cities are drawn around (maps only)
    name               the static name every sample carries
    """

    r_max: int = 64
    grid: str = "square"
    cols: tuple = (3, 8)
    rows: tuple = (3, 8)
    trips_per_region: tuple = (20.0, 100.0)
    peak_strength: tuple = (0.5, 2.5)
    hotspots: tuple = (0, 3)
    hotspot_strength: tuple = (0.5, 3.0)
    gravity_exponent: tuple = (1.0, 2.5)
    docks_per_region: tuple = (10, 40)
    fill: tuple = (0.3, 0.7)
    speed_kmh: tuple = (9.0, 15.0)
    cell_km: float = 1.0
    step_minutes: int = 10
    od_buckets: int = 24
    origin: tuple = (40.75, -73.98)
    name: str = "sampled"

    def __post_init__(self):
        for f in fields(self):  # lists -> tuples, so the spec stays hashable (a jit static)
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        _validate(self)

    @property
    def steps_per_day(self) -> int:
        return 1440 // self.step_minutes

    @property
    def directions(self) -> tuple:
        return SQUARE_DIRECTIONS if self.grid == "square" else HEX_DIRECTIONS


# The spec is a compile-time constant: registering it as a static pytree lets
# `jax.jit(sample_city)` take it as an ordinary argument.
jax.tree_util.register_static(CitySpec)


def _fail(field: str, problem: str):
    raise ValueError(f"CitySpec.{field}: {problem}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_range(spec: CitySpec, field: str, *, integer: bool = False, low: float = 0.0,
                 high: float = math.inf, open_low: bool = False) -> None:
    """A (low, high) pair of finite numbers with low <= high inside [low, high]."""
    value = getattr(spec, field)
    if not (isinstance(value, tuple) and len(value) == 2):
        _fail(field, f"must be a (low, high) pair, got {value!r}")
    for v in value:
        ok_type = _is_int(v) if integer else isinstance(v, (int, float)) and not isinstance(v, bool)
        if not ok_type or not math.isfinite(v):
            _fail(field, f"must hold finite {'integers' if integer else 'numbers'}, got {value!r}")
        if v < low or (open_low and v <= low) or v > high:
            bound = f"{'>' if open_low else '>='} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
            _fail(field, f"values must be {bound}, got {value!r}")
    if value[0] > value[1]:
        _fail(field, f"low must not exceed high, got {value!r}")


def _validate(spec: CitySpec) -> None:
    """Every field, with a ValueError that names the first bad one."""
    if spec.grid not in GRIDS:
        _fail("grid", f"must be one of {GRIDS}, got {spec.grid!r}")
    for name in ("cols", "rows"):
        _check_range(spec, name, integer=True, low=1)
    for name in ("docks_per_region",):
        _check_range(spec, name, integer=True, low=1)
    _check_range(spec, "hotspots", integer=True, low=0)
    for name in ("trips_per_region", "peak_strength", "hotspot_strength", "gravity_exponent"):
        _check_range(spec, name, low=0.0)
    _check_range(spec, "fill", low=0.0, high=1.0)
    _check_range(spec, "speed_kmh", low=0.0, open_low=True)
    if not _is_int(spec.r_max) or spec.r_max < 1:
        _fail("r_max", f"must be a positive integer, got {spec.r_max!r}")
    largest = spec.cols[1] * spec.rows[1]
    if spec.r_max < largest:
        _fail("r_max", f"({spec.r_max}) must hold the largest grid, cols[1] * rows[1] = {largest}")
    if not (isinstance(spec.cell_km, (int, float)) and math.isfinite(spec.cell_km) and spec.cell_km > 0):
        _fail("cell_km", f"must be a positive number, got {spec.cell_km!r}")
    if not (_is_int(spec.step_minutes) and spec.step_minutes > 0 and 1440 % spec.step_minutes == 0):
        _fail("step_minutes", f"must be a positive divisor of 1440, got {spec.step_minutes!r}")
    if not (_is_int(spec.od_buckets) and spec.od_buckets > 0 and spec.steps_per_day % spec.od_buckets == 0):
        _fail("od_buckets", f"must be a positive divisor of the {spec.steps_per_day} steps per day, "
                            f"got {spec.od_buckets!r}")
    if not (isinstance(spec.origin, tuple) and len(spec.origin) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in spec.origin)):
        _fail("origin", f"must be a (lat, lon) pair, got {spec.origin!r}")
    if not isinstance(spec.name, str):
        _fail("name", f"must be a string, got {spec.name!r}")


# ----------------------------------------------------------------------- sampling
class _Draws:
    """Hands out consecutive slices of ONE block of uniforms drawn per city.

    Every `jax.random` call inlines a whole threefry hash into the program, and
    XLA's CPU compile time grows with their number (about 0.1 s each): one
    block instead of ~20 calls keeps `sample_city` quick to compile.
    """

    def __init__(self, key, size: int):
        self.u = jax.random.uniform(key, (size,), jnp.float32)
        self.size, self.used = size, 0

    def take(self, n: int = 1, low: float = 0.0, high: float = 1.0):
        """n uniforms on [low, high) (a scalar when n == 1)."""
        if self.used + n > self.size:
            raise AssertionError("sample_city: uniform block too small (a bug)")
        u = self.u[self.used:self.used + n]
        self.used += n
        u = low + (high - low) * u
        return u[0] if n == 1 else u

    def uniform(self, bounds, n: int = 1):
        return self.take(n, float(bounds[0]), float(bounds[1]))

    def randint(self, bounds, n: int = 1):
        """Integers uniform on the inclusive range `bounds`."""
        low, high = int(bounds[0]), int(bounds[1])
        return jnp.minimum(low + jnp.floor(self.take(n) * (high - low + 1)).astype(jnp.int32), high)


def _num_draws(spec: CitySpec) -> int:
    """Uniforms one city uses (see the `take` calls in `sample_city` and helpers)."""
    return 16 + 4 * spec.hotspots[1] + 2 * spec.r_max


def _layout(draws: _Draws, spec: CitySpec):
    """Grid size, cells, positions (km, centred) and neighbours of one city.

    Region i < cols * rows sits at column i % cols, row i // cols; the rest pad.
    Hex rows are shifted like `synthetic_city` so the map is roughly rectangular.
    """
    cols, rows = draws.randint(spec.cols), draws.randint(spec.rows)
    index = jnp.arange(spec.r_max, dtype=jnp.int32)
    real = index < cols * rows
    col, row = index % cols, index // cols
    if spec.grid == "square":
        cell = jnp.stack([col, row], axis=1)
        xy = (cell.astype(jnp.float32) + 0.5) * spec.cell_km
        offsets = jnp.asarray([SQUARE_OFFSETS[d] for d in SQUARE_DIRECTIONS], jnp.int32)
    else:
        q = col - row // 2
        cell = jnp.stack([q, row], axis=1)
        qf, rf = q.astype(jnp.float32), row.astype(jnp.float32)
        xy = spec.cell_km * jnp.stack([qf + rf / 2.0, -(math.sqrt(3.0) / 2.0) * rf], axis=1)
        offsets = jnp.asarray([HEX_OFFSETS[d] for d in HEX_DIRECTIONS], jnp.int32)
    centre = jnp.sum(xy * real[:, None], axis=0) / jnp.sum(real)
    xy = jnp.where(real[:, None], xy - centre, 0.0)
    cell = jnp.where(real[:, None], cell, -1)
    neighbors, neighbor_mask = _neighbors(cell, real, cols, rows, offsets, spec.grid)
    return dict(cols=cols, rows=rows, real=real, cell=cell, xy=xy, neighbors=neighbors, neighbor_mask=neighbor_mask)


def _neighbors(cell, real, cols, rows, offsets, grid: str):
    """(R, K) neighbour index (self where absent) and mask, from grid arithmetic."""
    a = cell[:, None, 0] + offsets[None, :, 0]
    b = cell[:, None, 1] + offsets[None, :, 1]
    col = a if grid == "square" else a + b // 2  # hex: axial q back to the offset column
    inside = (col >= 0) & (col < cols) & (b >= 0) & (b < rows) & real[:, None]
    self_index = jnp.arange(cell.shape[0], dtype=jnp.int32)[:, None]
    return jnp.where(inside, b * cols + col, self_index).astype(jnp.int32), inside


def _grid_distance_km(cell, grid: str, cell_km: float):
    """(R, R) street distance: Manhattan on squares, hex steps on hexes."""
    d = cell[:, None, :] - cell[None, :, :]
    if grid == "square":
        steps = jnp.abs(d).sum(-1)
    else:
        steps = (jnp.abs(d[..., 0]) + jnp.abs(d[..., 1]) + jnp.abs(d[..., 0] + d[..., 1])) // 2
    return steps.astype(jnp.float32) * cell_km


def _bump(x, centre, width):
    return jnp.exp(-0.5 * ((x - centre) / width) ** 2)


def _districts(draws: _Draws, layout, spec: CitySpec):
    """Business-district weight `cbd` (1 at its centre), residential `home`, distance to centre."""
    real, xy = layout["real"], layout["xy"]
    extent = jnp.max(jnp.where(real, jnp.linalg.norm(xy, axis=1), 0.0))
    shift = draws.take(2, -0.25, 0.25) * extent
    dist_c = jnp.linalg.norm(xy - shift, axis=1)
    width = 0.35 * jnp.max(jnp.where(real, dist_c, 0.0)) + 1e-3
    cbd = jnp.where(real, jnp.exp(-((dist_c / width) ** 2)), 0.0)
    return cbd, jnp.where(real, 1.0 - 0.7 * cbd, 0.0), jnp.where(real, dist_c, 0.0)


def _hotspots(draws: _Draws, layout, spec: CitySpec):
    """Per-hotspot spatial footprint (N, R), peak hour (N,), width (N,) and strength (N,).

    N = hotspots[1] slots (static); slots beyond this city's drawn count have strength 0.
    """
    n_slots = spec.hotspots[1]
    count = draws.randint(spec.hotspots)
    n_real = jnp.sum(layout["real"])
    where = jnp.minimum((draws.take(n_slots).reshape(n_slots) * n_real).astype(jnp.int32), n_real - 1)
    xy = layout["xy"]
    dist = jnp.linalg.norm(xy[None, :, :] - xy[where][:, None, :], axis=-1)
    footprint = jnp.exp(-((dist / spec.cell_km) ** 2)) * layout["real"]
    hour = draws.take(n_slots, 10.0, 22.0).reshape(n_slots)
    width = draws.take(n_slots, 0.75, 2.0).reshape(n_slots)
    strength = draws.uniform(spec.hotspot_strength, n_slots).reshape(n_slots) * (jnp.arange(n_slots) < count)
    return footprint, hour, width, strength


def _hotspot_activity(hours, hotspots):
    """(len(hours), R) how much the hotspots emit / attract at each hour."""
    footprint, hour, width, strength = hotspots
    timing = _bump(hours[:, None], hour[None, :], width[None, :]) * strength[None, :]
    return timing @ footprint


def _demand(draws: _Draws, layout, districts, hotspots, peak, spec: CitySpec):
    """(T, R) expected departures per step: all-day base + morning departures from
    homes + evening departures from the centre + hotspot events, scaled to the
    city's trips per day; zero at padding regions."""
    real = layout["real"]
    cbd, home, _ = districts
    T = spec.steps_per_day
    hours = (jnp.arange(T, dtype=jnp.float32) + 0.5) * spec.step_minutes / 60.0
    am_shift, pm_shift = draws.take(2, -0.75, 0.75)
    base = 0.15 + 0.85 * jnp.clip(jnp.sin(jnp.pi * (hours - 5.0) / 19.0), 0.0, None)
    activity = draws.take(spec.r_max, 0.5, 1.0).reshape(spec.r_max)
    shape = (base[:, None] * activity[None, :]
             + peak * _bump(hours, 8.5 + am_shift, 1.0)[:, None] * home[None, :]
             + peak * _bump(hours, 17.5 + pm_shift, 1.2)[:, None] * cbd[None, :]
             + _hotspot_activity(hours, hotspots))
    shape = shape * real[None, :]
    trips = draws.uniform(spec.trips_per_region) * jnp.sum(real)
    return shape / jnp.sum(shape) * trips


def _od(draws: _Draws, layout, districts, hotspots, distance, peak, spec: CitySpec):
    """(H, R, R) gravity-model destination probabilities per hour bucket.

    attraction(d) / max(distance, half a cell) ** gamma over real destinations,
    where the centre attracts in the morning, homes in the evening and hotspots
    during their window. Padding origins send all mass to themselves.
    """
    real = layout["real"]
    cbd, home, _ = districts
    H = spec.od_buckets
    gamma = draws.uniform(spec.gravity_exponent)
    hours = (jnp.arange(H, dtype=jnp.float32) + 0.5) * 24.0 / H
    morning, evening = _bump(hours, 8.5, 1.5), _bump(hours, 17.5, 1.5)
    pull = (morning[:, None] * cbd[None, :] + evening[:, None] * home[None, :]
            + jnp.clip(1.0 - morning - evening, 0.0, 1.0)[:, None] * 0.3)
    attract = 1.0 + 1.5 * peak * pull + _hotspot_activity(hours, hotspots)  # (H, R)
    decay = jnp.maximum(distance, 0.5 * spec.cell_km) ** (-gamma)  # (R, R)
    weight = attract[:, None, :] * decay[None, :, :] * real[None, None, :]
    real_rows = weight / jnp.sum(weight, axis=-1, keepdims=True)
    stay = jnp.eye(spec.r_max, dtype=jnp.float32)[None]
    return jnp.where(real[None, :, None], real_rows, stay)


def _latlon(xy, origin):
    """Inverse equirectangular projection (as `grid.km_to_latlon`, in jnp)."""
    lat0 = math.radians(origin[0])
    lat = origin[0] + jnp.rad2deg(xy[:, 1] / EARTH_RADIUS_KM)
    lon = origin[1] + jnp.rad2deg(xy[:, 0] / (EARTH_RADIUS_KM * math.cos(lat0)))
    return jnp.stack([lat, lon], axis=1).astype(jnp.float32)


def sample_city(key: jax.Array, spec: CitySpec) -> City:
    """One random city from `spec`, as JAX arrays (jit- and vmap-safe; no NumPy).

    Shapes and static metadata depend only on `spec`, so samples from different
    keys stack into one batch. Padding regions follow `City`'s rules (see the
    module doc), and a sample passes `City.create`'s validation.
    """
    if not isinstance(spec, CitySpec):
        raise TypeError(f"sample_city: spec must be a CitySpec, got {type(spec).__name__}")
    draws = _Draws(key, _num_draws(spec))
    layout = _layout(draws, spec)
    real = layout["real"]
    districts = _districts(draws, layout, spec)
    hotspots = _hotspots(draws, layout, spec)
    peak = draws.uniform(spec.peak_strength)
    distance = _grid_distance_km(layout["cell"], spec.grid, spec.cell_km)
    demand_rate = _demand(draws, layout, districts, hotspots, peak, spec)
    od_prob = _od(draws, layout, districts, hotspots, distance, peak, spec)

    speed = draws.uniform(spec.speed_kmh)
    minutes = distance / speed * 60.0
    travel = jnp.maximum(1, jnp.ceil(minutes / spec.step_minutes)).astype(jnp.int32)
    travel = jnp.where(real[:, None] & real[None, :], travel, 1)
    capacity = draws.randint(spec.docks_per_region, spec.r_max).reshape(spec.r_max) * real
    fill = draws.uniform(spec.fill)
    init_inventory = jnp.floor(capacity * fill).astype(jnp.int32)
    cbd, _, dist_c = districts
    features = jnp.stack([capacity.astype(jnp.float32), cbd, dist_c], axis=1) * real[:, None]
    R = spec.r_max
    return City(
        centroid=_latlon(layout["xy"], spec.origin), xy_km=layout["xy"].astype(jnp.float32),
        cell=layout["cell"].astype(jnp.int32), neighbors=layout["neighbors"], neighbor_mask=layout["neighbor_mask"],
        travel_steps=travel, relocation_steps=travel, demand_rate=demand_rate.astype(jnp.float32),
        od_prob=od_prob.astype(jnp.float32), price=jnp.zeros((R, R), jnp.float32),
        init_inventory=init_inventory, capacity=capacity.astype(jnp.int32), features=features.astype(jnp.float32),
        region_mask=real, name=spec.name, region_ids=tuple(range(R)), grid=spec.grid,
        grid_shape=(spec.cols[1], spec.rows[1]), cell_km=float(spec.cell_km), step_minutes=spec.step_minutes,
        steps_per_day=spec.steps_per_day, od_bucket_steps=spec.steps_per_day // spec.od_buckets,
        directions=spec.directions, feature_names=FEATURE_NAMES,
    )


def sample_cities(key: jax.Array, spec: CitySpec, num: int) -> City:
    """`num` cities as one stacked batch (leading axis `num` on every array)."""
    return jax.jit(jax.vmap(sample_city, in_axes=(0, None)), static_argnums=1)(jax.random.split(key, num), spec)
