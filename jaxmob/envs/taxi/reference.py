"""A NumPy implementation of `TaxiEnv.step_with`, written from `CONTRACT.md`
with plain loops over taxis and cells, for differential tests and as the speed
baseline of `benchmarks/bench_taxi.py`."""
from __future__ import annotations

import numpy as np


class ReferenceTaxi:
    """Steps one city in NumPy, given the JAX env's exogenous draws."""

    def __init__(self, params, max_wait: int, reward: str = "both"):
        self.p = {k: np.asarray(getattr(params, k)) for k in params.__dataclass_fields__}
        self.W, self.reward = int(max_wait), reward

    def initial_state(self):
        p = self.p
        return dict(cell=p["init_cell"].astype(np.int64).copy(), busy=np.zeros(len(p["taxi_mask"]), np.int64),
                    waiting=np.zeros((len(p["cell_mask"]), self.W), np.int64), t=0)

    def expected(self, t):
        p = self.p
        S = p["demand_rate"].shape[0]
        return np.float32(p["demand_scale"]) * p["demand_rate"][(int(p["start_step"]) + t) % S] * p["cell_mask"]

    def step(self, state, action, new_orders, dest_u):
        """(state', reward (N,), counts) for one step; `state` is not modified."""
        p, W = self.p, self.W
        C, N = len(p["cell_mask"]), len(p["taxi_mask"])
        cell, busy, waiting = state["cell"].copy(), state["busy"].copy(), state["waiting"].copy()
        waiting[:, 0] += new_orders
        idle = p["taxi_mask"] & (busy == 0)
        served = np.zeros(C, np.int64)
        for c in range(C):
            served[c] = min(int(np.sum(idle & (cell == c))), int(waiting[c].sum()))
            left = served[c]
            for a in range(W - 1, -1, -1):  # oldest first
                take = min(left, waiting[c, a])
                waiting[c, a] -= take
                left -= take
        S = p["demand_rate"].shape[0]
        hour = ((int(p["start_step"]) + state["t"]) % S) * 24 // S
        matched = np.zeros(N, bool)
        revenue, occupied = 0.0, 0.0
        taken = np.zeros(C, np.int64)
        start = cell.copy()
        for i in range(N):  # lowest index first within each cell
            c = start[i]
            if idle[i] and taken[c] < served[c]:
                taken[c] += 1
                matched[i] = True
                d = min(int(np.sum(p["dest_cdf"][hour, c] <= dest_u[i])), C - 1)
                revenue += float(p["fare"][c, d])
                occupied += float(p["trip_km"][c, d])
                busy[i] = p["travel_steps"][c, d]
                cell[i] = d
        expired = int(waiting[:, -1].sum())
        waiting = np.concatenate([np.zeros((C, 1), np.int64), waiting[:, :-1]], axis=1)
        busy = np.maximum(busy - 1, 0)
        moves = invalid = 0
        for i in range(N):
            if idle[i] and not matched[i] and action[i] > 0:
                k = min(max(int(action[i]) - 1, 0), 5)
                if p["neighbor_mask"][cell[i], k]:
                    cell[i] = p["neighbors"][cell[i], k]
                    moves += 1
                else:
                    invalid += 1
        supply = np.zeros(C, np.float32)
        for i in range(N):
            if p["taxi_mask"][i] and busy[i] == 0:
                supply[cell[i]] += 1
        need = waiting.sum(1).astype(np.float32) + self.expected(state["t"] + 1)
        high = np.maximum(supply, need)
        bal = np.where(high > 0, np.minimum(supply, need) / np.maximum(high, 1e-9), 1.0).astype(np.float32)
        active = p["cell_mask"] & ((supply > 0) | (need > 0))
        mean = float(bal[active].sum() / max(active.sum(), 1))
        local = bal[cell]
        r = {"local": local, "global": np.full(N, mean), "both": 0.5 * (local + mean),
             "served": matched.astype(np.float32)}[self.reward] * p["taxi_mask"]
        counts = dict(orders=int(np.sum(new_orders)), served=int(served.sum()), expired=expired, moves=moves,
                      invalid_moves=invalid, revenue=revenue, occupied_km=occupied)
        return dict(cell=cell, busy=busy, waiting=waiting, t=state["t"] + 1), r, counts
