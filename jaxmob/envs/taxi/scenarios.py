"""Taxi scenarios: the synthetic NYC-scale city, the bundled AMoD NYC areas, and
files written by `jaxmob scenarios taxi` (from the AMoD files or a user's TLC
monthly files).

AMoD areas as individual-taxi cities (`amod_taxi_city`). The AMoD benchmark's
`scenario_<city>.json` holds real aggregated taxi demand for a 3-hour evening
window (19:00-22:00 for the NYC areas): requests per minute per origin-
destination pair with travel times and prices, the fleet, rebalancing times and
the region adjacency. Read by `jaxmob.envs.taxi.amod_regions.load_amod` (its docstring has
the aggregation rules), then:

* cells = the AMoD regions; neighbours = the file's `topology_graph`, up to six
  per region in order of rebalancing time (a region with more keeps its six
  nearest; the dropped edges are counted in the provenance). Repositioning to a
  neighbour takes one step, as on the hex grid;
* 5-minute steps: the window is 36 steps from step of day 228, and the
  benchmark's travel times (minutes) round up to 1-14 steps;
* demand = the file's rates x the benchmark's calibrated `demand_ratio`;
  destinations per hour from the same rates; fares = the file's prices;
* the files carry no distances: trip km = travel time x `SPEED_KMH`, and a
  repositioning move counts the mean rebalancing time between neighbours x
  `SPEED_KMH` of empty driving (`cell_km`);
* fleet = the file's `totalAcc` for the first hour (the `--num-taxis` default);
* evaluation episodes are seeded Poisson draws from the real rates: the files
  hold one aggregated window, not separate days, so validation and test
  episodes differ in their draws, not in their days.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...core.errors import LoaderError
from .city import TaxiCity, TaxiScenario, drawn_scenario

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
AMOD_AREAS = ("nyc_brooklyn", "nyc_man_south", "nyc_man_middle", "nyc_man_north")
STEP_MINUTES = 5
SPEED_KMH = 18.0
AMOD_VALIDATION_SEEDS = (1000, 1001, 1002)
AMOD_TEST_SEEDS = (2000, 2001, 2002, 2003, 2004)
ARRAYS = ("cells", "cell_mask", "neighbors", "neighbor_mask", "demand_rate", "od_prob", "travel_steps", "fare",
          "trip_km")
SCALARS = ("cell_km", "start_step", "horizon", "fleet")


def amod_name(area: str) -> str:
    return "amod-" + area.replace("_", "-")


JANUARY_2016 = "nyc-jan2016"  # the paper's city and month, from a random sample of its trips
JANUARY_2016_SAMPLE = "nyc-tlc-samples/yellow_tripdata_2016-01-random-sample.csv"


def bundled() -> list:
    """Names of the bundled scenario files (built by `jaxmob scenarios taxi`)."""
    return [amod_name(a) for a in AMOD_AREAS] + [JANUARY_2016]


def graph_neighbors(edges, cost: np.ndarray, R: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(R, 6) neighbour table and mask from directed edges, each region's up to six
    cheapest (by `cost[i, j]`, ties by index); absent slots point at the region
    itself. Returns also how many edges did not fit."""
    nbr = np.tile(np.arange(R)[:, None], (1, 6))
    mask = np.zeros((R, 6), bool)
    dropped = 0
    by_source = {}
    for i, j in edges:
        if i != j:
            by_source.setdefault(i, set()).add(j)
    for i, targets in by_source.items():
        ordered = sorted(targets, key=lambda j: (cost[i, j], j))
        dropped += max(0, len(ordered) - 6)
        for k, j in enumerate(ordered[:6]):
            nbr[i, k], mask[i, k] = j, True
    return nbr, mask, dropped


