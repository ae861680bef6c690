"""The AMoD benchmark table: hand rules, MPC, the clairvoyant bound and learned policies per city.

For each city (default: nyc_brooklyn, nyc_man_south, san_francisco, chicago,
porto), on its 5 test episodes (seeded Poisson draws that choose nothing):
no rebalancing, equal distribution (the benchmark's), MPC (the fleet LP on the
expected requests, re-planned every step) and the clairvoyant LP bound; and
for each learned algorithm and seed, a run through the one trainer whose
checkpoint is chosen on the 3 validation episodes: META as published (DDPG
critics, Kuhn-Munkres dispatch of x_i = |a_i| idle_i), META with jaxmob's
earlier dispatch (`--dispatch min`), MADDPG-META (centralised critic),
MAPPO (the desired-distribution 'levels' action) and the strongest learner
we have, MAPPO trained 10 times longer. Learned rows give the deployed
(deterministic / argmax) and the sampled policy, mean ± std over seeds of the
test-episode mean, and training wall-clock; hand-rule rows give mean ± std
over the test episodes. On nyc_brooklyn every learned run is also evaluated
on the 10 request draws of the benchmark's own simulator (where its
published SAC checkpoint serves 0.863 for 55,579). Finished runs in
`runs/amod_table/` are reused, so an interrupted table resumes. Writes
results/amod_table.json and .png.

    python experiments/amod_table.py            # the table (about 45 minutes on 2 CPU cores)
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
from jaxmob.core.paths import shared_data_dir
from jaxmob.report import baseline_rows, evaluate_run
from jaxmob.train import finished_run, train

CITIES = ("nyc_brooklyn", "nyc_man_south", "san_francisco", "chicago", "porto")
STRONGEST = "MAPPO (levels), 10x updates"
LEARNED = {  # label -> (slug of its runs and --algs, algorithm, env options, budget: "updates" or "long")
    "META (paper)": ("meta", "meta", {}, "updates"),
    "META (earlier dispatch: min)": ("meta_min", "meta", {"dispatch": "min"}, "updates"),
    "MADDPG-META": ("maddpg", "maddpg", {}, "updates"),
    "MAPPO (levels)": ("mappo", "mappo", {}, "updates"),
    STRONGEST: ("mappo_long", "mappo", {}, "long"),
}
SLUGS = [spec[0] for spec in LEARNED.values()]
METRICS = ("reward", "served_ratio", "profit", "rebalancing_cost")
SAC = {"reward": 55_579, "served_ratio": 0.863}  # the benchmark's published SAC on its draws (conserving simulator)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cities", default=",".join(CITIES), help="comma-separated, or 'all' (the 11 bundled cities)")
    ap.add_argument("--algs", default=",".join(SLUGS), help=f"learned rows ({', '.join(SLUGS)}) or none")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--long-updates", type=int, default=1000, help=f"the budget of '{STRONGEST}'")
    ap.add_argument("--updates-per-chunk", type=int, default=20, help="validation after every chunk")
    ap.add_argument("--runs", default="runs/amod_table")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/amod_table")
    args = ap.parse_args(argv)
    if args.quick:
        args.cities, args.seeds, args.updates, args.long_updates, args.updates_per_chunk = "san_francisco", 1, 2, 2, 1
    from jaxmob.envs.amod.scenario import bundled

    cities = bundled() if args.cities == "all" else args.cities.split(",")
    algs = [] if args.algs == "none" else args.algs.split(",")
    learned = {label: spec for label, spec in LEARNED.items() if spec[0] in algs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"cities": cities, "seeds": args.seeds if learned else 0, "updates": args.updates,
               "long_updates": args.long_updates, "machine": f"{platform.machine()} {jax.devices()[0].platform} "
               f"x{jax.device_count()}", "table": {}, "draws": {}}
    data = shared_data_dir()
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
        draws = data / "amod-scenarios" / "peer-draws" / f"draws_{city}.npz" if data else None
        on_draws = city == "nyc_brooklyn" and draws is not None and draws.exists()
        if on_draws:
            episodes, _ = base.task.read_episodes(scenario, draws)
            rows = baseline_rows(scenario, episodes, base, bound=True)
            results["draws"] = {first["policy"]: {m: [r[i][m] for r in rows.values()]
                                                  for m in ("reward", "served_ratio")}
                                for i, first in enumerate(next(iter(rows.values())))}
        for label, (slug, alg, options, budget) in learned.items():
            cell[label] = {"kind": "per seed", **{m: [] for m in METRICS}, **{f"sampled_{m}": [] for m in METRICS},
                           "wall_s": []}
            updates = args.updates if budget == "updates" else args.long_updates
            if on_draws:
                results["draws"][label] = {"kind": "per seed", "reward": [], "served_ratio": [],
                                           "sampled_reward": [], "sampled_served_ratio": []}
            for seed in range(args.seeds):
                run_dir = f"{args.runs}/{city}-{slug}-s{seed}"
                cfg = TrainConfig(env="amod", alg=alg, scenario=city, seed=seed, total_updates=updates,
                                  updates_per_chunk=min(args.updates_per_chunk, updates), eval_episodes=2,
                                  progress=False, options=options, out_dir=run_dir)
                summary = finished_run(cfg)
                if summary is None:
                    summary = train(cfg, log=lambda *_: None)
                    print(f"{city} {label} seed {seed}: {summary['wall_s']:.0f} s, test reward "
                          f"{summary['test']['reward']:.0f}", flush=True)
                for m in METRICS:
                    cell[label][m].append(float(summary["test"][m]))
                    cell[label][f"sampled_{m}"].append(float(summary["test"]["sampled"]["mean"][m]["mean"]))
                cell[label]["wall_s"].append(float(summary["wall_s"]))
                if on_draws:
                    mean = evaluate_run(run_dir, user_file=draws, episodes=2, bound=False)["mean"]
                    for key, row in (("", mean[0]), ("sampled_", mean[1])):
                        for m in ("reward", "served_ratio"):
                            results["draws"][label][key + m].append(float(row[m]))
            results["wall_s"] = time.perf_counter() - t_all
            out.with_suffix(".json").write_text(json.dumps(results, indent=1))
        out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    results["wall_s"] = time.perf_counter() - t_all
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    plot(results, out.with_suffix(".png"))
    print(table(results))
    if results["draws"]:
        print(table(results, part="draws"))


def _pm(values, scale=1.0, f="{:.1f}") -> str:
    return f"{f.format(np.mean(values) / scale)} ± {f.format(np.std(values) / scale)}"


def table(results, part: str = "test") -> str:
    """Markdown. part='test': reward (thousands) and served ratio per city, mean ± std, the
    deployed policy of each learner then its sampled one; with no learned rows, one line per
    city with every metric of every hand rule. part='draws': nyc_brooklyn on the benchmark's
    own 10 request draws, beside its published SAC."""
    if part == "draws":
        return draws_table(results)
    if not results["seeds"]:
        return baseline_table(results)
    cities = results["cities"]
    lines = ["| policy |" + "".join(f" {c} reward (k) | {c} served |" for c in cities) + " training s |",
             "|---|" + "---|---|" * len(cities) + "---|"]
    for name, first in results["table"][cities[0]].items():
        learned = first["kind"] == "per seed"
        for key, suffix in (("", " (deployed)" if learned else ""), ("sampled_", " (sampled)")):
            if key and not learned:
                continue
            cells = "".join(f" {_pm(results['table'][c][name][key + 'reward'], 1e3)} | "
                            f"{_pm(results['table'][c][name][key + 'served_ratio'], 1.0, '{:.3f}')} |" for c in cities)
            walls = [w for c in cities for w in results["table"][c][name]["wall_s"]] if learned else []
            wall = _pm(walls, 1.0, "{:.0f}") if walls else ""
            lines.append(f"| {name}{suffix} |{cells} {wall if not key else ''} |")
    return "\n".join(lines)


def draws_table(results) -> str:
    draws = results["draws"]
    lines = ["| policy (nyc_brooklyn, the benchmark's 10 draws) | reward | served |", "|---|---|---|",
             f"| the benchmark's SAC checkpoint (its figure, conserving simulator) | {SAC['reward']:,} | "
             f"{SAC['served_ratio']:.3f} |"]
    for name, r in draws.items():
        if r.get("kind") == "per seed":
            for key, suffix in (("", " (deployed)"), ("sampled_", " (sampled)")):
                lines.append(f"| {name}{suffix}, {len(r['reward'])} seeds | {_pm(r[key + 'reward'], 1.0, '{:,.0f}')} | "
                             f"{_pm(r[key + 'served_ratio'], 1.0, '{:.3f}')} |")
        else:
            lines.append(f"| {name} | {_pm(r['reward'], 1.0, '{:,.0f}')} | {_pm(r['served_ratio'], 1.0, '{:.3f}')} |")
    return "\n".join(lines)


def baseline_table(results) -> str:
    pm = lambda v, f="{:.1f}", scale=1.0: _pm(v, scale, f)  # noqa: E731
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
    fig, ax = plt.subplots(figsize=(11, 4.6), constrained_layout=True)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        bound = [np.mean(results["table"][c][next(n for n in names if n.startswith("bound"))]["reward"]) for c in cities]
        vals = [np.mean(results["table"][c][name]["reward"]) / b for c, b in zip(cities, bound)]
        errs = [np.std(results["table"][c][name]["reward"]) / b for c, b in zip(cities, bound)]
        ax.bar(np.arange(len(cities)) + k * width, vals, width, yerr=errs, label=name, capsize=2)
    ax.set_xticks(np.arange(len(cities)) + 0.4 - width / 2, cities)
    ax.set_ylabel("test reward / clairvoyant bound")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    long = f" ({results['long_updates']} for {STRONGEST})" if "long_updates" in results else ""
    fig.suptitle(f"AMoD cities, test episodes: {results['seeds']} seeds x {results['updates']} updates per learned "
                 f"run{long}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
