"""The clairvoyant bound of an AMoD episode: the time-expanded fleet LP (HiGHS).

Knowing every request of the episode in advance, choose served requests
x[t, i, j] <= requests[t, i, j] (t = 0..H) and empty moves y[t, i, j] >= 0
(t = 0..H-1) to maximise the env's reward, sum x * (price - c * trip steps)
- sum y * c * rebalancing steps (c: cost per vehicle-step), subject to the
env's own timing: z[t, i], the idle vehicles after the matching of step t, is

    z[0, i] = fleet[i] - sum_j x[0, i, j]
    z[t, i] = z[t-1, i] - sum_j y[t-1, i, j] + arrivals[t, i] - sum_j x[t, i, j]

with z >= 0, moves out of a region at most its idle vehicles (sum_j y[t, i, j]
<= z[t, i]), and trips and moves begun at step s arriving at s + duration.
Every policy of the env (which must serve what it can, integrally, without
foresight) is feasible here, so the LP optimum bounds every policy's reward
from above on that episode.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog


def clairvoyant_bound(scenario, requests: np.ndarray) -> dict:
    """{reward, served_ratio, profit, rebalancing_cost} of the LP on `requests` (H+1, R, R)."""
    requests = np.asarray(requests, np.float64)
    H = len(requests) - 1
    R = scenario.num_regions
    c = scenario.step_cost
    price, trip = scenario.price[: H + 1].astype(np.float64), scenario.trip_steps[: H + 1]
    reb = scenario.reb_steps
    nx, ny, nz = (H + 1) * R * R, H * R * R, (H + 1) * R
    X = lambda t, i, j: (t * R + i) * R + j  # noqa: E731
    Y = lambda t, i, j: nx + (t * R + i) * R + j  # noqa: E731
    Z = lambda t, i: nx + ny + t * R + i  # noqa: E731

    rows, cols, vals, rhs = [], [], [], []

    def eq(row, entries, value):
        for col, v in entries:
            rows.append(row), cols.append(col), vals.append(v)
        rhs.append(value)

    for t in range(H + 1):
        for i in range(R):
            entries = [(Z(t, i), 1.0)] + [(X(t, i, j), 1.0) for j in range(R)]
            if t > 0:
                entries += [(Z(t - 1, i), -1.0)] + [(Y(t - 1, i, j), 1.0) for j in range(R) if j != i]
                entries += [(X(s, j, i), -1.0) for s in range(t) for j in range(R) if s + trip[s, j, i] == t]
                entries += [(Y(s, j, i), -1.0) for s in range(t) for j in range(R) if j != i and s + reb[j, i] == t]
            eq(len(rhs), entries, float(scenario.init_idle[i]) if t == 0 else 0.0)
    a_eq = sp.csr_matrix((vals, (rows, cols)), shape=(len(rhs), nx + ny + nz))
    b_eq = np.asarray(rhs)

    urows, ucols, uvals = [], [], []
    for t in range(H):
        for i in range(R):
            moves = [Y(t, i, j) for j in range(R) if j != i]
            urows += [t * R + i] * R
            ucols += moves + [Z(t, i)]
            uvals += [1.0] * len(moves) + [-1.0]
    a_ub = sp.csr_matrix((uvals, (urows, ucols)), shape=(H * R, nx + ny + nz))

    objective = np.zeros(nx + ny + nz)
    objective[:nx] = -(price - c * trip).ravel()
    objective[nx:nx + ny] = np.broadcast_to(c * reb, (H, R, R)).ravel()
    bounds = np.zeros((nx + ny + nz, 2))
    bounds[:nx, 1] = requests.ravel()
    bounds[nx:, 1] = np.inf
    diag = np.zeros((H, R, R), bool)
    diag[:, np.arange(R), np.arange(R)] = True
    bounds[nx:nx + ny][diag.ravel(), 1] = 0.0
    res = linprog(objective, A_ub=a_ub, b_ub=np.zeros(H * R), A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"clairvoyant LP failed: {res.message}")
    x, y = res.x[:nx].reshape(H + 1, R, R), res.x[nx:nx + ny].reshape(H, R, R)
    profit = float((x * (price - c * trip)).sum())
    reb_cost = float((y * c * reb).sum())
    return dict(reward=-float(res.fun), served_ratio=float(x.sum() / max(requests.sum(), 1.0)), profit=profit,
                rebalancing_cost=reb_cost, rebalanced=float(y.sum()), served=float(x.sum()),
                requests=float(requests.sum()))
