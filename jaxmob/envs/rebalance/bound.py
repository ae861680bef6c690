"""Clairvoyant upper bound for a replayed day: an LP relaxation of the rebalancing problem.

An operator who knew every trip of the day in advance, and could move fractional bikes,
serve any subset of requests and split its moves over several neighbours in one step,
can serve at most `BoundResult.served` trips. Every trajectory of the simulator in
`docs/rebalance-dynamics.md` that has **no overflow** is a feasible point of this LP
(served trips and moves as they happened), so the LP optimum is an upper bound on the
trips any policy serves on that day, which is what makes it useful as a yardstick.

Time-expanded network, steps `t = 0 .. H-1` (`H` = horizon), regions `r`:

* `S[t, r] >= 0`: bikes left docked at `r` after step `t`'s departures (demand, then
  relocation) and before its arrivals. The bikes available to step `t`'s demand are
  `S[t-1, r] + A[t, r]` with `S[-1, r] = init_inventory[r]` and `A[t, r]` the bikes that
  became available at `t` (they arrived during step `t-1`'s arrival phase).
* `x[g] in [0, count[g]]`: trips served out of group `g`, the day's trips with the same
  (depart step, origin, dest, availability step). A trip that departs at `s` with travel
  time `d = min(arrive - s, P)` (clipped to the pipeline length like the simulator) is
  available at its destination from step `s + d`; trips available only at or after `H`
  are merged per (depart step, origin) since their destination cannot matter.
* `m[t, r, k] >= 0`: bikes moved at step `t` from `r` to its valid neighbour `k`,
  available there from step `t + D[r, k]` (`D` = relocation delay). Moves that would
  land at or after `H` cannot serve anyone and are left out.

Constraints:

* balance, one row per (t, r): `S[t, r] = S[t-1, r] + A[t, r] - served_out[t, r] - moved_out[t, r]`
  where `A[t, r]` sums the served trips and moves arriving at `r` at `t`. Because
  `S >= 0`, demand and relocation together never take more than is docked, and the
  demand is served before relocation exactly as in the simulator's step order.
* move cap, one row per (t, r) with a neighbour: `sum_k m[t, r, k] <= max(move_amounts)`,
  a relaxation of "one action per agent per step" (the simulator moves one of the
  discrete `move_amounts` toward one neighbour).

Objective: maximise `sum_g x[g] - eps * sum m` (`tie_break=True`). The optimum of the pure
served objective has many alternative solutions differing in useless moves; the tiny move
cost picks one with the fewest moved bikes without giving up any served trip: the
constraint matrix is a network matrix (the move cap is an arc of capacity `cap` into a
per-(t, r) dispatch node), so with integral data the optimal vertex is integral, any
vertex serving fewer trips serves at least one trip fewer, and `eps * (total move
capacity) < 1/2` makes that trade never worth it. So `served` is the exact LP maximum
and `bikes_moved` the least relocation that reaches it (a lexicographic objective in
one solve). `tie_break=False` drops the move cost (moves are then arbitrary).

Why it is an *upper* bound, and its caveat. The relaxation drops (i) dock capacities,
(ii) the rule that a region serves as many requests as it can (`served = min(inventory,
demand)`, the first ones in DayTrips order): the LP may refuse a trip to keep its bike
for a better later one, so even without moves it can beat no-op; (iii) one move of a
discrete amount toward one neighbour per step; (iv) integrality. Each only enlarges the
feasible set: a simulated episode without overflow maps onto a feasible LP point
(`tests/algos/test_bound.py` checks this constraint by constraint), so for any policy
whose episode had no overflow, served(policy) <= bound. Overflow breaks the argument: a
bike that finds no free dock is re-routed to another region for free (not a move, not
limited to neighbours, not in the LP), which can occasionally *help* a policy. So compare
a policy against the bound only when its overflow is zero, or read the bound as "what
ample docks would allow". It is not tight: service order, discrete moves and dock limits
all cost a real policy trips that the LP does not pay; on real days with a generous
fleet it is often simply the whole demand.

A horizon longer than one day replays the same day again, as the simulator does
(`t mod steps_per_day`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from .city.core import City, DayTrips
from .env import default_pipeline_steps


class BoundError(RuntimeError):
    """HiGHS could not solve the bound's LP (the LP is always feasible and bounded,
    so this means a numerical failure or a time limit)."""


@dataclass(frozen=True)
class BoundResult:
    """Outcome of `clairvoyant_bound`. Counts are LP values: floats, integral at the
    optimal vertex (network LP) up to the solver's tolerance. `demand` counts the
    trips departing within the horizon; `status` is HiGHS's message."""

    served: float
    demand: int
    service_ratio: float
    bikes_moved: float
    relocation_cost: float
    solve_seconds: float
    build_seconds: float
    num_variables: int
    num_constraints: int
    num_nonzeros: int
    status: str

    def as_row(self) -> dict:
        """The row `jaxmob.envs.rebalance.evaluate` prints for the bound."""
        return {
            "policy": "bound (LP)",
            "service_ratio": self.service_ratio,
            "served": self.served,
            "demand": self.demand,
            "rebalanced": self.bikes_moved,
            "relocation_cost": self.relocation_cost,
            "overflow": 0.0,
        }


