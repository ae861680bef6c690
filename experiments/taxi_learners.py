"""Taxi learners trained until validation says they have stopped improving, per city.

For each city (the four real AMoD NYC areas; the January-2016 city at 6,000 / 8,000 /
10,000 taxis with `--scenario nyc-jan2016 --fleets ...`) and each learner (MADARL with
each attention ablation, MAPPO, and DDPG through the off-policy core, over relaxed one-hot
actions, on the distribution a cell's idle taxis draw from, and the soft actor-critic), the one trainer runs `--seeds` seeds as one vmapped
program and scores every seed's deployed (sampled) policy on the validation episodes
after every chunk: the learning curve. A run has converged when the seed-mean validation
ORR moves by less than `FLAT` over the last fifth of training (a least-squares line's
rise over that stretch). Test episodes, which choose nothing, give ORR, PCR, the paper's
CI (ORR and CI over the test period) and empty km by argmax and sampled policy (the final parameters, and the sampled ORR of each
seed's best-on-validation parameters, the checkpoint `train` deploys), beside stay, random, greedy
and the clairvoyant LP bound (jaxmob/envs/taxi/bound.py). Rows already in the JSON are kept, and a
row's sweep checkpoints after every chunk, so an interrupted table resumes where it stopped; runs side by
side (other learners or fleets, a core each) may share one JSON: each writes only its own rows.
Writes results/taxi_learners-<scenario>.json and .png.

    python experiments/taxi_learners.py                                        # 4 AMoD areas (about an hour on 2 cores)
    python experiments/taxi_learners.py --scenarios nyc-jan2016 --fleets 6000,8000,10000
    python experiments/taxi_learners.py --table-only
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import jax
import numpy as np

from jaxmob.config import TrainConfig
from jaxmob.report import baseline_rows
from jaxmob.sweep import run_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling experiment, also when doc_tables loads this file
from taxi_rewards import footnote, hand_rows, older, stored_run, summary  # noqa: E402

AMOD = ("amod-nyc-brooklyn", "amod-nyc-man-south", "amod-nyc-man-middle", "amod-nyc-man-north")
MADARL_LR = 0.003  # chosen on the AMoD areas' validation days (docs/taxi.md); each row keeps the lr it trained at
# off-policy, from the paper's list: a replay of 4 updates' transitions (every taxi of 2 x 36 steps each)
REPLAY = dict(buffer_size=288, batch_size=16, gradient_steps=10)
# the soft actor-critic on that replay; alpha chosen on validation days (docs/taxi.md)
SAC = dict(alg="sac_discrete", entropy=0.03, **REPLAY)
LEARNERS = {**{name: dict(alg="madarl", attention=attention, lr=MADARL_LR)
               for name, attention in (("madarl", "both"), ("madarl-local", "local"), ("madarl-global", "global"),
                                       ("madarl-none", "none"))},
            "mappo": dict(alg="mappo"),
            "ddpg": dict(alg="ddpg_discrete", **REPLAY),
            # the same, the action being the distribution a cell's idle taxis draw from
            "ddpg-dist": dict(alg="ddpg_dist", **REPLAY),
            "sac": SAC,
            # one critic and the target actor (the first sac_discrete; not SAC as published)
            "sac-one-critic": dict(SAC, as_published=False)}
FLAT = 0.005  # half a point of ORR over the last fifth of training


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(AMOD))
    ap.add_argument("--fleets", default="0", help="fleet sizes (0: the scenario's own)")
    ap.add_argument("--learners", default=",".join(LEARNERS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--updates-per-chunk", type=int, default=5, help="validation after every chunk")
    ap.add_argument("--quick", action="store_true", help="one area, 4 updates, 2 seeds, 2 learners: the pipeline only")
    ap.add_argument("--out", default=None, help="default results/taxi_learners-<first scenario>")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--retrain", action="store_true", help="train the listed learners again where the JSON has their "
                    "row (e.g. with more --updates, when the last fifth was not flat)")
    ap.add_argument("--rescore", action="store_true", help="summarise again, without training, every row whose "
                    "finished sweep is still in runs/ (its results.json; same updates and lr), e.g. after a change "
                    "to how the tables aggregate test days")
    ap.add_argument("--refresh-baselines", action="store_true", help="recompute the hand rules and bound of every "
                    "city in the JSON (after a change to them), keep the learned rows; without it, only the test days "
                    "that have no bound row are computed (so an interrupted refresh resumes)")
    args = ap.parse_args(argv)
    scenarios, fleets, learners = args.scenarios.split(","), [int(f) for f in args.fleets.split(",")], args.learners.split(",")
    if args.quick:
        scenarios, learners, args.updates, args.updates_per_chunk, args.seeds = scenarios[:1], learners[:2], 4, 2, 2
    unknown = [name for name in learners if name not in LEARNERS]
    if unknown:
        ap.error(f"unknown learners {unknown}; choose from {', '.join(LEARNERS)}")
    out = Path(args.out or f"results/taxi_learners-{'amod' if scenarios == list(AMOD) else scenarios[0]}")
    path = out.with_suffix(".json")
    results = json.loads(path.read_text()) if path.exists() else {"cities": {}}
    if args.refresh_baselines or not args.table_only:  # the hand rules and bound of the test days that lack them, or all
        for city in list(results["cities"].values()):
            run_city(results, path, city["scenario"], city["fleet"], [], args, refresh=args.refresh_baselines)
    if args.rescore:
        rescore(results, path)
    if not args.table_only:
        for city in results["cities"].values():  # rows trained before rows kept their own count
            for row in city["rows"].values():
                row.setdefault("updates", results.get("updates"))
        results.update(seeds=args.seeds, updates=args.updates, updates_per_chunk=args.updates_per_chunk,
                       machine=f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}")
        for scenario in scenarios:
            for fleet in fleets:
                run_city(results, path, scenario, fleet, learners, args)
    plot(results, out.with_suffix(".png"))
    print(table(results))


def run_city(results, path, scenario_name, fleet, learners, args, refresh=False) -> None:
    key = scenario_name if not fleet else f"{scenario_name}@{fleet}"
    base = TrainConfig(env="taxi", scenario=scenario_name, num_taxis=fleet, total_updates=args.updates,
                       updates_per_chunk=args.updates_per_chunk, progress=not args.quick).validate()
    city = results["cities"].setdefault(key, {"scenario": scenario_name, "fleet": fleet, "rows": {}})
    scenario = base.task.load(scenario_name)
    days = list(scenario.test_days)
    old = city.get("baselines") or {}  # kept for the days not done yet, so an interrupted run leaves a whole table
    done = {} if refresh else {d: rows for d, rows in old.items() if any(r["policy"].startswith("bound") for r in rows)}
    city.update(test_days=days, config=json.loads(json.dumps(asdict(base), default=str)))
    for day in days:  # one test day at a time, saved at once: a large city's bound takes minutes a day
        if day in done:
            continue
        t0 = time.perf_counter()
        done[day] = baseline_rows(scenario, [day], base)[day]
        city["baselines"] = {d: done.get(d, old.get(d)) for d in days if d in done or d in old}
        print(f"{key} {day}: hand rules and bound in {time.perf_counter() - t0:.0f} s", flush=True)
        save(results, path, {(key, None)})
    for name in learners:
        if name in city["rows"] and not args.retrain:
            continue
        cfg = replace(base, **LEARNERS[name]).validate()
        t0 = time.perf_counter()
        run = run_sweep(cfg, args.seeds, {}, out_dir=f"runs/taxi-learners-{key}-{name}", progress=not args.quick,
                        validation_curve=True, resume=True)  # a row cut short by a killed session goes on
        row = {**summary(run), "wall_s": time.perf_counter() - t0, "updates": args.updates, "lr": cfg.lr,
               "validation_curve": np.asarray(run["curves"]["validation_order_response_rate"]).tolist()}
        row["converged"], row["last_fifth_rise"] = converged(row["validation_curve"])
        row["best"] = kept(run)
        city["rows"][name] = row
        print(f"{key} {name}: {row['wall_s']:.0f} s, validation rise over the last fifth "
              f"{row['last_fifth_rise']:+.4f}, test ORR sampled {np.mean(row['sampled']['order_response_rate']):.4f}",
              flush=True)
        save(results, path, {(key, name)})


def kept(run) -> dict:
    """Each seed's best-on-validation parameters (the checkpoint `train` deploys): the update
    kept, its validation score, and its test metrics."""
    best = run["best"]
    scores = summary({"evals": [], "tests": best["tests"]})
    return {"update": best["update"], "validation": best["validation"], "sampled": scores["sampled"], "argmax": scores["argmax"]}


def rescore(results, path) -> None:
    """Rows summarised again from their finished sweeps' results.json (`stored_run`), where
    runs/ still holds one trained with the row's updates and lr; the others are left as they are."""
    touched = set()
    for key, city in results["cities"].items():
        for name, row in city["rows"].items():
            sweep = Path(f"runs/taxi-learners-{key}-{name}")
            if not (sweep / "results.json").exists():
                continue
            run = stored_run(sweep)
            if (run["config"]["total_updates"], run["config"]["lr"]) != (row.get("updates"), row.get("lr")):
                print(f"{key} {name}: {sweep} is another run ({run['config']['total_updates']} updates, lr "
                      f"{run['config']['lr']}), not rescored", flush=True)
                continue
            row.update(summary(run))  # a stored run has no training curve: the row keeps its own
            if "best" in run:
                row["best"] = kept(run)
            touched.add((key, name))
            print(f"{key} {name}: rescored from {sweep}", flush=True)
    save(results, path, touched)


