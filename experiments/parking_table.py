"""The Melbourne parking tables: the five hand rules, the clairvoyant bound, MADDPG and
MARL-GCN with its ablations, on the calibrated Saturday and the two stressed regimes.

On the 5 test days of each bundled scenario (whole 07:00-21:00 days of its request
model, seeded, never used to choose anything): `melbourne` (the calibrated
Saturday), `melbourne-weekday-peak` and `melbourne-southbank-event` (modelled
stresses on the real bays: scenario.py), the rows are

* FIFO (oldest first, nearest free bay), SIRO (random order, nearest free bay),
  longest-free facility first, random facility, SPT (shortest intended stay
  first, nearest free bay; each over the whole city), and periphery first
  (FIFO or SPT with every core bid at -1; baselines.py): mean ± std over test days;
* the clairvoyant bound (the day's requests assigned to bays as an LP: bound.py);
* MADDPG without the graph parts and MARL-GCN (every scenario), and on the
  weekday peak MARL-GCN without GAT, without the hypernetwork, without the
  contrastive loss, two leads on its reward (paid for the core's requests
  wherever they park; a walking term), one on exploration (the noise annealed
  from 0.2 to 0.02 over training) and one on the critic's pooling (every facility
  of a kind instead of the top 8), and one on the order of service (SPT instead
  of FIFO: the core bids on top of it; on the event day too): the checkpoint chosen on the 3 validation days by the core's
  success, deployed deterministically, mean ± std over seeds of the
  test-day mean; the sampled policy (mu + exploration noise, 3 episodes a day)
  beside it; the periphery and the order of service stay FIFO (but in the SPT row).

Headline: success and cruise minutes of the core's (CBD and Southbank) requests
at the peak (the event window on the event day), walking beside them, then per
area and period; the team reward (the training signal) is a column. Finished
runs in `runs/parking_table/` are reused, so an interrupted table resumes.
Writes results/parking_table.json and .png.

    python experiments/parking_table.py            # the tables (about 80 minutes on 2 CPU cores)
    python experiments/parking_table.py --quick    # a smoke run (the weekday peak, one seed, 2 updates, two algorithms)
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
from jaxmob.core.errors import BoundNotSolved
from jaxmob.envs.parking.bound import clairvoyant_bound
from jaxmob.envs.parking.env import AREAS
from jaxmob.report import baseline_rows
from jaxmob.train import finished_run, train

SCENARIOS = ("melbourne", "melbourne-weekday-peak", "melbourne-southbank-event")
# row id -> (label, algorithm, env options): the learners, MARL-GCN's ablations and the leads on its reward
LEARNED = {"maddpg": ("MADDPG (no graph)", "maddpg", {}), "marl_gcn": ("MARL-GCN", "marl_gcn", {}),
           "marl_gcn_no_gat": ("MARL-GCN w/o GAT", "marl_gcn_no_gat", {}),
           "marl_gcn_no_hyper": ("MARL-GCN w/o hypernet", "marl_gcn_no_hyper", {}),
           "marl_gcn_no_cl": ("MARL-GCN w/o contrastive", "marl_gcn_no_cl", {}),
           "marl_gcn_dest": ("MARL-GCN, reward for the core's requests", "marl_gcn", {"reward_scope": "destination"}),
           "marl_gcn_walk": ("MARL-GCN, walking in the reward", "marl_gcn", {"walk_penalty": 0.1}),
           "marl_gcn_annealed": ("MARL-GCN, exploration annealed to 1/10", "marl_gcn", {"exploration_final": 0.1}),
           "marl_gcn_pool_all": ("MARL-GCN, critic pools every facility", "marl_gcn", {"critic_top_k": 0}),
           "marl_gcn_spt": ("MARL-GCN, served shortest stay first", "marl_gcn", {"static_rule": "spt"})}
ABLATION_SCENARIOS = ("melbourne-weekday-peak",)  # the ablations run where the rule matters most
STRESSED_ROWS = {"marl_gcn_spt": ("melbourne-weekday-peak", "melbourne-southbank-event")}  # leads run on both stresses
MAIN = ("success_rate_core_peak", "cruise_min_core_peak", "walk_min_core_peak", "success_rate", "cruise_min",
        "walk_min", "reward", "bids_at_top", "bids_at_bottom")
GROUPS = tuple((a, p) for p in ("peak", "offpeak") for a in AREAS)
CELLS = tuple(f"{m}_{a}_{p}" for a, p in GROUPS for m in ("success_rate", "cruise_min", "walk_min"))
METRICS = MAIN + CELLS
PER_DAY = ("success_rate_core_peak", "cruise_min_core_peak", "reward")
BOUND = "bound (clairvoyant assignment LP)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--algs", default=",".join(LEARNED), help=f"learned rows (comma-separated: {', '.join(LEARNED)}) or none")
    ap.add_argument("--refresh-bound", action="store_true", help="recompute the bound (else each solved day is kept from the JSON)")
    ap.add_argument("--bound-time-limit", type=float, default=1800.0, help="seconds per day's bound LP (an unsolved "
                    "day is reported as such, and retried by a run with a longer limit)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--runs", default="runs/parking_table")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--table-only", action="store_true", help="print the table of the JSON")
    ap.add_argument("--out", default="results/parking_table")
    ap.add_argument("--train-args", default="", help="extra config fields as k=v,k=v (e.g. lr=1e-3, episode_minutes=30)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.table_only:
        print(table(json.loads(out.with_suffix(".json").read_text())))
        return
    scenarios = args.scenarios.split(",")
    if args.quick:
        args.seeds, args.updates, args.algs, scenarios = 1, 2, "maddpg,marl_gcn", ["melbourne-weekday-peak"]
    extra = dict(kv.split("=", 1) for kv in args.train_args.split(",") if kv)
    extra = {k: float(v) if any(c in v for c in ".e") else int(v) for k, v in extra.items()}
    algs = [] if args.algs == "none" else args.algs.split(",")
    unknown = [a for a in algs if a not in LEARNED]
    if unknown:
        ap.error(f"unknown learned rows {unknown}; choose from {', '.join(LEARNED)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_suffix(".json")
    results = json.loads(path.read_text()) if path.exists() else {}
    if algs:  # (a rules-only run keeps the learned rows' settings)
        results.update(seeds=args.seeds, updates=args.updates, train_args=extra)
    results.setdefault("seeds", 0)
    results["machine"] = f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}"
    results.setdefault("scenarios", {})
    t_all = time.perf_counter()
    for name in scenarios:
        learned = {row: LEARNED[row] for row in algs
                   if row in ("marl_gcn", "maddpg") or name in STRESSED_ROWS.get(row, ABLATION_SCENARIOS) or args.quick}
        before = results["scenarios"].get(name)
        def save(result, name=name):
            results["scenarios"][name] = result
            path.write_text(json.dumps(results, indent=1))

        results["scenarios"][name] = run_scenario(name, learned, args, extra, None if args.refresh_bound else before, save)
        results["wall_s"] = time.perf_counter() - t_all
        path.write_text(json.dumps(results, indent=1))
    plot(results, out.with_suffix(".png"))
    print(table(results))


def per_day_row(by_day: dict, test_days) -> dict:
    """A table row of a rule or the bound from its metrics per test day (NaN where missing)."""
    return {"kind": "per test day", **{m: [by_day[d].get(m, np.nan) for d in test_days] for m in METRICS},
            "per_day": {d: {m: by_day[d].get(m, np.nan) for m in PER_DAY} for d in test_days}}


def _bound_days_of(table_, test_days) -> dict:
    """The bound's metrics per day from a table written before `bound_days` was kept."""
    row = next((r for p, r in table_.items() if p == BOUND), None)
    return {} if row is None else {d: {m: row[m][i] for m in METRICS} for i, d in enumerate(test_days)}


