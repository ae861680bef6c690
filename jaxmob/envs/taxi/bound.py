"""The clairvoyant fleet bound of a taxi episode: a time-expanded LP (HiGHS).

The day's orders per cell and step are known in advance (a replayed episode);
what no one can know is where each passenger goes, because the env draws a
matched taxi's destination at matching time, independently of everything
before it. So the LP follows the *expected* fleet: with `m[c, t]` taxis matched
in cell c at step t (continuous),

    inflow[c, t] = initial taxis (t = 0) + moves and stays arriving from t - 1
                   + sum over c', t' with t' + travel[c', c] = t of p[h(t'), c', c] m[c', t']
    inflow[c, t] = m[c, t] + sum over k of f[c, t, k]      (f >= 0: stay or move to neighbour k)
    m[c, t]      = sum over ages a < max_wait of u[c, t - a, a]
    sum_a u[c, t0, a] <= orders[t0, c]                       (an order waits max_wait steps)

maximising the served orders (then, by small weights, the expected fares, then the fewest
empty moves).
This is the env's timing (CONTRACT.md): a taxi matched at t in c is idle at d
for the matching of t + travel[c, d]; a move is one step to a neighbour.

Why it bounds every policy: for any policy, even one that knows all the orders,
the *expected* trajectory over the destination draws satisfies these linear
constraints (a match happens before its destination is drawn, so expected
arrivals are p x expected matches), and matching is not forced here. So the LP
optimum bounds the expected number of served orders of every policy on that
day. One realised episode can exceed it by the luck of its draws; the margin
is measured in tests/envs/test_taxi_bound.py.

The LP holds one coefficient per (step, origin, destination): under 30,000 on an
AMoD area (solved in about a second), 9 million on a 250-cell city over a whole
day, which HiGHS does not solve in ten minutes on two cores (`lp_terms`): there the
task solves the zone relaxation (`zones=`), by the interior point without crossover
(core/lp.py).
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from ...core.errors import BoundNotSolved
from ...core.lp import interior_point

from .env import composite_index, PCR_UNIT

REVENUE_WEIGHT = 1e-6  # per dollar: among plans that serve as many orders, the one with the most fares
IPM_VARIABLES = 100_000  # above this, interior point without crossover (core/lp.py): simplex stalls on a 250-cell city's day
MOVE_WEIGHT = 1e-7  # per empty move: then the one that drives least empty (so its empty km mean something)


def destination_probabilities(params) -> np.ndarray:
    """(24, C, C) destination probabilities per hour and origin, from the params' CDF."""
    cdf = np.asarray(params.dest_cdf, np.float64)
    return np.diff(cdf, axis=-1, prepend=0.0)


def hop_distances(params) -> np.ndarray:
    """(C, C) moves between cells along the neighbour graph (inf where unreachable)."""
    from scipy.sparse.csgraph import shortest_path

    nbr, nmask = np.asarray(params.neighbors), np.asarray(params.neighbor_mask)
    C = nbr.shape[0]
    src, k = np.nonzero(nmask)
    graph = sp.csr_matrix((np.ones(len(src)), (src, nbr[src, k])), shape=(C, C))
    return shortest_path(graph, unweighted=True, directed=False)


def destination_zones(params, num_zones: int, weight: np.ndarray | None = None) -> np.ndarray:
    """(C,) zone of each cell: `num_zones` compact groups of cells (farthest-point centres on
    the neighbour graph, each cell to its nearest centre). The bound relaxes a trip's end to
    its zone (below); `num_zones` >= C gives one cell per zone, the exact LP.

    weight: (C,) > 0, e.g. each cell's traffic: the first centre is the heaviest cell and each
    next one the cell farthest from the centres times its weight, so zones are small where the
    weight is (how much the bound depends on its zones: experiments/taxi_bound_zones.py)."""
    C = np.asarray(params.cell_mask).shape[-1]
    if num_zones >= C:
        return np.arange(C)
    hops = hop_distances(params)
    hops[~np.isfinite(hops)] = hops[np.isfinite(hops)].max() + 1
    weight = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    if weight.shape != (C,) or not (weight > 0).all():
        raise ValueError(f"destination_zones: weight must be {C} positive numbers, one per cell")
    centres = [int(np.argmax(weight))]
    for _ in range(num_zones - 1):
        centres.append(int((weight * hops[centres].min(0)).argmax()))
    return np.argmin(hops[centres], 0)