def save(results, path, touched) -> None:
    """Write what this run made (`touched`: (city, learner) rows, or (city, None) for a city's
    test days, config and hand rules) into the JSON as it is on disk now, and take the rest from
    disk: runs of this script side by side (other learners or fleets, a core each) fill one table
    without one writing back the others' rows as they were when it started. A lock file makes
    each read-merge-write whole; the file is replaced at once, so a reader never sees half."""
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        disk = json.loads(path.read_text()) if path.exists() else {"cities": {}}
        for key, theirs in disk["cities"].items():  # into `results` in place: callers hold its city dicts
            mine = results["cities"].setdefault(key, theirs)
            if mine is not theirs:
                mine["rows"].update({n: r for n, r in theirs["rows"].items() if (key, n) not in touched})
                if (key, None) not in touched:
                    mine.update({k: v for k, v in theirs.items() if k != "rows"})
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=float))
        os.replace(tmp, path)


def converged(curve) -> tuple[bool, float]:
    """(flat, rise): the least-squares line through the seed-mean validation curve over its
    last fifth (at least 3 points) rises by `rise`; flat when |rise| < FLAT."""
    y = np.asarray(curve, np.float64).mean(0)
    tail = y[-max(3, len(y) // 5):]
    x = np.arange(len(tail), dtype=np.float64)
    rise = float(np.polyfit(x, tail, 1)[0] * (len(tail) - 1))
    return abs(rise) < FLAT, rise


def ordered(rows: dict) -> list:
    """A city's learned rows in `LEARNERS` order, however they were trained or merged."""
    return sorted(rows.items(), key=lambda item: list(LEARNERS).index(item[0]))


def table(results) -> str:
    pm = lambda v, f: f"{f.format(np.mean(v))} ± {f.format(np.std(v))}"
    lines = []
    for key, city in results["cities"].items():
        hand = hand_rows(city["baselines"], city["test_days"])
        greedy = next(v for p, v in hand.items() if p.startswith("greedy"))
        has_best = any("best" in r for r in city["rows"].values())  # rows trained since the sweep kept them
        lines += [f"**{key}** (test episodes; learned: mean ± std over seeds)", "",
                  "| policy | ORR, sampled | ORR, argmax | PCR ($10k an episode), sampled | CI, sampled | empty km, sampled | "
                  "vs greedy (ORR, CI) | flat at the end |" + " ORR, sampled, best-on-validation parameters (kept at update) |" * has_best,
                  "|---|---|---|---|---|---|---|---|" + "---|" * has_best]
        for name, r in ordered(city["rows"]):
            s, a, o = r["sampled"], r["argmax"], older(r)
            like = greedy["daily"] if o else greedy  # a marked row against greedy's mean of days
            beats = (np.mean(s["order_response_rate"]) > like["order_response_rate"], np.mean(s["ci"]) > like["ci"])
            verdict = ", ".join("above" if b else "below" for b in beats)
            lines.append(f"| {name} | {pm(s['order_response_rate'], '{:.4f}')}{o} | {pm(a['order_response_rate'], '{:.4f}')}{o} | "
                         f"{pm(s['pcr'], '{:.2f}')} | {pm(s['ci'], '{:.2f}')}{o} | {pm(s['empty_km'], '{:,.0f}')} | {verdict} | "
                         f"{'yes' if r['converged'] else 'no'} ({r['last_fifth_rise']:+.4f}, "
                         # a row from before rows kept their lr was trained at the city's base lr
                         f"{r.get('updates', results.get('updates'))} updates, lr {r.get('lr', city['config']['lr']):g}) |"
                         + f" {at_best(r)} |" * has_best)
        for policy, v in hand.items():
            lines.append(f"| {policy} | {v['order_response_rate']:.4f} | | {v['pcr']:.2f} | {v['ci']:.2f} | "
                         f"{v['empty_km']:,.0f} | | |" + " |" * has_best)
        lines += footnote(city["rows"].values(), city["baselines"], city["test_days"]) + [""]
    return "\n".join(lines)


def at_best(row) -> str:
    """The test ORR of each seed's best-on-validation parameters and the update each was kept
    at; '-' for a row trained before the sweep kept them."""
    if "best" not in row:
        return "-"
    orr, update = row["best"]["sampled"]["order_response_rate"], row["best"]["update"]
    return f"{np.mean(orr):.4f} ± {np.std(orr):.4f}{older(row)} ({', '.join(str(u) for u in update)})"


def plot(results, path):
    from jaxmob.plots import plt

    cities = list(results["cities"].items())
    if not cities:
        return
    fig, axes = plt.subplots(1, len(cities), figsize=(4.2 * len(cities), 3.8), constrained_layout=True, squeeze=False)
    every = results.get("updates_per_chunk", 1)
    for ax, (key, city) in zip(axes[0], cities):
        for i, (name, r) in enumerate(ordered(city["rows"])):
            y = np.asarray(r["validation_curve"])
            x = every * np.arange(1, y.shape[1] + 1)
            ax.plot(x, y.mean(0), color=f"C{i}", label=name)
            ax.fill_between(x, y.mean(0) - y.std(0), y.mean(0) + y.std(0), color=f"C{i}", alpha=0.2)
        for policy, v in hand_rows(city["baselines"], city["test_days"]).items():
            if not policy.startswith("stay"):
                ax.axhline(v["order_response_rate"], color="k", ls=":" if policy.startswith("bound") else "--", lw=0.8)
                ax.text(0.99, v["order_response_rate"], policy.split(" (")[0], transform=ax.get_yaxis_transform(),
                        fontsize=7, ha="right", va="bottom")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("update")
    axes[0][0].set_ylabel("validation ORR, sampled (mean ± std over seeds)")
    axes[0][0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
