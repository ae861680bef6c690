"""The fleet-size table of the taxi environment (TDEVR / MADARL setting).

At each fleet size (the paper: 6,000 / 8,000 / 10,000 taxis) and seed, the
hand rules (stay, random, demand-gap greedy) and every learned policy (MAPPO
without attention; MADARL with attention none / local / global / both) are
reported on the scenario's test episodes, which choose nothing. Each learned
run trains at its own fleet size through the one trainer; its checkpoint is
chosen on the validation episodes; the test rows give the argmax policy and
the sampled policy (mean over `--eval-episodes` episodes per test episode).
Runs are kept in `runs/taxi_fleet/` and skipped when already finished, so an
interrupted table resumes where it stopped. Writes results/taxi_fleet.json
and .png.

    python experiments/taxi_fleet.py                 # the table (hours on 2 CPU cores)
    python experiments/taxi_fleet.py --quick         # a smoke run (a minute)
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
from jaxmob.envs.taxi.env import PCR_UNIT, composite_index
from jaxmob.report import baseline_rows
from jaxmob.train import finished_run, train

VARIANTS = {"mappo": ("mappo", None), "madarl-none": ("madarl", "none"), "madarl-local": ("madarl", "local"),
            "madarl-global": ("madarl", "global"), "madarl": ("madarl", "both")}
METRICS = ("order_response_rate", "revenue", "pcr", "ci", "orr_x_occupied_share", "empty_km")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="nyc-hex-synthetic")
    ap.add_argument("--fleets", default="6000,8000,10000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"learned rows, of {', '.join(VARIANTS)}")
    ap.add_argument("--updates", type=int, default=8, help="PPO updates per run")
    ap.add_argument("--updates-per-chunk", type=int, default=4, help="validation after every chunk")
    ap.add_argument("--num-envs", type=int, default=1)
    ap.add_argument("--eval-episodes", type=int, default=3, help="sampled-policy episodes per test episode")
    ap.add_argument("--horizon", type=int, default=0, help="steps per episode (0: the scenario's)")
    ap.add_argument("--runs", default="runs/taxi_fleet", help="folder of the training runs (reused when finished)")
    ap.add_argument("--quick", action="store_true", help="tiny fleets, 2 updates, 1 seed: checks the pipeline only")
    ap.add_argument("--out", default="results/taxi_fleet")
    args = ap.parse_args(argv)
    if args.quick:
        args.fleets, args.seeds, args.updates, args.updates_per_chunk, args.horizon = "300,400", 1, 2, 1, 36
        args.eval_episodes = 2
    fleets = [int(f) for f in args.fleets.split(",")]
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"scenario": args.scenario, "fleets": fleets, "seeds": args.seeds, "updates": args.updates,
               "num_envs": args.num_envs, "eval_episodes": args.eval_episodes,
               "machine": f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}",
               "runs": {}}
    t_all = time.perf_counter()
    for seed in range(args.seeds):  # seed-major: every finished seed fills every cell of the table
        for fleet in fleets:
            common = dict(env="taxi", scenario=args.scenario, num_taxis=fleet, seed=seed, progress=False)
            if args.horizon:
                common["horizon"] = args.horizon
            base = TrainConfig(**common, rollout_steps=36).validate()
            scenario = base.task.load(base.scenario)
            rows = baseline_rows(scenario, list(scenario.test_days), base, bound=False)
            results["validation_days"], results["test_days"] = list(scenario.validation_days), list(scenario.test_days)
            for i, first in enumerate(next(iter(rows.values()))):
                name = first["policy"].split(" (")[0]
                record(results, fleet, name, "argmax", seed, {m: _mean(rows, i, m) for m in METRICS})
            for name in variants:
                alg, attention = VARIANTS[name]
                extra = {"attention": attention} if attention else {}
                cfg = TrainConfig(**common, **extra, alg=alg, total_updates=args.updates,
                                  updates_per_chunk=args.updates_per_chunk, num_envs=args.num_envs,
                                  rollout_steps=36, minibatches=2 if args.num_envs == 1 else 4,
                                  eval_episodes=args.eval_episodes,
                                  out_dir=f"{args.runs}/{args.scenario}-{name}-{fleet}-s{seed}")
                summary = finished_run(cfg)
                if summary is None:
                    t0 = time.perf_counter()
                    summary = train(cfg, log=lambda *_: None)
                    summary = {k: v for k, v in summary.items() if k not in ("runner", "parts")}
                    print(f"{name} {fleet} taxis seed {seed}: {time.perf_counter() - t0:.0f} s, test ORR argmax "
                          f"{summary['test']['order_response_rate']:.4f}, sampled "
                          f"{summary['test']['sampled']['mean']['order_response_rate']['mean']:.4f}", flush=True)
                test = summary["test"]
                record(results, fleet, name, "argmax", seed, {m: test[m] for m in METRICS})
                record(results, fleet, name, "sampled", seed, {m: test["sampled"]["mean"][m]["mean"] for m in METRICS})
                record(results, fleet, name, "validation", seed, {"order_response_rate": summary["best_eval"]})
                results["runs"].setdefault(name, {})[f"{fleet}-s{seed}"] = {
                    "wall_s": summary["wall_s"], "checkpoint_update": summary["test_checkpoint_update"]}
                results["wall_s"] = time.perf_counter() - t_all
                out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    results["wall_s"] = time.perf_counter() - t_all
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    plot(results, out.with_suffix(".png"))
    print(table(results))


def _mean(rows_by_day: dict, i: int, metric: str) -> float:
    return float(np.mean([rows[i][metric] for rows in rows_by_day.values()]))


def record(results, fleet, name, kind, seed, values: dict) -> None:
    """results['table'][fleet][policy][kind][metric] = per-seed list (index = seed)."""
    cell = results.setdefault("table", {}).setdefault(str(fleet), {}).setdefault(name, {}).setdefault(kind, {})
    for m, v in values.items():
        per_seed = cell.setdefault(m, [])
        if seed < len(per_seed):
            per_seed[seed] = float(v)
        else:
            per_seed.append(float(v))


def paper_metrics(r: dict) -> dict:
    """Per seed PCR and the paper's CI, from ORR and revenue where a run predates them
    (results written before the env reported them: the same arithmetic as the env's)."""
    pcr = r.get("pcr") or [x / PCR_UNIT for x in r.get("revenue", [])]
    ci = r.get("ci") or [float(composite_index(o, p)) for o, p in zip(r.get("order_response_rate", []), pcr)]
    return {"pcr": pcr, "ci": ci}


def table(results) -> str:
    """Markdown: one row per policy (and kind), mean ± std over seeds of ORR, PCR ($10k), the
    paper's CI = 0.01 PCR / (1 - ORR) and empty km."""
    fleets = [str(f) for f in results["fleets"]]
    pm = lambda v, f="{:.4f}": f"{f.format(np.mean(v))} ± {f.format(np.std(v))}" if v else "-"
    head = "| policy | seeds |" + "".join(f" ORR {f} | PCR {f} | CI {f} | empty km {f} |" for f in fleets)
    lines = [head, "|---|---|" + "---|---|---|---|" * len(fleets)]
    names = list(results["table"][fleets[0]])
    for name in names:
        kinds = [k for k in ("argmax", "sampled") if k in results["table"][fleets[0]][name]]
        for kind in kinds:
            label = name if name in ("stay", "random", "greedy") else f"{name} ({kind})"
            cells, n = "", 0
            for f in fleets:
                r = results["table"][f].get(name, {}).get(kind, {})
                n = max(n, len(r.get("order_response_rate", [])))
                paper = paper_metrics(r)
                cells += (f" {pm(r.get('order_response_rate', []))} | {pm(paper['pcr'], '{:.1f}')} | "
                          f"{pm(paper['ci'], '{:.1f}')} | {pm(r.get('empty_km', []), '{:,.0f}')} |")
            lines.append(f"| {label} | {n} |{cells}")
    return "\n".join(lines)


def plot(results, path):
    from jaxmob.plots import plt

    fleets = results["fleets"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    for i, (name, by_kind) in enumerate(results["table"][str(fleets[0])].items()):
        for kind, style in (("argmax", "--"), ("sampled", "-")):
            if kind not in by_kind or (kind == "argmax" and "sampled" in by_kind and name.startswith("madarl-")):
                continue
            for ax, metric in zip(axes, ("order_response_rate", "ci")):
                cells = [results["table"][str(f)][name][kind] for f in fleets]
                vals = [c[metric] if metric in c else paper_metrics(c)[metric] for c in cells]
                if any(not v for v in vals):
                    continue
                mu, sd = [np.mean(v) for v in vals], [np.std(v) for v in vals]
                label = name if "sampled" not in by_kind else f"{name} ({kind})"
                ax.errorbar(fleets, mu, yerr=sd, fmt="o" + style, color=f"C{i}", label=label, capsize=3)
    axes[0].set_ylabel("order response rate (test episodes)")
    axes[1].set_ylabel("paper's CI = 0.01 PCR / (1 - ORR)")
    for ax in axes:
        ax.set_xlabel("taxis")
        ax.set_xticks(fleets)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{results['scenario']}: {results['seeds']} seeds, {results['updates']} PPO updates per learned run")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
