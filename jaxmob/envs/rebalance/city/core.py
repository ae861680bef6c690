"""The `City`: the one pytree every jaxmob environment consumes.

A city is a set of regions (grid cells) with a neighbour table, travel times,
time-of-day demand, origin-destination probabilities, vehicle/bike inventory and
capacities. Static metadata (names, grid shape, step length) lives in the pytree's
auxiliary data so it is a compile-time constant; every number an environment reads
is an array leaf, so `jax.vmap` over a stacked batch of cities steps many different
cities in one program (cities in a batch share their static metadata and shapes;
smaller cities are padded and masked with `region_mask`).

Build cities with `City.create`, which validates every field with NumPy and raises
`CityError` naming the field and the problem. The raw dataclass constructor does no
checking because JAX calls it with tracers while unflattening.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from flax import struct

from ....core.geometry import HEX_DIRECTIONS, SQUARE_DIRECTIONS, project_km


class CityError(ValueError):
    """A City field is malformed; the message names the field and the problem."""


@struct.dataclass
class City:
    """A city of R regions; K neighbours per region; T steps per day; H OD time buckets.

    Array fields (pytree leaves):
      centroid        (R, 2) float32  latitude, longitude of each region's centre (deg)
      xy_km           (R, 2) float32  position on a local metric plane (km east, km north)
      cell            (R, 2) int32    grid coordinates: (col, row) square, (q, r) axial hex
      neighbors       (R, K) int32    index of the neighbour in direction k (self where absent)
      neighbor_mask   (R, K) bool     whether that neighbour exists
      travel_steps    (R, R) int32    trip travel time between regions, in steps (>= 1)
      relocation_steps(R, R) int32    operator relocation time between regions, in steps (>= 1)
      demand_rate     (T, R) float32  expected trips departing each region per step of day
      od_prob         (H, R, R) float32  destination probabilities per origin and time bucket
      price           (R, R) float32  mean fare per trip (0 for bike sharing)
      init_inventory  (R,) int32      bikes / vehicles in each region at the start of day
      capacity        (R,) int32      docks (parking places) per region
      features        (R, F) float32  static urban features, names in `feature_names`
      region_mask     (R,) bool       False for padding regions of a padded city

    Static metadata (auxiliary data, compile-time constants):
      name, region_ids, grid ('square' | 'hex'), grid_shape (cols, rows), cell_km,
      step_minutes, steps_per_day, od_bucket_steps, directions, feature_names.
    """

    centroid: np.ndarray
    xy_km: np.ndarray
    cell: np.ndarray
    neighbors: np.ndarray
    neighbor_mask: np.ndarray
    travel_steps: np.ndarray
    relocation_steps: np.ndarray
    demand_rate: np.ndarray
    od_prob: np.ndarray
    price: np.ndarray
    init_inventory: np.ndarray
    capacity: np.ndarray
    features: np.ndarray
    region_mask: np.ndarray
    name: str = struct.field(pytree_node=False, default="city")
    region_ids: tuple = struct.field(pytree_node=False, default=())
    grid: str = struct.field(pytree_node=False, default="square")
    grid_shape: tuple = struct.field(pytree_node=False, default=(0, 0))
    cell_km: float = struct.field(pytree_node=False, default=1.0)
    step_minutes: int = struct.field(pytree_node=False, default=10)
    steps_per_day: int = struct.field(pytree_node=False, default=144)
    od_bucket_steps: int = struct.field(pytree_node=False, default=6)
    directions: tuple = struct.field(pytree_node=False, default=SQUARE_DIRECTIONS)
    feature_names: tuple = struct.field(pytree_node=False, default=())

    # ------------------------------------------------------------------ sizes
    @property
    def num_regions(self) -> int:
        return int(np.shape(self.init_inventory)[-1])

    @property
    def num_directions(self) -> int:
        return len(self.directions)

    @property
    def fleet_size(self) -> int:
        """Total bikes/vehicles (NumPy; not for use under jit)."""
        return int(np.sum(np.asarray(self.init_inventory)))

    @property
    def trips_per_day(self) -> float:
        """Expected departures per day over all regions (NumPy; not for use under jit)."""
        return float(np.sum(np.asarray(self.demand_rate)))

    def __repr__(self) -> str:  # short: the arrays are large
        return (
            f"City({self.name!r}: {int(np.sum(np.asarray(self.region_mask)))} regions "
            f"({self.grid} grid {self.grid_shape[0]}x{self.grid_shape[1]}, {self.cell_km:g} km cells), "
            f"{self.trips_per_day:,.0f} trips/day, fleet {self.fleet_size:,}, "
            f"docks {int(np.sum(np.asarray(self.capacity))):,}, "
            f"{self.steps_per_day} steps x {self.step_minutes} min)"
        )

    __str__ = __repr__

    # ----------------------------------------------------------- construction
    @classmethod
    def create(
        cls,
        *,
        name: str,
        centroid,
        neighbors,
        neighbor_mask,
        travel_steps,
        demand_rate,
        od_prob,
        init_inventory,
        capacity,
        region_ids: Sequence | None = None,
        xy_km=None,
        cell=None,
        relocation_steps=None,
        price=None,
        features=None,
        feature_names: Sequence[str] = (),
        region_mask=None,
        grid: str = "square",
        grid_shape: tuple = (0, 0),
        cell_km: float = 1.0,
        step_minutes: int = 10,
        od_bucket_steps: int | None = None,
        directions: Sequence[str] | None = None,
    ) -> "City":
        """Validated constructor: converts to NumPy with canonical dtypes and checks
        every field; raises `CityError` naming the field on the first problem."""
        f32 = lambda a: np.asarray(a, dtype=np.float32)
        centroid = f32(centroid)
        _require(centroid.ndim == 2 and centroid.shape[1] == 2, "centroid", f"must have shape (R, 2), got {centroid.shape}")
        R = centroid.shape[0]
        _require(R >= 1, "centroid", "a city needs at least one region")
        demand_rate = f32(demand_rate)
        _require(demand_rate.ndim == 2, "demand_rate", f"must have shape (T, R), got {demand_rate.shape}")
        T = demand_rate.shape[0]
        _require(1440 % int(step_minutes) == 0 if step_minutes > 0 else False, "step_minutes",
                 f"must be a positive divisor of 1440, got {step_minutes}")
        _require(T == 1440 // int(step_minutes), "demand_rate",
                 f"needs one row per step of day ({1440 // int(step_minutes)} for {step_minutes}-minute steps), got {T}")
        od_prob = f32(od_prob)
        if od_prob.ndim == 2:
            od_prob = od_prob[None]
        _require(od_prob.ndim == 3, "od_prob", f"must have shape (H, R, R), got {od_prob.shape}")
        H = od_prob.shape[0]
        if od_bucket_steps is None:
            _require(T % H == 0, "od_prob", f"{H} time buckets do not divide {T} steps per day")
            od_bucket_steps = T // H
        _require(od_bucket_steps * H >= T, "od_bucket_steps",
                 f"{H} buckets of {od_bucket_steps} steps do not cover {T} steps per day")
        directions = tuple(directions) if directions is not None else (
            HEX_DIRECTIONS if grid == "hex" else SQUARE_DIRECTIONS)
        _require(grid in ("square", "hex"), "grid", f"must be 'square' or 'hex', got {grid!r}")
        neighbors = np.asarray(neighbors, dtype=np.int32)
        neighbor_mask = np.asarray(neighbor_mask, dtype=bool)
        travel_steps = np.asarray(travel_steps)
        init_inventory = np.asarray(init_inventory)
        capacity = np.asarray(capacity)
        xy_km = f32(xy_km if xy_km is not None else project_km(centroid))
        cell = np.asarray(cell if cell is not None else np.zeros((R, 2)), dtype=np.int32)
        relocation_steps = np.asarray(relocation_steps if relocation_steps is not None else travel_steps)
        price = f32(price if price is not None else np.zeros((R, R)))
        features = f32(features if features is not None else np.zeros((R, 0)))
        region_mask = np.asarray(region_mask if region_mask is not None else np.ones(R), dtype=bool)
        region_ids = tuple(region_ids) if region_ids is not None else tuple(range(R))

        K = len(directions)
        _shape("neighbors", neighbors, (R, K))
        _shape("neighbor_mask", neighbor_mask, (R, K))
        _require(np.all((neighbors >= 0) & (neighbors < R)), "neighbors", f"indices must lie in [0, {R})")
        _shape("xy_km", xy_km, (R, 2))
        _shape("cell", cell, (R, 2))
        _shape("travel_steps", travel_steps, (R, R))
        _shape("relocation_steps", relocation_steps, (R, R))
        _shape("price", price, (R, R))
        _shape("od_prob", od_prob, (H, R, R))
        _shape("demand_rate", demand_rate, (T, R))
        _shape("init_inventory", init_inventory, (R,))
        _shape("capacity", capacity, (R,))
        _shape("region_mask", region_mask, (R,))
        _require(features.ndim == 2 and features.shape[0] == R, "features", f"must have shape (R={R}, F), got {features.shape}")
        _require(len(feature_names) == features.shape[1], "feature_names",
                 f"{len(feature_names)} names for {features.shape[1]} feature columns")
        _require(len(region_ids) == R, "region_ids", f"{len(region_ids)} ids for {R} regions")
        _require(len(set(region_ids)) == R, "region_ids", "ids must be unique")

        for fname, arr in (("centroid", centroid), ("xy_km", xy_km), ("demand_rate", demand_rate),
                           ("od_prob", od_prob), ("price", price), ("features", features)):
            _require(np.all(np.isfinite(arr)), fname, "contains NaN or infinite values")
        for fname, arr in (("travel_steps", travel_steps), ("relocation_steps", relocation_steps),
                           ("init_inventory", init_inventory), ("capacity", capacity)):
            _require(np.all(np.isfinite(arr.astype(np.float64))), fname, "contains NaN or infinite values")
            _require(np.all(arr == np.round(arr)), fname, "must hold whole numbers")
        travel_steps = travel_steps.astype(np.int32)
        relocation_steps = relocation_steps.astype(np.int32)
        init_inventory = init_inventory.astype(np.int32)
        capacity = capacity.astype(np.int32)

        _require(np.all(travel_steps >= 1), "travel_steps", f"must be >= 1 step (min {travel_steps.min()})")
        _require(np.all(relocation_steps >= 1), "relocation_steps", f"must be >= 1 step (min {relocation_steps.min()})")
        _require(np.all(demand_rate >= 0), "demand_rate", f"must be non-negative (min {demand_rate.min():g})")
        _require(np.all(od_prob >= 0), "od_prob", f"probabilities must be non-negative (min {od_prob.min():g})")
        rows = od_prob.sum(-1)[:, region_mask]
        bad = np.abs(rows - 1.0) > 1e-4
        if bad.any():
            h, r = np.argwhere(bad)[0]
            raise CityError(f"od_prob: rows must sum to 1; bucket {h}, origin {region_ids[np.flatnonzero(region_mask)[r]]} sums to {rows[h, r]:.6g}")
        _require(np.all(capacity >= 0), "capacity", f"must be non-negative (min {capacity.min()})")
        _require(np.all(capacity[region_mask] >= 1), "capacity", "every real region needs at least one dock")
        _require(np.all(init_inventory >= 0), "init_inventory", f"must be non-negative (min {init_inventory.min()})")
        over = np.flatnonzero(init_inventory > capacity)
        if over.size:
            r = over[0]
            raise CityError(f"init_inventory: region {region_ids[r]} holds {init_inventory[r]} bikes but has only {capacity[r]} docks")
        pad = ~region_mask
        _require(not np.any(init_inventory[pad]) and not np.any(demand_rate[:, pad]), "region_mask",
                 "padding regions must have no inventory and no demand")
        _require(not np.any(neighbor_mask[pad]), "neighbor_mask", "padding regions must have no neighbours")
        _require(np.all(region_mask[neighbors[neighbor_mask]]), "neighbor_mask", "a real region points at a padding region")
        _require(len(grid_shape) == 2, "grid_shape", f"must be (cols, rows), got {grid_shape}")
        _require(cell_km > 0, "cell_km", f"must be positive, got {cell_km}")

        return cls(
            centroid=centroid, xy_km=xy_km, cell=cell, neighbors=neighbors, neighbor_mask=neighbor_mask,
            travel_steps=travel_steps, relocation_steps=relocation_steps, demand_rate=demand_rate,
            od_prob=od_prob, price=price, init_inventory=init_inventory, capacity=capacity,
            features=features, region_mask=region_mask, name=name, region_ids=region_ids, grid=grid,
            grid_shape=tuple(int(g) for g in grid_shape), cell_km=float(cell_km),
            step_minutes=int(step_minutes), steps_per_day=int(T), od_bucket_steps=int(od_bucket_steps),
            directions=directions, feature_names=tuple(feature_names),
        )


def _require(ok: bool, field: str, problem: str) -> None:
    if not ok:
        raise CityError(f"{field}: {problem}")


def _shape(field: str, arr: np.ndarray, shape: tuple) -> None:
    _require(arr.shape == tuple(shape), field, f"must have shape {tuple(shape)}, got {arr.shape}")





@struct.dataclass
class DayTrips:
    """One day's actual trips, in region indices and steps, for exact replay.

    `depart_step` is the step of day the trip starts in (floor of start minute /
    step length); `arrive_step` the step it ends in (may exceed the day's last
    step for trips that end after midnight); `arrive_step > depart_step` always,
    because a bike that leaves cannot be back in the same step.
    """

    origin: np.ndarray  # (N,) int32
    dest: np.ndarray  # (N,) int32
    depart_step: np.ndarray  # (N,) int32
    arrive_step: np.ndarray  # (N,) int32
    date: str = struct.field(pytree_node=False, default="")

    @property
    def num_trips(self) -> int:
        return int(np.shape(self.origin)[0])

    @classmethod
    def create(cls, origin, dest, depart_step, arrive_step, *, num_regions: int, steps_per_day: int, date: str = "") -> "DayTrips":
        o, d, s, a = (np.asarray(x) for x in (origin, dest, depart_step, arrive_step))
        for fname, arr in (("origin", o), ("dest", d), ("depart_step", s), ("arrive_step", a)):
            _require(arr.ndim == 1 and arr.shape == o.shape, fname, f"must be 1-D of length {o.shape}, got {arr.shape}")
            _require(arr.size == 0 or np.all(arr == np.round(arr)), fname, "must hold whole numbers")
        _require(np.all((o >= 0) & (o < num_regions)), "origin", f"region indices must lie in [0, {num_regions})")
        _require(np.all((d >= 0) & (d < num_regions)), "dest", f"region indices must lie in [0, {num_regions})")
        _require(np.all((s >= 0) & (s < steps_per_day)), "depart_step", f"must lie in [0, {steps_per_day})")
        _require(np.all(a > s), "arrive_step", "must be later than depart_step")
        order = np.lexsort((a, s))  # canonical order: by departure, then arrival
        i32 = lambda x: x[order].astype(np.int32)
        return cls(origin=i32(o), dest=i32(d), depart_step=i32(s), arrive_step=i32(a), date=date)