@dataclass(frozen=True)
class BoundLP:
    """The LP in `linprog` form plus the index layout, so tests can evaluate a
    simulated trajectory against the constraints (`A_eq @ z == b_eq`)."""

    A_eq: sp.csr_matrix
    b_eq: np.ndarray
    A_ub: sp.csr_matrix
    b_ub: np.ndarray
    bounds: np.ndarray  # (n, 2)
    served_cols: np.ndarray  # column indices of x
    move_cols: np.ndarray  # column indices of m
    # layout, for mapping simulator trajectories onto LP columns
    horizon: int
    num_regions: int
    group_index: np.ndarray  # group of each trip departing before H (DayTrips order)
    trip_in_horizon: np.ndarray  # (N * copies,) bool, copies = ceil(H / steps_per_day)
    move_t: np.ndarray
    move_r: np.ndarray
    move_k: np.ndarray
    demand: int

    @property
    def num_variables(self) -> int:
        return self.A_eq.shape[1]

    @property
    def num_constraints(self) -> int:
        return self.A_eq.shape[0] + self.A_ub.shape[0]

    @property
    def num_nonzeros(self) -> int:
        return self.A_eq.nnz + self.A_ub.nnz


def build_bound_lp(
    city: City,
    trips: DayTrips,
    *,
    horizon: int | None = None,
    move_amounts: Sequence[int] = (5, 10),
    relocation_delay: int | None = 1,
    pipeline_steps: int | None = None,
) -> BoundLP:
    """Assemble the LP of the module docstring as sparse matrices (vectorised)."""
    H = int(horizon if horizon is not None else city.steps_per_day)
    R = city.num_regions
    P = int(pipeline_steps if pipeline_steps is not None else default_pipeline_steps(city, relocation_delay))
    cap = int(max(move_amounts)) if len(move_amounts) else 0

    s_idx = np.arange(H * R)  # S[t, r] at column t * R + r
    s, o, d, a = _trips_over_horizon(trips, H, city.steps_per_day)
    trip_in = s < H
    groups, group_index, counts = _trip_groups(s[trip_in], o[trip_in], d[trip_in], a[trip_in], H, R, P)
    n_s, n_x = H * R, len(counts)
    mt, mr, mk, mn, mavail = _move_arcs(city, H, cap, relocation_delay, P)
    n_m = len(mt)
    x_cols = n_s + np.arange(n_x)
    m_cols = n_s + n_x + np.arange(n_m)

    g_s, g_o, g_d, g_a = groups
    g_back = g_a < H
    rows = [s_idx, s_idx[R:], g_s * R + g_o, g_a[g_back] * R + g_d[g_back], mt * R + mr, mavail * R + mn]
    cols = [s_idx, s_idx[:-R], x_cols, x_cols[g_back], m_cols, m_cols]
    vals = [np.ones(n_s), -np.ones(n_s - R), np.ones(n_x), -np.ones(int(g_back.sum())), np.ones(n_m), -np.ones(n_m)]
    n = n_s + n_x + n_m
    A_eq = _csr(rows, cols, vals, (H * R, n))
    b_eq = np.zeros(H * R)
    b_eq[:R] = np.asarray(city.init_inventory, dtype=np.float64)

    cap_key = mt * R + mr  # one cap row per (t, r) that has at least one move arc
    cap_rows, cap_row_of = np.unique(cap_key, return_inverse=True)
    A_ub = _csr([cap_row_of], [m_cols], [np.ones(n_m)], (len(cap_rows), n))
    b_ub = np.full(len(cap_rows), float(cap))

    bounds = np.zeros((n, 2))
    bounds[:, 1] = np.inf
    bounds[x_cols, 1] = counts
    return BoundLP(
        A_eq=A_eq, b_eq=b_eq, A_ub=A_ub, b_ub=b_ub, bounds=bounds, served_cols=x_cols, move_cols=m_cols,
        horizon=H, num_regions=R, group_index=group_index, trip_in_horizon=trip_in,
        move_t=mt, move_r=mr, move_k=mk, demand=int(trip_in.sum()),
    )


