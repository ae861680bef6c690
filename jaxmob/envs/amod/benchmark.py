"""The AMoD benchmark's scenario files (`scenario_<city>.json`), read and checked once.

These files (graph-meta-rl-for-amod / RL4AMOD benchmarks) hold aggregated
ride-hailing demand: per-minute OD request rates with travel times and prices
(`demand`), the fleet per hour (`totalAcc`), rebalancing times per hour
(`rebTime`) and a region adjacency (`topology_graph`), on an `nlat x nlon` grid
of region ids. `read_benchmark` returns the validated tables; the region-level
AMoD scenario (`scenario.from_json`) and the individual-taxi AMoD cities
(`jaxmob.envs.taxi.amod_regions`) are both built from it. Every problem is a
`LoaderError` naming the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.errors import LoaderError

CALIBRATION_FILE = "RL4AMOD_calibrated_parameters.json"
MINUTES_PER_DAY = 1440
REQUIRED_KEYS = {
    "demand": ("time_stamp", "origin", "destination", "demand", "travel_time", "price"),
    "totalAcc": ("hour", "acc"),
    "rebTime": ("time_stamp", "origin", "destination", "reb_time"),
    "topology_graph": ("i", "j"),
}


@dataclass(frozen=True)
class BenchmarkFile:
    """One validated scenario file: its tables as float64 columns, and the city's
    entry in the calibration file beside it (None where there is none)."""

    path: Path
    city: str
    nlat: int
    nlon: int
    demand: dict
    total_acc: dict
    reb_time: dict
    topology: dict
    calibration: dict | None


def read_benchmark(path) -> BenchmarkFile:
    """Read and validate one `scenario_<city>.json` (LoaderError naming the problem)."""
    path = Path(path)
    data = _read_json(path)
    try:
        nlat, nlon = int(data["nlat"]), int(data["nlon"])
    except (TypeError, ValueError):
        _fail(path, f"nlat/nlon must be integers, got {data['nlat']!r}, {data['nlon']!r}")
    _check(path, nlat >= 1 and nlon >= 1, f"nlat and nlon must be >= 1, got {nlat}, {nlon}")
    dem, acc, reb, topo = (_table(path, data, k) for k in REQUIRED_KEYS)
    _validate(path, nlat, nlon, dem, acc, reb, topo)
    city = path.stem.removeprefix("scenario_")
    return BenchmarkFile(path=path, city=city, nlat=nlat, nlon=nlon, demand=dem, total_acc=acc, reb_time=reb,
                         topology=topo, calibration=_calibration(path, city))


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
