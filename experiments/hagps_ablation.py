"""Why HAG-PS does (or does not) learn: one measured row per design lead.

Each row is HAG-PS (or a reference algorithm) with one change, trained with
the same env-step budget, its seeds vmapped into one program, the final policy
evaluated on the scenario's validation days (the only days that may choose a
design) and reported on its test days (argmax and sampled). Writes
results/hagps_ablation-<scenario>.json and .png.

    python experiments/hagps_ablation.py --scenario manhattan-106
    python experiments/hagps_ablation.py --rows paper,central --updates 100
    python experiments/hagps_ablation.py --quick     # a smoke run (minutes)
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

from jaxmob.config import TrainConfig
from jaxmob.sweep import run_sweep

FROZEN = dict(d_split=1e9, tau_merge=0.0, d_split_global=1e9, tau_merge_global=0.0)

# name -> (what it tests, TrainConfig overrides)
ROWS = {
    "paper": ("the paper's design: shared-torso local heads, local critic", dict(alg="hagps", critic="local")),
    "separate": ("local critic, actor and critic layers of their own in each local head",
                 dict(alg="hagps", critic="local", head="separate")),
    "central": ("a centralised critic on the global state (MAPPO's; the default)", dict(alg="hagps", critic="central")),
    "central_no_credit": ("central critic, team reward alone (move credit 0)", dict(alg="hagps", critic="central", move_credit=0.0)),
    "paper_no_credit": ("paper design, team reward alone (move credit 0)", dict(alg="hagps", critic="local", move_credit=0.0)),
    "central_frozen": ("central critic, grouping frozen at one group", dict(alg="hagps", critic="central", **FROZEN)),
    "central_id0": ("central critic, no identity embedding", dict(alg="hagps", critic="central", id_dim=0)),
    "central_id32": ("central critic, 32-wide identity embedding", dict(alg="hagps", critic="central", id_dim=32)),
    "train_poisson": ("training demand: the estimated Poisson rates (the rest: levels)", dict(alg="hagps", train_mode="poisson")),
    "train_replay": ("training demand: replay of the real training days", dict(alg="hagps", train_mode="replay")),
    "share_all": ("reference: Share-All", dict(alg="share_all")),
    "no_share": ("reference: No-Share", dict(alg="no_share")),
    "mappo": ("reference: MAPPO", dict(alg="mappo")),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="manhattan-106")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma separated, from: {', '.join(ROWS)}")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=150)
    ap.add_argument("--train-mode", default="levels")
    ap.add_argument("--quick", action="store_true", help="2 small updates, 2 seeds: checks the pipeline only")
    ap.add_argument("--out", default=None, help="default results/hagps_ablation-<scenario>")
    ap.add_argument("--plot-only", action="store_true", help="redraw the table and PNG from the JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.updates, args.seeds = 2, 2
    if args.plot_only:
        out = Path(args.out or f"results/hagps_ablation-{args.scenario}")
        results = json.loads(out.with_suffix(".json").read_text())
        plot(results, out.with_suffix(".png"))
        print(table(results))
        return
    names = args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    small = dict(num_envs=2, rollout_steps=48, epochs=1, minibatches=2, hidden=(16,), eval_episodes=2) if args.quick else {}
    base = TrainConfig(scenario=args.scenario, total_updates=args.updates, train_mode=args.train_mode,
                       updates_per_chunk=min(10, args.updates), progress=not args.quick, **small).validate()
    out = Path(args.out or f"results/hagps_ablation-{args.scenario}")
    results = {"scenario": args.scenario, "seeds": args.seeds, "updates": args.updates,
               "env_steps_per_run": args.updates * base.num_envs * base.rollout_steps,
               "machine": f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}",
               "config": json.loads(json.dumps(asdict(base))), "rows": {}}
    previous = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else None
    if previous and previous.get("updates") == args.updates and previous.get("seeds") == args.seeds \
            and previous.get("scenario") == args.scenario:
        results["rows"] = previous["rows"]  # rows measured earlier under the same budget stay
    for name in names:
        what, overrides = ROWS[name]
        cfg = replace(base, **overrides).validate()
        t0 = time.perf_counter()
        run = run_sweep(cfg, args.seeds, {}, out_dir=f"runs/ablation-{args.scenario}-{name}", progress=not args.quick)
        results["rows"][name] = {"what": what, "overrides": overrides, **summary(run), "wall_s": time.perf_counter() - t0}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
        print(table(results), flush=True)
    plot(results, out.with_suffix(".png"))


def summary(run) -> dict:
    """Mean ± std over seeds: validation, test (argmax), test (sampled), final training service, moves."""
    pick = lambda xs, f: np.array([f(x) for x in xs])
    val = pick(run["evals"], lambda e: e["service_ratio"])
    test = pick(run["tests"], lambda e: e["service_ratio"])
    sampled = pick(run["tests"], lambda e: e["sampled"]["mean"]["service_ratio"]["mean"])
    moved = pick(run["tests"], lambda e: e["rebalanced"])
    train = run["curves"]["service_ratio"][:, -1]
    stats = lambda x: {"mean": float(x.mean()), "std": float(x.std()), "per_seed": x.tolist()}
    out = {"validation": stats(val), "test": stats(test), "test_sampled": stats(sampled),
           "train": stats(train), "rebalanced": stats(moved)}
    if "local_groups" in run["curves"]:
        out["local_groups"] = stats(run["curves"]["local_groups"][:, -1])
    return out


def table(results) -> str:
    pm = lambda r: f"{r['mean']:.4f}" + (f" ± {r['std']:.4f}" if len(r["per_seed"]) > 1 else "")
    lines = ["| row | change | validation (argmax) | test (argmax) | test (sampled) | training service | bikes moved/day | local groups |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results["rows"].items():
        groups = f"{r['local_groups']['mean']:.1f}" if "local_groups" in r else "-"
        lines.append(f"| {name} | {r['what']} | {pm(r['validation'])} | {pm(r['test'])} | {pm(r['test_sampled'])} "
                     f"| {pm(r['train'])} | {r['rebalanced']['mean']:,.0f} | {groups} |")
    return "\n".join(lines)


def plot(results, path):
    from jaxmob.plots import plt

    names = list(results["rows"])
    fig, ax = plt.subplots(figsize=(max(7, 0.9 * len(names)), 4.2), constrained_layout=True)
    x = np.arange(len(names))
    for off, key, label in ((-0.2, "validation", "validation (argmax)"), (0.0, "test", "test (argmax)"),
                            (0.2, "test_sampled", "test (sampled)")):
        ax.bar(x + off, [results["rows"][n][key]["mean"] for n in names], 0.2,
               yerr=[results["rows"][n][key]["std"] for n in names], capsize=3, label=label)
    vals = [results["rows"][n][k]["mean"] for n in names for k in ("validation", "test")]
    ax.set_ylim(max(0.0, min(vals) - 0.03), min(1.0, max(vals) + 0.02))
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("fulfilled service ratio")
    ax.legend()
    ax.set_title(f"HAG-PS ablation on {results['scenario']}\n{results['seeds']} seed(s), "
                 f"{results['env_steps_per_run']:,} env steps per run", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
