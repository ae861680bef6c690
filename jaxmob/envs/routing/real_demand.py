"""Real San Francisco requests: the bundled `sf_cabspotting` scenario.

Built by `build` from the shared Cabspotting trips (real Yellow Cab trips of
May-June 2008; CITATION) on the bundled `sf_north` street graph. Each trip's
ends are snapped to the nearest intersection by `demand.read_requests`
(trips off the map or over 250 m from a street are dropped and counted), its
day and hour are the pick-up's local time, and the complete days are split
in time order:

* training days (`TRAIN_DAYS`): pick-up and drop-off counts per hour and
  intersection, summed over the days. The planners' forecast (rollouts'
  sampled futures, two-phase's sector shares) and the fleet thresholds use
  the window's hours of these counts only;
* validation and test days: each kept request (second of the day, pick-up,
  drop-off), replayed as it happened.

The 2008 fleet is one company's share of the city's demand, and at scale 1
the evening peak's fleet thresholds are 53 (necessary) and 99 (sufficient)
taxis, a full-map rollout over which is beyond a CPU; so a scenario runs at
a stated `scale`: every real request is kept with probability `scale` (a
thinning, seeded per day, so a replayed day is the same for every policy)
and the forecast's rate is multiplied by it. A thinned Poisson process is a
Poisson process at the scaled rate, so the scaled city is the same demand
served by a proportionally smaller fleet. The default, DEFAULT_SCALE = 1/4,
puts the 19:00-20:00 thresholds at 14 and 25 taxis.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .demand import Demand, demand_of, read_requests
from .graph import BUNDLED_DIR, StreetGraph, bundled_graph

NAME = "sf_cabspotting"
GRAPH = "sf_north"
RAW_TRIPS = ("sf-cabspotting", "cabspotting-trips-2008.csv.gz")
TRAIN_DAYS = tuple(f"2008-05-{d}" for d in range(18, 32))  # 14 complete days, Sunday 18 May to Saturday 31 May
VALIDATION_DAYS = ("2008-06-01", "2008-06-02", "2008-06-03")
TEST_DAYS = ("2008-06-04", "2008-06-05", "2008-06-06", "2008-06-07", "2008-06-08")
DEFAULT_SCALE = 0.25
DEFAULT_START_HOUR = 19.0  # the evening peak (19:00-20:00 has the most requests of the day)
CITATION = ("M. Piorkowski, N. Sarafijanovic-Djukic, M. Grossglauser, \"A Parsimonious Model of Mobile Partitioned "
            "Networks with Clustering\", COMSNETS 2009; CRAWDAD dataset epfl/mobility (traces of the Cabspotting project)")


@dataclass(frozen=True, eq=False)
class RealRequests:
    """Hourly training counts and the held-out days' requests on one street graph."""

    graph: StreetGraph
    pickup_counts: np.ndarray  # (24, N) int32, summed over the training days
    dropoff_counts: np.ndarray  # (24, N) int32
    train_days: tuple
    days: dict  # held-out day -> (second of the day (R,) int32, pick-up node (R,), drop-off node (R,))
    validation_days: tuple
    test_days: tuple
    dropped: dict  # reason -> trips dropped while building
    source: str

    def _window(self, start_hour: float, steps: int, step_seconds: float) -> tuple[float, float]:
        start = float(start_hour) * 3600.0
        end = start + steps * step_seconds
        if not (0.0 <= start and end <= 86_400.0):
            raise ValueError(f"the window {start_hour:g} h + {steps} steps of {step_seconds:g} s must lie within "
                             f"one day (00:00-24:00)")
        return start, end

    def demand(self, start_hour: float = DEFAULT_START_HOUR, steps: int = 240, step_seconds: float = 15.0,
               scale: float = DEFAULT_SCALE) -> Demand:
        """The forecast of a window from the training days: each hour's counts weighted by its
        overlap with the window; the rate is the training days' mean requests per step x `scale`."""
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"scale must lie in (0, 1], got {scale}")
        start, end = self._window(start_hour, steps, step_seconds)
        hours = np.arange(24) * 3600.0
        overlap = np.clip(np.minimum(hours + 3600.0, end) - np.maximum(hours, start), 0.0, None) / 3600.0
        pick, drop = overlap @ self.pickup_counts, overlap @ self.dropoff_counts
        if pick.sum() == 0:
            raise ValueError(f"no training request falls in the window starting at {start_hour:g} h")
        rate = scale * pick.sum() / len(self.train_days) / steps
        return demand_of(pick, drop, rate, f"{self.source}; forecast of {_clock(start)}-{_clock(end)} from "
                         f"{len(self.train_days)} training days, scale {scale:g}", self.dropped)

    def replay(self, day: str, start_hour: float = DEFAULT_START_HOUR, steps: int = 240, step_seconds: float = 15.0,
               scale: float = DEFAULT_SCALE, slots: int = 6):
        """The day's requests in the window, thinned to `scale` (seeded by the day), as per-step
        arrivals: (count (T,), pick (T, slots), drop (T, slots)); a step's requests beyond `slots`
        keep their count, so the env turns them away and counts them."""
        if day not in self.days:
            raise ValueError(f"{day} is not a held-out day; validation {', '.join(self.validation_days)}, "
                             f"test {', '.join(self.test_days)}")
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"scale must lie in (0, 1], got {scale}")
        start, end = self._window(start_hour, steps, step_seconds)
        second, pick, drop = self.days[day]
        kept = np.random.default_rng(int(day.replace("-", ""))).random(len(second)) < scale
        inside = kept & (second >= start) & (second < end)
        step = ((second[inside] - start) // step_seconds).astype(np.int64)
        count = np.bincount(step, minlength=steps).astype(np.int32)
        rank = np.arange(len(step)) - np.searchsorted(step, step)  # order within the step (seconds are sorted)
        fits = rank < slots
        picks, drops = np.zeros((steps, slots), np.int32), np.zeros((steps, slots), np.int32)
        picks[step[fits], rank[fits]] = pick[inside][fits]
        drops[step[fits], rank[fits]] = drop[inside][fits]
        return count, picks, drops

    def save(self, path: Path) -> Path:
        table = np.concatenate([np.column_stack([np.full(len(sec), i), sec, pick, drop])
                                for i, (sec, pick, drop) in enumerate(self.days.values())]).astype(np.int32)
        np.savez_compressed(path, graph=self.graph.name, source=self.source, pickup_counts=self.pickup_counts,
                            dropoff_counts=self.dropoff_counts, train_days=np.array(self.train_days),
                            validation_days=np.array(self.validation_days), test_days=np.array(self.test_days),
                            held_out_days=np.array(list(self.days)), requests=table,
                            dropped=json.dumps(self.dropped))
        return Path(path)

    def __str__(self) -> str:
        per_day = self.pickup_counts.sum() / len(self.train_days)
        return (f"{NAME}: {self.source}; {len(self.train_days)} training days ({per_day:,.0f} requests a day), "
                f"{len(self.validation_days)} validation and {len(self.test_days)} test days replayed; "
                f"dropped while building: {self.dropped}")


def _clock(seconds: float) -> str:
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}"