def run_scenario(name, learned, args, extra, before=None, save=lambda result: None) -> dict:
    """The scenario's table: the hand rules, the bound per test day (kept from `before`, the JSON's,
    for the days it solved; `save(result)` after each day solved now), the learned rows of `before`
    and those of `learned` (run, or reread from finished runs)."""
    base = TrainConfig(env="parking", scenario=name, progress=False, **extra).validate()
    task = base.task
    model = task.model(base.options, task.load(name))
    test_days = list(task.days(model)[2])
    result = {"test_days": test_days, "validation_days": list(task.days(model)[1]), "source": model.source,
              "static_rule": base.options.static_rule, "table": {}}
    before = before if before is not None and before["test_days"] == test_days else {"table": {}}
    t0 = time.perf_counter()
    rows = baseline_rows(model, test_days, base, bound=False)  # the rules: seconds a day
    print(f"{name}: hand rules in {time.perf_counter() - t0:.0f} s", flush=True)
    for i, first in enumerate(next(iter(rows.values()))):
        result["table"][first["policy"]] = per_day_row({d: r[i] for d, r in rows.items()}, test_days)
    result["bound_days"] = bound_days = dict(before.get("bound_days") or _bound_days_of(before["table"], test_days))
    for day in test_days:  # the bound: minutes a day, so each solved day is saved at once
        if day in bound_days and (not bound_days[day].get("error") or args.bound_time_limit <= bound_days[day]["time_limit"]):
            continue
        t0 = time.perf_counter()
        params = task.params(base.options, model, task.episodes(model, [day])[day])
        try:
            bound_days[day] = clairvoyant_bound(params, max_wait=base.options.max_wait, time_limit=args.bound_time_limit)
        except BoundNotSolved as e:
            bound_days[day] = {"error": str(e), "time_limit": args.bound_time_limit}
        print(f"{name} {day}: bound {bound_days[day].get('error') or 'solved'} in {time.perf_counter() - t0:.0f} s", flush=True)
        save(result)
    solved = [d for d in test_days if not bound_days[d].get("error")]
    label = BOUND + ("" if len(solved) == len(test_days) else f", {len(solved)} of {len(test_days)} days solved")
    result["table"][label] = per_day_row({d: bound_days[d] for d in test_days}, test_days)
    result["table"].update({p: r for p, r in before["table"].items() if r["kind"] != "per test day"})  # learned
    for row_id, (label, alg, options) in learned.items():
        cell = result["table"][label] = {"kind": "per seed", **{m: [] for m in METRICS}, "wall_s": [], "checkpoint_update": []}
        sampled = result["table"][f"{label} (sampled)"] = {"kind": "per seed, sampled policy", **{m: [] for m in METRICS}}
        for seed in range(args.seeds):
            cfg = TrainConfig(env="parking", scenario=name, alg=alg, seed=seed, total_updates=args.updates, progress=False,
                              out_dir=f"{args.runs}/{name}/{row_id}-s{seed}",
                              **({"updates_per_chunk": 1} if args.quick else {}), **{**extra, **options})
            summary = finished_run(cfg)
            if summary is None:
                summary = train(cfg, log=lambda *_: None)
                print(f"{name} {label} seed {seed}: {summary['wall_s']:.0f} s, test core peak success "
                      f"{summary['test']['success_rate_core_peak']:.4f}", flush=True)
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
    return result


