"""Request-level routing as a plug-in (`--env routing`).

Its policies are online planners (IA, IA-RA, rollouts), so there is nothing
to train: `jaxmob train --env routing --alg two_phase` and `jaxmob eval --env
routing --policy two_phase` both run the named policy beside the IA and IA-RA
baselines and write a table, a JSON file and a plot of the outstanding
requests over time. The default scenario, `sf_cabspotting`, replays real
2008 requests of the held-out test days (or `--days validation`) in a window
of the day (`--start-hour`, `--steps`) at a stated `--scale`; `sf_north` is
the same graph with the modelled hotspot demand (seeded episodes); a user's
graph (`.npz`, `.osm`) takes the hotspot model or a request CSV. No setting
is tuned on the test days or seeds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...core.task import Task

DEFAULT_GRAPH = "sf_north"
REAL = "sf_cabspotting"  # real requests on DEFAULT_GRAPH (real_demand.py)


def real_scenario(start_hour: float | None = None, steps: int = 240, step_seconds: float = 15.0,
                  scale: float | None = None, days: str = "test"):
    """(graph, forecast demand, episodes) of the real scenario: the `days` ("test" or "validation")
    replayed in the window, episode k seeded 2000 + k (the fleet's start and the planners' futures)."""
    from . import real_demand
    from .evaluate import Episode
    from .policies import ARRIVAL_SLOTS

    real = real_demand.load()
    start_hour = real_demand.DEFAULT_START_HOUR if start_hour is None else start_hour
    scale = real_demand.DEFAULT_SCALE if scale is None else scale
    if days not in ("test", "validation"):
        raise ValueError(f"days: choose test or validation, got {days!r}")
    demand = real.demand(start_hour, steps, step_seconds, scale)
    names = real.test_days if days == "test" else real.validation_days
    episodes = [Episode(day, 2000 + k, real.replay(day, start_hour, steps, step_seconds, scale, ARRIVAL_SLOTS))
                for k, day in enumerate(names)]
    return real.graph, demand, episodes


def load_scenario(name: str, requests: str | None = None, rate: float | None = None, step_seconds: float = 15.0):
    """(graph, demand): the real scenario (its forecast of the default window), a bundled graph
    name, a `.npz` written by `StreetGraph.save` or an `.osm` file, with the hotspot demand model
    or the demand of a request CSV."""
    from .demand import DEFAULT_RATE, demand_from_csv, hotspot_demand
    from .graph import bundled_graph, load_graph, read_osm

    if name == REAL:
        if requests or rate is not None:
            raise ValueError(f"{REAL} has its own requests and rate; --requests and --rate go with a street graph")
        from . import real_demand

        real = real_demand.load()
        return real.graph, real.demand(step_seconds=step_seconds)
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


def scenario_episodes(scenario: str, steps: int, seeds: int = 5, step_seconds: float = 15.0, start_hour=None, scale=None,
                      days: str = "test", requests=None, rate=None, first_seed: int = 2000):
    """(graph, demand, episodes) of a scenario: the real one's replayed days, or `seeds` seeded
    episodes (first_seed, first_seed + 1, ...) of a graph's demand model or request file."""
    from .evaluate import seed_episodes

    if scenario == REAL:
        if requests or rate is not None:
            raise ValueError(f"{REAL} has its own requests and rate; --requests and --rate go with a street graph")
        return real_scenario(start_hour, steps, step_seconds, scale, days)
    if start_hour is not None or scale is not None:
        raise ValueError(f"--start-hour and --scale go with {REAL}")
    graph, demand = load_scenario(scenario, requests, rate, step_seconds)
    return graph, demand, seed_episodes(range(first_seed, first_seed + seeds))


def add_scenario_arguments(p: argparse.ArgumentParser, default: str = REAL, start_hour: float = 19.0) -> None:
    """`--scenario`, and the real scenario's `--start-hour` and `--scale` (None: the defaults)."""
    p.add_argument("--scenario", default=default, help=f"{REAL} (real 2008 requests, held-out days replayed on "
                   f"{DEFAULT_GRAPH}), a bundled street graph with the hotspot demand model, a saved .npz or an OSM XML file")
    p.add_argument("--start-hour", type=float, help=f"{REAL}: the window's start (local hour, default {start_hour:g})")
    p.add_argument("--scale", type=float, help=f"{REAL}: the share of the real requests kept (default 0.25)")


