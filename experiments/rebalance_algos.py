"""The algorithms table: Share-All, No-Share, HAG-PS (and optionally IPPO, MAPPO)
against no-op, greedy and the clairvoyant LP bound, on a scenario's test days.

Every algorithm trains with the same env-step budget (updates x envs x steps)
and the same training demand, its seeds vmapped into one program; its final
policy is reported on the test days (which choose nothing) by argmax and
sampled (mean over `eval_episodes` episodes per day), per day and averaged,
beside its validation score. Writes results/rebalance_algos-<scenario>.json and .png.

    python experiments/rebalance_algos.py --scenario manhattan-106
    python experiments/rebalance_algos.py --quick     # a smoke run (minutes)
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import jax
import numpy as np

from jaxmob.envs.rebalance.city import load
from jaxmob.config import TrainConfig
from jaxmob.nets.mlp import count_params
from jaxmob.report import baseline_rows, mean_rows
from jaxmob.sweep import run_sweep

ALGS = ("share_all", "no_share", "hagps", "mappo")
KEYS = ("service_ratio", "rebalanced", "relocation_cost", "overflow")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="manhattan-106")
    ap.add_argument("--algs", default=",".join(ALGS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--train-mode", default="levels")
    ap.add_argument("--quick", action="store_true", help="2 small updates, 2 seeds, no bound: checks the pipeline only")
    ap.add_argument("--out", default=None, help="default results/rebalance_algos-<scenario>")
    args = ap.parse_args(argv)
    if args.quick:
        args.updates, args.seeds = 2, 2
    small = dict(num_envs=2, rollout_steps=48, epochs=1, minibatches=2, hidden=(16,), eval_episodes=2) if args.quick else {}
    base = TrainConfig(scenario=args.scenario, total_updates=args.updates, train_mode=args.train_mode,
                       updates_per_chunk=min(10, args.updates), progress=not args.quick, **small).validate()
    scenario = load(args.scenario)
    days = list(scenario.test_days)
    out = Path(args.out or f"results/rebalance_algos-{args.scenario}")
    results = {"scenario": args.scenario, "test_days": days, "validation_days": list(scenario.validation_days),
               "seeds": args.seeds, "updates": args.updates, "train_mode": args.train_mode,
               "env_steps_per_run": args.updates * base.num_envs * base.rollout_steps,
               "machine": f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}",
               "config": json.loads(json.dumps(asdict(base))), "algorithms": {}}
    by_day = baseline_rows(scenario, days, base, bound=not args.quick)
    results["baselines"] = mean_rows(by_day)
    results["baselines_per_day"] = by_day
    curves = {}
    for alg in args.algs.split(","):
        cfg = replace(base, alg=alg)
        t0 = time.perf_counter()
        run = run_sweep(cfg, args.seeds, {}, out_dir=f"runs/experiment-{args.scenario}-{alg}", progress=not args.quick)
        n_params, peak = _size(cfg)
        results["algorithms"][alg] = {**algorithm_summary(run), "parameters": n_params, "update_program_bytes": peak,
                                      "wall_s": time.perf_counter() - t0}
        curves[alg] = run["curves"]["service_ratio"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
    plot(results, curves, out.with_suffix(".png"))
    print(table(results))


def algorithm_summary(run) -> dict:
    """Mean ± std over seeds of the test metrics (argmax, and sampled: each seed's mean over
    its episodes), the validation score, and argmax service per test day."""
    tests, evals = run["tests"], run["evals"]
    stats = lambda x: {"mean": float(np.mean(x)), "std": float(np.std(x)), "per_seed": [float(v) for v in x]}
    argmax = {k: stats([t[k] for t in tests]) for k in KEYS}
    sampled = {k: stats([t["sampled"]["mean"][k]["mean"] for t in tests]) for k in KEYS}
    days = list(tests[0]["per_day"])
    per_day = {d: {"argmax": stats([t["per_day"][d]["service_ratio"] for t in tests]),
                   "sampled": stats([t["sampled"]["per_day"][d]["service_ratio"]["mean"] for t in tests])} for d in days}
    return {"argmax": argmax, "sampled": sampled, "per_day": per_day,
            "validation": stats([e["service_ratio"] for e in evals]),
            "train_final": stats(run["curves"]["service_ratio"][:, -1]),
            "episodes_per_day": tests[0]["sampled"]["episodes_per_day"], "per_seed": tests}


def _size(cfg):
    """Parameter count, and the peak memory XLA plans for one compiled update of one run
    (arguments + outputs + temporaries, from the compiled program's memory analysis)."""
    from jaxmob.train import build, hyper_of

    parts = build(cfg)
    runner = jax.jit(parts["init"])(jax.random.PRNGKey(0), hyper_of(cfg))
    stats = jax.jit(parts["update_chunk"], static_argnums=1).lower(runner, 1).compile().memory_analysis()
    peak = None
    if stats is not None:
        peak = int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
                   - stats.alias_size_in_bytes)
    return count_params(runner.params), peak