def pm(v, f="{:.3f}", scale=1.0) -> str:
    """mean ± std of the finite values (a bound's unsolved days are NaN, and its label says so)."""
    v = np.asarray(v, np.float64)
    if np.isnan(v).all():
        return ""
    return f"{f.format(np.nanmean(v) / scale)} ± {f.format(np.nanstd(v) / scale)}"


def bids(row) -> str:
    """The share of the core's bids at +1 and at -1 (a policy saturated there is a fixed rule); blank for the bound."""
    top, bottom = np.asarray(row["bids_at_top"], np.float64), np.asarray(row["bids_at_bottom"], np.float64)
    return "" if np.isnan(top).all() else f"{top.mean():.2f} / {bottom.mean():.2f}"


def table(results) -> str:
    """Markdown per scenario: the headline table, success / cruise / walk per area x period, and the
    core's peak success per test day."""
    lines = []
    for name, sc in results["scenarios"].items():
        rows = sc["table"]
        lines += [f"**{name}**", "", "| policy | success, core peak | cruise min, core peak | walk min, core peak | "
                  "success, all | cruise min, all | walk min, all | team reward (k) | core bids at +1 / -1 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for policy, r in rows.items():
            lines.append(f"| {policy} | {pm(r['success_rate_core_peak'], '{:.4f}')} | {pm(r['cruise_min_core_peak'], '{:.2f}')} | "
                         f"{pm(r['walk_min_core_peak'], '{:.2f}')} | {pm(r['success_rate'], '{:.4f}')} | "
                         f"{pm(r['cruise_min'], '{:.2f}')} | {pm(r['walk_min'], '{:.2f}')} | {pm(r['reward'], '{:.2f}', 1e3)} | "
                         f"{bids(r)} |")
        lines += ["", "| policy |" + "".join(f" {a} {p}: success / cruise / walk |" for a, p in GROUPS),
                  "|---|" + "---|" * len(GROUPS)]
        for policy, r in rows.items():
            cells = "".join(f" {np.mean(r[f'success_rate_{a}_{p}']):.4f} / {np.mean(r[f'cruise_min_{a}_{p}']):.2f} / "
                            f"{np.mean(r[f'walk_min_{a}_{p}']):.2f} |" for a, p in GROUPS)
            lines.append(f"| {policy} |{cells}")
        days = sc["test_days"]
        lines += ["", "| policy (success, core peak, per test day) |" + "".join(f" {d} |" for d in days),
                  "|---|" + "---|" * len(days)]
        for policy, r in rows.items():
            per = [r["per_day"][d]["success_rate_core_peak"] for d in days]
            if "(sampled)" in policy:  # seed-mean of the sampled mean, and the mean over seeds of the std over episodes
                cells = "".join(f" {np.mean([v[0] for v in p]):.4f} ± {np.mean([v[1] for v in p]):.4f} |" for p in per)
            elif r["kind"] == "per seed":
                cells = "".join(f" {pm(p, '{:.4f}')} |" for p in per)
            else:
                cells = "".join(f" {p:.4f} |" for p in per)
            lines.append(f"| {policy} |{cells}")
        lines.append("")
    return "\n".join(lines).rstrip()


def plot(results, path):
    from jaxmob.plots import plt

    names = list(results["scenarios"])
    panels = (("success_rate_core_peak", "success, core at the peak"), ("cruise_min_core_peak", "cruise min, core at the peak"),
              ("walk_min_core_peak", "walk min, core at the peak"))
    fig, axes = plt.subplots(len(names), len(panels), figsize=(15, 3.6 * len(names)), constrained_layout=True, squeeze=False)
    for row, name in zip(axes, names):
        table_ = results["scenarios"][name]["table"]
        policies = list(table_)
        for ax, (metric, title) in zip(row, panels):
            for k, policy in enumerate(policies):
                v = np.asarray(table_[policy][metric], np.float64)
                ax.barh(k, np.nanmean(v), xerr=np.nanstd(v), color=f"C{k % 10}", capsize=2)
            ax.set_yticks(range(len(policies)), policies if ax is row[0] else [""] * len(policies), fontsize=7)
            ax.invert_yaxis()
            ax.set_title(f"{name}: {title}", fontsize=9)
        lo = min(np.nanmin(table_[p]["success_rate_core_peak"]) for p in policies)
        row[0].set_xlim(max(0.0, lo - 0.05), 1.0)
    fig.suptitle(f"Melbourne parking, 5 test days per scenario; learned: {results['seeds']} seeds x "
                 f"{results.get('updates', 0)} updates", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
