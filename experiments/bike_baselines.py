"""The operator's bar on every bike scenario: no-op, greedy, MPC and the clairvoyant bound.

Greedy is a local rule with a six-step look-ahead; MPC (`jaxmob/envs/rebalance/mpc.py`) plans
relocations by an LP over the estimated rates, re-planned every 3 steps over 3 hours; the
bound knows the day's trips. Each scenario's test days, per day and on average, with MPC's
planning time per plan. Writes results/bike_baselines.json.

    python experiments/bike_baselines.py                          # every bike scenario (about 20 min, 2-core CPU)
    python experiments/bike_baselines.py --scenarios jersey-city-citibike
    python experiments/bike_baselines.py --mpc-variants     # what each part of MPC is worth, on one day
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

from jaxmob.config import TrainConfig
from jaxmob.envs.rebalance.city import available, load
from jaxmob.envs.rebalance.mpc import MPCSettings
from jaxmob.report import baseline_rows

SHOWN = ("no-op", "greedy", "MPC", "bound")
# name -> settings: the default, and each of its parts taken away or changed
VARIANTS = {
    "default: Poisson service, today's level, send from 1 bike": MPCSettings(),
    "fluid service (min(v, lambda))": MPCSettings(service="fluid"),
    "no level (the estimated rates as they are)": MPCSettings(adapt_level=False),
    "fluid service, no level": MPCSettings(service="fluid", adapt_level=False),
    "send from 2.5 bikes (rounding to nearest)": MPCSettings(min_send=2.5),
    "2-hour horizon": MPCSettings(horizon=12),
    "re-planned every step": MPCSettings(replan=1),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(available()))
    ap.add_argument("--out", default="results/bike_baselines.json")
    ap.add_argument("--mpc-variants", action="store_true", help="MPC's design variants on one test day instead")
    ap.add_argument("--scenario", default="manhattan-106", help="with --mpc-variants")
    ap.add_argument("--day", default="2017-06-09", help="with --mpc-variants")
    args = ap.parse_args(argv)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"scenarios": {}}
    results["machine"] = f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}"
    if args.mpc_variants:
        results["mpc_variants"] = mpc_variants(args.scenario, args.day)
        out.write_text(json.dumps(results, indent=1, default=float))
        print(table(results, part="variants"))
        return
    for name in args.scenarios.split(","):
        scenario = load(name)
        days = list(scenario.test_days or scenario.validation_days)
        t0 = time.perf_counter()
        rows = baseline_rows(scenario, days, TrainConfig(scenario=name).validate(), bound=True)
        results["scenarios"][name] = {"regions": scenario.city.num_regions, "days": days, "per_day": rows,
                                      "wall_s": time.perf_counter() - t0}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1, default=float))
        print(table(results), flush=True)


def mpc_variants(name: str, day: str) -> dict:
    """Service, bikes moved and planning time of each MPC variant on one replayed day."""
    from jaxmob.envs.rebalance.env import RebalanceConfig, RebalanceEnv
    from jaxmob.envs.rebalance.mpc import mpc_episode

    scenario = load(name)
    env = RebalanceEnv(RebalanceConfig(mode="replay"))
    params = env.make_params(scenario.city, days=[scenario.day(day)])
    rows = {}
    for label, settings in VARIANTS.items():
        m = mpc_episode(env, params, jax.random.key(0), settings)
        rows[label] = {k: m[k] for k in ("service_ratio", "rebalanced", "overflow", "planning_seconds")}
        print(label, rows[label], flush=True)
    return {"scenario": name, "day": day, "rows": rows}


def table(results, part: str = "scenarios") -> str:
    """Markdown: per scenario, the mean service of each bar over its test days, MPC minus
    greedy on average and on the worst day, and MPC's planning time per plan
    (`part='variants'`: the MPC variants on one day)."""
    if part == "variants":
        v = results["mpc_variants"]
        lines = [f"| MPC on `{v['scenario']}`, {v['day']} | fulfilled service ratio | bikes moved | overflow | CPU s per plan |",
                 "|---|---|---|---|---|"]
        lines += [f"| {k} | {r['service_ratio']:.4f} | {r['rebalanced']:,.0f} | {r['overflow']:,.0f} | "
                  f"{r['planning_seconds']:.2f} |" for k, r in v["rows"].items()]
        return "\n".join(lines)
    lines = ["| scenario | regions | test days | no-op | greedy | MPC | bound | MPC - greedy (mean / worst day) "
             "| bikes moved/day (greedy / MPC) | MPC CPU s per plan |", "|" + "---|" * 10]
    for name, r in results["scenarios"].items():
        rows = {p: {d: next(x for x in r["per_day"][d] if x["policy"].startswith(p)) for d in r["days"]} for p in SHOWN}
        svc = {p: {d: v["service_ratio"] for d, v in rows[p].items()} for p in SHOWN}
        mean = {p: float(np.mean(list(svc[p].values()))) for p in SHOWN}
        worst = min(svc["MPC"][d] - svc["greedy"][d] for d in r["days"])
        moved = lambda p: np.mean([v["rebalanced"] for v in rows[p].values()])
        plan_s = np.mean([v["planning_seconds"] for v in rows["MPC"].values()])
        lines.append(f"| `{name}` | {r['regions']} | {len(r['days'])} | {mean['no-op']:.4f} | {mean['greedy']:.4f} | "
                     f"{mean['MPC']:.4f} | {mean['bound']:.4f} | {mean['MPC'] - mean['greedy']:+.4f} / {worst:+.4f} | "
                     f"{moved('greedy'):,.0f} / {moved('MPC'):,.0f} | {plan_s:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
