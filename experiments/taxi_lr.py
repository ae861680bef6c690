"""A taxi learner's learning rate, chosen on the AMoD areas' validation days only.

For each area, every learning rate x `--seeds` seeds trains as one vmapped program through
the one trainer (`run_sweep` with an lr grid); each run's sampled policy (the deployed one) is
scored on the validation days. The rate with the best validation ORR averaged over the areas
is chosen, the paper's CI breaking a tie within a seed std (`taxi_rewards.choose`, the rule
that chose the reward). Test days are not touched. Writes results/taxi_lr-<learner>.json.

    python experiments/taxi_lr.py --learner mappo                 # 3 rates x 3 seeds on 4 areas
    python experiments/taxi_lr.py --learner madarl --table-only   # the table from the JSON
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np

from jaxmob.config import TrainConfig
from jaxmob.sweep import grid_runs, run_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling experiments, also when doc_tables loads this file
from taxi_learners import AMOD, LEARNERS  # noqa: E402
from taxi_rewards import choose, older, stored_run, summary  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--learner", default="mappo", help=f"one of {', '.join(LEARNERS)}")
    ap.add_argument("--lrs", default="0.001,0.003,0.01")
    ap.add_argument("--areas", default=",".join(AMOD))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--updates-per-chunk", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="one area, 2 updates, 2 seeds: the pipeline only")
    ap.add_argument("--out", default=None, help="default results/taxi_lr-<learner>")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--rescore", action="store_true", help="summarise each area's finished sweep in runs/ again "
                    "(its results.json), without training")
    args = ap.parse_args(argv)
    if args.learner not in LEARNERS:
        ap.error(f"unknown learner {args.learner!r}; choose from {', '.join(LEARNERS)}")
    path = Path(args.out or f"results/taxi_lr-{args.learner}").with_suffix(".json")
    results = json.loads(path.read_text()) if path.exists() else {}
    if not args.table_only:
        areas, lrs = args.areas.split(","), [float(x) for x in args.lrs.split(",")]
        if args.quick:
            areas, args.updates, args.updates_per_chunk, args.seeds = areas[:1], 2, 1, 2
        results.update(what=f"{args.learner}: validation ORR and CI of the sampled (deployed) policy per learning rate "
                            f"({args.updates} updates); test days not used to choose", learner=args.learner, seeds=args.seeds, updates=args.updates,
                       machine=f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}")
        results.setdefault("validation", {})
        for area in areas:
            cfg = replace(TrainConfig(env="taxi", scenario=area, total_updates=args.updates,
                                      updates_per_chunk=args.updates_per_chunk, progress=not args.quick),
                          **{k: v for k, v in LEARNERS[args.learner].items() if k != "lr"}).validate()
            t0 = time.perf_counter()
            out_dir = f"runs/taxi-lr-{args.learner}-{area}"
            run = (stored_run(out_dir) if args.rescore else
                   run_sweep(cfg, args.seeds, {"lr": lrs}, out_dir=out_dir, progress=not args.quick, resume=True))
            validation, runs = summary(run)["validation"], grid_runs(cfg, args.seeds, {"lr": lrs})
            if args.rescore and run["settings"] != [r["setting"] for r in runs]:
                raise SystemExit(f"{out_dir} holds another grid ({run['settings']}), not --lrs {args.lrs} x {args.seeds} seeds")
            scores = results["validation"].setdefault(area, {})
            for lr in lrs:
                idx = [i for i, r in enumerate(runs) if r["setting"]["lr"] == lr]
                scores[f"{lr:g}"] = {"seed": [cfg.seed + s for s in range(args.seeds)], "over": "period",
                                     **{m: [v[i] for i in idx] for m, v in validation.items()}}
            print(f"{area}: {time.perf_counter() - t0:.0f} s", flush=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=1, default=float))
    print(table(results))


def over_areas(results) -> dict:
    """{lr: {"validation": {metric: per seed, the mean over the areas}}} for the rates every area has."""
    areas = results["validation"]
    lrs = [lr for lr in next(iter(areas.values())) if all(lr in a for a in areas.values())]
    return {lr: {"validation": {m: np.mean([a[lr][m] for a in areas.values()], axis=0).tolist()
                                for m in ("order_response_rate", "ci")}} for lr in sorted(lrs, key=float)}


def table(results) -> str:
    """Per rate: each area's validation ORR (mean ± std over seeds, the CI in brackets), the mean
    over areas, and the chosen rate in bold."""
    areas = dict(sorted(results["validation"].items(), key=lambda a: AMOD.index(a[0]) if a[0] in AMOD else len(AMOD)))
    rows = over_areas(results)
    chosen = choose(rows)
    lines = ["| lr | " + " | ".join(areas) + " | mean ORR | mean CI |", "|---|" + "---|" * (len(areas) + 2)]
    for lr, r in rows.items():
        cells = [f"{np.mean(a[lr]['order_response_rate']):.4f} ± {np.std(a[lr]['order_response_rate']):.4f} "
                 f"({np.mean(a[lr]['ci']):.1f}){older(a[lr])}" for a in areas.values()]
        name = f"**{lr}** (chosen)" if lr == chosen else lr
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {np.mean(r['validation']['order_response_rate']):.5f} | "
                     f"{np.mean(r['validation']['ci']):.2f} |")
    if any(older(a[lr]) for a in areas.values() for lr in rows):
        lines += ["", "ORR and CI over each area's validation period, except where marked *: the mean of each "
                  "validation day's (scored before they were taken over the period)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
