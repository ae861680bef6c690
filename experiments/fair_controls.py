"""Fair controls for HAG-PS: every sharing scheme with the same critic, budget and seeds.

The HAG-PS paper claims (i) adaptive grouping beats a fixed grouping and (ii) HAG-PS beats
the other sharing schemes. Our earlier table gave HAG-PS a central critic that Share-All and
No-Share lacked. Here each scheme is trained with the local and the central critic, HAG-PS
adaptive and frozen at one group, and the main rows with the move-credit shaping on and off,
all at one env-step budget, >= 3 seeds vmapped into one program per row. Rows are chosen on
nothing (each run's final policy) and reported on the test days, per day and on the worst
day against greedy and MPC, beside no-op, greedy, the MPC controller and the clairvoyant bound.
Writes results/fair_controls-<scenario>.json and .png; rows measured earlier under the same
budget are kept, so the script can be rerun to add rows.

    python experiments/fair_controls.py                       # every row (hours on a 2-core CPU)
    python experiments/fair_controls.py --rows hagps,mappo    # some rows
    python experiments/fair_controls.py --table-only          # the table and PNG from the JSON
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
from jaxmob.report import baseline_rows
from jaxmob.sweep import run_sweep

FROZEN = dict(d_split=1e9, tau_merge=0.0, d_split_global=1e9, tau_merge_global=0.0)
NO_CREDIT = dict(move_credit=0.0)

# name -> (what it is, TrainConfig overrides); in the order they are run
ROWS = {
    "hagps": ("HAG-PS adaptive grouping, central critic", dict(alg="hagps", critic="central")),
    "hagps_frozen": ("HAG-PS grouping frozen at one group, central critic", dict(alg="hagps", critic="central", **FROZEN)),
    "mappo": ("MAPPO: shared actor + agent id, central critic", dict(alg="mappo")),
    "ippo": ("IPPO: shared actor, local critic", dict(alg="ippo")),
    "share_all": ("Share-All: one network, local critic (shared torso)", dict(alg="share_all")),
    "no_share": ("No-Share: a network per agent, local critics", dict(alg="no_share")),
    "hagps_local": ("HAG-PS adaptive, local critic (the paper's network)", dict(alg="hagps", critic="local")),
    "hagps_local_frozen": ("HAG-PS frozen at one group, local critic", dict(alg="hagps", critic="local", **FROZEN)),
    "share_all_central": ("Share-All actor, central critic", dict(alg="share_all", critic="central")),
    "no_share_central": ("No-Share actors, central critic", dict(alg="no_share", critic="central")),
    "mappo_local": ("MAPPO actor (with agent id), local critic", dict(alg="mappo", critic="local")),
    "hagps_no_credit": ("HAG-PS adaptive, central critic, team reward alone", dict(alg="hagps", critic="central", **NO_CREDIT)),
    "mappo_no_credit": ("MAPPO, team reward alone", dict(alg="mappo", **NO_CREDIT)),
    "hagps_frozen_no_credit": ("HAG-PS frozen, central critic, team reward alone",
                               dict(alg="hagps", critic="central", **FROZEN, **NO_CREDIT)),
    # leads: what the learner sees and may do, and how it estimates advantages
    "hagps_level": ("HAG-PS + today's demand level observed (what MPC plans with)", dict(alg="hagps", obs_level=True)),
    "hagps_level_credit": ("HAG-PS + the level observed and in the move credit's forecast",
                           dict(alg="hagps", obs_level=True, credit_level=True)),
    "hagps_credit3h": ("HAG-PS, move credit over 3 h (not 1 h)", dict(alg="hagps", credit_window=18)),
    "hagps_lookahead3h": ("HAG-PS + expected demand over 3 h observed (not 1 h)",
                          dict(alg="hagps", obs_lookahead_minutes=180)),
    "hagps_moves20": ("HAG-PS + a 20-bike move", dict(alg="hagps", move_amounts=(5, 10, 20))),
    "hagps_lambda99": ("HAG-PS, GAE lambda 0.99 (longer advantage horizon)", dict(alg="hagps", gae_lambda=0.99)),
    "hagps_envs16": ("HAG-PS, 16 city-days per update (twice the experience per update)", dict(alg="hagps", num_envs=16)),
    "hagps_forecast": ("HAG-PS + what MPC plans with: the level observed and in a 3-h move credit, 3-h demand ahead observed",
                       dict(alg="hagps", obs_level=True, credit_level=True, credit_window=18, obs_lookahead_minutes=180)),
}
LEADS = ("hagps_level", "hagps_level_credit", "hagps_credit3h", "hagps_lookahead3h", "hagps_moves20",
         "hagps_lambda99", "hagps_envs16", "hagps_forecast")
BARS = ("greedy", "MPC")  # the rules a learned row must beat on every test day


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="manhattan-106")
    ap.add_argument("--rows", default=",".join(n for n in ROWS if n not in LEADS),
                    help=f"comma separated, from: {', '.join(ROWS)} (default: all but the leads {', '.join(LEADS)})")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="2 updates, 2 seeds, no LP rows: checks the pipeline only")
    ap.add_argument("--out", default=None, help="default results/fair_controls-<scenario>")
    ap.add_argument("--table-only", action="store_true", help="redraw the table and PNG from the JSON")
    ap.add_argument("--refresh-baselines", action="store_true", help="recompute the baseline rows (no-op ... bound)")
    ap.add_argument("--baselines-from", metavar="JSON", help="take the baseline rows of the scenario's test days from "
                    "experiments/bike_baselines.py's results (the same rows, computed once) instead of computing them")
    args = ap.parse_args(argv)
    out = Path(args.out or f"results/fair_controls-{args.scenario}")
    if args.baselines_from:
        results = json.loads(out.with_suffix(".json").read_text())
        bike = json.loads(Path(args.baselines_from).read_text())["scenarios"][results["scenario"]]
        if bike["days"] != results["test_days"]:
            ap.error(f"{args.baselines_from} holds days {bike['days']}, not the test days {results['test_days']}")
        results.update(baselines=bike["per_day"], baselines_from=args.baselines_from)
        out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
        args.table_only = True
    if args.table_only:
        results = json.loads(out.with_suffix(".json").read_text())
        plot(results, out.with_suffix(".png"))
        print(table(results))
        return
    if args.quick:
        args.updates, args.seeds = 2, 2
    names = args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    base = TrainConfig(scenario=args.scenario, total_updates=args.updates, obs_level=False,  # the rows' common base
                       updates_per_chunk=min(10, args.updates), progress=not args.quick).validate()
    results = {"scenario": args.scenario, "seeds": args.seeds, "updates": args.updates,
               "env_steps_per_run": args.updates * base.num_envs * base.rollout_steps,
               "machine": f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}",
               "config": json.loads(json.dumps(asdict(base))), "rows": {}}
    previous = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else None
    same = previous and all(previous.get(k) == results[k] for k in ("scenario", "seeds", "updates"))
    if same:  # rows and baselines measured earlier under the same budget stay
        results["rows"] = previous["rows"]
        results.update({k: previous[k] for k in ("baselines", "test_days", "baselines_from") if k in previous})
    if "baselines" not in results or args.refresh_baselines:
        results.pop("baselines_from", None)
        scenario = base.task.load(args.scenario)
        results["test_days"] = list(scenario.test_days)
        t0 = time.perf_counter()
        results["baselines"] = baseline_rows(scenario, results["test_days"], base, bound=not args.quick)
        results["baselines_wall_s"] = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        what, overrides = ROWS[name]
        cfg = replace(base, **overrides).validate()
        t0 = time.perf_counter()
        run = run_sweep(cfg, args.seeds, {}, out_dir=f"runs/fair-{args.scenario}-{name}", progress=not args.quick)
        results["rows"][name] = {"what": what, "overrides": overrides, **summary(run), "wall_s": time.perf_counter() - t0}
        out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
        print(table(results), flush=True)
    plot(results, out.with_suffix(".png"))


def summary(run) -> dict:
    """Per seed: validation, test argmax and sampled (mean over its episodes), each test day's
    argmax and sampled service, final training service and bikes moved."""
    seeds = lambda f: [float(f(i)) for i in range(len(run["tests"]))]
    tests = run["tests"]
    days = list(tests[0]["per_day"])
    return {
        "validation": seeds(lambda i: run["evals"][i]["service_ratio"]),
        "argmax": seeds(lambda i: tests[i]["service_ratio"]),
        "sampled": seeds(lambda i: tests[i]["sampled"]["mean"]["service_ratio"]["mean"]),
        "per_day": {d: {"argmax": seeds(lambda i: tests[i]["per_day"][d]["service_ratio"]),
                        "sampled": seeds(lambda i: tests[i]["sampled"]["per_day"][d]["service_ratio"]["mean"])}
                    for d in days},
        "train": seeds(lambda i: run["curves"]["service_ratio"][i, -1]),
        "rebalanced": seeds(lambda i: tests[i]["rebalanced"]),
        "episodes_per_day": tests[0]["sampled"]["episodes_per_day"],
    }


def baseline(results, prefix: str) -> dict:
    """{day: service} of the baseline row named `prefix` ...; None where it is absent."""
    rows = {d: next((r for r in rs if r["policy"].startswith(prefix)), None) for d, rs in results["baselines"].items()}
    return None if any(r is None for r in rows.values()) else {d: r["service_ratio"] for d, r in rows.items()}


def worst_day(per_day: dict, kind: str, bar: dict) -> float:
    """min over days of (mean over seeds of the row's service - the bar's): > 0 wins every day."""
    return min(float(np.mean(per_day[d][kind])) - bar[d] for d in bar)


def table(results, compact: bool = False) -> str:
    """Markdown: each learned row (argmax, sampled) with mean ± std over seeds, each test day,
    and its gap to greedy and MPC on average and on its worst day; then the baselines.
    `compact`: one line per row (argmax and sampled side by side, no days), for the README."""
    if compact:
        return _compact(results)
    days = results["test_days"]
    bars = {b: baseline(results, b) for b in BARS}
    bars = {b: v for b, v in bars.items() if v is not None}
    mean_of = lambda d: float(np.mean(list(d.values())))
    pm = lambda xs: f"{np.mean(xs):.4f} ± {np.std(xs):.4f}"
    head = ("| row | policy | validation | test service |" + "".join(f" {d} |" for d in days)
            + "".join(f" vs {b} (mean / worst day) |" for b in bars) + " bikes moved/day |")
    lines = [head, "|" + "---|" * (5 + len(days) + len(bars))]
    for name, r in results["rows"].items():
        for kind in ("argmax", "sampled"):
            label = kind if kind == "argmax" else f"sampled ({r['episodes_per_day']} ep/day)"
            per_day = "".join(f" {pm(r['per_day'][d][kind])} |" for d in days)
            gaps = "".join(f" {np.mean(r[kind]) - mean_of(v):+.4f} / {worst_day(r['per_day'], kind, v):+.4f} |"
                           for v in bars.values())
            val = pm(r["validation"]) if kind == "argmax" else ""
            moved = f"{np.mean(r['rebalanced']):,.0f}" if kind == "argmax" else ""
            lines.append(f"| {name if kind == 'argmax' else ''} | {label} | {val} | {pm(r[kind])} |{per_day}{gaps} {moved} |")
    for policy in [r["policy"] for r in results["baselines"][days[0]] if not r["policy"].startswith("random")]:
        rows = {d: next(r for r in results["baselines"][d] if r["policy"] == policy) for d in days}
        svc = {d: rows[d]["service_ratio"] for d in days}
        gaps = "".join(f" {mean_of(svc) - mean_of(v):+.4f} / {min(svc[d] - v[d] for d in days):+.4f} |"
                       for v in bars.values())
        lines.append(f"| | {policy} | | {mean_of(svc):.4f} |" + "".join(f" {svc[d]:.4f} |" for d in days)
                     + gaps + f" {np.mean([rows[d]['rebalanced'] for d in days]):,.0f} |")
    return "\n".join(lines)


def _compact(results) -> str:
    days = results["test_days"]
    bars = {b: v for b, v in ((b, baseline(results, b)) for b in BARS) if v is not None}
    gap = lambda r, kind, v: f"{np.mean(r[kind]) - np.mean(list(v.values())):+.4f} / {worst_day(r['per_day'], kind, v):+.4f}"
    lines = ["| row | what | test, argmax | test, sampled |" + "".join(f" argmax vs {b} (mean / worst day) |" for b in bars),
             "|" + "---|" * (4 + len(bars))]
    for name, r in results["rows"].items():
        lines.append(f"| {name} | {r['what']} | {np.mean(r['argmax']):.4f} ± {np.std(r['argmax']):.4f} | "
                     f"{np.mean(r['sampled']):.4f} ± {np.std(r['sampled']):.4f} |"
                     + "".join(f" {gap(r, 'argmax', v)} |" for v in bars.values()))
    for policy in [r["policy"] for r in results["baselines"][days[0]] if not r["policy"].startswith("random")]:
        svc = {d: next(r for r in results["baselines"][d] if r["policy"] == policy)["service_ratio"] for d in days}
        lines.append(f"| | {policy} | {np.mean(list(svc.values())):.4f} | |"
                     + "".join(f" {np.mean(list(svc.values())) - np.mean(list(v.values())):+.4f} / "
                               f"{min(svc[d] - v[d] for d in days):+.4f} |" for v in bars.values()))
    return "\n".join(lines)


def plot(results, path):
    from jaxmob.plots import plt

    names = list(results["rows"])
    days = results["test_days"]
    fig, ax = plt.subplots(figsize=(max(8, 0.75 * len(names) + 3), 4.6), constrained_layout=True)
    x = np.arange(len(names))
    for off, kind in ((-0.17, "argmax"), (0.17, "sampled")):
        ax.bar(x + off, [np.mean(results["rows"][n][kind]) for n in names], 0.34,
               yerr=[np.std(results["rows"][n][kind]) for n in names], capsize=3, label=f"{kind} (mean ± std over seeds)")
    for i, policy in enumerate(r["policy"] for r in results["baselines"][days[0]] if not r["policy"].startswith("random")):
        v = np.mean([next(r for r in results["baselines"][d] if r["policy"] == policy)["service_ratio"] for d in days])
        ax.axhline(v, color=f"C{i + 2}", ls="--", lw=1, label=f"{policy.split(' (')[0]} {v:.4f}")
    vals = [np.mean(results["rows"][n]["argmax"]) for n in names]
    ax.set_ylim(max(0.0, min(vals) - 0.03), 1.0)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("fulfilled service ratio, test days")
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    ax.set_title(f"Fair controls on {results['scenario']}: {results['seeds']} seeds, "
                 f"{results['env_steps_per_run']:,} env steps per run", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