def amod_taxi_city(path, *, step_minutes: int = STEP_MINUTES, speed_kmh: float = SPEED_KMH) -> TaxiCity:
    """An individual-taxi city from an AMoD scenario file (see the module doc)."""
    from .amod_regions import load_amod

    path = Path(path)
    city, info = load_amod(path, step_minutes=step_minutes)
    R = len(city.region_ids)
    minutes = lambda steps: np.asarray(steps, np.float64) * step_minutes
    reloc_min = minutes(city.relocation_steps)
    nbr, mask, dropped = graph_neighbors(info.topology, reloc_min, R)
    trip_km = minutes(city.travel_steps) * speed_kmh / 60.0
    cell_km = float(reloc_min[np.arange(R)[:, None], nbr][mask].mean() * speed_kmh / 60.0)
    start = info.window_start_min // step_minutes
    horizon = -(-(info.window_end_min - info.window_start_min) // step_minutes)
    fleet = info.fleet_by_hour[min(info.fleet_by_hour)]
    provenance = dict(kind="amod", source=info.source, area=info.city, demand_ratio=info.demand_ratio,
                      window_minutes=[info.window_start_min, info.window_end_min], step_minutes=step_minutes,
                      speed_kmh=speed_kmh, fleet_by_hour=info.fleet_by_hour, topology_edges=len(info.topology),
                      topology_edges_dropped=dropped, region_ids=list(city.region_ids),
                      expected_orders_per_episode=float(np.asarray(city.demand_rate).sum()),
                      validation_seeds=list(AMOD_VALIDATION_SEEDS), test_seeds=list(AMOD_TEST_SEEDS),
                      licence="MIT (graph-meta-rl-for-amod, RL4AMOD); built by jaxmob.envs.taxi.scenarios.amod_taxi_city")
    return TaxiCity(name=amod_name(info.city), cells=np.asarray(city.cell, np.int64), cell_mask=np.ones(R, bool),
                    neighbors=nbr, neighbor_mask=mask, demand_rate=np.asarray(city.demand_rate, np.float64),
                    od_prob=np.asarray(city.od_prob, np.float64), travel_steps=np.asarray(city.travel_steps, np.int32),
                    fare=np.asarray(city.price, np.float64), trip_km=trip_km, cell_km=cell_km, provenance=provenance,
                    start_step=int(start), horizon=int(horizon), fleet=int(fleet))


# ------------------------------------------------------------------ files
def save(city: TaxiCity, path, scenario: TaxiScenario | None = None) -> Path:
    """Write `city` as `<path>.npz` (arrays, and the episodes of `scenario` if
    given) and `<path>.json` (scalars, episode names, provenance). Without a
    scenario the evaluation episodes are seeded draws made at load time."""
    path = Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(getattr(city, k)) for k in ARRAYS}
    arrays["demand_rate"] = arrays["demand_rate"].astype(np.float32)
    arrays["od_prob"] = arrays["od_prob"].astype(np.float32)
    if np.all(arrays["od_prob"] == arrays["od_prob"][:1]):  # one table for every hour: stored once
        arrays["od_prob"] = arrays["od_prob"][:1]
    meta = dict(name=city.name, **{k: getattr(city, k) for k in SCALARS}, provenance=city.provenance)
    if scenario is not None:
        arrays.update({f"episode:{n}": np.asarray(e, np.int32) for n, e in scenario.episodes.items()})
        meta.update(validation_days=list(scenario.validation_days), test_days=list(scenario.test_days))
    np.savez_compressed(path, **arrays)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=_plain) + "\n")
    return path


def _plain(x):
    return x.item() if isinstance(x, np.generic) else str(x)