def table(results, per_day: bool = True) -> str:
    """Markdown: learned rows (argmax and sampled, mean ± std over seeds) and baselines, with
    each row's gap to greedy and to the bound, and (per_day) service on each test day."""
    base = {b["policy"].split(" (")[0]: b for b in results["baselines"]}
    greedy = base["greedy"]["service_ratio"]
    bound = base.get("bound", {}).get("service_ratio")
    days = results["test_days"] if per_day else []
    head = ("| policy | validation | test service | vs greedy | gap to bound |" + "".join(f" {d} |" for d in days)
            + " bikes moved/day | relocation cost | overflow |")
    lines = [head, "|" + "---|" * (8 + len(days))]
    gap = lambda v: f"{bound - v:+.4f}" if bound is not None else "-"
    pm = lambda s: f"{s['mean']:.4f} ± {s['std']:.4f}"
    for alg, r in results["algorithms"].items():
        for kind in ("argmax", "sampled"):
            m = r[kind]
            label = f"{alg} ({kind}" + (f", {r['episodes_per_day']} ep/day)" if kind == "sampled" else ")")
            days_cells = "".join(f" {pm(r['per_day'][d][kind])} |" for d in days)
            val = pm(r["validation"]) if kind == "argmax" else ""
            lines.append(f"| {label} | {val} | {pm(m['service_ratio'])} | {m['service_ratio']['mean'] - greedy:+.4f} | "
                         f"{gap(m['service_ratio']['mean'])} |{days_cells} {m['rebalanced']['mean']:,.0f} | "
                         f"{m['relocation_cost']['mean']:,.1f} | {m['overflow']['mean']:,.1f} |")
    for name, b in base.items():
        days_cells = "".join(f" {next(x for x in results['baselines_per_day'][d] if x['policy'] == b['policy'])['service_ratio']:.4f} |"
                             for d in days)
        lines.append(f"| {b['policy']} | | {b['service_ratio']:.4f} | {b['service_ratio'] - greedy:+.4f} | "
                     f"{gap(b['service_ratio'])} |{days_cells} {b['rebalanced']:,.0f} | {b['relocation_cost']:,.1f} | "
                     f"{b['overflow']:,.1f} |")
    return "\n".join(lines)


def plot(results, curves, path):
    from jaxmob.plots import plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    algs = list(results["algorithms"])
    mu = [results["algorithms"][a]["argmax"]["service_ratio"]["mean"] for a in algs]
    sd = [results["algorithms"][a]["argmax"]["service_ratio"]["std"] for a in algs]
    names = algs + [b["policy"].split(" (")[0] for b in results["baselines"]]
    vals = mu + [b["service_ratio"] for b in results["baselines"]]
    errs = sd + [0.0] * len(results["baselines"])
    axes[0].bar(names, vals, yerr=errs, color=[f"C{i}" for i in range(len(names))], capsize=4)
    lo = min(vals) - 0.03
    axes[0].set_ylim(max(0.0, lo), 1.0)
    axes[0].set_ylabel("fulfilled service ratio (test days, argmax)")
    axes[0].tick_params(axis="x", rotation=30)
    for i, a in enumerate(algs):
        y = curves[a]
        x = np.arange(1, y.shape[1] + 1)
        axes[1].plot(x, y.mean(0), color=f"C{i}", label=a)
        axes[1].fill_between(x, y.mean(0) - y.std(0), y.mean(0) + y.std(0), color=f"C{i}", alpha=0.2)
    axes[1].set_xlabel("update")
    axes[1].set_ylabel(f"training service ratio ({results['train_mode']} demand)")
    axes[1].legend()
    fig.suptitle(f"{results['scenario']}: {results['seeds']} seeds, {results['env_steps_per_run']:,} env steps per run")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
