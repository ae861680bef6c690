"""How strong is the greedy baseline? Its look-ahead swept on the held-out days.

The greedy operator's look-ahead window is a free parameter (default 6 steps =
one hour). Choosing it on the evaluation days themselves gives the strongest
version of the baseline, an upper reference for any learned policy compared to it.
Writes results/greedy_lookahead.json.

    python experiments/greedy_lookahead.py
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from jaxmob.envs.rebalance.baselines import make_greedy, rollout
from jaxmob.envs.rebalance.city import load
from jaxmob.config import TrainConfig
from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="manhattan-citibike")
    ap.add_argument("--windows", default="1,2,3,4,6,9,12,18,24", help="look-aheads in steps, comma separated")
    ap.add_argument("--out", default="results/greedy_lookahead.json")
    args = ap.parse_args(argv)
    cfg = TrainConfig(scenario=args.scenario).validate()
    scenario = load(args.scenario)
    env = RebalanceEnv(RebalanceConfig(mode="replay", horizon=cfg.horizon, move_amounts=cfg.move_amounts))
    days = list(scenario.test_days)
    params = {d: env.make_params(scenario.city, days=[scenario.day(d)], alpha=cfg.alpha, beta=cfg.beta) for d in days}
    rows = []
    print("| look-ahead (steps) | held-out service | bikes moved/day |\n|---|---|---|")
    for w in (int(x) for x in args.windows.split(",")):
        per_day = {d: jax.device_get(rollout(make_greedy(w), env, p, jax.random.PRNGKey(cfg.seed))) for d, p in params.items()}
        row = {"lookahead_steps": w,
               "service_ratio": float(np.mean([m["service_ratio"] for m in per_day.values()])),
               "rebalanced": float(np.mean([m["rebalanced"] for m in per_day.values()]))}
        rows.append(row)
        print(f"| {w} | {row['service_ratio']:.4f} | {row['rebalanced']:,.0f} |", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scenario": args.scenario, "eval_days": days, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
