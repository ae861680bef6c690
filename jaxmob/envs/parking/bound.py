"""The clairvoyant bound of a parking day: the day's requests, known in advance, assigned
to bays as an LP (HiGHS).

x[r, f] in [0, 1] is the share of request r parked at facility f, one of the
facilities within walking distance of its destination. The env serves a request
made at minute tau (in minute row m) at some step a in [m + 1, a_max], a_max the
last step before it would fail after `max_wait` minutes; it holds the bay over
the steps [a, a + drive + stay). The LP charges it only the steps every such
choice holds, [a_max, m + 1 + drive + stay), so every allocation a policy can
make, for any order of service and any bids, is a feasible point: the LP's most
parked requests bound every policy's on that day. Bays are counted per facility
with a free-bay balance over the steps (each x in at most two rows):

    free[f, t] = free[f, t - 1] - starts[f, t] + ends[f, t] + initial vehicles leaving at t  >= 0

The vehicles parked at the start are the env's random fill at their expected
numbers; the LP's optimum is concave in them, so the bound at the expectation
bounds the expected optimum (Jensen). Among the plans that park the most, it
takes the least cruise, each request's shortest: parked at its first step
(m + 1) after the drive. So its cruise and walk are the least a clairvoyant
allocation needs, reported beside the policies'; only its success is a bound.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from ...core.errors import BoundNotSolved
from ...core.lp import interior_point

from .env import AREA_GROUPS, PERIODS

CRUISE_WEIGHT = 1e-5  # per minute: among plans parking as many, the least cruise (a day's cruise < 1e5 minutes)


def initial_departures(params) -> tuple:
    """The env's initial fill (`initial_state`: each bay taken with probability expected /
    capacity, its remaining stay uniform within a length-biased stay) in expectation: (F,)
    vehicles parked at step 0 and (T + 1, F) of them leaving at each step (free from it on)."""
    cap = np.asarray(params.capacity, np.float64)
    occupied = np.minimum(np.asarray(params.expected_occ, np.float64)[0], cap)
    stays = np.asarray(params.stay_minutes, np.int64)
    biased = np.exp(np.asarray(params.stay_logits, np.float64)) * stays
    biased /= biased.sum()
    T = np.asarray(params.rate).shape[0]
    rest = np.zeros(T + 1)  # P(remaining = r), r = 1 + floor(U stay): 1/stay for r in 1..stay
    for s, q in zip(stays, biased):
        rest[1:min(s, T) + 1] += q / s
    return occupied, rest[:, None] * occupied[None]


def requests_of_day(params, max_wait: int) -> dict:
    """The replayed day's requests as arrays: minute row m, time tau, destination, stay, and the
    first and last step the env may allocate it (m + 1 and the last before it fails)."""
    dest = np.asarray(params.replay_dest)
    m, k = np.nonzero(dest >= 0)
    tau = m + np.asarray(params.replay_time, np.float64)[m, k]
    first = m + 1
    last = np.maximum(first, np.ceil(tau + max_wait).astype(np.int64) - 1)
    return dict(minute=m, time=tau, dest=dest[m, k].astype(np.int64), stay=np.asarray(params.replay_stay)[m, k].astype(np.int64),
                first=first, last=last)


def clairvoyant_bound(params, *, max_wait: int, time_limit: float | None = None) -> dict:
    """The LP above for one replayed day of `ParkingParams`: the most requests that could park
    (success, overall and per area and period) and the least cruise and walk of such a plan.
    `time_limit` (seconds) stops HiGHS (BoundNotSolved). Solved by the interior point without
    crossover (core/lp.py): with it, one weekday-peak day's clean-up ran past 20 minutes."""
    T = np.asarray(params.rate).shape[0]
    F = int(np.asarray(params.capacity).shape[0])
    req = requests_of_day(params, max_wait)
    in_day = req["first"] <= T - 1  # the env allocates at steps 0 .. T - 1
    last = np.minimum(req["last"], T - 1)
    offered = np.asarray(params.offered)
    r_idx, f_idx = np.nonzero(offered[req["dest"]] & in_day[:, None])
    n_x = len(r_idx)
    drive = np.asarray(params.drive_min, np.int64)[req["dest"][r_idx], f_idx]
    start = last[r_idx]
    end = req["first"][r_idx] + drive + req["stay"][r_idx]  # exclusive
    holds = end > start
    # columns: x (n_x) | free (T + 1, F), rows: the free-bay balance per (t, f)
    free_col = n_x + np.arange((T + 1) * F).reshape(T + 1, F)
    n = n_x + free_col.size
    rows, cols, vals = [], [], []

    def add(r, c, v):
        rows.append(np.ravel(r)), cols.append(np.ravel(c)), vals.append(np.broadcast_to(np.float64(v), np.shape(np.ravel(r))))

    balance = np.arange((T + 1) * F).reshape(T + 1, F)
    add(balance, free_col, 1.0)  # free[t] - free[t - 1] + starts(t) - ends(t) = initial vehicles leaving at t
    add(balance[1:], free_col[:-1], -1.0)
    add(balance[start[holds], f_idx[holds]], np.flatnonzero(holds), 1.0)  # start <= T - 1
    e_in = holds & (end <= T)
    add(balance[end[e_in], f_idx[e_in]], np.flatnonzero(e_in), -1.0)
    a_eq = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(balance.size, n))
    occupied, b_eq = initial_departures(params)
    b_eq[0] += np.asarray(params.capacity, np.float64) - occupied  # free at step 0
    # one bay at most per request
    a_ub = sp.csr_matrix((np.ones(n_x), (r_idx, np.arange(n_x))), shape=(len(req["dest"]), n))
    cruise = req["first"][r_idx] + drive - req["time"][r_idx]
    objective = np.zeros(n)
    objective[:n_x] = -1.0 + CRUISE_WEIGHT * cruise
    upper = np.full(n, np.inf)
    upper[:n_x] = 1.0
    clock = time.perf_counter()
    res = interior_point(objective, a_ub=a_ub, b_ub=np.ones(len(req["dest"])), a_eq=a_eq, b_eq=b_eq.ravel(),
                         upper=upper, time_limit=time_limit)
    if not res.optimal:
        raise BoundNotSolved(f"not solved ({res.message}; {time.perf_counter() - clock:.0f} s, {n:,} variables)")
    x = res.x[:n_x]
    walk = np.asarray(params.walk_min, np.float64)[req["dest"][r_idx], f_idx]
    area = np.asarray(params.region)[req["dest"]]  # CBD, Southbank, periphery: by the destination, as the env
    period = np.asarray(params.period)[np.minimum(req["minute"], T - 1)]

    def put(suffix, sel):
        parked = x[sel[r_idx]].sum()
        out[f"success_rate{suffix}"] = float(parked / max(sel.sum(), 1))
        out[f"cruise_min{suffix}"] = float((x * cruise)[sel[r_idx]].sum() / max(parked, 1e-9))
        out[f"walk_min{suffix}"] = float((x * walk)[sel[r_idx]].sum() / max(parked, 1e-9))

    out = {}
    put("", np.ones(len(area), bool))
    for name, regions in AREA_GROUPS.items():
        sel = np.isin(area, regions)
        put(f"_{name}", sel)
        for p, period_name in enumerate(PERIODS):
            put(f"_{name}_{period_name}", sel & (period == p))
    out.update(requests=float(len(req["dest"])), parked=float(x.sum()), lp_variables=n, lp_constraints=balance.size + len(req["dest"]),
               solve_seconds=time.perf_counter() - clock)
    return out
