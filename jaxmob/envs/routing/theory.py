"""Fleet-size thresholds of instantaneous assignment, in steps (edges).

With E[eta] new requests per step, serving a request takes a taxi from
wherever it is to the pick-up and on to the drop-off. Following Garces et al.:

* sufficient: m >= E[eta] * D_max, with
  D_max = max(E[d(xi, rho)], E[d(l_rand, rho)]) + E[d(rho, delta)],
  xi an initial taxi location (drawn, as the simulator does, from the
  drop-off distribution), l_rand a uniformly random intersection, rho a
  pick-up and delta a drop-off: no trip, empty leg included, is longer on
  average, so IA keeps the queue bounded;
* necessary: m > E[eta] * D_min, with D_min = E[d(rho, delta)] + W_1(delta, rho):
  every request needs its loaded trip, and in the long run the fleet must
  carry the drop-off distribution back to the pick-up distribution, which
  no routing does in fewer expected edges than the Wasserstein-1 distance on
  the graph (exact optimal transport, POT's network simplex). Below it the
  queue grows without bound.

d is the directed shortest-path distance in edges (`StreetGraph.hops`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def wasserstein1(source: np.ndarray, target: np.ndarray, cost: np.ndarray) -> float:
    """The least expected cost of moving distribution `source` onto `target` (exact EMD)."""
    import ot

    s, t = np.flatnonzero(source > 0), np.flatnonzero(target > 0)
    a, b = source[s] / source[s].sum(), target[t] / target[t].sum()
    return float(ot.emd2(a, b, np.ascontiguousarray(cost[np.ix_(s, t)], dtype=np.float64), numItermax=10_000_000))


@dataclass(frozen=True)
class FleetThresholds:
    rate: float
    trip: float  # E[d(rho, delta)]
    start_to_pickup: float  # E[d(xi, rho)]
    random_to_pickup: float  # E[d(l_rand, rho)]
    wasserstein: float  # W_1(delta, rho)

    @property
    def d_max(self) -> float:
        return max(self.start_to_pickup, self.random_to_pickup) + self.trip

    @property
    def d_min(self) -> float:
        return self.trip + self.wasserstein

    @property
    def sufficient_fleet(self) -> int:
        """The least m with m >= E[eta] D_max."""
        return int(np.ceil(self.rate * self.d_max - 1e-9))

    @property
    def necessary_fleet(self) -> int:
        """The least m with m > E[eta] D_min."""
        return int(np.floor(self.rate * self.d_min)) + 1

    def as_dict(self) -> dict:
        return {"rate": self.rate, "E_trip": self.trip, "E_start_to_pickup": self.start_to_pickup,
                "E_random_to_pickup": self.random_to_pickup, "W1_dropoff_to_pickup": self.wasserstein,
                "D_max": self.d_max, "D_min": self.d_min, "sufficient_fleet": self.sufficient_fleet,
                "necessary_fleet": self.necessary_fleet}


def fleet_thresholds(hops: np.ndarray, pickup: np.ndarray, dropoff: np.ndarray, rate: float,
                     start: np.ndarray | None = None) -> FleetThresholds:
    """D_max, D_min and the fleet sizes they give (see the module doc); `start` is the
    distribution of initial taxi locations (default: the drop-off distribution)."""
    hops = np.asarray(hops, np.float64)
    start = dropoff if start is None else start
    uniform = np.full(len(pickup), 1.0 / len(pickup))
    mean = lambda p, q: float(p @ hops @ q)
    return FleetThresholds(rate=float(rate), trip=mean(pickup, dropoff), start_to_pickup=mean(start, pickup),
                           random_to_pickup=mean(uniform, pickup), wasserstein=wasserstein1(dropoff, pickup, hops))
