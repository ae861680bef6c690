"""A NumPy/SciPy reference of the region-level AMoD step, for differential tests.

Written for clarity, not speed: explicit loops over regions and trips, and the
two optimisation problems solved as LPs by HiGHS (`scipy.optimize.linprog`)
in the benchmark's own form, not by the combinatorial methods of `env.py`.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linprog


def matching_lp(idle: np.ndarray, requests: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, float]:
    """max sum(price * x) s.t. 0 <= x <= requests, sum_j x[i, j] <= idle[i]; (x, optimum)."""
    R = len(idle)
    a_ub = np.zeros((R, R * R))
    for i in range(R):
        a_ub[i, i * R:(i + 1) * R] = 1.0
    res = linprog(-price.ravel(), A_ub=a_ub, b_ub=idle, bounds=list(zip(np.zeros(R * R), requests.ravel())),
                  method="highs")
    assert res.status == 0, res.message
    return res.x.reshape(R, R), -res.fun


def rebalancing_lp(idle: np.ndarray, desired: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, float]:
    """The AMoD benchmark's rebalancing problem as it states it: min sum(cost * f) over every
    ordered pair i != j s.t., in every region, inflow - outflow >= desired - idle and
    outflow <= idle; (f, optimum)."""
    R = len(idle)
    out, inflow = np.zeros((R, R * R)), np.zeros((R, R * R))
    for i in range(R):
        for j in range(R):
            if i != j:
                out[i, i * R + j] = 1.0
                inflow[j, i * R + j] = 1.0
    a_ub = np.vstack([out - inflow, out])  # -(inflow - outflow) <= idle - desired; outflow <= idle
    b_ub = np.concatenate([idle - desired, idle]).astype(float)
    bounds = [(0, None if i != j else 0) for i in range(R) for j in range(R)]
    res = linprog(cost.ravel(), A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return res.x.reshape(R, R), res.fun


class ReferenceAmod:
    """The step of `AmodEnv` on plain arrays; `state` is a dict (idle, transit, t). `transit[k]`
    holds the vehicles idle for the matching k + 1 steps on: a leg of tau steps begun now is
    filed under k = tau (the benchmark's timing: back for the matching of t + tau + 1)."""

    def __init__(self, params, max_steps: int):
        self.p = {k: np.asarray(v) for k, v in vars(params).items()}
        self.L = max_steps

    def initial(self, requests0: np.ndarray) -> tuple[dict, dict]:
        state = dict(idle=self.p["init_idle"].astype(np.int64).copy(), transit=np.zeros((self.L + 1, len(self.p["init_idle"])), np.int64), t=0)
        return self._match(state, requests0, dict(rebalancing_cost=0.0, moved=0))

    def _match(self, state: dict, requests: np.ndarray, out: dict) -> tuple[dict, dict]:
        t, p = state["t"], self.p
        served, best = matching_lp(state["idle"], requests, p["price"][t])
        served = np.round(served).astype(np.int64)
        out.update(optimal_revenue=best, revenue=float((served * p["price"][t]).sum()), served=int(served.sum()),
                   requests=int(requests.sum()))
        out["trip_cost"] = 0.0
        for i in range(len(served)):
            for j in range(len(served)):
                for _ in range(served[i, j]):
                    state["idle"][i] -= 1
                    state["transit"][p["trip_steps"][t, i, j], j] += 1
                    out["trip_cost"] += float(p["step_cost"]) * p["trip_steps"][t, i, j]
        return state, out

    def step(self, state: dict, moves: np.ndarray, requests: np.ndarray) -> tuple[dict, dict]:
        """Apply empty `moves` (R, R), advance time, match `requests` of the new step."""
        p = self.p
        state = dict(idle=state["idle"].copy(), transit=state["transit"].copy(), t=state["t"])
        out = dict(rebalancing_cost=0.0, moved=0)
        for i in range(len(moves)):
            for j in range(len(moves)):
                if i == j:
                    continue
                for _ in range(int(moves[i, j])):
                    state["idle"][i] -= 1
                    state["transit"][p["reb_steps"][i, j], j] += 1
                    out["rebalancing_cost"] += float(p["step_cost"]) * p["reb_steps"][i, j]
                    out["moved"] += 1
        state["t"] += 1
        state["idle"] += state["transit"][0]
        state["transit"] = np.concatenate([state["transit"][1:], np.zeros_like(state["transit"][:1])])
        return self._match(state, requests, out)
