"""AMoD benchmark scenarios (`scenario_<city>.json`) as a jaxmob `City`.

These files (from the graph-meta-rl-for-amod / RL4AMOD benchmarks) hold aggregated
ride-hailing demand for a 3-hour window: per-minute OD request rates with travel
times and prices, the fleet size per hour, rebalancing times per hour and a region
adjacency graph. How they map onto a City:

* Regions: the `nlat x nlon` cells whose id appears anywhere in the file, in id
  order (so region index == id when all appear). Cell of id `i` is
  (col, row) = (i % nlon, i // nlon).
* Coordinates: the files carry none. Centroids are synthetic, from the grid
  position with `SYNTHETIC_CELL_KM` cells placed by `grid.km_to_latlon`; they
  only give the regions a layout, not a real location.
* Neighbours: square N/S/E/W from the grid position (`grid.neighbor_table`). The
  published files use nlon = 1, so this is a chain, while `topology_graph` is the
  real (irregular, degree up to 7) adjacency. It is not consistent with the grid
  and is not forced into the 4 compass slots; it is returned in
  `AmodInfo.topology` (unique directed edges, region indices) for graph models.
* Demand: a row is a rate (trips/min) holding for the minutes until the next time
  stamp (1 minute in every published file); expected requests per step are summed
  over those minutes, zero outside the window, and scaled by the demand ratio.
* OD probabilities: per hour of day from the same minute rates; an origin with no
  requests in an hour sends all its mass to itself.
* Travel steps: ceil(demand-weighted mean travel_time / step), >= 1, for pairs with
  requests; other pairs use the mean rebalancing time of the pair, and pairs
  absent from both the median observed travel time.
* Relocation steps: ceil(mean reb_time over the window's hours / step), >= 1;
  pairs without a rebalancing time use the travel steps.
* Price: demand-weighted mean price per pair (0 where never requested).
* Fleet: `totalAcc` of the first hour, spread as evenly as possible (the first
  `fleet % R` regions get one vehicle more); capacity = the whole fleet in every
  region (taxis need no docks).
* Demand ratio: if not given, the city's `demand_ratio` in
  `RL4AMOD_calibrated_parameters.json` beside the file (the benchmark's own
  calibration), else 1.0.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .citibike import LoaderError
from .core import City, SQUARE_DIRECTIONS
from .grid import km_to_latlon, neighbor_table

CALIBRATION_FILE = "RL4AMOD_calibrated_parameters.json"
SYNTHETIC_CELL_KM = 1.0
MINUTES_PER_DAY = 1440
REQUIRED_KEYS = {
    "demand": ("time_stamp", "origin", "destination", "demand", "travel_time", "price"),
    "totalAcc": ("hour", "acc"),
    "rebTime": ("time_stamp", "origin", "destination", "reb_time"),
    "topology_graph": ("i", "j"),
}


@dataclass
class AmodInfo:
    """What `load_amod` read besides the City: the window, fleet and calibration."""

    source: str
    city: str
    window_start_min: int  # first minute of day with demand rows
    window_end_min: int  # exclusive
    fleet_by_hour: dict[int, int]
    demand_ratio: float
    calibration: dict | None  # the city's entry in the calibration file, if used
    minutes_per_stamp: int
    topology: tuple = field(default=())  # unique (i, j) edges of topology_graph, region indices
    topology_on_grid: int = 0  # how many of those edges join grid neighbours


# ------------------------------------------------------------------ reading
def _fail(path, problem: str):
    raise LoaderError(f"{path}: {problem}")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        _fail(path, "no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        _fail(path, f"not valid JSON ({err})")
    if not isinstance(data, dict):
        _fail(path, "top level must be a JSON object")
    missing = [k for k in ("nlat", "nlon", *REQUIRED_KEYS) if k not in data]
    if missing:
        _fail(path, f"missing keys {missing}")
    return data


def _table(path, data: dict, key: str) -> dict[str, np.ndarray]:
    """A list of records as float64 columns; every record needs every field."""
    rows = data[key]
    if not isinstance(rows, list):
        _fail(path, f"'{key}' must be a list of records")
    cols = REQUIRED_KEYS[key]
    try:
        table = {c: np.array([r[c] for r in rows], dtype=np.float64) for c in cols}
    except (KeyError, TypeError) as err:
        _fail(path, f"'{key}' has a record without field {err}; each needs {list(cols)}")
    except ValueError as err:
        _fail(path, f"'{key}' has a non-numeric value ({err})")
    for c, v in table.items():
        if not np.all(np.isfinite(v)):
            _fail(path, f"'{key}.{c}' contains NaN or infinite values")
    return table


def _check(path, ok, problem: str) -> None:
    if not np.all(ok):
        _fail(path, problem)


def _validate(path, nlat: int, nlon: int, dem, acc, reb, topo) -> None:
    n = nlat * nlon
    _check(path, len(dem["demand"]) > 0, "'demand' is empty")
    _check(path, len(acc["acc"]) > 0, "'totalAcc' is empty")
    for key, tab, fields in (("demand", dem, ("origin", "destination")), ("rebTime", reb, ("origin", "destination")),
                             ("topology_graph", topo, ("i", "j"))):
        for f in fields:
            v = tab[f]
            bad = (v != np.round(v)) | (v < 0) | (v >= n)
            _check(path, ~bad, f"'{key}.{f}' must be region ids in [0, {n}) (nlat*nlon); got {v[bad][:3].tolist()}")
    _check(path, dem["demand"] >= 0, f"'demand.demand' must be non-negative (min {dem['demand'].min():g})")
    _check(path, dem["travel_time"] >= 0, "'demand.travel_time' must be non-negative")
    _check(path, dem["price"] >= 0, "'demand.price' must be non-negative")
    _check(path, (dem["time_stamp"] >= 0) & (dem["time_stamp"] < MINUTES_PER_DAY),
           "'demand.time_stamp' must be a minute of day in [0, 1440)")
    _check(path, reb["reb_time"] >= 0, "'rebTime.reb_time' must be non-negative")
    _check(path, acc["acc"] >= 0, "'totalAcc.acc' must be non-negative")


def _calibration(path: Path, city: str) -> dict | None:
    """The city's entry in the calibration file beside `path`, if there is one."""
    cal = path.with_name(CALIBRATION_FILE)
    if not cal.is_file():
        return None
    try:
        entry = json.loads(cal.read_text(encoding="utf-8")).get(city)
    except (json.JSONDecodeError, AttributeError) as err:
        _fail(cal, f"not a valid calibration file ({err})")
    return dict(entry) if isinstance(entry, dict) else None


