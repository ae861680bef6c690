"""Estimate a `City` and replay days from region-mapped trips.

Input is a trip DataFrame with columns `start_time` (datetime64), `duration_s`,
`origin`, `dest` (region indices). Every estimate uses only the estimation days,
so evaluation days stay unseen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .core import City, DayTrips
from .regions import RegionGrid


@dataclass(frozen=True)
class EstimationOptions:
    """Assumptions that the public trip files cannot answer, made explicit.

    docks_per_station: the trip files carry no dock counts; capacity of a region
      is stations x this (Citi Bike stations have roughly 15-60 docks).
    fill: share of docks holding a bike at midnight (initial inventory). The
      files carry no station status, so this is a scenario choice, not an
      estimate: at 0.5 (about the 2017 system's bikes-to-docks ratio) doing
      nothing already serves ~95% of a held-out Manhattan day at 1 km cells and
      greedy ~99%, leaving an operator little to decide; 0.3 (the default)
      leaves no-op ~92%, greedy ~96% and the clairvoyant bound ~100%.
    min_pair_trips: OD pairs with fewer observed trips take a distance-based
      travel time instead of their own median.
    """

    step_minutes: int = 10
    od_bucket_minutes: int = 60
    docks_per_station: int = 30
    fill: float = 0.3
    min_pair_trips: int = 3

    def __post_init__(self):
        if self.step_minutes <= 0 or 1440 % self.step_minutes:
            raise ValueError(f"step_minutes must divide 1440, got {self.step_minutes}")
        if self.od_bucket_minutes % self.step_minutes or 1440 % self.od_bucket_minutes:
            raise ValueError(f"od_bucket_minutes ({self.od_bucket_minutes}) must be a multiple of step_minutes dividing 1440")
        if self.docks_per_station < 1:
            raise ValueError(f"docks_per_station must be >= 1, got {self.docks_per_station}")
        if not 0.0 <= self.fill <= 1.0:
            raise ValueError(f"fill must lie in [0, 1], got {self.fill}")


def step_of_day(times: pd.Series, step_minutes: int) -> np.ndarray:
    minutes = times.dt.hour.to_numpy() * 60 + times.dt.minute.to_numpy() + times.dt.second.to_numpy() / 60.0
    return np.floor(minutes / step_minutes).astype(np.int64)


def estimate_city(trips: pd.DataFrame, grid: RegionGrid, dates: list[str], *, name: str,
                  options: EstimationOptions = EstimationOptions()) -> City:
    """Estimate rates, OD probabilities, travel times, inventory and capacity.

    - demand_rate[t, r]: mean over `dates` of departures from r in step t. These
      are *served* trips (a customer who found no bike left no record), so the
      rates under-estimate true demand where stations ran empty.
    - od_prob[h, r]: empirical destination shares per hour bucket; an origin with
      no departures in a bucket takes its whole-day shares, and an origin with
      none at all keeps its bikes (mass on itself).
    - travel_steps[o, d]: median duration of the pair's trips, in steps
      (rounded, >= 1); pairs with fewer than `min_pair_trips` trips use the
      L1 distance between cell centres at the median pace (min/km) of all trips.
    - capacity = stations x docks_per_station; init_inventory = floor(fill x capacity).
    """
    o = options
    T = 1440 // o.step_minutes
    R = grid.num_regions
    day = trips["start_time"].dt.strftime("%Y-%m-%d")
    est = trips[day.isin(dates)]
    if len(est) == 0:
        raise ValueError(f"no trips on the estimation days {dates}")
    n_days = len(dates)
    orig, dest = est["origin"].to_numpy(), est["dest"].to_numpy()
    step = step_of_day(est["start_time"], o.step_minutes)
    demand = np.zeros((T, R))
    np.add.at(demand, (step, orig), 1.0)
    demand /= n_days

    bucket_steps = o.od_bucket_minutes // o.step_minutes
    H = T // bucket_steps
    counts = np.zeros((H, R, R))
    np.add.at(counts, (step // bucket_steps, orig, dest), 1.0)
    daily = counts.sum(0)
    fallback = np.where(daily.sum(1, keepdims=True) > 0, daily, np.eye(R))
    fallback = fallback / fallback.sum(1, keepdims=True)
    row = counts.sum(2, keepdims=True)
    od = np.where(row > 0, counts / np.maximum(row, 1), fallback[None])

    minutes = est["duration_s"].to_numpy() / 60.0
    l1 = np.abs(grid.xy_km[:, None, :] - grid.xy_km[None, :, :]).sum(-1)
    trip_km = np.maximum(l1[orig, dest], grid.cell_km / 2)
    pace = float(np.median(minutes / trip_km))  # minutes per km
    median_min = _pair_median(orig * R + dest, minutes, R * R).reshape(R, R)
    pair_n = np.bincount(orig * R + dest, minlength=R * R).reshape(R, R)
    dist_min = np.maximum(l1, grid.cell_km / 2) * pace
    travel_min = np.where(pair_n >= o.min_pair_trips, median_min, dist_min)
    travel_steps = np.maximum(1, np.rint(travel_min / o.step_minutes)).astype(np.int32)
    reloc_steps = np.maximum(1, np.rint(dist_min / o.step_minutes)).astype(np.int32)

    capacity = grid.stations_per_region * o.docks_per_station
    inventory = np.floor(capacity * o.fill).astype(np.int32)
    departures = np.bincount(orig, minlength=R) / n_days
    arrivals = np.bincount(dest, minlength=R) / n_days
    features = np.stack([grid.stations_per_region, capacity, departures, arrivals], axis=1)
    return City.create(
        name=name, centroid=grid.centroid, xy_km=grid.xy_km, cell=grid.cells, neighbors=grid.neighbors,
        neighbor_mask=grid.neighbor_mask, travel_steps=travel_steps, relocation_steps=reloc_steps,
        demand_rate=demand, od_prob=od, init_inventory=inventory, capacity=capacity, features=features,
        feature_names=("stations", "docks", "departures_per_day", "arrivals_per_day"),
        region_ids=grid.region_ids, grid="square", grid_shape=grid.grid_shape, cell_km=grid.cell_km,
        step_minutes=o.step_minutes, od_bucket_steps=bucket_steps,
    )


def _pair_median(pair: np.ndarray, values: np.ndarray, n_pairs: int) -> np.ndarray:
    """Median of `values` per integer group id (NaN for empty groups), vectorised."""
    out = np.full(n_pairs, np.nan)
    order = np.lexsort((values, pair))
    p, v = pair[order], values[order]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    ends = np.r_[starts[1:], len(p)]
    lo, hi = v[starts + (ends - starts - 1) // 2], v[starts + (ends - starts) // 2]
    out[p[starts]] = (lo + hi) / 2.0
    return out


def day_trips(trips: pd.DataFrame, date: str, *, num_regions: int, step_minutes: int = 10) -> DayTrips:
    """The trips departing on `date` as a `DayTrips`: steps from the actual start
    and end times; a trip ending in its start step arrives in the next one."""
    day = trips[trips["start_time"].dt.strftime("%Y-%m-%d") == date]
    depart = step_of_day(day["start_time"], step_minutes)
    end_min = (day["start_time"] - pd.Timestamp(date)).dt.total_seconds().to_numpy() / 60.0 + day["duration_s"].to_numpy() / 60.0
    arrive = np.maximum(depart + 1, np.floor(end_min / step_minutes).astype(np.int64))
    return DayTrips.create(day["origin"].to_numpy(), day["dest"].to_numpy(), depart, arrive,
                           num_regions=num_regions, steps_per_day=1440 // step_minutes, date=date)
