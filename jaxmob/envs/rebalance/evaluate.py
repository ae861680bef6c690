"""Baselines and the clairvoyant bound on one replay day: the yardstick table.

    python -m jaxmob eval --scenario manhattan-citibike --day 2017-06-05

replays the day's real trips under no-op, random and greedy rebalancing (the
JAX simulator, `jaxmob/algos/heuristics.py`) and solves the LP upper bound
(`jaxmob/algos/bound.py`) for the same day and settings. The bound ignores dock
capacities, so it bounds a policy only when that policy had no overflow; the
table says so when some row has overflow.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import jax
import numpy as np

from .bound import bound_for_env
from .baselines import make_greedy, noop, random_policy, rollout
from ...city.core import City, DayTrips
from .env import RebalanceConfig, RebalanceEnv

COLUMNS = ("policy", "service_ratio", "served", "demand", "rebalanced", "relocation_cost", "overflow")
HEADERS = ("policy", "fulfilled ratio", "served", "demand", "bikes rebalanced", "relocation cost", "overflow")


def evaluate(scenario: str, day: str | None = None, *, seed: int = 0, **kwargs) -> list[dict]:
    """Rows for no-op, random, greedy and the bound on replay `day` of bundled `scenario`
    (`day=None`: the scenario's first test day). Keyword arguments go to
    `evaluate_day` (horizon, move_amounts, relocation_delay, alpha, beta, ...)."""
    from ...city import load

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
) -> list[dict]:
    """The table rows for any city and replay day (see `evaluate`).

    Each row has the `COLUMNS` keys plus `reward` (policies) or the LP's size and
    solve time (bound). No-op and greedy are deterministic in replay mode; random
    is the mean over `random_episodes` episodes drawn from `seed`.
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
    values = {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}
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


# ----------------------------------------------------------------------- command line
def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `jaxmob eval` options."""
    parser.add_argument("--scenario", default="manhattan-citibike", help="bundled scenario name")
    parser.add_argument("--run", default=None, help="a training run folder: evaluate its checkpoint (argmax and "
                        "sampled) beside the baselines, on the scenario's test days unless --day or --trips")
    parser.add_argument("--trips", default=None, help="with --run: a Citi Bike trip file (any official header era), "
                        "mapped onto the scenario's regions by its station map; unknown stations are counted drops")
    parser.add_argument("--stations", default=None, help="with --trips: station file for trip files that carry only ids "
                        "(default: the scenario's own stations)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"),
                        help="with --run: the best-on-validation checkpoint or the last one")
    parser.add_argument("--episodes", type=int, default=None, help="with --run: sampled-policy episodes per day")
    parser.add_argument("--day", default=None, help="replay day (default: the scenario's first test day)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    parser.add_argument("--random-episodes", type=int, default=5, help="episodes averaged for the random policy")
    parser.add_argument("--horizon", type=int, default=None, help="steps per episode (default one day)")
    parser.add_argument("--move-amounts", default="5,10", help="comma-separated bikes per move level")
    parser.add_argument("--relocation-delay", type=int, default=1, help="steps a relocation takes (0: city's times)")
    parser.add_argument("--alpha", type=float, default=0.5, help="reward weight of unserved demand")
    parser.add_argument("--beta", type=float, default=0.1, help="cost per bike rebalanced")
    parser.add_argument("--lookahead", type=int, default=6, help="greedy look-ahead window in steps")
    parser.add_argument("--no-bound", action="store_true", help="skip the LP bound")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    return parser


def main_eval(args: argparse.Namespace) -> int:
    """Run `evaluate` (or, with --run, `report.evaluate_run`) and print the table."""
    if args.run:
        return _eval_run(args)
    if args.trips:
        print("error: --trips needs --run (the trained run whose scenario maps the file)", file=sys.stderr)
        return 2
    try:
        amounts = tuple(int(a) for a in str(args.move_amounts).split(",") if a.strip())
        rows = evaluate(args.scenario, args.day, seed=args.seed, horizon=args.horizon, move_amounts=amounts,
                        relocation_delay=args.relocation_delay or None, alpha=args.alpha, beta=args.beta,
                        random_episodes=args.random_episodes, lookahead_steps=args.lookahead,
                        bound=not args.no_bound)
    except (KeyError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.scenario}, replay day {rows[0]['day']}")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def _eval_run(args: argparse.Namespace) -> int:
    from ...city.citibike import LoaderError
    from ...report import evaluate_run, format_comparison

    try:
        table = evaluate_run(args.run, day=args.day, trips=args.trips, stations=args.stations,
                             checkpoint=args.checkpoint, episodes=args.episodes, bound=not args.no_bound)
    except (KeyError, ValueError, FileNotFoundError, LoaderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.run}: {table['checkpoint']} checkpoint (update {table['checkpoint_update']}) on {table['scenario']}")
    if table["mapping"]:
        m = table["mapping"]
        print(f"mapped {m['mapped']:,} of {m['trips']:,} trips; dropped {m['outside_regions']:,} at stations outside "
              f"the regions, {m['trips_over_24h']:,} over 24 h; loader: {m['load_report']}")
    from .task import TASK

    print(format_comparison(table, TASK))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=2, default=float)
        print(f"wrote {args.json}")
    return 0
