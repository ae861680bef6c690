"""Request-level routing as a plug-in (`--env routing`).

Its policies are online planners (IA, IA-RA, rollouts), so there is nothing
to train: `jaxmob train --env routing --alg two_phase` and `jaxmob eval --env
routing --policy two_phase` both run the named policy beside the IA and IA-RA
baselines on the test episodes of the bundled San Francisco graph (or a
user's graph and request file) and write a table, a JSON file and a plot of
the outstanding requests over time. No setting is tuned on the test seeds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...core.task import Task

DEFAULT_GRAPH = "sf_north"


def load_scenario(name: str, requests: str | None = None, rate: float | None = None, step_seconds: float = 15.0):
    """(graph, demand): a bundled graph name, a `.npz` written by `StreetGraph.save` or an `.osm`
    file, with the hotspot demand model or the demand of a request CSV."""
    from .demand import hotspot_demand, demand_from_csv, DEFAULT_RATE
    from .graph import bundled_graph, load_graph, read_osm

    if name.endswith(".osm"):
        graph = read_osm(name)
    elif name.endswith(".npz"):
        graph = load_graph(Path(name))
    else:
        graph = bundled_graph(name)
    if requests:
        demand = demand_from_csv(requests, graph, step_seconds=step_seconds)
        if rate is not None:
            demand = type(demand)(rate=rate, pickup=demand.pickup, dropoff=demand.dropoff, source=demand.source,
                                  dropped=demand.dropped)
    else:
        demand = hotspot_demand(graph, rate=DEFAULT_RATE if rate is None else rate)
    return graph, demand


class RoutingTask(Task):
    raw_data = "sf-streets/SanFranciscoFiltered.osm"
    name = "routing"
    headline = "total_wait"
    reference_policy = "IA-RA"
    higher_is_better = False
    default_scenario = DEFAULT_GRAPH

    def scenarios(self) -> list:
        from .graph import BUNDLED_DIR

        return sorted(p.stem for p in BUNDLED_DIR.glob("*.npz"))

    def knows(self, name: str) -> bool:
        return name in self.scenarios() or name.endswith((".npz", ".osm"))

    def load(self, name: str):
        return load_scenario(name)

    def describe(self, name: str) -> str:
        graph, demand = self.load(name)
        return f"{graph}\n  demand: {demand.rate:g} requests per step; {demand.source}"

    def planner_cli(self):
        return add_arguments, main

    def write_scenarios(self, args, data, out) -> tuple:
        from .graph import load_graph, write_bundled

        path = write_bundled(data, out)
        print(load_graph(path))
        return [path], {}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .evaluate import POLICIES, add_setup_arguments

    p.add_argument("--policy", "--alg", dest="policy", default="two_phase", choices=POLICIES + ("all",),
                   help="the policy to run beside IA and IA-RA (all: every policy, the full-map rollout included)")
    p.add_argument("--scenario", default=DEFAULT_GRAPH, help="bundled street graph, a saved .npz or an OSM XML file")
    p.add_argument("--requests", help="request CSV (time, pickup_lat, pickup_lon, dropoff_lat, dropoff_lon) for the "
                   "demand (default: the documented hotspot model)")
    p.add_argument("--step-seconds", type=float, default=15.0, help="seconds per step when reading --requests")
    p.add_argument("--rate", type=float, help="expected new requests per step (default: the model's 0.5, or the file's)")
    p.add_argument("--seeds", type=int, default=3, help="test episodes (seeds 2000, 2001, ...)")
    add_setup_arguments(p)
    p.add_argument("--out", help="folder for results.json and outstanding.png (default runs/routing-<policy>-<scenario>)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")


def main(args) -> int:
    from tqdm.auto import tqdm

    from ...core.errors import LoaderError
    from .evaluate import POLICIES, TEST_SEEDS, format_rows, plot_curves, run_policy, setup_dict, setup_from_args, write_json
    from .theory import fleet_thresholds

    try:
        setup = setup_from_args(args)
        setup.check()
        if not 1 <= args.seeds <= 100:
            raise ValueError(f"seeds: must lie in [1, 100], got {args.seeds}")
        graph, demand = load_scenario(args.scenario, args.requests, args.rate, args.step_seconds)
    except (ValueError, LoaderError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    policies = POLICIES if args.policy == "all" else tuple(dict.fromkeys(("ia", "ia_ra", args.policy)))
    seeds = TEST_SEEDS[:args.seeds] if args.seeds <= len(TEST_SEEDS) else tuple(range(2000, 2000 + args.seeds))
    print(graph)
    print(f"demand: {demand.rate:g} requests per step; {demand.source}")
    if demand.dropped:
        print(f"request rows dropped: {demand.dropped}")
    thresholds = fleet_thresholds(graph.hops, demand.pickup, demand.dropoff, demand.rate).as_dict()
    print(f"fleet bounds: D_max = {thresholds['D_max']:.1f}, D_min = {thresholds['D_min']:.1f} edges -> "
          f"sufficient m >= {thresholds['sufficient_fleet']}, necessary m >= {thresholds['necessary_fleet']}")
    bar = tqdm(total=len(policies) * len(seeds) * setup.steps, desc="routing", unit="step", disable=not args.progress)
    rows = []
    for policy in policies:
        bar.set_postfix_str(policy)
        rows.append(run_policy(policy, graph, demand, setup, seeds, progress=bar))
    bar.close()
    print(format_rows(rows))
    out = Path(args.out or f"runs/routing-{args.policy}-{Path(args.scenario).stem}")
    write_json(out / "results.json", {"scenario": graph.name, "graph": str(graph), "demand": demand.source,
                                      "setup": setup_dict(setup), "seeds": list(seeds), "thresholds": thresholds,
                                      "rows": rows})
    plot_curves(rows, out / "outstanding.png", thresholds, f"{graph.name}: outstanding requests, mean ± std over {len(seeds)} episodes")
    print(f"wrote {out}/results.json and {out}/outstanding.png")
    return 0


TASK = RoutingTask()