def clairvoyant_bound(
    city: City,
    trips: DayTrips,
    *,
    horizon: int | None = None,
    move_amounts: Sequence[int] = (5, 10),
    relocation_delay: int | None = 1,
    pipeline_steps: int | None = None,
    beta: float = 0.1,
    tie_break: bool = True,
    method: str = "highs-ipm",
    time_limit: float | None = None,
) -> BoundResult:
    """Upper bound on trips served on replay day `trips` by any overflow-free policy.

    Arguments mirror `RebalanceConfig` (`horizon`, `move_amounts`, `relocation_delay`,
    `pipeline_steps`; None = the simulator's defaults). `beta` only scales the reported
    relocation cost. `tie_break` adds the tiny move cost of the module doc. `method` is a
    HiGHS method of `linprog`: interior point (with crossover to a vertex) is the default
    because dual simplex stalls on these highly degenerate flow LPs (on a 110-region,
    40k-trip day: 60 s against 6 s without the tie-break, and no faster with it).
    Raises `BoundError` if HiGHS returns no optimum.
    """
    t0 = time.perf_counter()
    lp = build_bound_lp(city, trips, horizon=horizon, move_amounts=move_amounts,
                        relocation_delay=relocation_delay, pipeline_steps=pipeline_steps)
    build_seconds = time.perf_counter() - t0

    c = np.zeros(lp.num_variables)
    c[lp.served_cols] = -1.0
    if tie_break and len(lp.move_cols):
        c[lp.move_cols] = tie_break_cost(lp)
    t1 = time.perf_counter()
    res = _solve(lp, c, method, time_limit)
    solve_seconds = time.perf_counter() - t1
    served = float(res.x[lp.served_cols].sum())
    moved = float(res.x[lp.move_cols].sum())
    return BoundResult(
        served=served, demand=lp.demand, service_ratio=served / max(lp.demand, 1),
        bikes_moved=moved, relocation_cost=float(beta) * moved, solve_seconds=solve_seconds,
        build_seconds=build_seconds, num_variables=lp.num_variables, num_constraints=lp.num_constraints,
        num_nonzeros=lp.num_nonzeros, status=res.message,
    )


def bound_for_env(env, params, trips: DayTrips, **kwargs) -> BoundResult:
    """`clairvoyant_bound` with the settings of a replay `RebalanceEnv` and its params
    (horizon, move amounts, relocation delay, pipeline length P and beta), so the
    bound and the simulated policies describe the same problem."""
    cfg = env.config
    settings = dict(horizon=cfg.horizon, move_amounts=cfg.move_amounts, relocation_delay=cfg.relocation_delay,
                    pipeline_steps=int(params.pipeline_steps),
                    beta=float(np.format_float_positional(np.float32(params.beta))))  # 0.1, not 0.10000000149
    settings.update(kwargs)
    return clairvoyant_bound(params.city, trips, **settings)


