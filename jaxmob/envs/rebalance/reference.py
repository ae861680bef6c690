"""Plain NumPy oracle of the bike-rebalancing dynamics (`docs/rebalance-dynamics.md`).

Written for clarity, not speed: explicit loops over regions, trips and pipeline
slots, every table rebuilt from the `City` itself (not from the JAX env's
precomputed params) so the two implementations share no code. Fed the same
exogenous draws (`RebalanceExogenous`: Poisson demand counts and one uniform
32-bit word per served-trip slot) it must produce exactly the JAX env's next state.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .city.core import City, DayTrips
from .env import RebalanceConfig, alias_threshold

METRIC_NAMES = ("served", "demand", "unserved", "relocated", "overflow", "over_capacity", "truncated",
                "clipped_travel", "invalid_action", "steps")


@dataclass
class ReferenceState:
    """Mirror of `RebalanceState` in NumPy int64 arrays and Python numbers."""

    inventory: np.ndarray  # (R,)
    riding: np.ndarray  # (P, R)
    relocating: np.ndarray  # (P, R)
    t: int
    day: int
    last_demand: np.ndarray  # (R,)
    metrics: dict = field(default_factory=dict)

    @classmethod
    def from_jax(cls, state) -> "ReferenceState":
        """Convert a `RebalanceState` (one city, not batched) to the NumPy mirror."""
        i64 = lambda x: np.asarray(x).astype(np.int64)
        metrics = {name: int(getattr(state.metrics, name)) for name in METRIC_NAMES}
        return cls(i64(state.inventory), i64(state.riding), i64(state.relocating), int(state.t), int(state.day),
                   i64(state.last_demand), metrics | {"reward": float(state.metrics.reward)})

    def copy(self) -> "ReferenceState":
        return ReferenceState(self.inventory.copy(), self.riding.copy(), self.relocating.copy(), self.t, self.day,
                              self.last_demand.copy(), dict(self.metrics))


class ReferenceRebalance:
    """The rebalancing step of one city, in NumPy.

    `pipeline_steps` and `max_trips` must be the values the JAX env resolved
    (`params.pipeline_steps`, `params.max_trips`) so both keep the same shapes.
    """

    def __init__(self, config: RebalanceConfig, city: City, *, pipeline_steps: int, max_trips: int,
                 days=None, alpha: float = 0.5, beta: float = 0.1):
        self.config = config
        self.city = city
        self.P, self.M = int(pipeline_steps), int(max_trips)
        self.alpha, self.beta = float(alpha), float(beta)
        self.days = list(days.values()) if isinstance(days, dict) else ([days] if isinstance(days, DayTrips) else days)
        self.R = city.num_regions
        self.T = city.steps_per_day
        self.K = city.num_directions
        self.L = len(config.move_amounts)
        self.neighbors = np.asarray(city.neighbors)
        self.neighbor_mask = np.asarray(city.neighbor_mask)
        self.capacity = np.asarray(city.capacity).astype(np.int64)
        self.travel = np.asarray(city.travel_steps).astype(np.int64)
        self.relocation_steps = np.asarray(city.relocation_steps).astype(np.int64)
        self.keep, self.alias = self._alias_tables(np.asarray(city.od_prob))
        self.order = self._nearest_order(np.asarray(city.xy_km))

    @classmethod
    def from_params(cls, config: RebalanceConfig, params, days=None) -> "ReferenceRebalance":
        """Build from the JAX env's params (only sizes and reward weights are taken)."""
        city = params.city
        return cls(config, city, pipeline_steps=params.pipeline_steps, max_trips=params.max_trips, days=days,
                   alpha=float(params.alpha), beta=float(params.beta))

    # -------------------------------------------------------------- tables
    def _alias_tables(self, od: np.ndarray):
        """Walker's alias table of every (bucket, origin) row, one row at a time:
        repeatedly the smallest remaining scaled mass (first on ties) keeps its
        share and takes the largest remaining one (first on ties) as its alias."""
        H, R, _ = od.shape
        keep = np.zeros((H, R, R), np.uint32)
        alias = np.zeros((H, R, R), np.int64)
        for h in range(H):
            for o in range(R):
                row = np.asarray(od[h, o], np.float64)
                total = row.sum()
                mass = (row / total if total > 0 else np.zeros(R)) * R
                prob, pointer = np.ones(R), np.arange(R)
                remaining = list(range(R))
                for _ in range(R - 1):
                    small = min(remaining, key=lambda j: (mass[j], j))
                    large = max(remaining, key=lambda j: (mass[j], -j))
                    prob[small], pointer[small] = mass[small], large
                    remaining.remove(small)
                    mass[large] -= 1.0 - mass[small]
                keep[h, o] = alias_threshold(prob, R)
                alias[h, o] = pointer
        return keep, alias

    def _destination(self, bucket: int, origin: int, word) -> int:
        """The alias draw of one slot word: column word % R, kept below its threshold."""
        word = int(word)
        column = word % self.R
        if word // self.R < int(self.keep[bucket, origin, column]):
            return column
        return int(self.alias[bucket, origin, column])

    def _nearest_order(self, xy: np.ndarray) -> list:
        """For each region, the other regions sorted by (distance, index)."""
        xy = np.asarray(xy, np.float64)
        order = []
        for r in range(len(xy)):
            def dist(j):
                dx, dy = xy[r, 0] - xy[j, 0], xy[r, 1] - xy[j, 1]
                return float(np.sqrt(dx * dx + dy * dy))
            order.append(sorted((j for j in range(len(xy)) if j != r), key=lambda j: (dist(j), j)))
        return order

    # -------------------------------------------------------------- state
    def initial_state(self, day: int = 0) -> ReferenceState:
        return ReferenceState(
            inventory=np.asarray(self.city.init_inventory).astype(np.int64),
            riding=np.zeros((self.P, self.R), np.int64), relocating=np.zeros((self.P, self.R), np.int64),
            t=0, day=int(day), last_demand=np.zeros(self.R, np.int64),
            metrics={name: 0 for name in METRIC_NAMES} | {"reward": 0.0},
        )

    # -------------------------------------------------------------- step
    def step(self, state: ReferenceState, action, exog_demand=None, exog_dest_bits=None):
        """One step; returns `(next_state, reward (R,), info dict of (R,) arrays)`.

        Poisson mode reads `exog_demand (R,)` and `exog_dest_bits (M,)`; replay mode
        reads the trips of `self.days[state.day]` and ignores them.
        """
        s = state.copy()
        R, P = self.R, self.P
        t_day = s.t % self.T
        clipped = 0

        # 1. demand
        if self.config.mode == "replay":
            demand, served, truncated, rides, clipped = self._replay_demand(s, t_day)
        else:
            demand, served, truncated, rides, clipped = self._poisson_demand(s, t_day, exog_demand, exog_dest_bits)
        for r in range(R):
            s.inventory[r] -= served[r]
        for dest, lag in rides:
            s.riding[lag - 1, dest] += 1

        # 2. relocation
        moved = np.zeros(R, np.int64)
        invalid = np.zeros(R, np.int64)
        for r in range(R):
            a = int(np.asarray(action)[r])
            if a == 0:
                continue
            if a < 0 or a >= 1 + self.K * self.L:
                invalid[r] = 1
                continue
            k, level = (a - 1) // self.L, (a - 1) % self.L
            if not self.neighbor_mask[r, k]:
                invalid[r] = 1
                continue
            j = int(self.neighbors[r, k])
            moved[r] = min(self.config.move_amounts[level], s.inventory[r])
            s.inventory[r] -= moved[r]
            delay = self.config.relocation_delay
            lag = min(int(self.relocation_steps[r, j]), P) if delay is None else delay
            s.relocating[lag - 1, j] += moved[r]

        # 3. arrivals
        arrivals = s.riding[0] + s.relocating[0]
        s.riding = np.concatenate([s.riding[1:], np.zeros((1, R), np.int64)])
        s.relocating = np.concatenate([s.relocating[1:], np.zeros((1, R), np.int64)])
        excess = np.zeros(R, np.int64)
        for r in range(R):
            room = max(self.capacity[r] - s.inventory[r], 0)
            dock = min(arrivals[r], room)
            s.inventory[r] += dock
            excess[r] = arrivals[r] - dock
        free = [s.inventory[j] < self.capacity[j] for j in range(R)]
        overflow = np.zeros(R, np.int64)
        over_capacity = np.zeros(R, np.int64)
        for r in range(R):
            if excess[r] == 0:
                continue
            target = next((j for j in self.order[r] if free[j]), None)
            if target is None:
                s.inventory[r] += excess[r]
                over_capacity[r] = excess[r]
                continue
            overflow[r] = excess[r]
            clipped += int(self.travel[r, target] > P)
            s.riding[min(int(self.travel[r, target]), P) - 1, target] += excess[r]

        # 4. time, reward, metrics
        s.t += 1
        unserved = demand - served
        reward = (served - np.float32(self.alpha) * unserved - np.float32(self.beta) * moved).astype(np.float32)
        s.last_demand = demand
        info = dict(served=served, demand=demand, unserved=unserved, relocated=moved, overflow=overflow,
                    over_capacity=over_capacity, invalid_action=invalid, truncated=truncated, clipped_travel=clipped)
        for name in METRIC_NAMES:
            s.metrics[name] += 1 if name == "steps" else int(np.sum(info[name]))
        s.metrics["reward"] += float(reward.sum())
        return s, reward, info

    def _poisson_demand(self, s, t_day, demand, dest_bits):
        """Slots are filled origin by origin; a slot's word picks its destination."""
        R, M, P = self.R, self.M, self.P
        demand = np.asarray(demand).astype(np.int64)
        served = np.zeros(R, np.int64)
        truncated = np.zeros(R, np.int64)
        rides, clipped = [], 0
        bucket = t_day // self.city.od_bucket_steps
        slot = 0
        for r in range(R):
            wanted = min(s.inventory[r], demand[r])
            for _ in range(wanted):
                if slot >= M:
                    truncated[r] += 1
                    continue
                dest = self._destination(bucket, r, dest_bits[slot])
                travel = int(self.travel[r, dest])
                clipped += int(travel > P)
                rides.append((dest, min(travel, P)))
                served[r] += 1
                slot += 1
        return demand, served, truncated, rides, clipped

    def _replay_demand(self, s, t_day):
        """The day's trips departing now, in DayTrips order; the first M are slots."""
        R, M, P = self.R, self.M, self.P
        trips = self.days[s.day]
        now = [i for i in range(trips.num_trips) if int(trips.depart_step[i]) == t_day]
        demand = np.zeros(R, np.int64)
        kept = np.zeros(R, np.int64)
        for n, i in enumerate(now):
            demand[int(trips.origin[i])] += 1
            kept[int(trips.origin[i])] += int(n < M)
        served = np.minimum(np.minimum(s.inventory, demand), kept)
        truncated = np.minimum(s.inventory, demand) - served
        taken = np.zeros(R, np.int64)
        rides, clipped = [], 0
        for i in now[:M]:
            o = int(trips.origin[i])
            if taken[o] < served[o]:
                taken[o] += 1
                travel = int(trips.arrive_step[i]) - int(trips.depart_step[i])
                clipped += int(travel > P)
                rides.append((int(trips.dest[i]), min(travel, P)))
        return demand, served, truncated, rides, clipped
