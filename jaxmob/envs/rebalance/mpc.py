"""An operator's optimiser: model-predictive control by a linear program over the estimated rates.

What a competent operator with a demand forecast does. Every `replan` steps it solves a
fluid LP of the next `horizon` steps from the simulator's current state, then carries out
the plan's moves until the next re-plan. The LP sees only what an operator knows: the bikes
docked and on their way (riding and relocating), the estimated departure rates
(`demand_scale * city.demand_rate`), destination shares (`city.od_prob`) and travel times.
It never sees the replayed day's trips; that is the clairvoyant bound (`bound.py`).

The LP, steps tau = 0 .. H-1 from the current step t:

* `S[tau, r] >= 0` bikes docked after step tau's departures and moves; `S[-1] = inventory`.
* `y[tau, r] in [0, lam[t+tau, r]]` expected trips served; a served trip to `d` (share
  `od[t+tau, r, d]`) docks `travel[r, d]` steps later (clipped to the pipeline length).
* `m[tau, r, k] >= 0` bikes moved to neighbour k, docked `relocation_delay` steps later;
  `sum_k m[tau, r, k] <= max(move_amounts)` (the env's one move per region and step).
* balance `S[tau] = S[tau-1] + arrivals[tau] - y[tau] - sum_k m[tau, ., k]`, where the
  arrivals hold the bikes already riding or relocating (known) and the plan's own.
* maximise the env's reward, `(1 + alpha) sum y - beta sum m` (its constant `-alpha * demand`
  dropped), so a move is made only when it serves trips within the horizon.

Executing a plan: the env moves one of its discrete amounts toward one neighbour per step,
so each region sends toward its largest planned flow the amount nearest to what the plan
has asked of it so far and not yet sent (the rounding residual carries over within a plan),
once that is at least `min_send` bikes: a lost trip costs 15 times a moved bike, so a plan
asking for 1-2 bikes is better served by 5 than by none (measured on manhattan-106,
2017-06-09: sending from 1 bike 0.8811, from 2.5 bikes 0.8768; from 0.05 bikes 0.8792).
Dock capacities are not in the LP (arrivals beyond docks overflow in the env, as for every
policy). The fluid model serves `min(supply, expected demand)`, which is optimistic under
Poisson variance; a safety stock is what the greedy rule's Poisson-free balance also lacks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.stats import poisson

from .bound import BoundError, _csr, _move_arcs


@dataclass(frozen=True)
class MPCSettings:
    """horizon: planning steps (18 = 3 h of 10-minute steps); replan: steps between solves."""

    horizon: int = 18
    replan: int = 3
    service: str = "poisson"  # poisson: expected service under Poisson departures (safety stock) | fluid: min(supply, mean)
    adapt_level: bool = True  # scale the forecast by today's demand level so far (`RebalanceEnv.demand_level`)
    min_send: float = 1.0  # bikes a plan must owe toward a neighbour before a region sends its nearest move amount

    def __post_init__(self):
        if not (isinstance(self.horizon, int) and self.horizon >= 1):
            raise ValueError(f"MPCSettings.horizon: must be a positive integer, got {self.horizon!r}")
        if not (isinstance(self.replan, int) and 1 <= self.replan <= self.horizon):
            raise ValueError(f"MPCSettings.replan: must be an integer in [1, horizon={self.horizon}], got {self.replan!r}")
        if self.service not in ("poisson", "fluid"):
            raise ValueError(f"MPCSettings.service: must be poisson or fluid, got {self.service!r}")

    @property
    def label(self) -> str:
        return f"MPC (forecast LP, {self.horizon}-step horizon, re-planned every {self.replan})"


def plan_moves(city, t: int, inventory, pipeline, *, horizon: int, move_amounts, relocation_delay: int | None,
               demand_scale: float = 1.0, alpha: float = 0.5, beta: float = 0.1, service: str = "poisson") -> np.ndarray:
    """(horizon, R, K) planned bikes moved from each region toward each neighbour, from
    step `t` with `inventory (R,)` docked and `pipeline (P, R)` bikes on their way
    (row i docks at the end of step t + i). Raises `BoundError` if HiGHS fails."""
    H, R = int(horizon), city.num_regions
    K = np.asarray(city.neighbors).shape[1]
    P = pipeline.shape[0]
    T = city.steps_per_day
    steps = (t + np.arange(H)) % T
    lam = float(demand_scale) * np.asarray(city.demand_rate, np.float64)[steps]  # (H, R)
    od = np.asarray(city.od_prob, np.float64)[steps // city.od_bucket_steps]  # (H, R, R)
    travel = np.clip(np.asarray(city.travel_steps, np.int64), 1, P)  # (R, R)

    n_s = n_y = H * R
    mt, mr, mk, mn, mavail = _move_arcs(city, H, int(max(move_amounts)), relocation_delay, P)
    n_m = len(mt)
    s_col, y_col, m_col = np.arange(n_s), n_s + np.arange(n_y), n_s + n_y + np.arange(n_m)
    v_col = n_s + n_y + n_m + np.arange(H * R)  # bikes available at (tau, r): S + y + moves out
    n = n_s + n_y + n_m + H * R

    # balance rows (tau, r): S[tau] - S[tau-1] + y[tau] + moves out - arrivals = known arrivals (+ inventory at 0);
    # trips served at (tau, o) dock at (tau + travel[o, d], d): one coefficient per (tau, o, d) landing in time
    tau, o, d = np.meshgrid(np.arange(H), np.arange(R), np.arange(R), indexing="ij")
    back = tau + travel[o, d]
    share = od[tau, o, d]
    keep = (back < H) & (share > 0)
    rows = [s_col, s_col[R:], s_col, back[keep] * R + d[keep], mt * R + mr, mavail * R + mn]
    cols = [s_col, s_col[:-R], y_col, y_col[tau[keep] * R + o[keep]], m_col, m_col]
    vals = [np.ones(n_s), -np.ones(n_s - R), np.ones(n_y), -share[keep], np.ones(n_m), -np.ones(n_m)]
    # availability rows: v - S - y - moves out = 0
    avail = H * R + s_col
    rows += [avail, avail, avail, H * R + mt * R + mr]
    cols += [v_col, s_col, y_col, m_col]
    vals += [np.ones(n_s), -np.ones(n_s), -np.ones(n_y), -np.ones(n_m)]
    A_eq = _csr(rows, cols, vals, (2 * H * R, n))
    b_eq = np.zeros((2 * H, R))
    b_eq[0] = inventory
    known = np.asarray(pipeline, np.float64)[: H - 1]  # row i is available from step tau = i + 1
    b_eq[1:1 + len(known)] += known
    cap_rows, cap_row_of = np.unique(mt * R + mr, return_inverse=True)
    ub = [(_csr([cap_row_of], [m_col], [np.ones(n_m)], (len(cap_rows), n)), np.full(len(cap_rows), float(max(move_amounts))))]
    if service == "poisson":
        ub.append(_poisson_cuts(lam, v_col, y_col, n))
    A_ub, b_ub = sp.vstack([a for a, _ in ub]).tocsr(), np.concatenate([b for _, b in ub])

    c = np.zeros(n)
    c[y_col] = -(1.0 + alpha)
    c[m_col] = beta
    bounds = np.zeros((n, 2))
    bounds[:, 1] = np.inf
    bounds[y_col, 1] = lam.reshape(-1)
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq.reshape(-1), bounds=bounds, method="highs")
    if res.status != 0:
        raise BoundError(f"HiGHS failed on the MPC plan at step {t} ({n} variables): status {res.status}, {res.message}")
    flows = np.zeros((H, R, K))
    flows[mt, mr, mk] = res.x[m_col]
    return flows


def round_moves(flow, owed, move_amounts, valid, min_send: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Env actions (R,) for one step of a plan: `owed (R, K)` (planned this step plus the
    rounding residual so far) goes out as the move amount nearest to it toward the
    neighbour owed most, once that is at least `min_send` bikes.
    Returns (actions, owed after the step)."""
    owed = np.where(valid, owed + flow, 0.0)
    amounts = np.asarray(move_amounts, np.float64)
    L = len(amounts)
    k = np.argmax(owed, axis=1)
    want = owed[np.arange(len(k)), k]
    level = np.argmin(np.abs(want[:, None] - amounts[None, :]), axis=1)
    send = want >= min_send
    actions = np.where(send, 1 + k * L + level, 0).astype(np.int32)
    owed[np.arange(len(k)), k] -= np.where(send, amounts[level], 0.0)
    return actions, owed


