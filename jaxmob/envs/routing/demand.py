"""Request demand on a street graph: a rate and pick-up / drop-off distributions.

Two demands are bundled on the real graph. The real one (`real_demand.py`) is
estimated from 2008 San Francisco taxi trips. The modelled one
(`hotspot_demand`), kept for the earlier results, mixes a uniform share over
all intersections with Gaussian hotspots around named places (centre, spread
in metres, weight), normalised per hotspot so a weight is that hotspot's share
of the requests. Pick-ups gather downtown (Financial District, Union Square,
Fisherman's Wharf), drop-offs toward the residential north-west (Marina,
Pacific Heights) and North Beach, so taxis must drive back empty: that
asymmetry is what the Wasserstein term of the fleet bounds measures.

`demand_from_csv` builds the empirical distributions from a request file
(`time, pickup_lat, pickup_lon, dropoff_lat, dropoff_lon`; the time may be
`pickup_unix` etc., so the shared Cabspotting file reads as it is), snapping
points to the nearest intersection; rows with unreadable fields, points
outside the map's bounds or farther than `max_snap_m` from any intersection,
and times far outside the file's span (beyond 3 interquartile ranges of the
times: a stray row would otherwise stretch the span and shrink the rate) are
dropped and counted by reason (`Demand.dropped`). Times are seconds (any
origin) or date-time strings, read as seconds whatever unit pandas keeps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.errors import LoaderError
from ...core.geometry import haversine_m
from .graph import StreetGraph

# (place, lat, lon, spread in metres, share of the hotspot part)
PICKUP_HOTSPOTS = (("Financial District", 37.7946, -122.3999, 500.0, 0.5),
                   ("Union Square", 37.7880, -122.4075, 400.0, 0.3),
                   ("Fisherman's Wharf", 37.8080, -122.4177, 400.0, 0.2))
DROPOFF_HOTSPOTS = (("Marina", 37.8030, -122.4370, 600.0, 0.4),
                    ("Pacific Heights", 37.7925, -122.4350, 600.0, 0.3),
                    ("North Beach", 37.8003, -122.4100, 400.0, 0.3))
UNIFORM_SHARE = 0.3  # of each distribution spread evenly over the intersections
DEFAULT_RATE = 0.5  # expected new requests per step (a step is one edge of driving)
CSV_COLUMNS = ("time", "pickup_lat", "pickup_lon", "dropoff_lat", "dropoff_lon")
# the time column: the first of these a file has (the shared Cabspotting trips give `pickup_unix`)
TIME_COLUMNS = ("time", "pickup_unix", "pickup_time", "pickup_datetime", "tpep_pickup_datetime")


@dataclass(frozen=True, eq=False)
class Demand:
    """E[eta] = `rate` requests per step; pick-ups and drop-offs drawn from `pickup` and `dropoff`."""

    rate: float
    pickup: np.ndarray  # (N,) float64, sums to 1
    dropoff: np.ndarray
    source: str = ""
    dropped: dict = field(default_factory=dict)  # reason -> rows dropped (request files)

    def __post_init__(self):
        for name in ("pickup", "dropoff"):
            p = getattr(self, name)
            if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
                raise ValueError(f"{name} must be a probability vector over the intersections")
        if not (np.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number of requests per step, got {self.rate}")


def _mixture(graph: StreetGraph, hotspots, uniform_share: float) -> np.ndarray:
    p = np.full(graph.num_nodes, uniform_share / graph.num_nodes)
    total = sum(h[4] for h in hotspots)
    for _, lat, lon, spread, weight in hotspots:
        g = np.exp(-0.5 * (haversine_m(graph.lat, graph.lon, lat, lon) / spread) ** 2)
        p += (1.0 - uniform_share) * weight / total * g / g.sum()
    return p / p.sum()


def hotspot_demand(graph: StreetGraph, rate: float = DEFAULT_RATE, pickup_hotspots=PICKUP_HOTSPOTS,
                   dropoff_hotspots=DROPOFF_HOTSPOTS, uniform_share: float = UNIFORM_SHARE) -> Demand:
    """The documented demand model (see the module doc) on `graph`."""
    if not 0.0 <= uniform_share <= 1.0:
        raise ValueError(f"uniform_share must lie in [0, 1], got {uniform_share}")
    return Demand(rate=float(rate), pickup=_mixture(graph, pickup_hotspots, uniform_share),
                  dropoff=_mixture(graph, dropoff_hotspots, uniform_share),
                  source=f"hotspot model: {uniform_share:.0%} uniform, pick-ups around "
                  f"{', '.join(h[0] for h in pickup_hotspots)}; drop-offs around {', '.join(h[0] for h in dropoff_hotspots)}")


def request_seconds(column):
    """Seconds of a request file's `time` column: numbers as they are, or date-time strings as
    seconds since the earliest (unit-free: pandas 2 keeps nanoseconds, pandas 3 may keep
    microseconds); NaN where unreadable."""
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().any():
        return numbers.astype(float)
    stamps = pd.to_datetime(column, errors="coerce", format="mixed")
    return (stamps - stamps.min()) / pd.Timedelta(seconds=1)


def read_requests(path, graph: StreetGraph, step_seconds: float = 15.0, max_snap_m: float = 250.0, keep=()):
    """(table, pick-up nodes, drop-off nodes, dropped) of a request file (see the module doc): the
    kept rows with their `seconds` (and the `keep` columns, as text), each end snapped to its
    nearest intersection; `dropped` counts the rows dropped by reason."""
    import pandas as pd

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise LoaderError(f"{path}: {'empty file' if path.is_file() else 'no such file'}")
    try:
        table = pd.read_csv(path, dtype=str)
    except UnicodeDecodeError as e:
        raise LoaderError(f"{path}: not a text CSV file ({e.reason} at byte {e.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError) as e:
        raise LoaderError(f"{path}: not a readable CSV file ({str(e).strip()})") from None
    time_column = next((c for c in TIME_COLUMNS if c in table.columns), None)
    missing = [c for c in CSV_COLUMNS[1:] + tuple(keep) if c not in table.columns] + ([] if time_column else ["time"])
    if missing:
        raise LoaderError(f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(CSV_COLUMNS)}; "
                          f"the time may also be one of {', '.join(TIME_COLUMNS[1:])})")
    if table.empty:
        raise LoaderError(f"{path}: no request rows")
    dropped: dict = {}

    def drop(mask, reason):
        nonlocal table
        if mask.any():
            dropped[reason] = dropped.get(reason, 0) + int(mask.sum())
            table = table[~mask]

    table = table.assign(seconds=request_seconds(table[time_column]))
    for c in CSV_COLUMNS[1:]:
        table[c] = pd.to_numeric(table[c], errors="coerce")
    drop(table[list(CSV_COLUMNS[1:]) + ["seconds"]].isna().any(axis=1).to_numpy(), "unreadable time or coordinate")
    if not table.empty:
        q1, q3 = np.percentile(table["seconds"], [25, 75])
        fence = 3.0 * max(q3 - q1, step_seconds)
        drop(((table["seconds"] < q1 - fence) | (table["seconds"] > q3 + fence)).to_numpy(),
             "time far outside the file's span")
    lo_lat, lo_lon, hi_lat, hi_lon = graph.bounds or (graph.lat.min(), graph.lon.min(), graph.lat.max(), graph.lon.max())
    for end in ("pickup", "dropoff"):
        lat, lon = table[f"{end}_lat"].to_numpy(), table[f"{end}_lon"].to_numpy()
        drop(~((lat >= lo_lat) & (lat <= hi_lat) & (lon >= lo_lon) & (lon <= hi_lon)), f"{end} outside the map")
    nodes = {}
    for end in ("pickup", "dropoff"):
        idx, dist = graph.nearest_node(table[f"{end}_lat"].to_numpy(), table[f"{end}_lon"].to_numpy())
        far = dist > max_snap_m
        nodes[end] = idx
        if far.any():
            dropped[f"{end} over {max_snap_m:g} m from a street"] = int(far.sum())
            keep_rows = ~far
            table = table[keep_rows]
            nodes = {k: v[keep_rows] for k, v in nodes.items()}
    if table.empty:
        raise LoaderError(f"{path}: no request lies on the map (dropped: {dropped})")
    return table[["seconds", *keep]].reset_index(drop=True), nodes["pickup"], nodes["dropoff"], dropped


def demand_from_csv(path, graph: StreetGraph, step_seconds: float = 15.0, max_snap_m: float = 250.0) -> Demand:
    """Empirical demand from a request file (see the module doc): the rate is the kept requests
    per `step_seconds` over the file's time span."""
    table, pick, drop, dropped = read_requests(path, graph, step_seconds, max_snap_m)
    span = float(table["seconds"].max() - table["seconds"].min()) + step_seconds
    n = graph.num_nodes
    return demand_of(np.bincount(pick, minlength=n), np.bincount(drop, minlength=n), len(table) * step_seconds / span,
                     f"{Path(path).name}: {len(table):,} requests over {span / 3600:.2f} h", dropped)


def demand_of(pick_counts, drop_counts, rate: float, source: str, dropped=None) -> Demand:
    """A Demand whose distributions are the pick-up and drop-off counts per intersection, normalised."""
    pick, drop = np.asarray(pick_counts, float), np.asarray(drop_counts, float)
    return Demand(rate=float(rate), pickup=pick / pick.sum(), dropoff=drop / drop.sum(), source=source,
                  dropped=dict(dropped or {}))
