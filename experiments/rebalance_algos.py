"""The algorithms table: Share-All, IPPO, MAPPO, No-Share and HAG-PS vs no-op,
greedy and the clairvoyant bound.

Every algorithm trains with the same env-step budget (updates x envs x steps),
its seeds vmapped into one program, then acts by argmax on the held-out replay
days of the scenario. Writes results/rebalance_algos.json and .png.

    python experiments/rebalance_algos.py            # the committed run
    python experiments/rebalance_algos.py --quick    # a smoke run (minutes)
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

from jaxmob.city import load
from jaxmob.config import TrainConfig
from jaxmob.nets.mlp import count_params
from jaxmob.report import baseline_rows, mean_rows
from jaxmob.sweep import run_sweep

ALGS = ("share_all", "ippo", "mappo", "no_share", "hagps")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="manhattan-citibike")
    ap.add_argument("--algs", default=",".join(ALGS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="4 updates, 2 seeds: checks the pipeline only")
    ap.add_argument("--out", default="results/rebalance_algos")
    args = ap.parse_args(argv)
    if args.quick:
        args.updates, args.seeds = 4, 2
    base = TrainConfig(scenario=args.scenario, total_updates=args.updates,
                       updates_per_chunk=min(10, args.updates), progress=True).validate()
    scenario = load(args.scenario)
    days = list(scenario.test_days)
    results = {"scenario": args.scenario, "eval_days": days, "seeds": args.seeds, "updates": args.updates,
               "env_steps_per_run": args.updates * base.num_envs * base.rollout_steps,
               "machine": f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}",
               "config": json.loads(json.dumps(asdict(base))),
               "algorithms": {}}
    curves = {}
    for alg in args.algs.split(","):
        cfg = replace(base, alg=alg)
        t0 = time.perf_counter()
        out = run_sweep(cfg, args.seeds, {}, out_dir=f"runs/experiment-{alg}", progress=True)
        svc = np.array([e["service_ratio"] for e in out["tests"]])
        moved = np.array([e["rebalanced"] for e in out["tests"]])
        n_params, peak = _size(cfg)
        results["algorithms"][alg] = {
            "service_ratio_mean": float(svc.mean()), "service_ratio_std": float(svc.std()),
            "rebalanced_mean": float(moved.mean()),
            "relocation_cost_mean": float(np.mean([e["relocation_cost"] for e in out["tests"]])),
            "sampled_service_ratio_mean": float(np.mean([e["sampled"]["mean"]["service_ratio"]["mean"]
                                                         for e in out["tests"]])),
            "per_seed": out["tests"], "validation_per_seed": out["evals"], "parameters": n_params, "update_program_bytes": peak,
            "wall_s": time.perf_counter() - t0}
        curves[alg] = out["curves"]["service_ratio"]
    base_rows = mean_rows(baseline_rows(scenario, days, base))
    results["baselines"] = base_rows
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
    plot(results, curves, out.with_suffix(".png"))
    print(table(results))


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


def table(results) -> str:
    lines = ["| policy | fulfilled service ratio | bikes rebalanced | relocation cost | parameters | update memory (MB) |",
             "|---|---|---|---|---|---|"]
    for alg, r in results["algorithms"].items():
        mem = f"{r['update_program_bytes'] / 2**20:,.0f}" if r.get("update_program_bytes") else "-"
        lines.append(f"| {alg} | {r['service_ratio_mean']:.4f} ± {r['service_ratio_std']:.4f} | "
                     f"{r['rebalanced_mean']:,.0f} | {r['relocation_cost_mean']:,.1f} | {r['parameters']:,} | {mem} |")
    for b in results["baselines"]:
        lines.append(f"| {b['policy']} | {b['service_ratio']:.4f} | {b['rebalanced']:,.0f} | {b['relocation_cost']:,.1f} | - | - |")
    return "\n".join(lines)


def plot(results, curves, path):
    from jaxmob.plots import plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    algs = list(results["algorithms"])
    mu = [results["algorithms"][a]["service_ratio_mean"] for a in algs]
    sd = [results["algorithms"][a]["service_ratio_std"] for a in algs]
    names = algs + [b["policy"].split(" (")[0] for b in results["baselines"]]
    vals = mu + [b["service_ratio"] for b in results["baselines"]]
    errs = sd + [0.0] * len(results["baselines"])
    axes[0].bar(names, vals, yerr=errs, color=[f"C{i}" for i in range(len(names))], capsize=4)
    lo = min(vals) - 0.03
    axes[0].set_ylim(max(0.0, lo), 1.0)
    axes[0].set_ylabel("fulfilled service ratio (held-out days)")
    axes[0].tick_params(axis="x", rotation=30)
    for i, a in enumerate(algs):
        y = curves[a]
        x = np.arange(1, y.shape[1] + 1)
        axes[1].plot(x, y.mean(0), color=f"C{i}", label=a)
        axes[1].fill_between(x, y.mean(0) - y.std(0), y.mean(0) + y.std(0), color=f"C{i}", alpha=0.2)
    axes[1].set_xlabel("update")
    axes[1].set_ylabel("training service ratio (Poisson demand)")
    axes[1].legend()
    fig.suptitle(f"{results['scenario']}: {results['seeds']} seeds, {results['env_steps_per_run']:,} env steps per run")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