def load_file(path) -> TaxiScenario:
    """A scenario written by `save` (a clear error for a missing or foreign file)."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise LoaderError(f"{path}: a taxi scenario is a .npz with its .json beside it; "
                          f"{'no such file' if not path.is_file() else 'the .json is missing'}")
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
        data["od_prob"] = np.broadcast_to(data["od_prob"], (24,) + data["od_prob"].shape[1:])
        city = TaxiCity(name=meta["name"], **{k: data[k] for k in ARRAYS}, provenance=meta["provenance"],
                        **{k: kind(meta[k]) for k, kind in zip(SCALARS, (float, int, int, int))})
        episodes = {k.removeprefix("episode:"): v for k, v in data.items() if k.startswith("episode:")}
        if not episodes:  # episodes are seeded draws from the rates
            p = meta["provenance"]
            return drawn_scenario(city, tuple(p["validation_seeds"]), tuple(p["test_seeds"]))
        return TaxiScenario(city=city, validation_days=tuple(meta["validation_days"]),
                            test_days=tuple(meta["test_days"]), episodes=episodes)
    except (KeyError, ValueError, TypeError, json.JSONDecodeError, OSError) as err:
        raise LoaderError(f"{path}: not a taxi scenario written by `jaxmob scenarios taxi` ({err!r})") from None


@lru_cache(maxsize=8)
def load(name: str) -> TaxiScenario:
    """A bundled scenario by name, or a scenario file by path (`*.npz`)."""
    if name == "nyc-hex-synthetic":
        from .city import synthetic_hex_city

        return drawn_scenario(synthetic_hex_city())
    if name in bundled():
        return load_file(SCENARIO_DIR / f"{name}.npz")
    if name.endswith(".npz"):
        return load_file(name)
    raise ValueError(f"unknown taxi scenario {name!r}; available: nyc-hex-synthetic, {', '.join(bundled())}, "
                     "or a .npz written by `jaxmob scenarios taxi`")


def write_bundled(data_dir, out_dir=SCENARIO_DIR) -> list:
    """Rebuild the bundled taxi scenarios: the AMoD areas from `<data_dir>/amod-scenarios`,
    `nyc-jan2016` from the random sample of January 2016 in `<data_dir>/nyc-tlc-samples`."""
    paths = [save(city, Path(out_dir) / city.name)
             for city in (amod_taxi_city(Path(data_dir) / "amod-scenarios" / f"scenario_{a}.json") for a in AMOD_AREAS)]
    return paths + [save_january_2016(data_dir, out_dir)]


def save_january_2016(data_dir, out_dir=SCENARIO_DIR) -> Path:
    """`nyc-jan2016`: the TDEVR paper's 250 hex cells of 1 km and its month, estimated from
    the random sample of January 2016 (`tlc.taxi_scenario_from_sample`), its episodes saved."""
    from .tlc import JANUARY_2016_TRIPS, read_trips, taxi_scenario_from_sample

    trips, report = read_trips(Path(data_dir) / JANUARY_2016_SAMPLE)
    scenario = taxi_scenario_from_sample(trips, sample_rows=report.rows, month_trips=JANUARY_2016_TRIPS,
                                         name=JANUARY_2016)
    scenario.city.provenance["sample_drops"] = dict(report.dropped)
    scenario.city.provenance["source"] = JANUARY_2016_SAMPLE
    return save(scenario.city, Path(out_dir) / JANUARY_2016, scenario)


# ------------------------------------------------------------------ command line
def scenario_arguments(p) -> None:
    """`jaxmob scenarios taxi` flags beyond --data and --out."""
    p.add_argument("--trips", nargs="+", metavar="FILE",
                   help="official TLC yellow monthly CSV file(s) of the coordinate era (2009 - June 2016): build a "
                        "hex-cell scenario from them into --out (a .npz file; default taxi-tlc.npz) instead of "
                        "rebuilding the bundled AMoD scenarios from --data")
    p.add_argument("--zone-centroids", metavar="CSV",
                   help="with zone-era --trips (July 2016 on): LocationID, latitude, longitude of each taxi zone")
    p.add_argument("--num-cells", type=int, default=250, help="hex cells kept, the busiest by pickups (the paper: 250)")
    p.add_argument("--cell-km", type=float, default=1.0, help="hex cell size in km")
    p.add_argument("--train-days", type=int, default=24, help="first days for training (the paper: 24); the rest are test days")
    p.add_argument("--validation-days", type=int, default=3,
                   help="last training days held out to choose checkpoints (not used to estimate rates)")
    p.add_argument("--fleet", type=int, default=8000, help="the scenario's default fleet (--num-taxis 0)")


def scenario_from_trip_files(args, out) -> Path:
    """`jaxmob scenarios taxi --trips FILE...`: a hex-cell scenario from a user's TLC files, written to `out`."""
    from .tlc import place_at_zone_centroids, read_trips_many, read_zone_centroids, taxi_scenario_from_trips

    centroids = read_zone_centroids(args.zone_centroids) if args.zone_centroids else None
    trips, reports = read_trips_many(args.trips, zones=set(centroids) if centroids else None)
    for r in reports:
        drops = ", ".join(f"{n:,} {why}" for why, n in r.dropped.items()) or "none"
        print(f"{r.file}: {r.era} era, {r.rows:,} rows, kept {r.kept:,}; dropped: {drops}")
    if centroids is not None and "pickup_zone" in trips.columns:
        trips, _ = place_at_zone_centroids(trips, centroids)  # zones without a centroid were dropped above
    out = Path(out)
    scenario = taxi_scenario_from_trips(trips, name=out.stem, num_cells=args.num_cells, cell_km=args.cell_km,
                                        train_days=args.train_days, validation_days=args.validation_days,
                                        fleet=args.fleet)
    path = save(scenario.city, out, scenario)
    c = scenario.city
    print(f"{c.num_cells} cells, {c.provenance['outside_cells']:,} trips outside them dropped; estimation days "
          f"{c.provenance['train_days'][0]} .. {c.provenance['train_days'][-1]}, validation "
          f"{', '.join(scenario.validation_days)}, test {', '.join(scenario.test_days)}")
    print(f"train on it: python -m jaxmob train --env taxi --scenario {path}")
    return path
