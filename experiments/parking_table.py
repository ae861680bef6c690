"""The Melbourne parking table: hand rules, MADDPG and MARL-GCN with its ablations.

On the 5 test days of the bundled Melbourne scenario (whole 07:00-21:00 days
of the calibrated request model, seeded, never used to choose anything), the
optimised core (CBD and Southbank) is allocated by

* FIFO, SIRO, the nearest free bay (hand rules; mean ± std over test days);
* MADDPG without the graph parts (MLP actor, centralised MLP critic);
* MARL-GCN, and MARL-GCN without GAT, without the hypernetwork, without the
  contrastive loss (learned: the checkpoint chosen on the 3 validation days,
  deployed deterministically, mean ± std over seeds of the test-day mean;
  the sampled policy, mu + exploration noise, beside it),

while the periphery keeps its static rule (FIFO). Every row reports the team
reward, success rate, cruising and walking minutes and the occupancy spread,
overall and per area (core, periphery) x period (peak, off-peak). Finished
runs in `runs/parking_table/` are reused, so an interrupted table resumes.
Writes results/parking_table.json and .png.

    python experiments/parking_table.py            # the table (about 30 minutes on 2 CPU cores)
    python experiments/parking_table.py --quick    # a smoke run (one seed, 2 updates, two algorithms)
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
from jaxmob.report import baseline_rows
from jaxmob.train import finished_run, train

LEARNED = {"MADDPG (no graph)": "maddpg", "MARL-GCN": "marl_gcn", "MARL-GCN w/o GAT": "marl_gcn_no_gat",
           "MARL-GCN w/o hypernet": "marl_gcn_no_hyper", "MARL-GCN w/o contrastive": "marl_gcn_no_cl"}
MAIN = ("reward", "success_rate", "cruise_min", "walk_min", "occupancy_spread")
CELLS = tuple(f"{m}_{a}_{p}" for a in ("core", "periphery") for p in ("peak", "offpeak")
              for m in ("success_rate", "cruise_min", "walk_min")) + tuple(
    f"spread_{a}_{p}" for a in ("core", "periphery") for p in ("peak", "offpeak"))
METRICS = MAIN + CELLS
PER_DAY = ("reward", "success_rate", "cruise_min", "walk_min")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algs", default=",".join(LEARNED.values()), help="learned rows (comma-separated) or none")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--demand-scale", type=float, default=1.0, help="x the calibrated request rates")
    ap.add_argument("--runs", default="runs/parking_table")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/parking_table")
    ap.add_argument("--train-args", default="", help="extra trainer fields as k=v,k=v (e.g. lr=1e-3)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.updates, args.algs = 1, 2, "maddpg,marl_gcn"
    extra = dict(kv.split("=", 1) for kv in args.train_args.split(",") if kv)
    extra = {k: float(v) if any(c in v for c in ".e") else int(v) for k, v in extra.items()}
    algs = [] if args.algs == "none" else args.algs.split(",")
    learned = {label: alg for label, alg in LEARNED.items() if alg in algs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = TrainConfig(env="parking", demand_scale=args.demand_scale, progress=False).validate()
    task = base.task
    model = task.model(base.options, task.load(base.scenario))
    test_days = list(task.days(model)[2])
    results = {"scenario": base.scenario, "demand_scale": args.demand_scale, "test_days": test_days,
               "validation_days": list(task.days(model)[1]), "seeds": args.seeds if learned else 0,
               "updates": args.updates, "train_args": extra, "static_rule": base.options.static_rule,
               "machine": f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}", "table": {}}
    rows = baseline_rows(model, test_days, base)
    for i, first in enumerate(next(iter(rows.values()))):
        results["table"][first["policy"]] = {"kind": "per test day", **{m: [r[i][m] for r in rows.values()] for m in METRICS},
                                             "per_day": {d: {m: r[i][m] for m in PER_DAY} for d, r in rows.items()}}
    t_all = time.perf_counter()
    for label, alg in learned.items():
        cell = results["table"][label] = {"kind": "per seed", **{m: [] for m in METRICS}, "wall_s": [],
                                          "checkpoint_update": []}
        sampled = results["table"][f"{label} (sampled)"] = {"kind": "per seed, sampled policy", **{m: [] for m in METRICS}}
        for seed in range(args.seeds):
            cfg = TrainConfig(env="parking", alg=alg, seed=seed, total_updates=args.updates, progress=False,
                              demand_scale=args.demand_scale, out_dir=f"{args.runs}/{alg}-x{args.demand_scale:g}-s{seed}",
                              **({"updates_per_chunk": 1} if args.quick else {}), **extra)
            summary = finished_run(cfg)
            if summary is None:
                summary = train(cfg, log=lambda *_: None)
                print(f"{label} seed {seed}: {summary['wall_s']:.0f} s, test reward {summary['test']['reward']:.0f}",
                      flush=True)
            for m in METRICS:
                cell[m].append(float(summary["test"][m]))
                sampled[m].append(float(summary["test"]["sampled"]["mean"][m]["mean"]))
            for day in test_days:  # per test day: the argmax value, and the sampled mean and std over episodes
                for m in PER_DAY:
                    cell.setdefault("per_day", {}).setdefault(day, {}).setdefault(m, []).append(
                        float(summary["test"]["per_day"][day][m]))
                    s = summary["test"]["sampled"]["per_day"][day][m]
                    sampled.setdefault("per_day", {}).setdefault(day, {}).setdefault(m, []).append([s["mean"], s["std"]])
            cell["wall_s"].append(float(summary["wall_s"]))
            cell["checkpoint_update"].append(int(summary["test_checkpoint_update"]))
        results["wall_s"] = time.perf_counter() - t_all
        out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    results["wall_s"] = time.perf_counter() - t_all
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    plot(results, out.with_suffix(".png"))
    print(table(results))


def pm(v, f="{:.3f}", scale=1.0) -> str:
    return f"{f.format(np.mean(v) / scale)} ± {f.format(np.std(v) / scale)}"


def table(results) -> str:
    """Markdown: the overall table, then success / cruise / walk per area x period."""
    lines = ["| policy | reward (k) | success | cruise min | walk min | occupancy spread |", "|---|---|---|---|---|---|"]
    for name, r in results["table"].items():
        lines.append(f"| {name} | {pm(r['reward'], '{:.2f}', 1e3)} | {pm(r['success_rate'], '{:.4f}')} | "
                     f"{pm(r['cruise_min'], '{:.2f}')} | {pm(r['walk_min'], '{:.2f}')} | {pm(r['occupancy_spread'])} |")
    days = results["test_days"]
    lines += ["", "| policy (reward per test day, k) |" + "".join(f" {d} |" for d in days), "|---|" + "---|" * len(days)]
    for name, r in results["table"].items():
        if "(sampled)" in name:  # seed-mean of the sampled mean, and the mean over seeds of the std over episodes
            cells = "".join(f" {np.mean([v[0] for v in r['per_day'][d]['reward']]) / 1e3:.2f} ± "
                            f"{np.mean([v[1] for v in r['per_day'][d]['reward']]) / 1e3:.2f} |" for d in days)
        elif r["kind"] == "per seed":
            cells = "".join(f" {pm(r['per_day'][d]['reward'], '{:.2f}', 1e3)} |" for d in days)
        else:
            cells = "".join(f" {r['per_day'][d]['reward'] / 1e3:.2f} |" for d in days)
        lines.append(f"| {name} |{cells}")
    groups = [(a, p) for a in ("core", "periphery") for p in ("peak", "offpeak")]
    lines += ["", "| policy |" + "".join(f" {a} {p}: success / cruise / walk / spread |" for a, p in groups),
              "|---|" + "---|" * len(groups)]
    for name, r in results["table"].items():
        cells = "".join(f" {np.mean(r[f'success_rate_{a}_{p}']):.4f} / {np.mean(r[f'cruise_min_{a}_{p}']):.2f} / "
                        f"{np.mean(r[f'walk_min_{a}_{p}']):.2f} / {np.mean(r[f'spread_{a}_{p}']):.3f} |" for a, p in groups)
        lines.append(f"| {name} |{cells}")
    return "\n".join(lines)


def plot(results, path):
    from jaxmob.plots import plt

    names = list(results["table"])
    panels = (("reward", "team reward of the core (per day)"), ("cruise_min", "cruise minutes"),
              ("walk_min", "walk minutes"), ("occupancy_spread", "occupancy spread"))
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.2), constrained_layout=True)
    for ax, (metric, title) in zip(axes, panels):
        for k, name in enumerate(names):
            v = np.asarray(results["table"][name][metric])
            ax.barh(k, v.mean(), xerr=v.std(), color=f"C{k}", capsize=2)
        ax.set_yticks(range(len(names)), names if ax is axes[0] else [""] * len(names), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"Melbourne parking, {len(results['test_days'])} test days (demand x{results['demand_scale']:g}); "
                 f"learned: {results['seeds']} seeds x {results['updates']} updates", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
