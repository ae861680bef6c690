"""The time-expanded fleet LP (HiGHS): the clairvoyant bound, and MPC's plan on a forecast.

Over matchings s = 0..T (steps t0..t0+T) of known or forecast requests, choose
served requests x[s, i, j] <= requests[s, i, j] and empty moves y[s, i, j] >= 0
(s < T) to maximise the env's reward, sum x * (price - c * trip steps)
- sum y * c * rebalancing steps (c: cost per vehicle-step), subject to the
env's own timing: z[s, i], the idle vehicles after the matching of step s, is

    z[0, i] = supply[i] + arrivals[0, i] - sum_j x[0, i, j]
    z[s, i] = z[s-1, i] - sum_j y[s-1, i, j] + arrivals[s, i] + legs ending - sum_j x[s, i, j]

with z >= 0, moves out of a region at most its idle vehicles
(sum_j y[s, i, j] <= z[s, i]), and a trip or move of tau steps begun at s
back for the matching of s + tau + 1 (the benchmark's timing).

* `clairvoyant_bound`: the whole episode from the initial fleet with every
  request known. Every policy of the env (which must serve what it can,
  integrally, without foresight) is feasible here, so the optimum bounds every
  policy's reward from above on that episode.
* `mpc_moves`: the receding-horizon plan from the current state to the end of
  the episode on the *expected* requests (the rates, nothing drawn): only its
  first step's moves are made, rounded to whole vehicles, and it is solved
  again at the next step. The env's own matching serves the requests.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog


def fleet_lp(scenario, requests: np.ndarray, *, t0: int = 0, supply=None, arrivals=None) -> dict:
    """Solve the LP above on `requests` (T+1, R, R) from step `t0`: vehicles `supply` (R,)
    (default the initial fleet) and `arrivals` (T+1, R) back from legs begun before t0
    (default none). Returns x (T+1, R, R), y (T, R, R) and the objective's parts."""
    requests = np.asarray(requests, np.float64)
    T = len(requests) - 1
    R = scenario.num_regions
    c = scenario.step_cost
    steps = np.minimum(t0 + np.arange(T + 1), scenario.window_steps - 1)
    price, trip = scenario.price[steps].astype(np.float64), scenario.trip_steps[steps]
    reb = scenario.reb_steps
    supply = scenario.init_idle if supply is None else np.asarray(supply)
    arrivals = np.zeros((T + 1, R)) if arrivals is None else np.asarray(arrivals, np.float64)
    nx, ny, nz = (T + 1) * R * R, T * R * R, (T + 1) * R
    s_, i_, j_ = np.meshgrid(np.arange(T + 1), np.arange(R), np.arange(R), indexing="ij")
    x_col = np.arange(nx).reshape(T + 1, R, R)
    y_col = nx + np.arange(ny).reshape(T, R, R)
    z_col = nx + ny + np.arange(nz).reshape(T + 1, R)

    # balance row (s, i): z[s, i] - z[s-1, i] + sum_j y[s-1, i, j] + sum_j x[s, i, j] - legs ending = rhs
    rows, cols, vals = [], [], []

    def add(r, col, v):
        rows.append(r), cols.append(col), vals.append(np.full(len(r), v, np.float64))

    add(z_col.ravel() - nx - ny, z_col.ravel(), 1.0)
    add((s_ * R + i_).ravel(), x_col.ravel(), 1.0)
    add(np.arange(R, nz), z_col[:-1].ravel(), -1.0)
    ys, yi, yj = s_[:-1], i_[:-1], j_[:-1]
    off = (yi != yj).ravel()
    add(((ys + 1) * R + yi).ravel()[off], y_col.ravel()[off], 1.0)
    end = s_ + trip + 1  # trips: back at j for the matching of s + tau + 1
    back = (end <= T).ravel()
    add((end * R + j_).ravel()[back], x_col.ravel()[back], -1.0)
    end = ys + reb[yi, yj] + 1
    back = ((end <= T) & (yi != yj)).ravel()
    add((end * R + yj).ravel()[back], y_col.ravel()[back], -1.0)
    a_eq = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nz, nx + ny + nz))
    b_eq = arrivals.ravel().copy()
    b_eq[:R] += supply

    # moves out of (s, i) at most z[s, i]
    urows = np.concatenate([(ys * R + yi).ravel()[off], np.arange(T * R)])
    ucols = np.concatenate([y_col.ravel()[off], z_col[:-1].ravel()])
    uvals = np.concatenate([np.ones(off.sum()), -np.ones(T * R)])
    a_ub = sp.csr_matrix((uvals, (urows, ucols)), shape=(T * R, nx + ny + nz))

    objective = np.zeros(nx + ny + nz)
    objective[:nx] = -(price - c * trip).ravel()
    objective[nx:nx + ny] = np.broadcast_to(c * reb, (T, R, R)).ravel()
    bounds = np.zeros((nx + ny + nz, 2))
    bounds[:nx, 1] = requests.ravel()
    bounds[nx:, 1] = np.inf
    bounds[nx:nx + ny][~off, 1] = 0.0
    res = linprog(objective, A_ub=a_ub, b_ub=np.zeros(T * R), A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"fleet LP failed: {res.message}")
    x, y = res.x[:nx].reshape(T + 1, R, R), res.x[nx:nx + ny].reshape(T, R, R)
    return dict(x=x, y=y, reward=-float(res.fun), profit=float((x * (price - c * trip)).sum()),
                rebalancing_cost=float((y * c * reb).sum()))


