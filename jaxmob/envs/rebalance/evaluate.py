"""Baselines and the clairvoyant bound on one replay day: the yardstick table.

    python -m jaxmob eval --scenario manhattan-citibike --day 2017-06-05

replays the day's real trips under no-op, random and greedy rebalancing (the
JAX simulator, `baselines.py`) and solves the LP upper bound (`bound.py`) for
the same day and settings. The bound ignores dock
capacities, so it bounds a policy only when that policy had no overflow; the
table says so when some row has overflow.
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from .bound import bound_for_env
from .baselines import make_greedy, noop, random_policy, rollout
from .city.core import City, DayTrips
from .env import RebalanceConfig, RebalanceEnv
from .mpc import MPCSettings, mpc_episode

COLUMNS = ("policy", "service_ratio", "served", "demand", "rebalanced", "relocation_cost", "overflow")
HEADERS = ("policy", "fulfilled ratio", "served", "demand", "bikes rebalanced", "relocation cost", "overflow")


def evaluate(scenario: str, day: str | None = None, *, seed: int = 0, **kwargs) -> list[dict]:
    """Rows for no-op, random, greedy and the bound on replay `day` of bundled `scenario`
    (`day=None`: the scenario's first test day). Keyword arguments go to
    `evaluate_day` (horizon, move_amounts, relocation_delay, alpha, beta, ...)."""
    from .city import load

    loaded = load(scenario)
    if day is None:
        day = (loaded.test_days or tuple(loaded.days))[0]
    rows = evaluate_day(loaded.city, loaded.day(day), seed=seed, **kwargs)
    for row in rows:
        row.update(scenario=scenario, day=day)
    return rows


def evaluate_day(
    city: City,
    trips: DayTrips,
    *,
    seed: int = 0,
    horizon: int | None = None,
    move_amounts: Sequence[int] = (5, 10),
    relocation_delay: int | None = 1,
    alpha: float = 0.5,
    beta: float = 0.1,
    random_episodes: int = 5,
    lookahead_steps: int = 6,
    bound: bool = True,
    mpc: MPCSettings | None = MPCSettings(),
) -> list[dict]:
    """The table rows for any city and replay day (see `evaluate`).

    Each row has the `COLUMNS` keys plus `reward` (policies) or the LP's size and
    solve time (bound). No-op, greedy and MPC are deterministic in replay mode; random
    is the mean over `random_episodes` episodes drawn from `seed`. With `bound`, the
    MPC controller (`mpc.py`, settings `mpc`; None leaves it out) and the clairvoyant
    bound are added: the two LPs, host-side and slower than the compiled rules.
    """
    config = RebalanceConfig(mode="replay", horizon=int(horizon or city.steps_per_day),
                             move_amounts=tuple(int(a) for a in move_amounts), relocation_delay=relocation_delay)
    env = RebalanceEnv(config)
    params = env.make_params(city, days=[trips], alpha=alpha, beta=beta)
    key = jax.random.key(seed)
    rows = [
        _policy_row("no-op", rollout(noop, env, params, key, 0)),
        _policy_row(f"random (mean of {random_episodes})", _mean_rollout(random_policy, env, params, key, random_episodes)),
        _policy_row(f"greedy ({lookahead_steps}-step look-ahead)",
                    rollout(make_greedy(lookahead_steps), env, params, key, 0)),
    ]
    if bound and mpc is not None:
        metrics = mpc_episode(env, params, key, mpc)
        row = _policy_row(mpc.label, metrics)
        row.update(planning_seconds=metrics["planning_seconds"], plans=metrics["plans"])
        rows.append(row)
    if bound:
        result = bound_for_env(env, params, trips, beta=beta)
        row = result.as_row()
        row.update(solve_seconds=result.solve_seconds, lp_variables=result.num_variables,
                   lp_constraints=result.num_constraints, lp_nonzeros=result.num_nonzeros, status=result.status)
        rows.append(row)
    return rows


def _mean_rollout(policy, env, params, key, episodes: int) -> dict:
    keys = jax.random.split(key, max(1, int(episodes)))
    runs = jax.vmap(lambda k: rollout(policy, env, params, k, 0))(keys)
    return {k: np.mean(np.asarray(v, dtype=np.float64)) for k, v in runs.items()}


def _policy_row(name: str, metrics: dict) -> dict:
    values = {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items() if k in COLUMNS or k == "reward"}
    row = {"policy": name}
    row.update({k: values[k] for k in COLUMNS[1:]})
    row["reward"] = values["reward"]
    return row


def format_table(rows: list[dict]) -> str:
    """A plain-text table of the rows, with the overflow caveat of the bound when it applies."""
    cells = [list(HEADERS)] + [[_cell(row[c], c) + (f" ± {_cell(row[c + '_std'], c)}" if c + "_std" in row else "")
                                for c in COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    line = lambda r: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
    out = [line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]]
    mpc_rows = [r for r in rows if "planning_seconds" in r]
    if mpc_rows:
        out.append(f"MPC: {mpc_rows[0]['plans']} LP plans (HiGHS) on the estimated rates, "
                   f"{mpc_rows[0]['planning_seconds']:.2f} CPU s per plan")
    bound_rows = [r for r in rows if r["policy"].startswith("bound")]
    if bound_rows:
        b = bound_rows[0]
        out.append(f"bound: LP with {b.get('lp_variables', '?'):,} variables, {b.get('lp_constraints', '?'):,} "
                   f"constraints, solved in {b.get('solve_seconds', float('nan')):.2f} s (HiGHS)")
        if any(r["overflow"] > 0 for r in rows if r is not b):
            out.append("note: the bound ignores dock capacities; it bounds only policies without overflow "
                       "(overflow re-routes bikes for free).")
    return "\n".join(out)


def _cell(value, column: str) -> str:
    """Ratios with 4 decimals, costs with 1, counts as integers (1 decimal for means/LP values)."""
    if isinstance(value, str):
        return value
    value = float(value)
    if column == "service_ratio":
        return f"{value:.4f}"
    if column == "relocation_cost" or abs(value - round(value)) > 1e-6:
        return f"{value:,.1f}"
    return f"{int(round(value)):,}"