def lp_terms(params, horizon: int, zones: np.ndarray | None = None) -> int:
    """Destination coefficients of the bound's LP (its bulk): one per (step, origin, zone of a
    destination) of positive probability."""
    reach = (destination_probabilities(params) > 0).any(0)  # (C, C)
    if zones is None:
        return int(horizon * reach.sum())
    per_zone = np.zeros((reach.shape[0], int(zones.max()) + 1), bool)
    np.logical_or.at(per_zone.T, zones, reach.T)
    return int(horizon * per_zone.sum())


def clairvoyant_bound(params, *, horizon: int, max_wait: int, zones: np.ndarray | None = None,
                      time_limit: float | None = None) -> dict:
    """The LP above for one episode of `TaxiParams` (replay mode: `replay_orders` are the
    orders). Returns the bound's served orders and ORR, and the expected fares (PCR) and CI
    of the bounding plan (reported beside the policies', not bounds themselves).

    time_limit: seconds HiGHS may take (BoundNotSolved past it).

    zones: (C,) zone of each cell (`destination_zones`), default one cell per zone (exact).
    With coarser zones a trip ends anywhere in its destination's zone (the LP chooses), as
    early as the zone's quickest cell: every plan of the exact LP stays feasible (drop the
    taxi at its true cell and let it stay there until it would have arrived), so the optimum
    can only rise and remains a bound, with far fewer terms (one per origin and zone)."""
    orders = np.asarray(params.replay_orders, np.float64)[:horizon] * np.asarray(params.cell_mask)
    if len(orders) < horizon:
        raise ValueError(f"clairvoyant_bound: the episode has {len(orders)} steps of orders, horizon is {horizon}")
    H, C = orders.shape
    W = int(max_wait)
    nbr, nmask = np.asarray(params.neighbors), np.asarray(params.neighbor_mask)
    travel = np.asarray(params.travel_steps, np.int64)
    fare = np.asarray(params.fare, np.float64)
    S = np.asarray(params.demand_rate).shape[0]
    hour = ((int(params.start_step) + np.arange(H)) % S) * 24 // S
    prob = destination_probabilities(params)
    init = np.bincount(np.asarray(params.init_cell)[np.asarray(params.taxi_mask)], minlength=C).astype(np.float64)
    zones = np.arange(C) if zones is None else np.asarray(zones, np.int64)
    if zones.shape != (C,) or zones.min() < 0:
        raise ValueError(f"clairvoyant_bound: zones must give each of the {C} cells a zone index >= 0, got shape {zones.shape}")
    Z = int(zones.max()) + 1
    zone_prob = np.zeros((24, C, Z))
    np.add.at(zone_prob.transpose(2, 0, 1), zones, prob.transpose(2, 0, 1))  # (24, C, Z)
    zone_travel = np.full((C, Z), np.iinfo(np.int64).max)
    np.minimum.at(zone_travel.T, zones, travel.T)  # (C, Z) the zone's quickest cell

    # columns: u (t0, c, a) | m (t, c) | x (t, c) trip ends | f (t, c, k), k = 0 stay, 1..6 valid neighbours
    t0, c0, a0 = np.meshgrid(np.arange(H), np.arange(C), np.arange(W), indexing="ij")
    in_episode = t0 + a0 < H  # an order can only be served inside the episode
    u_col = np.arange(H * C * W).reshape(H, C, W)
    m_col = u_col.size + np.arange(H * C).reshape(H, C)
    x_col = u_col.size + m_col.size + np.arange(H * C).reshape(H, C)
    moves = np.concatenate([np.ones((C, 1), bool), nmask], 1)  # (C, 7)
    dest = np.concatenate([np.arange(C)[:, None], nbr], 1)
    f_t, f_c, f_k = np.nonzero(np.broadcast_to(moves, (H, C, 7)))
    f_col = u_col.size + m_col.size + x_col.size + np.arange(len(f_t))
    n = int(f_col[-1]) + 1

    rows, cols, vals = [], [], []

    def add(r, c, v):
        r, c = np.asarray(r).ravel(), np.asarray(c).ravel()
        v = np.asarray(v, np.float64)
        rows.append(r), cols.append(c), vals.append(np.broadcast_to(v.ravel() if v.ndim else v, r.shape))

    # taxi rows (t, c): m + outgoing f - incoming f(t-1) - trip ends x = init (t = 0)
    taxi_row = np.arange(H * C).reshape(H, C)
    add(taxi_row, m_col, 1.0)
    add(taxi_row[f_t, f_c], f_col, 1.0)
    on = f_t + 1 < H
    add(taxi_row[f_t[on] + 1, dest[f_c[on], f_k[on]]], f_col[on], -1.0)
    add(taxi_row, x_col, -1.0)
    # zone rows (t, z): trip ends in z's cells = expected arrivals of the matches at (t', o) into z
    zone_row = 2 * H * C + np.arange(H * Z).reshape(H, Z)
    add(zone_row[np.arange(H)[:, None], zones[None]], x_col, 1.0)
    t_, o_, z_ = np.nonzero(zone_prob[hour] > 0)
    back = t_ + zone_travel[o_, z_]
    inside = back < H
    add(zone_row[back[inside], z_[inside]], m_col[t_[inside], o_[inside]], -zone_prob[hour][t_, o_, z_][inside])
    # match rows (t, c): m - sum_a u[t - a, c, a] = 0
    match_row = taxi_row.size + np.arange(H * C).reshape(H, C)
    add(match_row, m_col, 1.0)
    add(match_row[(t0 + a0)[in_episode], c0[in_episode]], u_col[in_episode], -1.0)
    n_eq = 2 * H * C + H * Z
    a_eq = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_eq, n))
    b_eq = np.zeros(n_eq)
    b_eq[taxi_row[0]] = init
    # order rows (t0, c): sum_a u[t0, c, a] <= orders[t0, c]
    a_ub = sp.csr_matrix((np.ones(u_col.size), (np.repeat(np.arange(H * C), W), u_col.ravel())), shape=(H * C, n))

    expected_fare = (prob * fare[None]).sum(-1)[hour]  # (H, C) per match
    objective = np.zeros(n)
    objective[u_col.ravel()] = -1.0
    objective[m_col.ravel()] = -REVENUE_WEIGHT * expected_fare.ravel()
    objective[f_col[f_k > 0]] = MOVE_WEIGHT
    upper = np.full(n, np.inf)
    upper[u_col[~in_episode]] = 0.0
    start = time.perf_counter()
    if n > IPM_VARIABLES:
        res = interior_point(objective, a_ub=a_ub, b_ub=orders.ravel(), a_eq=a_eq, b_eq=b_eq, upper=upper,
                             time_limit=time_limit)
        solved, message = res.optimal, res.message
    else:
        res = linprog(objective, A_ub=a_ub, b_ub=orders.ravel(), A_eq=a_eq, b_eq=b_eq,
                      bounds=np.stack([np.zeros(n), upper], 1), method="highs", options={"time_limit": time_limit})
        solved, message = res.status == 0, res.message.strip()
    if not solved:
        raise BoundNotSolved(f"taxi fleet LP not solved ({message}; {time.perf_counter() - start:.0f} s, "
                             f"{n:,} variables)")
    served, total = float(res.x[u_col].sum()), float(orders.sum())
    matches = res.x[m_col]
    revenue = float((matches * expected_fare).sum())
    occupied_km = float((matches * (prob * np.asarray(params.trip_km, np.float64)[None]).sum(-1)[hour]).sum())
    empty_km = float(res.x[f_col[f_k > 0]].sum() * float(params.move_km))
    orr, pcr = served / max(total, 1.0), revenue / PCR_UNIT
    with np.errstate(divide="ignore"):  # every order served: CI is infinite
        ci = float(composite_index(np.float64(orr), pcr))
    return dict(order_response_rate=orr, served=served, orders=total, revenue=revenue, pcr=pcr, ci=ci, empty_km=empty_km, occupied_km=occupied_km,
                orr_x_occupied_share=orr * occupied_km / max(occupied_km + empty_km, 1e-9),
                lp_variables=n, lp_zones=Z,
                lp_constraints=n_eq + H * C, solve_seconds=time.perf_counter() - start)
