"""Which reward serves the taxi metric: each taxi reward at one budget, >= 3 seeds vmapped.

The TDEVR paper rewards a taxi with the supply-demand balance of its cell ('local'), of the
city ('global') or both (the default so far); `served` pays 1 when a taxi is matched to an
order, ORR's own count. Each reward trains MADARL through the one trainer (3 seeds as one
vmapped program) on the scenario; the reward whose sampled policy (the deployed one) has the
best validation ORR is chosen, the paper's CI breaking a tie within a seed std; the test
episodes, which choose nothing, report ORR, PCR, CI and empty km by argmax and sampled,
beside stay, random and greedy; ORR and CI over the test (or validation) period, as the paper
takes them (`over_period`), not as a mean of each episode's. Writes results/taxi_rewards-<scenario>.json and .png.

    python experiments/taxi_rewards.py                          # amod-nyc-man-south, 100 updates (make train ENV=taxi)
    python experiments/taxi_rewards.py --table-only             # the table and PNG from the JSON (adds the bound)
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
from jaxmob.envs.taxi.env import period_metrics
from jaxmob.report import baseline_rows
from jaxmob.sweep import run_sweep

REWARDS = ("local", "global", "both", "served")
METRICS = ("order_response_rate", "pcr", "ci", "empty_km")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="amod-nyc-man-south")
    ap.add_argument("--alg", default="madarl")
    ap.add_argument("--rewards", default=",".join(REWARDS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="2 updates, 2 seeds, 2 rewards: checks the pipeline only")
    ap.add_argument("--out", default=None, help="default results/taxi_rewards-<scenario>")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out or f"results/taxi_rewards-{args.scenario}")
    if args.table_only:
        results = json.loads(out.with_suffix(".json").read_text())
        if not any(r["policy"].startswith("bound") for r in next(iter(results["baselines"].values()))):
            base = TrainConfig(env="taxi", alg=results["alg"], scenario=results["scenario"]).validate()
            results["baselines"] = baseline_rows(base.task.load(base.scenario), results["test_days"], base)
            out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))  # the bound added
        plot(results, out.with_suffix(".png"))
        print(table(results))
        return
    rewards = args.rewards.split(",")
    if args.quick:
        args.updates, args.seeds, rewards = 2, 2, rewards[:2]
    unknown = [r for r in rewards if r not in REWARDS]
    if unknown:
        ap.error(f"unknown rewards {unknown}; choose from {', '.join(REWARDS)}")
    base = TrainConfig(env="taxi", alg=args.alg, scenario=args.scenario, total_updates=args.updates,
                       updates_per_chunk=min(10, args.updates), progress=not args.quick).validate()
    scenario = base.task.load(args.scenario)
    results = {"scenario": args.scenario, "alg": args.alg, "seeds": args.seeds, "updates": args.updates,
               "machine": f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}",
               "config": json.loads(json.dumps(asdict(base), default=str)), "test_days": list(scenario.test_days),
               "baselines": baseline_rows(scenario, list(scenario.test_days), base), "rows": {}}
    for reward in rewards:
        cfg = replace(base, reward=reward).validate()
        t0 = time.perf_counter()
        run = run_sweep(cfg, args.seeds, {}, out_dir=f"runs/taxi-rewards-{args.scenario}-{reward}", progress=not args.quick)
        results["rows"][reward] = {**summary(run), "wall_s": time.perf_counter() - t0}
        results["chosen"] = choose(results["rows"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
    plot(results, out.with_suffix(".png"))
    print(table(results))


def summary(run) -> dict:
    """Per seed: validation ORR and CI of the sampled policy; test metrics by argmax and sampled,
    each over its period (`over_period`); the training curve where the run has it."""
    sampled = lambda out: {k: v["mean"] for k, v in out["sampled"]["mean"].items()}
    per_seed = lambda outs, keys: {m: [o[m] for o in outs] for m in keys}
    return {
        "over": "period",
        "validation": per_seed([over_period(sampled(e)) for e in run["evals"]], ("order_response_rate", "ci")),
        "argmax": per_seed([over_period(t) for t in run["tests"]], METRICS),
        "sampled": per_seed([over_period(sampled(t)) for t in run["tests"]], METRICS),
        **({"curve": np.asarray(run["curves"]["order_response_rate"]).mean(0).tolist()} if "curves" in run else {}),
    }


def stored_run(out_dir) -> dict:
    """A finished sweep's evaluations as `run_sweep` returned them (less the curves and
    parameters), from the results.json it wrote: its rows summarised again without training."""
    stored = json.loads((Path(out_dir) / "results.json").read_text())
    runs = stored["runs"]
    run = {"config": stored["config"], "settings": [r["setting"] for r in runs],
           "evals": [r["eval"] for r in runs], "tests": [r["test"] for r in runs]}
    if all("best" in r for r in runs):
        run["best"] = {k: [r["best"][k] for r in runs] for k in ("update", "validation", "tests")}
    return run


def over_period(means: dict) -> dict:
    """METRICS of a policy over its test (or validation) days from its per-day means: ORR and the
    paper's CI of the period's totals, PCR and empty km an episode (`period_metrics`)."""
    p = period_metrics(means["served"], means["orders"], means["revenue"])
    return {**{k: float(v) for k, v in p.items()}, "empty_km": float(means["empty_km"])}


def hand_rows(baselines: dict, days: list) -> dict:
    """{policy: METRICS over the test days} for each hand rule and bound in `baselines`
    ({day: rows}), and under "daily" the mean of each day's ORR and CI (what rows trained
    before `over_period` report). A bound with days its LP did not solve (no numbers) is
    taken over the solved ones, labelled so."""
    out = {}
    for p in dict.fromkeys(r["policy"] for d in days for r in baselines[d]):
        solved = [r for d in days for r in baselines[d] if r["policy"] == p and "order_response_rate" in r]
        if solved:
            label = p if len(solved) == len(days) else f"{p}, {len(solved)} of {len(days)} days solved"
            total = lambda m: sum(r[m] for r in solved)
            out[label] = {**over_period({m: total(m) / len(solved) for m in ("served", "orders", "revenue", "empty_km")}),
                          "daily": {m: float(np.mean([r[m] for r in solved])) for m in ("order_response_rate", "ci")}}
    return out


def older(row) -> str:
    """'*' after a learned row's ORR and CI when they are means of each day's (trained before
    tables were computed over the period), '' otherwise."""
    return "" if row.get("over") == "period" else "*"


def choose(rows: dict) -> str:
    """The reward with the best mean validation ORR (sampled); among those within one seed std
    of it, the best validation CI."""
    orr = {r: np.mean(v["validation"]["order_response_rate"]) for r, v in rows.items()}
    best = max(orr, key=orr.get)
    near = [r for r in rows if orr[best] - orr[r] <= np.std(rows[best]["validation"]["order_response_rate"])]
    return max(near, key=lambda r: np.mean(rows[r]["validation"]["ci"]))


def table(results) -> str:
    pm = lambda v, f="{:.4f}": f"{f.format(np.mean(v))} ± {f.format(np.std(v))}"
    lines = ["| reward | validation ORR (sampled) | validation CI | test ORR, sampled | test ORR, argmax | "
             "test PCR ($10k an episode), sampled | test CI, sampled | empty km, sampled |", "|---|---|---|---|---|---|---|---|"]
    for reward, r in results["rows"].items():
        name = f"**{reward}** (chosen)" if reward == results.get("chosen") else reward
        v, s, a, o = r["validation"], r["sampled"], r["argmax"], older(r)
        lines.append(f"| {name} | {pm(v['order_response_rate'])}{o} | {pm(v['ci'], '{:.2f}')}{o} | "
                     f"{pm(s['order_response_rate'])}{o} | {pm(a['order_response_rate'])}{o} | {pm(s['pcr'], '{:.2f}')} | "
                     f"{pm(s['ci'], '{:.2f}')}{o} | {pm(s['empty_km'], '{:,.0f}')} |")
    for policy, v in hand_rows(results["baselines"], results["test_days"]).items():
        lines.append(f"| {policy} | | | {v['order_response_rate']:.4f} | | {v['pcr']:.2f} | {v['ci']:.2f} | "
                     f"{v['empty_km']:,.0f} |")
    return "\n".join(lines + footnote(results["rows"].values(), results["baselines"], results["test_days"]))


def footnote(rows, baselines, days) -> list:
    """The note under a table with rows marked by `older`: what they report, and the gap on greedy."""
    if not any(older(r) for r in rows):
        return []
    greedy = next(v for p, v in hand_rows(baselines, days).items() if p.startswith("greedy"))
    return ["", "ORR and CI are over the test period (the period's served / ordered; CI = 0.01 x PCR / (1 - ORR) "
            "of it), except where marked *: rows trained before, the mean of each test day's ORR and CI. "
            f"On greedy those read {greedy['daily']['order_response_rate']:.4f} and {greedy['daily']['ci']:.2f} "
            f"against the period's {greedy['order_response_rate']:.4f} and {greedy['ci']:.2f}."]


def plot(results, path):
    from jaxmob.plots import plt

    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for reward, r in results["rows"].items():
        ax.plot(np.arange(1, len(r["curve"]) + 1), r["curve"], label=reward)
    ax.set_xlabel("update")
    ax.set_ylabel("training ORR (mean over seeds)")
    ax.set_title(f"taxi rewards on {results['scenario']} ({results['alg']}, {results['seeds']} seeds)", fontsize=10)
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
