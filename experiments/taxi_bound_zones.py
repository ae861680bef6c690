"""How much the taxi bound owes to its zones: one test day's clairvoyant LP under several cuts.

On a 250-cell city the exact bound's LP is too large for two cores, so the taxi tables solve
a zone relaxation (jaxmob/envs/taxi/bound.py): a trip ends anywhere in its destination's zone,
as early as the zone's quickest cell. That can only raise the bound. This script solves one
test day under several cuts (geometric zones of each `--zones` count, and the same counts
weighted by traffic, so that zones are small where orders start and trips end; `--exact` adds
the exact LP where it fits) and reports each bound beside the largest zone's share of the
day's orders. Cuts that land close together say the zones are not what makes the bound high.
Writes results/taxi_bound_zones.json.

    python experiments/taxi_bound_zones.py                                   # nyc-jan2016, 6,000 taxis, 25 January (about 25 min)
    python experiments/taxi_bound_zones.py --scenario amod-nyc-man-south --fleet 0 --zones 2,4,8 --exact
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from jaxmob.envs.taxi.bound import clairvoyant_bound, destination_probabilities, destination_zones
from jaxmob.envs.taxi.task import TASK
from jaxmob.config import TrainConfig


def traffic_weight(params) -> np.ndarray:
    """(C,) each cell's expected orders plus expected trip ends over a day (the demand rates,
    not one day's draws), plus a little so that a cell without traffic still joins a zone."""
    rate = np.asarray(params.demand_rate, np.float64) * np.asarray(params.cell_mask)  # (S, C)
    hour = np.arange(rate.shape[0]) * 24 // rate.shape[0]
    weight = rate.sum(0) + np.einsum("sc,scd->d", rate, destination_probabilities(params)[hour])
    return weight + 1e-6 * max(weight.max(), 1.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="nyc-jan2016")
    ap.add_argument("--fleet", type=int, default=6000, help="taxis (0: the scenario's own)")
    ap.add_argument("--day", type=int, default=0, help="index into the scenario's test days")
    ap.add_argument("--zones", default="25,50", help="zone counts; each is cut geometrically and by traffic")
    ap.add_argument("--exact", action="store_true", help="also the exact LP (small cities only)")
    ap.add_argument("--time-limit", type=float, default=1800.0, help="seconds per LP")
    ap.add_argument("--out", default="results/taxi_bound_zones.json")
    args = ap.parse_args(argv)
    cfg = TrainConfig(env="taxi", scenario=args.scenario, num_taxis=args.fleet).validate()
    scenario = TASK.load(args.scenario)
    if not 0 <= args.day < len(scenario.test_days):
        ap.error(f"--day {args.day}: the scenario has {len(scenario.test_days)} test days")
    day = scenario.test_days[args.day]
    params = TASK.episode_params(cfg, scenario, TASK.episodes(scenario, [day]))[day]
    kw = dict(horizon=TASK.horizon(cfg.options, scenario), max_wait=cfg.options.max_wait, time_limit=args.time_limit)
    orders = np.asarray(params.replay_orders, np.float64)[:kw["horizon"]].sum(0)
    weight = traffic_weight(params)
    cuts = [("exact", None, None)] if args.exact else []
    for count in (int(z) for z in args.zones.split(",")):
        cuts += [(f"{count} zones, geometric", count, None), (f"{count} zones, by traffic", count, weight)]
    rows = []
    for label, count, w in cuts:
        zones = np.arange(orders.size) if count is None else destination_zones(params, count, weight=w)
        t0 = time.perf_counter()
        lp = clairvoyant_bound(params, zones=None if count is None else zones, **kw)
        share = np.bincount(zones, weights=orders).max() / orders.sum()
        rows.append(dict(cut=label, zones=int(zones.max() + 1),
                         largest_zone_order_share=float(share), order_response_rate=lp["order_response_rate"],
                         seconds=time.perf_counter() - t0))
        print(f"{label}: bound ORR {lp['order_response_rate']:.5f}, largest zone {share:.1%} of the orders, "
              f"{rows[-1]['seconds']:.0f} s", flush=True)
    results = dict(scenario=args.scenario, fleet=args.fleet, day=day, rows=rows,
                   machine=f"{platform.machine()}, {platform.processor() or 'cpu'}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))


def table(results) -> str:
    fleet = f"{results['fleet']:,} taxis" if results["fleet"] else "its own fleet"
    lines = [f"**{results['scenario']}, {fleet}, {results['day']}** (one test day's clairvoyant LP)", "",
             "| cut | zones | largest zone's share of the orders | bound ORR | solve s |", "|---|---|---|---|---|"]
    lines += [f"| {r['cut']} | {r['zones']} | {r['largest_zone_order_share']:.1%} | {r['order_response_rate']:.5f} "
              f"| {r['seconds']:.0f} |" for r in results["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