def load(path: Path | None = None) -> RealRequests:
    """The bundled scenario (or one written by `build(...).save`)."""
    path = Path(path or BUNDLED_DIR / "demand" / f"{NAME}.npz")
    with np.load(path) as z:
        table = z["requests"]
        days = {}
        for i, day in enumerate(str(d) for d in z["held_out_days"]):
            rows = table[table[:, 0] == i]
            days[day] = (rows[:, 1], rows[:, 2], rows[:, 3])
        return RealRequests(graph=bundled_graph(str(z["graph"])), pickup_counts=z["pickup_counts"],
                            dropoff_counts=z["dropoff_counts"], train_days=tuple(str(d) for d in z["train_days"]),
                            days=days, validation_days=tuple(str(d) for d in z["validation_days"]),
                            test_days=tuple(str(d) for d in z["test_days"]), dropped=json.loads(str(z["dropped"])),
                            source=str(z["source"]))


def build(trips_csv: Path, graph: StreetGraph | None = None) -> RealRequests:
    """The scenario from the shared trips file (see the module doc)."""
    import pandas as pd

    graph = graph or bundled_graph(GRAPH)
    table, pick, drop, dropped = read_requests(trips_csv, graph, keep=("pickup_local",))
    local = pd.to_datetime(table["pickup_local"], errors="coerce", format="mixed")
    day = local.dt.strftime("%Y-%m-%d").to_numpy()
    second = (local.dt.hour * 3600 + local.dt.minute * 60 + local.dt.second).to_numpy()
    used = set(TRAIN_DAYS + VALIDATION_DAYS + TEST_DAYS)
    outside = ~np.isin(day, list(used))
    if outside.any():
        dropped["pick-up on an incomplete day (05-17 from 03:00, 06-09, 06-10) or an unreadable local time"] = int(outside.sum())
    n = graph.num_nodes
    train = np.isin(day, TRAIN_DAYS)
    hour = np.nan_to_num(second, nan=0).astype(np.int64) // 3600
    counts = [np.zeros((24, n), np.int32) for _ in range(2)]
    for c, nodes in zip(counts, (pick, drop)):
        np.add.at(c, (hour[train], nodes[train]), 1)
    days = {}
    for d in VALIDATION_DAYS + TEST_DAYS:
        rows = np.flatnonzero(day == d)
        rows = rows[np.argsort(second[rows], kind="stable")]
        days[d] = (second[rows].astype(np.int32), pick[rows].astype(np.int32), drop[rows].astype(np.int32))
    kept = int(train.sum()) + sum(len(v[0]) for v in days.values())
    source = (f"{Path(trips_csv).name}: {kept:,} real San Francisco taxi trips of May-June 2008 on {graph.name} "
              f"(Cabspotting; {CITATION})")
    return RealRequests(graph=graph, pickup_counts=counts[0], dropoff_counts=counts[1], train_days=TRAIN_DAYS, days=days,
                        validation_days=VALIDATION_DAYS, test_days=TEST_DAYS, dropped=dropped, source=source)


def write_bundled(data_dir: Path, out_dir: Path = BUNDLED_DIR) -> Path:
    """Rebuild the bundled scenario from the shared data folder."""
    out = Path(out_dir) / "demand"
    out.mkdir(parents=True, exist_ok=True)
    graph_path = Path(out_dir) / f"{GRAPH}.npz"
    from .graph import load_graph

    graph = load_graph(graph_path) if graph_path.is_file() else bundled_graph(GRAPH)
    return build(Path(data_dir).joinpath(*RAW_TRIPS), graph).save(out / f"{NAME}.npz")
