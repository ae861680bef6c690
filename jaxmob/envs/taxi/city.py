"""Taxi cities: hex cells, demand per step and cell, destinations, fares, trip times.

`synthetic_hex_city` builds the NYC-scale synthetic city of the fleet-size
experiments (250 cells, a full day); real demand comes from other builders
(the AMoD NYC areas, a user's TLC files) into the same `TaxiCity`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.film import classical_mds
from ...core.geometry import hex_center_km, neighbor_table


@dataclass(frozen=True)
class TaxiCity:
    """A taxi city as NumPy arrays (C cells, S steps per day).

    Cells are hex cells (grid cities) or a graph's regions (the AMoD cities),
    with at most six neighbours each. An episode starts at step of day
    `start_step` and lasts `horizon` steps (0: a whole day); `fleet` is the
    scenario's own fleet size, the default of `--num-taxis`."""

    name: str
    cells: np.ndarray  # (C, 2) axial hex coordinates, or a graph city's grid positions
    cell_mask: np.ndarray  # (C,) bool
    neighbors: np.ndarray  # (C, 6) int
    neighbor_mask: np.ndarray  # (C, 6) bool
    demand_rate: np.ndarray  # (S, C) expected orders per step
    od_prob: np.ndarray  # (24, C, C) destination probabilities per hour and origin
    travel_steps: np.ndarray  # (C, C) int >= 1
    fare: np.ndarray  # (C, C) dollars
    trip_km: np.ndarray  # (C, C)
    cell_km: float  # distance between neighbouring cell centres
    provenance: dict
    start_step: int = 0
    horizon: int = 0
    fleet: int = 8000

    @property
    def hexagonal(self) -> bool:
        """Whether the cells are hex cells (else an AMoD area's regions, known by their trip distances)."""
        return self.provenance.get("kind") != "amod"

    @property
    def xy_km(self) -> np.ndarray:
        """(C, 2) cell centres in km: hex centres (x east, y north), or for an AMoD area's regions,
        which have no coordinates, a layout whose distances match their trip distances (MDS)."""
        if self.hexagonal:
            return hex_center_km(self.cells, self.cell_km)
        return classical_mds(self.trip_km)

    def __post_init__(self):
        C = len(self.cells)
        checks = [("cell_mask", self.cell_mask.shape == (C,)), ("neighbors", self.neighbors.shape == (C, 6)),
                  ("neighbor_mask", self.neighbor_mask.shape == (C, 6)),
                  ("demand_rate", self.demand_rate.ndim == 2 and self.demand_rate.shape[1] == C
                   and np.all(np.isfinite(self.demand_rate)) and np.all(self.demand_rate >= 0)),
                  ("od_prob", self.od_prob.shape == (24, C, C) and np.all(self.od_prob >= 0)),
                  ("travel_steps", self.travel_steps.shape == (C, C) and np.all(self.travel_steps >= 1)),
                  ("fare", self.fare.shape == (C, C) and np.all(np.isfinite(self.fare))),
                  ("trip_km", self.trip_km.shape == (C, C) and np.all(np.isfinite(self.trip_km))),
                  ("cell_km", np.isfinite(self.cell_km) and self.cell_km > 0),
                  ("start_step", 0 <= self.start_step < self.demand_rate.shape[0]),
                  ("horizon", self.horizon >= 0), ("fleet", self.fleet >= 1)]
        bad = [name for name, ok in checks if not ok]
        if bad:
            raise ValueError(f"TaxiCity {self.name}: invalid {', '.join(bad)}")

    @property
    def num_cells(self) -> int:
        return len(self.cells)

    @property
    def episode_steps(self) -> int:
        return self.horizon or self.demand_rate.shape[0]

    @property
    def orders_per_day(self) -> float:
        return float(self.demand_rate.sum())  # the rates cover every step of one day


@dataclass(frozen=True)
class TaxiScenario:
    """A taxi city with named evaluation episodes (order counts per step and cell,
    `city.episode_steps` rows or more): validation episodes choose checkpoints,
    test episodes are only reported."""

    city: TaxiCity
    validation_days: tuple
    test_days: tuple
    episodes: dict

    def __post_init__(self):
        missing = [d for d in self.validation_days + self.test_days if d not in self.episodes]
        overlap = set(self.validation_days) & set(self.test_days)
        if missing or overlap or not self.test_days:
            raise ValueError(f"TaxiScenario {self.city.name}: episodes missing {missing}, validation and test overlap "
                             f"{sorted(overlap)}, {len(self.test_days)} test episodes")

    @property
    def days(self) -> tuple:
        return tuple(self.episodes)

    def __str__(self) -> str:
        c = self.city
        per_episode = float(c.demand_rate[(c.start_step + np.arange(c.episode_steps)) % c.demand_rate.shape[0]].sum())
        return (f"{c.name}: {c.num_cells} cells of {c.cell_km:.2f} km, fleet {c.fleet:,}, {c.episode_steps} steps from "
                f"step {c.start_step}, {per_episode:,.0f} expected orders per episode; validation "
                f"{', '.join(self.validation_days)}; test {', '.join(self.test_days)}")


def draw_orders(city: TaxiCity, seed: int, steps: int | None = None) -> np.ndarray:
    """One evaluation episode: Poisson order counts per step and cell from the
    city's rates, from its `start_step` on."""
    steps = steps or city.episode_steps
    S = city.demand_rate.shape[0]
    rate = city.demand_rate[(city.start_step + np.arange(steps)) % S]
    return np.random.default_rng(seed).poisson(rate).astype(np.int32)