def mpc_episode(env, params, key, settings: MPCSettings = MPCSettings(), day: int = 0) -> dict:
    """Episode metrics of MPC in `env` (a `RebalanceEnv`) on `params`, plus `planning_seconds`
    (mean CPU seconds of this thread per re-plan, build + solve: unaffected by other work on
    the machine) and `plans`. A host loop: one HiGHS solve
    every `settings.replan` steps between compiled env steps."""
    cfg, city = env.config, params.city
    step = jax.jit(env.step)
    state = env.initial_state(params, day)
    valid = np.asarray(city.neighbor_mask, bool) & np.asarray(city.region_mask, bool)[:, None]
    demand_scale, alpha, beta = (float(np.asarray(params.demand_scale)), float(np.asarray(params.alpha)),
                                 float(np.asarray(params.beta)))
    demand_level = jax.jit(env.demand_level)
    seconds, flows, owed = [], None, np.zeros(valid.shape)
    for t in range(env.episode_length):
        if t % settings.replan == 0:
            inventory, riding, relocating = jax.device_get((state.inventory, state.riding, state.relocating))
            level = float(demand_level(state, params)) if settings.adapt_level else 1.0
            t0 = time.thread_time()
            flows = plan_moves(city, t, np.asarray(inventory, np.float64), np.asarray(riding + relocating, np.float64),
                               horizon=settings.horizon, move_amounts=cfg.move_amounts,
                               relocation_delay=cfg.relocation_delay, demand_scale=demand_scale * level, alpha=alpha,
                               beta=beta, service=settings.service)
            seconds.append(time.thread_time() - t0)
            owed = np.zeros(valid.shape)
        actions, owed = round_moves(flows[t % settings.replan], owed, cfg.move_amounts, valid, settings.min_send)
        _, state, _, _, _ = step(jax.random.fold_in(key, t), state, jnp.asarray(actions), params)
    metrics = {k: float(np.asarray(v)) for k, v in jax.device_get(env.episode_metrics(state, params)).items()}
    return {**metrics, "planning_seconds": float(np.mean(seconds)), "plans": len(seconds)}