# ------------------------------------------------------------------ building
def _minute_demand(dem, index: np.ndarray, R: int, minutes_per_stamp: int) -> np.ndarray:
    """(1440, R, R) requests per minute of day: each row's rate held for its minutes."""
    rate = np.zeros((MINUTES_PER_DAY, R, R))
    t0 = dem["time_stamp"].astype(np.int64)
    o, d = index[dem["origin"].astype(np.int64)], index[dem["destination"].astype(np.int64)]
    for k in range(minutes_per_stamp):
        t = t0 + k
        ok = t < MINUTES_PER_DAY
        np.add.at(rate, (t[ok], o[ok], d[ok]), dem["demand"][ok])
    return rate


def _pair_mean(o: np.ndarray, d: np.ndarray, R: int, value: np.ndarray,
               weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `value` per (origin, destination), weighted by `weight` (requests) where
    the pair has any, else a plain mean of its rows; and whether the pair has rows."""
    w = np.ones_like(value) if weight is None else weight
    num, den, plain, cnt = (np.zeros((R, R)) for _ in range(4))
    np.add.at(num, (o, d), w * value)
    np.add.at(den, (o, d), w)
    np.add.at(plain, (o, d), value)
    np.add.at(cnt, (o, d), 1.0)
    mean = np.where(den > 0, num / np.where(den > 0, den, 1.0), plain / np.maximum(cnt, 1.0))
    return mean, cnt > 0


def _to_steps(minutes: np.ndarray, step_minutes: int) -> np.ndarray:
    return np.maximum(1, np.ceil(minutes / step_minutes - 1e-9)).astype(np.int32)


def _od_by_hour(rate: np.ndarray) -> np.ndarray:
    """(24, R, R) destination probabilities per hour; empty rows stay at the origin."""
    R = rate.shape[1]
    hourly = rate.reshape(24, 60, R, R).sum(axis=1)
    total = hourly.sum(axis=-1, keepdims=True)
    od = np.where(total > 0, hourly / np.maximum(total, 1e-300), 0.0)
    empty = total[..., 0] <= 0
    h, r = np.nonzero(empty)
    od[h, r, r] = 1.0
    return od


def _even_split(fleet: int, R: int) -> np.ndarray:
    inv = np.full(R, fleet // R, dtype=np.int64)
    inv[: fleet % R] += 1
    return inv


def load_amod(path, *, step_minutes: int = 3, demand_ratio: float | None = None) -> tuple[City, AmodInfo]:
    """Load one AMoD scenario JSON as a City (see the module docstring for the mapping)."""
    path = Path(path)
    if step_minutes <= 0 or 60 % step_minutes:
        raise ValueError(f"step_minutes must divide 60 (hourly OD buckets), got {step_minutes}")
    data = _read_json(path)
    try:
        nlat, nlon = int(data["nlat"]), int(data["nlon"])
    except (TypeError, ValueError):
        _fail(path, f"nlat/nlon must be integers, got {data['nlat']!r}, {data['nlon']!r}")
    _check(path, nlat >= 1 and nlon >= 1, f"nlat and nlon must be >= 1, got {nlat}, {nlon}")
    dem, acc, reb, topo = (_table(path, data, k) for k in REQUIRED_KEYS)
    _validate(path, nlat, nlon, dem, acc, reb, topo)

    ids = np.unique(np.concatenate([dem["origin"], dem["destination"], reb["origin"], reb["destination"],
                                    topo["i"], topo["j"]]).astype(np.int64))
    R = len(ids)
    index = np.full(nlat * nlon, -1, dtype=np.int64)
    index[ids] = np.arange(R)

    city = path.stem.removeprefix("scenario_")
    calibration = _calibration(path, city) if demand_ratio is None else None
    if demand_ratio is None:
        demand_ratio = float(calibration.get("demand_ratio", 1.0)) if calibration else 1.0
    stamps = np.unique(dem["time_stamp"].astype(np.int64))
    minutes_per_stamp = int(np.diff(stamps).min()) if len(stamps) > 1 else 1

    rate = _minute_demand(dem, index, R, minutes_per_stamp) * demand_ratio
    T = MINUTES_PER_DAY // step_minutes
    demand_rate = rate.sum(axis=-1).reshape(T, step_minutes, R).sum(axis=1)
    od_prob = _od_by_hour(rate)

    o, d = index[dem["origin"].astype(np.int64)], index[dem["destination"].astype(np.int64)]
    travel_min, seen = _pair_mean(o, d, R, dem["travel_time"], dem["demand"])
    price, _ = _pair_mean(o, d, R, dem["price"], dem["demand"])
    ro, rd = index[reb["origin"].astype(np.int64)], index[reb["destination"].astype(np.int64)]
    reb_min, reb_seen = _pair_mean(ro, rd, R, reb["reb_time"])
    fallback = np.where(reb_seen, reb_min, np.median(dem["travel_time"]))
    travel_steps = _to_steps(np.where(seen, travel_min, fallback), step_minutes)
    relocation_steps = np.where(reb_seen, _to_steps(reb_min, step_minutes), travel_steps)

    fleet_by_hour = {int(h): int(a) for h, a in sorted(zip(acc["hour"], acc["acc"]))}
    fleet = fleet_by_hour[min(fleet_by_hour)]
    cells = np.stack([ids % nlon, ids // nlon], axis=1)
    nbr, mask = neighbor_table(cells, "square")
    xy = cells * SYNTHETIC_CELL_KM + SYNTHETIC_CELL_KM / 2.0
    xy = xy - xy.mean(axis=0)

    topology = sorted({(int(index[int(i)]), int(index[int(j)])) for i, j in zip(topo["i"], topo["j"])})
    grid_pairs = {(a, int(b)) for a in range(R) for b, m in zip(nbr[a], mask[a]) if m}
    start = int(stamps[0])
    info = AmodInfo(
        source=path.name, city=city, window_start_min=start,
        window_end_min=int(stamps[-1]) + minutes_per_stamp, fleet_by_hour=fleet_by_hour,
        demand_ratio=float(demand_ratio), calibration=calibration, minutes_per_stamp=minutes_per_stamp,
        topology=tuple(topology), topology_on_grid=sum(e in grid_pairs for e in topology),
    )
    city_obj = City.create(
        name=f"amod-{city}", centroid=km_to_latlon(xy), xy_km=xy, cell=cells, neighbors=nbr,
        neighbor_mask=mask, travel_steps=travel_steps, relocation_steps=relocation_steps,
        demand_rate=demand_rate, od_prob=od_prob, price=price, init_inventory=_even_split(fleet, R),
        capacity=np.full(R, max(fleet, 1)), region_ids=tuple(str(i) for i in ids), grid="square",
        grid_shape=(nlon, nlat), cell_km=SYNTHETIC_CELL_KM, step_minutes=step_minutes,
        od_bucket_steps=60 // step_minutes, directions=SQUARE_DIRECTIONS,
    )
    return city_obj, info
