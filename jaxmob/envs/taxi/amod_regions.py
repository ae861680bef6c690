"""An AMoD benchmark file as per-step region arrays, for the individual-taxi cities.

How the file maps onto regions:

* Regions: the `nlat x nlon` cells whose id appears anywhere in the file, in id
  order (so region index == id when all appear). Cell of id `i` is
  (col, row) = (i % nlon, i // nlon).
* Neighbours: square N/S/E/W from the grid position (`jaxmob.core.geometry.neighbor_table`). The
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

from dataclasses import dataclass, field

import numpy as np

from ...core.geometry import neighbor_table
from ..amod.benchmark import read_benchmark

MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class AmodRegions:
    """The regions of one benchmark file, aggregated to `step_minutes` steps of a whole day."""

    region_ids: tuple
    cell: np.ndarray  # (R, 2) grid position (col, row)
    neighbors: np.ndarray  # (R, 4) square N/S/E/W grid neighbours
    neighbor_mask: np.ndarray
    demand_rate: np.ndarray  # (steps per day, R) expected requests per step, float32
    od_prob: np.ndarray  # (24, R, R) destination probabilities per hour, float32
    travel_steps: np.ndarray  # (R, R) int
    relocation_steps: np.ndarray  # (R, R) int
    price: np.ndarray  # (R, R) float32
    init_inventory: np.ndarray  # (R,) the first hour's fleet spread evenly
    capacity: np.ndarray  # (R,) the whole fleet (taxis need no docks)
    step_minutes: int

    @property
    def num_regions(self) -> int:
        return len(self.region_ids)

    @property
    def steps_per_day(self) -> int:
        return MINUTES_PER_DAY // self.step_minutes


@dataclass
class AmodInfo:
    """What `load_amod` read besides the region arrays: the window, fleet and calibration."""

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


def load_amod(path, *, step_minutes: int = 3, demand_ratio: float | None = None) -> tuple[AmodRegions, AmodInfo]:
    """Load one AMoD scenario JSON as region arrays (see the module docstring for the mapping)."""
    if step_minutes <= 0 or 60 % step_minutes:
        raise ValueError(f"step_minutes must divide 60 (hourly OD buckets), got {step_minutes}")
    f = read_benchmark(path)
    nlat, nlon, city, path = f.nlat, f.nlon, f.city, f.path
    dem, acc, reb, topo = f.demand, f.total_acc, f.reb_time, f.topology

    ids = np.unique(np.concatenate([dem["origin"], dem["destination"], reb["origin"], reb["destination"],
                                    topo["i"], topo["j"]]).astype(np.int64))
    R = len(ids)
    index = np.full(nlat * nlon, -1, dtype=np.int64)
    index[ids] = np.arange(R)

    calibration = f.calibration if demand_ratio is None else None
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
    topology = sorted({(int(index[int(i)]), int(index[int(j)])) for i, j in zip(topo["i"], topo["j"])})
    grid_pairs = {(a, int(b)) for a in range(R) for b, m in zip(nbr[a], mask[a]) if m}
    start = int(stamps[0])
    info = AmodInfo(
        source=path.name, city=city, window_start_min=start,
        window_end_min=int(stamps[-1]) + minutes_per_stamp, fleet_by_hour=fleet_by_hour,
        demand_ratio=float(demand_ratio), calibration=calibration, minutes_per_stamp=minutes_per_stamp,
        topology=tuple(topology), topology_on_grid=sum(e in grid_pairs for e in topology),
    )
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    regions = AmodRegions(region_ids=tuple(str(i) for i in ids), cell=cells.astype(np.int32), neighbors=nbr,
                          neighbor_mask=mask, demand_rate=f32(demand_rate), od_prob=f32(od_prob),
                          travel_steps=np.asarray(travel_steps), relocation_steps=np.asarray(relocation_steps),
                          price=f32(price), init_inventory=_even_split(fleet, R), capacity=np.full(R, max(fleet, 1)),
                          step_minutes=step_minutes)
    return regions, info