def clairvoyant_bound(scenario, requests: np.ndarray) -> dict:
    """{reward, served_ratio, profit, rebalancing_cost, ...} of the LP on the episode's `requests`."""
    requests = np.asarray(requests, np.float64)
    lp = fleet_lp(scenario, requests)
    x, y = lp["x"], lp["y"]
    return dict(reward=lp["reward"], served_ratio=float(x.sum() / max(requests.sum(), 1.0)), profit=lp["profit"],
                rebalancing_cost=lp["rebalancing_cost"], rebalanced=float(y.sum()), served=float(x.sum()),
                requests=float(requests.sum()))


def whole_moves(y: np.ndarray, idle: np.ndarray) -> np.ndarray:
    """(R, R) int moves from the LP's fractional `y`: each origin's total rounded, its units
    given to the largest parts (floors first), never more than its idle vehicles."""
    y = np.maximum(np.asarray(y, np.float64), 0.0)
    moves = np.floor(y + 1e-9).astype(np.int64)
    for i in range(len(y)):
        want = min(int(np.round(y[i].sum())), int(idle[i]))
        extra = want - moves[i].sum()
        if extra > 0:
            order = np.argsort(-(y[i] - moves[i]), kind="stable")[:extra]
            moves[i, order] += 1
        while moves[i].sum() > idle[i]:  # rounding never sends more than there is
            moves[i, np.argmax(moves[i])] -= 1
    return moves


def mpc_moves(scenario, t: int, idle: np.ndarray, transit: np.ndarray) -> np.ndarray:
    """MPC's moves after the matching of step t: plan to the episode's end on the expected
    requests from state (`idle`, `transit[k]` back for the matching of t + 1 + k), keep the first."""
    T = scenario.horizon - t
    if T <= 0:
        return np.zeros((scenario.num_regions,) * 2, np.int64)
    R = scenario.num_regions
    forecast = np.zeros((T + 1, R, R))
    forecast[1:] = scenario.demand[np.minimum(t + 1 + np.arange(T), scenario.window_steps - 1)]
    arrivals = np.zeros((T + 1, R))
    k = min(T, len(transit))
    arrivals[1:k + 1] = np.asarray(transit)[:k]
    lp = fleet_lp(scenario, forecast, t0=t, supply=idle, arrivals=arrivals)
    return whole_moves(lp["y"][0], idle)
