"""A loop-by-loop NumPy version of `ParkingEnv.step_with`: the oracle of the differential tests.

Written from the module docstring of `env.py`, one request and one facility at
a time, with Python lists for the queue, so it shares no array tricks with the
compiled step.
"""
from __future__ import annotations

import numpy as np

NEVER = 1 << 20


def reference_step(state: dict, scores, order, arrivals, params: dict, max_wait: int) -> tuple[dict, dict]:
    """`state` and `params` as dicts of NumPy arrays (the fields of ParkingState / ParkingParams, queue
    fields as `q_dest`, `q_time`, `q_stay`, `q_valid`), `order` the queue slots in order of service;
    returns the next state and the step's counts."""
    t = int(state["t"])
    free = state["free"].copy()
    free_since = state["free_since"].copy()
    en_route = state["en_route"].copy()
    departs = state["departs"].copy()
    arrives = state["arrives"].copy()
    due = state["due_reward"].copy().astype(np.float64)
    L = departs.shape[0]
    C = len(state["q_valid"])
    period = params["period"]
    T = len(period)
    period_of = lambda time: int(period[min(max(int(np.floor(time)), 0), T - 1)])  # noqa: E731
    group = lambda f: int(params["region"][f])  # noqa: E731  CBD, Southbank, periphery
    parked = np.zeros((3, 2), np.int64)
    failed = np.zeros((3, 2), np.int64)
    cruise_sum = np.zeros((3, 2))
    walk_sum = np.zeros((3, 2))
    unserved = set()
    for i in order:
        if not state["q_valid"][i]:
            continue
        d, when, stay = int(state["q_dest"][i]), float(state["q_time"][i]), int(state["q_stay"][i])
        best, best_offer = None, -np.inf
        for f in range(len(free)):
            if params["offered"][d, f] and free[f] > 0:
                offer = float(np.float32(scores[f]) - np.float32(1e-4) * np.float32(params["walk_min"][d, f]))
                if offer > best_offer:
                    best, best_offer = f, offer
        if best is None:
            unserved.add(int(i))
            continue
        f = best
        drive = int(params["drive_min"][d, f])
        park_at, leave_at = min(t + drive, L - 1), min(t + drive + stay, L - 1)
        free[f] -= 1
        if free[f] == 0:
            free_since[f] = NEVER
        en_route[f] += 1
        departs[leave_at, f] += 1
        arrives[park_at, f] += 1
        cruise = t + drive - when
        scoped = params["optimised"][d] if params["reward_scope"] == 1 else params["optimised"][f]
        if scoped:  # the core's vehicles (facility scope) or the core's requests (destination scope)
            due[park_at] += (params["base_reward"] - params["cruise_penalty"] * cruise
                             - params["walk_penalty"] * params["walk_min"][d, f])
        a, p = group(d), period_of(when)
        parked[a, p] += 1
        cruise_sum[a, p] += cruise
        walk_sum[a, p] += params["walk_min"][d, f]
    waiting = []  # the unserved, in the queue's order: those out of time fail, the others wait
    for i in sorted(unserved):
        when, d, stay = float(state["q_time"][i]), int(state["q_dest"][i]), int(state["q_stay"][i])
        if t + 1 - when >= max_wait:
            failed[group(d), period_of(when)] += 1
        else:
            waiting.append((when, d, stay))
    dest, stay, when, valid, extra = arrivals
    requests = np.zeros((3, 2), np.int64)
    for k in range(len(valid)):
        if valid[k]:
            waiting.append((float(when[k]), int(dest[k]), int(stay[k])))
            requests[group(int(dest[k])), period_of(when[k])] += 1
    waiting.sort(key=lambda r: r[0])  # stable: the queue before the newcomers at equal times
    for when_, d, _ in waiting[C:]:
        failed[group(d), period_of(when_)] += 1
    waiting = waiting[:C]
    p_now = int(period[min(t, T - 1)])
    requests[0, p_now] += extra
    failed[0, p_now] += extra
    t1 = t + 1
    row = min(t1, L - 1)
    for f in range(len(free)):
        was_full = free[f] == 0
        free[f] += departs[row, f]
        if was_full and free[f] > 0:
            free_since[f] = t1
    en_route = en_route - arrives[row]
    nxt = dict(t=t1, free=free, free_since=free_since, en_route=en_route, departs=departs, arrives=arrives,
               due_reward=due, q_dest=np.array([w[1] for w in waiting], np.int64),
               q_time=np.array([w[0] for w in waiting]), q_stay=np.array([w[2] for w in waiting], np.int64),
               q_valid=np.ones(len(waiting), bool))
    counts = dict(parked=parked, failed=failed, requests=requests, cruise=cruise_sum, walk=walk_sum, paid=due[row])
    return nxt, counts
