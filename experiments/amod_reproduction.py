"""jaxmob's AMoD env against the benchmark's own simulator, on that simulator's request draws.

The AMoD benchmark (StanfordASL/RL4AMOD, `macro_env.py`, commit 76bea1b) drew the
requests of its 10 test episodes on three cities and reported what its hand rules
(and, on nyc_brooklyn, its published SAC checkpoint) achieve on them
(`../shared/data/amod-scenarios/peer-draws/README.md`). This replays the same draws
through jaxmob's compiled env and puts the two side by side, with jaxmob's MPC and
clairvoyant bound on the same episodes. Writes results/amod_reproduction.json.

    python experiments/amod_reproduction.py      # about a minute on 2 CPU cores
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import jax
import numpy as np

from jaxmob.config import TrainConfig
from jaxmob.core.paths import shared_data_dir
from jaxmob.report import baseline_rows

# peer-draws/README.md: mean over the 10 episodes, (served ratio, reward); "conserving" adds the
# vehicles of two trips landing together where the unmodified simulator overwrites them
BENCHMARK = {
    "nyc_brooklyn": {"no rebalancing": {"as published": (0.432, 28_107), "conserving": (0.445, 28_602)},
                     "equal distribution": {"as published": (0.775, 50_392), "conserving": (0.778, 50_501)},
                     "SAC (its published checkpoint)": {"as published": (0.854, 55_384),
                                                        "conserving": (0.863, 55_579)}},
    "nyc_man_south": {"no rebalancing": {"as published": (0.583, 28_451), "conserving": (0.595, 28_991)},
                      "equal distribution": {"as published": (0.819, 35_894), "conserving": (0.835, 36_528)}},
    "san_francisco": {"no rebalancing": {"as published": (0.464, 10_145), "conserving": (0.481, 10_455)},
                      "equal distribution": {"as published": (0.736, 14_242), "conserving": (0.760, 14_598)}},
}


def draws_path(city: str, data=None) -> Path:
    data = Path(data) if data else shared_data_dir()
    if data is None:
        raise SystemExit("needs ../shared/data (or --data DIR): the benchmark's draws live there")
    return data / "amod-scenarios" / "peer-draws" / f"draws_{city}.npz"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="raw data folder (default ../shared/data)")
    ap.add_argument("--out", default="results/amod_reproduction.json")
    args = ap.parse_args(argv)
    results = {"machine": f"{platform.machine()} {jax.devices()[0].platform}", "cities": {}}
    for city, reported in BENCHMARK.items():
        config = TrainConfig(env="amod", scenario=city, progress=False).validate()
        task = config.task
        scenario = task.load(city)
        episodes, _ = task.read_episodes(scenario, draws_path(city, args.data))
        rows = baseline_rows(scenario, episodes, config, bound=True)
        ours = {}
        for i, first in enumerate(next(iter(rows.values()))):
            ours[first["policy"]] = {m: [r[i][m] for r in rows.values()] for m in ("served_ratio", "reward")}
        results["cities"][city] = {"benchmark": reported, "jaxmob": ours, "episodes": len(episodes)}
        print(city, {k: round(float(np.mean(v["reward"]))) for k, v in ours.items()}, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))


def table(results, compact: bool = False) -> str:
    """Markdown: per city and policy, the benchmark's figures beside jaxmob's on the same draws
    (compact: one row per city, reward of the conserving simulator against jaxmob's)."""
    if compact:
        return compact_table(results)
    lines = ["| city | policy | benchmark as published: served / reward | benchmark, conserving: served / reward "
             "| jaxmob, same draws: served / reward | jaxmob - conserving |", "|---|---|---|---|---|---|"]
    for city, cell in results["cities"].items():
        names = list(dict.fromkeys(list(cell["benchmark"]) + list(cell["jaxmob"])))
        for name in names:
            ref, ours = cell["benchmark"].get(name), cell["jaxmob"].get(name)
            pub = f"{ref['as published'][0]:.3f} / {ref['as published'][1]:,}" if ref else ""
            con = f"{ref['conserving'][0]:.3f} / {ref['conserving'][1]:,}" if ref else ""
            mine = diff = ""
            if ours:
                served, reward = np.mean(ours["served_ratio"]), np.mean(ours["reward"])
                mine = f"{served:.3f} / {reward:,.0f}"
                if ref:
                    diff = (f"{100 * (served / ref['conserving'][0] - 1):+.1f}% / "
                            f"{100 * (reward / ref['conserving'][1] - 1):+.1f}%")
            lines.append(f"| {city} | {name} | {pub} | {con} | {mine} | {diff} |")
    return "\n".join(lines)


def compact_table(results) -> str:
    policies = ("no rebalancing", "equal distribution")
    lines = ["| city (10 draws of the benchmark's simulator) | " + " | ".join(
        f"{p}: benchmark / jaxmob reward" for p in policies) + " |", "|---|" + "---|" * len(policies)]
    for city, cell in results["cities"].items():
        cells = [f"{cell['benchmark'][p]['conserving'][1]:,} / {np.mean(cell['jaxmob'][p]['reward']):,.0f} "
                 f"({100 * (np.mean(cell['jaxmob'][p]['reward']) / cell['benchmark'][p]['conserving'][1] - 1):+.1f}%)"
                 for p in policies]
        lines.append(f"| {city} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
