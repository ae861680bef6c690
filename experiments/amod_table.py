"""The AMoD benchmark table: hand rules, the clairvoyant bound and learned policies per city.

For each city (default: nyc_brooklyn, nyc_man_south, san_francisco, chicago,
porto), on its 5 test episodes (seeded Poisson draws that choose nothing):
no rebalancing, equal distribution and the clairvoyant LP bound; and for each
learned algorithm and seed, a run through the one trainer whose checkpoint is
chosen on the 3 validation episodes: META (DDPG critics, Kuhn-Munkres
dispatch), MADDPG-META (centralised critic, same dispatch) and MAPPO (the
desired-distribution 'levels' action, PPO). Learned rows give the deployed
(deterministic / argmax) policy, mean ± std over seeds of the test-episode
mean; hand-rule rows give mean ± std over the test episodes. Finished runs in
`runs/amod_table/` are reused, so an interrupted table resumes. Writes
results/amod_table.json and .png.

    python experiments/amod_table.py            # the table (about half an hour on 2 CPU cores)
    python experiments/amod_table.py --quick    # a smoke run (one city, one seed, 2 updates)
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

CITIES = ("nyc_brooklyn", "nyc_man_south", "san_francisco", "chicago", "porto")
LEARNED = {"META (DDPG)": "meta", "MADDPG-META": "maddpg", "MAPPO (levels)": "mappo"}
METRICS = ("reward", "served_ratio", "profit", "rebalancing_cost")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cities", default=",".join(CITIES), help="comma-separated, or 'all' (the 11 bundled cities)")
    ap.add_argument("--algs", default=",".join(LEARNED.values()), help="learned rows: meta, maddpg, mappo, or none")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--updates-per-chunk", type=int, default=20, help="validation after every chunk")
    ap.add_argument("--runs", default="runs/amod_table")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/amod_table")
    args = ap.parse_args(argv)
    if args.quick:
        args.cities, args.seeds, args.updates, args.updates_per_chunk = "san_francisco", 1, 2, 1
    from jaxmob.envs.amod.scenario import bundled

    cities = bundled() if args.cities == "all" else args.cities.split(",")
    algs = [] if args.algs == "none" else args.algs.split(",")
    learned = {label: alg for label, alg in LEARNED.items() if alg in algs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"cities": cities, "seeds": args.seeds if learned else 0, "updates": args.updates,
               "machine": f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}", "table": {}}
    t_all = time.perf_counter()
    for city in cities:
        base = TrainConfig(env="amod", scenario=city, progress=False).validate()
        scenario = base.task.load(city)
        rows = baseline_rows(scenario, list(scenario.test_days), base, bound=True)
        cell = results["table"].setdefault(city, {})
        results.setdefault("scenarios", {})[city] = dict(regions=scenario.num_regions, fleet=scenario.fleet,
                                                         tstep=scenario.tstep, horizon=scenario.horizon)
        for i, first in enumerate(next(iter(rows.values()))):
            per_episode = {m: [r[i][m] for r in rows.values()] for m in METRICS}
            cell[first["policy"]] = {"kind": "per test episode", **per_episode}
        for label, alg in learned.items():
            cell[label] = {"kind": "per seed", **{m: [] for m in METRICS}, "wall_s": []}
            for seed in range(args.seeds):
                cfg = TrainConfig(env="amod", alg=alg, scenario=city, seed=seed, total_updates=args.updates,
                                  updates_per_chunk=args.updates_per_chunk, eval_episodes=2, progress=False,
                                  out_dir=f"{args.runs}/{city}-{alg}-s{seed}")
                summary = finished_run(cfg)
                if summary is None:
                    summary = train(cfg, log=lambda *_: None)
                    print(f"{city} {label} seed {seed}: {summary['wall_s']:.0f} s, test reward "
                          f"{summary['test']['reward']:.0f}", flush=True)
                for m in METRICS:
                    cell[label][m].append(float(summary["test"][m]))
                cell[label]["wall_s"].append(float(summary["wall_s"]))
            results["wall_s"] = time.perf_counter() - t_all
            out.with_suffix(".json").write_text(json.dumps(results, indent=1))
        out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    results["wall_s"] = time.perf_counter() - t_all
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    plot(results, out.with_suffix(".png"))
    print(table(results))


def table(results) -> str:
    """Markdown: reward (thousands) and served ratio per city, mean ± std; with no learned
    rows, one line per city with every metric of every hand rule."""
    if not results["seeds"]:
        return baseline_table(results)
    cities = results["cities"]
    pm = lambda v, scale=1.0, f="{:.1f}": f"{f.format(np.mean(v) / scale)} ± {f.format(np.std(v) / scale)}"  # noqa: E731
    lines = ["| policy |" + "".join(f" {c} reward (k) | {c} served |" for c in cities),
             "|---|" + "---|---|" * len(cities)]
    for name in results["table"][cities[0]]:
        cells = "".join(f" {pm(results['table'][c][name]['reward'], 1e3)} | "
                        f"{pm(results['table'][c][name]['served_ratio'], 1.0, '{:.3f}')} |" for c in cities)
        lines.append(f"| {name} |{cells}")
    return "\n".join(lines)


def baseline_table(results) -> str:
    pm = lambda v, f="{:.1f}", scale=1.0: f"{f.format(np.mean(v) / scale)} ± {f.format(np.std(v) / scale)}"  # noqa: E731
    lines = ["| city | regions | fleet | policy | reward (k) | served | profit (k) | reb. cost (k) |", "|---|---|---|---|---|---|---|---|"]
    for city in results["cities"]:
        info = results["scenarios"][city]
        for name, r in results["table"][city].items():
            lines.append(f"| {city} | {info['regions']} | {info['fleet']:,} | {name} | {pm(r['reward'], scale=1e3)} | "
                         f"{pm(r['served_ratio'], '{:.3f}')} | {pm(r['profit'], scale=1e3)} | "
                         f"{pm(r['rebalancing_cost'], '{:.2f}', 1e3)} |")
    return "\n".join(lines)


def plot(results, path):
    from jaxmob.plots import plt

    cities = results["cities"]
    names = list(results["table"][cities[0]])
    fig, ax = plt.subplots(figsize=(11, 4), constrained_layout=True)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        bound = [np.mean(results["table"][c][next(n for n in names if n.startswith("bound"))]["reward"]) for c in cities]
        vals = [np.mean(results["table"][c][name]["reward"]) / b for c, b in zip(cities, bound)]
        errs = [np.std(results["table"][c][name]["reward"]) / b for c, b in zip(cities, bound)]
        ax.bar(np.arange(len(cities)) + k * width, vals, width, yerr=errs, label=name, capsize=2)
    ax.set_xticks(np.arange(len(cities)) + 0.4 - width / 2, cities)
    ax.set_ylabel("test reward / clairvoyant bound")
    ax.legend(fontsize=7, ncol=3)
    fig.suptitle(f"AMoD cities: {results['seeds']} seeds x {results['updates']} updates per learned run")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