def tie_break_cost(lp: BoundLP) -> float:
    """Cost per moved bike small enough that all possible moves together cost < 1/2 trip
    (capped at 1e-5, comfortably above HiGHS's 1e-7 dual tolerance for city sizes)."""
    total_capacity = float(lp.b_ub.sum())
    return min(1e-5, 0.5 / max(total_capacity, 1.0))


# ----------------------------------------------------------------------------- helpers
def _trips_over_horizon(trips: DayTrips, H: int, T: int):
    """(depart, origin, dest, arrive) as int64; when the horizon is longer than a day the
    simulator replays the same day again (its step of day is `t mod T`), so the trips
    are repeated with offsets `T, 2T, ...`. Order: the DayTrips order, day copy by copy."""
    cols = [np.asarray(x, dtype=np.int64) for x in (trips.depart_step, trips.origin, trips.dest, trips.arrive_step)]
    copies = max(1, -(-H // T))
    if copies == 1:
        return tuple(cols)
    shift = np.repeat(np.arange(copies, dtype=np.int64) * T, len(cols[0]))
    s, o, d, a = (np.tile(c, copies) for c in cols)
    return s + shift, o, d, a + shift


def _trip_groups(s, o, d, a, H: int, R: int, P: int):
    """Group the trips departing before `H` by (depart, origin, dest, availability step).

    Trips available only at or after `H` never return a bike inside the horizon, so
    their destination is irrelevant; they are keyed with dest 0 and availability `H`,
    which merges them per (depart, origin) and shrinks the LP.
    Returns ((s, o, d, a) per group, group of each trip, count per group).
    """
    a = s + np.minimum(a - s, P)
    late = a >= H
    a = np.where(late, H, a)
    d = np.where(late, 0, d)
    key = ((s * R + o) * R + d) * (H + 1) + a
    uniq, group_index, counts = np.unique(key, return_inverse=True, return_counts=True)
    g_a = uniq % (H + 1)
    rest = uniq // (H + 1)
    g_d = rest % R
    rest //= R
    g_o = rest % R
    g_s = rest // R
    return (g_s, g_o, g_d, g_a), group_index, counts.astype(np.float64)


def _move_arcs(city: City, H: int, cap: int, relocation_delay: int | None, P: int):
    """Relocation arcs (t, r, k, neighbour, availability step) that can matter.

    No arcs when the move cap is 0; arcs whose bikes would be available only at or
    after `H` are dropped because they cannot serve any trip.
    """
    nbr = np.asarray(city.neighbors, dtype=np.int64)
    ok = np.asarray(city.neighbor_mask, dtype=bool)
    R, K = nbr.shape
    if cap <= 0 or not ok.any():
        e = np.zeros(0, dtype=np.int64)
        return e, e, e, e, e
    if relocation_delay is None:
        delay = np.asarray(city.relocation_steps, dtype=np.int64)[np.arange(R)[:, None], nbr]
    else:
        delay = np.full((R, K), int(relocation_delay), dtype=np.int64)
    delay = np.minimum(delay, P)
    r_arc, k_arc = np.nonzero(ok)
    t = np.repeat(np.arange(H, dtype=np.int64), len(r_arc))
    r = np.tile(r_arc, H)
    k = np.tile(k_arc, H)
    avail = t + delay[r, k]
    keep = avail < H
    return t[keep], r[keep], k[keep], nbr[r, k][keep], avail[keep]


def _csr(rows, cols, vals, shape) -> sp.csr_matrix:
    return sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    ).tocsr()


def _solve(lp: BoundLP, c: np.ndarray, method: str, time_limit: float | None):
    options = {}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    has_ub = lp.A_ub.shape[0] > 0
    res = linprog(c, A_ub=lp.A_ub if has_ub else None, b_ub=lp.b_ub if has_ub else None,
                  A_eq=lp.A_eq, b_eq=lp.b_eq, bounds=lp.bounds, method=method, options=options)
    if res.status != 0:
        raise BoundError(f"HiGHS ({method}) failed on the bound LP ({lp.num_variables} variables, "
                         f"{lp.num_constraints} constraints): status {res.status}, {res.message}")
    return res