def _poisson_cuts(lam, v_col, y_col, n: int, quantiles=np.linspace(0.02, 0.98, 9)):
    """Rows `y - slope v <= intercept`: y <= the expected trips served E[min(v, D)], D ~
    Poisson(lam[tau, r]), v the bikes available at (tau, r), interpolated linearly between
    breakpoints at 0 and D's `quantiles` (a concave function, so the chords' minimum is its
    interpolation; beyond the last one, the bound y <= lam). So a plan values a safety stock:
    a region expecting 2 departures needs more than 2 bikes to serve them."""
    lam = lam.reshape(-1)
    cells = np.nonzero(lam > 0)[0]
    knots = np.maximum.accumulate(np.concatenate(
        [np.zeros((len(cells), 1)), poisson.ppf(quantiles[None, :], lam[cells, None]) + 1], axis=1), axis=1)
    # E[min(k, D)] = sum_{j<k} P(D > j), read off a cumulative table up to the largest knot
    k_top = int(knots.max()) + 1
    f = np.concatenate([np.zeros((len(cells), 1)), np.cumsum(poisson.sf(np.arange(k_top)[None, :], lam[cells, None]),
                                                              axis=1)], axis=1)
    at = np.take_along_axis(f, knots.astype(np.int64), axis=1)
    width = np.diff(knots, axis=1)
    ok = width > 0
    slope = np.where(ok, np.diff(at, axis=1) / np.where(ok, width, 1.0), 0.0)
    cell, seg = np.nonzero(ok)
    g = slope[cell, seg]
    row = np.arange(len(cell))
    A = _csr([row, row], [y_col[cells[cell]], v_col[cells[cell]]], [np.ones(len(cell)), -g], (len(cell), n))
    return A, at[cell, seg] - g * knots[cell, seg]