class RoutingTask(Task):
    raw_data = "sf-streets/SanFranciscoFiltered.osm"
    name = "routing"
    headline = "total_wait"
    reference_policy = "IA-RA"
    higher_is_better = False
    default_scenario = REAL

    def scenarios(self) -> list:
        from .graph import BUNDLED_DIR

        return [REAL] + sorted(p.stem for p in BUNDLED_DIR.glob("*.npz"))

    def knows(self, name: str) -> bool:
        return name in self.scenarios() or name.endswith((".npz", ".osm"))

    def load(self, name: str):
        return load_scenario(name)

    def describe(self, name: str) -> str:
        graph, demand = self.load(name)
        text = f"{graph}\n  demand: {demand.rate:g} requests per step; {demand.source}"
        if name == REAL:
            from . import real_demand

            text += f"\n  {real_demand.load()}"
        return text

    def film(self, built, config, episode, policy, seed: int = 0, scenario=None):
        """The held-out days of the real scenario (test, then validation), or a graph's seeded episodes;
        `seed` is unused (each episode has its own)."""
        from .film import STEP_SECONDS, STEPS, film
        from .real_demand import DEFAULT_START_HOUR

        scenario = scenario or self.default_scenario
        graph, demand, episodes = scenario_episodes(scenario, STEPS, step_seconds=STEP_SECONDS)
        if scenario == REAL:
            episodes += scenario_episodes(scenario, STEPS, step_seconds=STEP_SECONDS, days="validation")[2]
        start = 60.0 * DEFAULT_START_HOUR if scenario == REAL else 0.0
        return film(scenario, graph, demand, episodes, start, episode, policy)

    def planner_cli(self):
        return add_arguments, main

    def write_scenarios(self, args, data, out) -> tuple:
        from . import real_demand
        from .graph import load_graph, write_bundled

        path = write_bundled(data, out)
        print(load_graph(path))
        trips = Path(data).joinpath(*real_demand.RAW_TRIPS)
        if not trips.is_file():
            return [path], {REAL: f"no {trips}"}
        return [path, real_demand.write_bundled(data, out)], {}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .evaluate import POLICIES, add_setup_arguments

    p.add_argument("--policy", "--alg", dest="policy", default="two_phase", choices=POLICIES + ("all",),
                   help="the policy to run beside IA and IA-RA (all: every policy, the full-map rollout included)")
    add_scenario_arguments(p)
    p.add_argument("--days", default="test", choices=("test", "validation"), help=f"{REAL}: the held-out days replayed")
    p.add_argument("--requests", help="request CSV (time, pickup_lat, pickup_lon, dropoff_lat, dropoff_lon; or the "
                   "shared Cabspotting file) for a street graph's demand (default: the documented hotspot model)")
    p.add_argument("--step-seconds", type=float, default=15.0, help="seconds per step (one edge of driving)")
    p.add_argument("--rate", type=float, help="expected new requests per step (default: the model's 0.5, or the file's)")
    p.add_argument("--seeds", type=int, default=3, help="episodes of modelled demand (seeds 2000, 2001, ...)")
    add_setup_arguments(p, steps=240)
    p.add_argument("--out", help="folder for results.json and outstanding.png (default runs/routing-<policy>-<scenario>)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")


def main(args) -> int:
    from tqdm.auto import tqdm

    from ...core.errors import LoaderError
    from .evaluate import (
        POLICIES,
        format_rows,
        plot_curves,
        run_policy,
        setup_dict,
        setup_from_args,
        write_json,
    )
    from .theory import fleet_thresholds

    try:
        setup = setup_from_args(args)
        setup.check()
        if not 1 <= args.seeds <= 100:
            raise ValueError(f"seeds: must lie in [1, 100], got {args.seeds}")
        graph, demand, episodes = scenario_episodes(args.scenario, setup.steps, args.seeds, args.step_seconds,
                                                    args.start_hour, args.scale, args.days, args.requests, args.rate)
    except (ValueError, LoaderError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    policies = POLICIES if args.policy == "all" else tuple(dict.fromkeys(("ia", "ia_ra", args.policy)))
    print(graph)
    print(f"demand: {demand.rate:g} requests per step; {demand.source}")
    if demand.dropped:
        print(f"request rows dropped: {demand.dropped}")
    thresholds = fleet_thresholds(graph.hops, demand.pickup, demand.dropoff, demand.rate).as_dict()
    print(f"fleet bounds: D_max = {thresholds['D_max']:.1f}, D_min = {thresholds['D_min']:.1f} edges -> "
          f"sufficient m >= {thresholds['sufficient_fleet']}, necessary m >= {thresholds['necessary_fleet']}")
    bar = tqdm(total=len(policies) * len(episodes) * setup.steps, desc="routing", unit="step", disable=not args.progress)
    rows = []
    for policy in policies:
        bar.set_postfix_str(policy)
        rows.append(run_policy(policy, graph, demand, setup, progress=bar, episodes=episodes))
    bar.close()
    print(format_rows(rows))
    out = Path(args.out or f"runs/routing-{args.policy}-{Path(args.scenario).stem}")
    write_json(out / "results.json", {"scenario": graph.name, "graph": str(graph), "demand": demand.source,
                                      "setup": setup_dict(setup), "episodes": [e.name for e in episodes],
                                      "thresholds": thresholds, "rows": rows})
    where = f"{args.scenario} ({args.days} days)" if args.scenario == REAL else graph.name
    plot_curves(rows, out / "outstanding.png", thresholds, f"{where}: outstanding requests, mean ± std over {len(episodes)} episodes")
    print(f"wrote {out}/results.json and {out}/outstanding.png")
    return 0


TASK = RoutingTask()