def drawn_scenario(city: TaxiCity, validation_seeds=(1000, 1001), test_seeds=(2000, 2001, 2002)) -> TaxiScenario:
    """A scenario whose evaluation episodes are seeded Poisson draws from the city's
    rates (for cities with no real days: the synthetic city, the AMoD cities)."""
    val, test = tuple(f"val-{s}" for s in validation_seeds), tuple(f"test-{s}" for s in test_seeds)
    episodes = {n: draw_orders(city, s) for n, s in zip(val + test, validation_seeds + test_seeds)}
    return TaxiScenario(city=city, validation_days=val, test_days=test, episodes=episodes)


def hex_disk(num_cells: int) -> np.ndarray:
    """The `num_cells` axial hex cells nearest the origin (a roughly round city)."""
    radius = int(np.ceil(np.sqrt(num_cells / 3.0))) + 2
    q, r = np.meshgrid(np.arange(-radius, radius + 1), np.arange(-radius, radius + 1), indexing="ij")
    cells = np.stack([q.ravel(), r.ravel()], 1)
    dist = (np.abs(cells[:, 0]) + np.abs(cells[:, 1]) + np.abs(cells[:, 0] + cells[:, 1])) / 2
    xy = hex_center_km(cells, 1.0)
    order = np.lexsort((np.arctan2(xy[:, 1], xy[:, 0]), np.hypot(*xy.T), dist))
    return cells[order[:num_cells]]


# Share of a day's orders per hour: NYC yellow taxi weekday profile, rounded (TLC January 2016 shape).
HOURLY_SHARE = np.array([3.0, 2.2, 1.6, 1.2, 1.0, 1.1, 2.2, 3.6, 4.4, 4.4, 4.2, 4.3,
                         4.5, 4.5, 4.8, 4.9, 4.6, 5.3, 6.3, 6.4, 6.1, 5.9, 5.6, 4.5])


def synthetic_hex_city(num_cells: int = 250, *, orders_per_day: float = 280_000.0, cell_km: float = 1.0,
                       hotspots: int = 4, steps_per_day: int = 144, seed: int = 0, speed_kmh: float = 18.0,
                       base_fare: float = 3.0, fare_per_km: float = 1.75, name: str = "nyc-hex-synthetic") -> TaxiCity:
    """A synthetic city at NYC yellow-taxi scale (parameterised; every choice recorded).

    Demand: each cell's weight is a sum of Gaussian hotspots (one a central
    business district) over a floor; the hourly profile is `HOURLY_SHARE`; in
    the morning (6-10 h) destinations lean toward the business district, in the
    evening (16-20 h) away from it, otherwise they follow a gravity model
    weight_d x exp(-distance / 3 km). Trip time = distance / speed_kmh, at least
    one step; fare = base_fare + fare_per_km x distance (same cell: half a cell)."""
    rng = np.random.default_rng(seed)
    cells = hex_disk(num_cells)
    C = len(cells)
    xy = hex_center_km(cells, cell_km)
    nbr, mask = neighbor_table(cells, "hex")
    centres = np.concatenate([[[0.0, 0.0]], rng.normal(scale=0.35 * np.abs(xy).max(), size=(hotspots - 1, 2))])
    spread = np.concatenate([[2.0 * cell_km], rng.uniform(1.0, 2.5, hotspots - 1) * cell_km])
    height = np.concatenate([[3.0], rng.uniform(0.6, 1.5, hotspots - 1)])
    d2 = ((xy[:, None, :] - centres[None]) ** 2).sum(-1)
    weight = 0.15 + (height * np.exp(-d2 / (2 * spread**2))).sum(1)
    weight = weight / weight.sum()
    hourly = HOURLY_SHARE / HOURLY_SHARE.sum()
    per_hour = steps_per_day // 24
    rate = (orders_per_day * np.repeat(hourly, per_hour)[:, None] / per_hour) * weight[None, :]
    dist = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    trip_km = np.where(dist > 0, dist * 1.3, 0.5 * cell_km)  # street distance: 1.3 x straight line
    gravity = weight[None, :] * np.exp(-trip_km / 3.0)
    to_cbd = np.exp(-d2[:, 0] / (2 * spread[0] ** 2))
    od = np.empty((24, C, C))
    for h in range(24):
        lean = to_cbd if 6 <= h < 10 else (1.0 / (0.2 + to_cbd) if 16 <= h < 20 else np.ones(C))
        od[h] = gravity * lean[None, :]
    od /= od.sum(-1, keepdims=True)
    step_minutes = 24 * 60 / steps_per_day
    travel = np.maximum(1, np.round(trip_km / speed_kmh * 60 / step_minutes)).astype(np.int32)
    fare = base_fare + fare_per_km * trip_km
    return TaxiCity(name=name, cells=cells, cell_mask=np.ones(C, bool), neighbors=nbr, neighbor_mask=mask,
                    demand_rate=rate, od_prob=od, travel_steps=travel, fare=fare, trip_km=trip_km, cell_km=cell_km,
                    provenance=dict(kind="synthetic", num_cells=C, orders_per_day=orders_per_day, cell_km=cell_km,
                                    hotspots=hotspots, seed=seed, speed_kmh=speed_kmh, base_fare=base_fare,
                                    fare_per_km=fare_per_km, hourly_share=HOURLY_SHARE.tolist()))
