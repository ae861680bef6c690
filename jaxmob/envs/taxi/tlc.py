"""NYC TLC yellow-taxi monthly files, every header era, into trips and taxi cities.

Two eras: up to June 2016 trips carry pickup and drop-off coordinates (three
spellings of the columns: 2009, 2010-2014, 2015-2016); from July 2016 they carry
taxi-zone LocationIDs instead (`taxi_zone_lookup.csv`). Column names are
matched case- and space-insensitively. Bad rows are never silently used: rows
that do not parse, (0, 0) or off-map positions, non-positive or over-day
durations, negative or missing fares and unknown zones are counted drops in
the `TlcReport`. A file with none of the needed columns, or empty, is a
`LoaderError` naming the file and the problem.

`taxi_scenario_from_trips` turns coordinate-era trips into a hex-cell
`TaxiScenario` (the busiest `num_cells` cells): of the first `train_days` days
(the paper: 24 days of January 2016 for training, the last 7 for test), the
last `validation_days` are held out as validation episodes (they choose
checkpoints) and the others estimate the rates; the remaining days are test
episodes, replayed exactly. The zone table carries no coordinates, so
zone-era trips build a scenario only with the user's zone centroids
(`read_zone_centroids`: a CSV of LocationID, latitude, longitude, e.g. computed
from the TLC zone shapefile): each trip is placed at its zones' centroids
(`place_at_zone_centroids`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.errors import LoaderError
from ...core.geometry import project_km
from ...core.geometry import hex_center_km, neighbor_table
from .city import TaxiCity, TaxiScenario

ALIASES = {
    "pickup_time": ("tpep_pickup_datetime", "pickup_datetime", "trip_pickup_datetime"),
    "dropoff_time": ("tpep_dropoff_datetime", "dropoff_datetime", "trip_dropoff_datetime"),
    "pickup_lon": ("pickup_longitude", "start_lon"),
    "pickup_lat": ("pickup_latitude", "start_lat"),
    "dropoff_lon": ("dropoff_longitude", "end_lon"),
    "dropoff_lat": ("dropoff_latitude", "end_lat"),
    "pickup_zone": ("pulocationid",),
    "dropoff_zone": ("dolocationid",),
    "fare": ("fare_amount", "fare_amt"),
    "distance": ("trip_distance",),
}
COMMON = ("pickup_time", "dropoff_time", "fare", "distance")
COORDINATES = ("pickup_lon", "pickup_lat", "dropoff_lon", "dropoff_lat")
ZONES = ("pickup_zone", "dropoff_zone")
NYC_BOX = (40.45, 41.0, -74.3, -73.65)  # lat min, lat max, lon min, lon max: the five boroughs and the airports
MAX_MINUTES = 24 * 60


@dataclass
class TlcReport:
    """What a load kept and dropped, by reason."""

    file: str
    era: str
    rows: int = 0
    kept: int = 0
    dropped: dict = field(default_factory=dict)

    def drop(self, reason: str, mask) -> None:
        n = int(np.sum(mask))
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n


def resolve_columns(header, path="") -> tuple[str, dict]:
    """(era, {canonical name: column in the file}) of a header (any official era)."""
    norm = {str(c).strip().lower(): c for c in header}
    found = {name: next((norm[a] for a in aliases if a in norm), None) for name, aliases in ALIASES.items()}
    missing_common = [n for n in COMMON if found[n] is None]
    has_coords = all(found[n] is not None for n in COORDINATES)
    has_zones = all(found[n] is not None for n in ZONES)
    if missing_common or not (has_coords or has_zones):
        need = list(missing_common) + ([] if has_coords or has_zones else ["pickup/drop-off coordinates or LocationIDs"])
        raise LoaderError(f"{path}: not a TLC yellow trip file, missing column(s) {', '.join(need)} "
                          f"(header: {', '.join(map(str, header))})")
    era = "coordinates" if has_coords else "zones"
    keep = COMMON + (COORDINATES if era == "coordinates" else ZONES)
    return era, {n: found[n] for n in keep}


def read_zone_table(path) -> set:
    """The LocationIDs of `taxi_zone_lookup.csv` (265 zones; 264/265 are 'Unknown')."""
    table = pd.read_csv(path)
    if "LocationID" not in table.columns:
        raise LoaderError(f"{path}: not a taxi-zone table (no LocationID column)")
    known = table[~table["Borough"].astype(str).str.strip().isin(["Unknown", "nan"])]
    return set(int(z) for z in known["LocationID"])


def read_trips(path, *, zones=None) -> tuple[pd.DataFrame, TlcReport]:
    """Trips of one TLC yellow file: pickup_time, dropoff_time, minutes, fare,
    distance, and the coordinates or zones of the era, with bad rows dropped
    and counted. `zones`: the known LocationIDs (`read_zone_table`) for zone-era files."""
    path = Path(path)
    if not path.exists():
        raise LoaderError(f"{path}: no such file")
    try:
        header = pd.read_csv(path, nrows=0).columns
    except pd.errors.EmptyDataError:
        raise LoaderError(f"{path}: the file is empty") from None
    era, cols = resolve_columns(header, path)
    with open(path, "rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    raw = pd.read_csv(path, usecols=list(cols.values()), dtype=str, on_bad_lines="skip", skipinitialspace=True)
    raw = raw.rename(columns={v: k for k, v in cols.items()})
    report = TlcReport(file=str(path), era=era, rows=max(lines - 1, 0))
    report.drop("malformed rows", np.ones(max(lines - 1 - len(raw), 0)))
    out = pd.DataFrame({"pickup_time": pd.to_datetime(raw["pickup_time"], errors="coerce"),
                        "dropoff_time": pd.to_datetime(raw["dropoff_time"], errors="coerce")})
    for name in ("fare", "distance") + (COORDINATES if era == "coordinates" else ZONES):
        out[name] = pd.to_numeric(raw[name], errors="coerce")
    bad_time = out["pickup_time"].isna() | out["dropoff_time"].isna()
    report.drop("unparseable times", bad_time)
    minutes = (out["dropoff_time"] - out["pickup_time"]).dt.total_seconds() / 60.0
    bad_duration = ~bad_time & ~((minutes > 0) & (minutes <= MAX_MINUTES))
    report.drop("non-positive or over-24h durations", bad_duration)
    bad_fare = ~(out["fare"] >= 0)
    report.drop("negative or missing fares", bad_fare & ~bad_time & ~bad_duration)
    ok = ~bad_time & ~bad_duration & ~bad_fare
    if era == "coordinates":
        lat0, lat1, lon0, lon1 = NYC_BOX
        zero = ((out["pickup_lat"] == 0) & (out["pickup_lon"] == 0)) | ((out["dropoff_lat"] == 0) & (out["dropoff_lon"] == 0))
        inside = out["pickup_lat"].between(lat0, lat1) & out["pickup_lon"].between(lon0, lon1) & \
            out["dropoff_lat"].between(lat0, lat1) & out["dropoff_lon"].between(lon0, lon1)
        report.drop("(0, 0) positions", ok & zero)
        report.drop("missing or off-map positions", ok & ~zero & ~inside)
        ok &= inside
    else:
        known = out["pickup_zone"].notna() & out["dropoff_zone"].notna()
        if zones is not None:
            known &= out["pickup_zone"].isin(zones) & out["dropoff_zone"].isin(zones)
        report.drop("unknown zones", ok & ~known)
        ok &= known
    out["minutes"] = minutes
    out = out[ok].reset_index(drop=True)
    report.kept = len(out)
    return out, report


def read_trips_many(paths, *, zones=None) -> tuple[pd.DataFrame, list]:
    """`read_trips` of several monthly files, concatenated (all of one era)."""
    frames, reports = [], []
    for p in paths:
        df, rep = read_trips(p, zones=zones)
        frames.append(df)
        reports.append(rep)
    eras = {r.era for r in reports}
    if len(eras) > 1:
        raise LoaderError(f"files of both eras ({', '.join(sorted(eras))}) cannot make one scenario")
    return pd.concat(frames, ignore_index=True), reports


def hex_cell_of(xy_km: np.ndarray, size_km: float) -> np.ndarray:
    """Axial (q, r) of the pointy-top hex containing each point (inverse of `hex_center_km`)."""
    r = -xy_km[:, 1] / (size_km * np.sqrt(3.0) / 2.0)
    q = xy_km[:, 0] / size_km - r / 2.0
    x, z = q, r
    y = -x - z
    rx, ry, rz = np.round(x), np.round(y), np.round(z)
    dx, dy, dz = np.abs(rx - x), np.abs(ry - y), np.abs(rz - z)
    fix_x = (dx > dy) & (dx > dz)
    fix_z = ~fix_x & (dz >= dy)
    rx = np.where(fix_x, -ry - rz, rx)
    rz = np.where(fix_z, -rx - ry, rz)
    return np.stack([rx, rz], 1).astype(np.int64)


def read_zone_centroids(path) -> dict:
    """{LocationID: (lat, lon)} from a CSV with columns LocationID, latitude (or lat),
    longitude (or lon); a missing column, a duplicate id or a non-finite or
    off-map coordinate is a LoaderError naming the row."""
    path = Path(path)
    if not path.is_file():
        raise LoaderError(f"{path}: no such file")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise LoaderError(f"{path}: the file is empty") from None
    norm = {str(c).strip().lower(): c for c in table.columns}
    cols = [next((norm[a] for a in names if a in norm), None)
            for names in (("locationid",), ("latitude", "lat"), ("longitude", "lon", "lng"))]
    if None in cols:
        raise LoaderError(f"{path}: zone centroids need columns LocationID, latitude, longitude "
                          f"(header: {', '.join(map(str, table.columns))})")
    ids = pd.to_numeric(table[cols[0]], errors="coerce")
    lat, lon = (pd.to_numeric(table[c], errors="coerce") for c in cols[1:])
    lat0, lat1, lon0, lon1 = NYC_BOX
    bad = ids.isna() | ~lat.between(lat0, lat1) | ~lon.between(lon0, lon1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise LoaderError(f"{path}: row {row + 2} has a missing id or a missing, non-finite or off-map coordinate "
                          f"({table.iloc[row].to_dict()})")
    if ids.duplicated().any():
        raise LoaderError(f"{path}: zone {int(ids[ids.duplicated()].iloc[0])} appears twice")
    return {int(i): (float(a), float(b)) for i, a, b in zip(ids, lat, lon)}


def place_at_zone_centroids(trips: pd.DataFrame, centroids: dict) -> tuple[pd.DataFrame, int]:
    """Zone-era trips with pickup/drop-off coordinates at their zones' centroids,
    and how many trips were dropped because a zone has no centroid."""
    known = trips["pickup_zone"].isin(centroids) & trips["dropoff_zone"].isin(centroids)
    out = trips[known].copy()
    for end in ("pickup", "dropoff"):
        zone = out[f"{end}_zone"].astype(int)
        out[f"{end}_lat"] = zone.map(lambda z: centroids[z][0]).astype(float)
        out[f"{end}_lon"] = zone.map(lambda z: centroids[z][1]).astype(float)
    return out.reset_index(drop=True), int((~known).sum())


def taxi_scenario_from_trips(trips: pd.DataFrame, *, name: str = "nyc-tlc", num_cells: int = 250,
                             cell_km: float = 1.0, train_days: int = 24, validation_days: int = 3,
                             steps_per_day: int = 144, speed_kmh: float = 18.0, fleet: int = 8000) -> TaxiScenario:
    """A `TaxiScenario` from coordinate-era trips (see the module doc for the day split).

    Cells: the `num_cells` hex cells with the most pickups; trips starting or
    ending elsewhere are dropped (counted in the provenance). Rates: mean orders
    per step of day and cell over the estimation days; destinations per hour
    and origin from the same days (a uniform prior of 0.01 trips per pair keeps
    every destination possible); trip steps and fares: per-pair medians of the
    estimation days where a pair has 3+ trips, else distance-based. Validation
    and test episodes: each day's order counts per step and cell."""
    if "pickup_lat" not in trips.columns:
        raise LoaderError("zone-era trips (LocationIDs) carry no coordinates: a hex city needs coordinate-era files "
                          "(2009 - June 2016) or zone centroids (--zone-centroids)")
    if trips.empty:
        raise LoaderError("no usable trips to build a taxi city from")
    cells, o, d = busiest_cells(trips, num_cells, cell_km)
    inside = (o >= 0) & (d >= 0)
    day = trips["pickup_time"].dt.normalize()
    dates = sorted(day.unique())
    if not 0 <= validation_days < train_days:
        raise ValueError(f"validation_days must lie in [0, train_days={train_days}), got {validation_days}")
    if len(dates) <= train_days:
        raise LoaderError(f"{len(dates)} days of trips: need more than train_days={train_days} (the rest are test days)")
    estimate = train_days - validation_days
    train_dates, val_dates, test_dates = dates[:estimate], dates[estimate:train_days], dates[train_days:]
    step_minutes = 24 * 60 // steps_per_day
    minute = trips["pickup_time"].dt.hour * 60 + trips["pickup_time"].dt.minute
    step = (minute // step_minutes).to_numpy()
    C = len(cells)
    train = inside & day.isin(train_dates).to_numpy()
    rate = np.zeros((steps_per_day, C))
    np.add.at(rate, (step[train], o[train]), 1.0)
    rate /= len(train_dates)
    hour = trips["pickup_time"].dt.hour.to_numpy()
    od = np.full((24, C, C), 0.01)
    np.add.at(od, (hour[train], o[train], d[train]), 1.0)
    od /= od.sum(-1, keepdims=True)
    trip_km, travel, fare = trip_tables(cells, cell_km, step_minutes, speed_kmh,
                                        lambda km: 3.0 + 1.75 * km, trips[train], o[train], d[train])
    nbr, mask = neighbor_table(cells, "hex")
    episodes = {}
    for date in list(val_dates) + list(test_dates):
        sel = inside & (day == date).to_numpy()
        orders = np.zeros((steps_per_day, C), np.int32)
        np.add.at(orders, (step[sel], o[sel]), 1)
        episodes[str(pd.Timestamp(date).date())] = orders
    city = TaxiCity(name=name, cells=cells, cell_mask=np.ones(C, bool), neighbors=nbr, neighbor_mask=mask,
                    demand_rate=rate, od_prob=od, travel_steps=travel, fare=fare, trip_km=trip_km, cell_km=cell_km,
                    fleet=fleet, provenance=dict(kind="tlc", trips=int(len(trips)), outside_cells=int((~inside).sum()),
                                                 train_days=day_names(train_dates), validation_days=day_names(val_dates),
                                                 test_days=day_names(test_dates), num_cells=C, cell_km=cell_km,
                                                 speed_kmh=speed_kmh))
    return TaxiScenario(city=city, validation_days=tuple(day_names(val_dates)), test_days=tuple(day_names(test_dates)),
                        episodes=episodes)


def busiest_cells(trips: pd.DataFrame, num_cells: int, cell_km: float, drop_offs: bool = False):
    """The `num_cells` hex cells with the most pickups (with `drop_offs`, pickups and
    drop-offs), (C, 2) axial, busiest first, and each trip's origin and destination cell
    index (-1 outside them)."""
    pick = np.stack([trips["pickup_lat"], trips["pickup_lon"]], 1)
    drop = np.stack([trips["dropoff_lat"], trips["dropoff_lon"]], 1)
    origin = np.median(pick, axis=0)
    pc, dc = hex_cell_of(project_km(pick, origin), cell_km), hex_cell_of(project_km(drop, origin), cell_km)
    cells, counts = np.unique(np.concatenate([pc, dc]) if drop_offs else pc, axis=0, return_counts=True)
    cells = cells[np.argsort(-counts, kind="stable")[:num_cells]]
    index = {tuple(c): i for i, c in enumerate(cells.tolist())}
    o = np.array([index.get(tuple(c), -1) for c in pc.tolist()])
    d = np.array([index.get(tuple(c), -1) for c in dc.tolist()])
    return cells, o, d


def road_km(cells, cell_km: float) -> np.ndarray:
    """(C, C) road km between hex cells: 1.3 x the centres' distance, half a cell within one."""
    xy = hex_center_km(cells, cell_km)
    dist = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    return np.where(dist > 0, dist * 1.3, 0.5 * cell_km)


def trip_tables(cells, cell_km: float, step_minutes: int, speed_kmh: float, fare_of_km, trips, o, d,
                min_trips: int = 3):
    """(trip_km, travel_steps, fare), each (C, C): `road_km`, steps at `speed_kmh`, fares
    `fare_of_km(km)`; then, where a pair
    has `min_trips` or more of `trips` (with origin cells `o`, destinations `d`), the pair's
    median minutes and fare."""
    trip_km = road_km(cells, cell_km)
    travel = np.maximum(1, np.round(trip_km / speed_kmh * 60 / step_minutes)).astype(np.int32)
    fare = np.asarray(fare_of_km(trip_km), np.float64)
    frame = pd.DataFrame({"o": o, "d": d, "minutes": trips["minutes"].to_numpy(), "fare": trips["fare"].to_numpy()})
    med = frame.groupby(["o", "d"]).agg(n=("fare", "size"), minutes=("minutes", "median"), fare=("fare", "median"))
    med = med[med["n"] >= min_trips]
    oo, dd = med.index.get_level_values(0).to_numpy(), med.index.get_level_values(1).to_numpy()
    travel[oo, dd] = np.maximum(1, np.round(med["minutes"].to_numpy() / step_minutes)).astype(np.int32)
    fare[oo, dd] = med["fare"].to_numpy()
    return trip_km, travel, fare


JANUARY_2016_TRIPS = 10_906_858  # yellow-taxi trips in the TLC's January 2016 file (`wc -l` less the header)


def taxi_scenario_from_sample(trips: pd.DataFrame, *, sample_rows: int, month_trips: int, name: str = "nyc-sample",
                              num_cells: int = 250, cell_km: float = 1.0, train_days: int = 24,
                              validation_days=(4, 12, 20), steps_per_day: int = 144, speed_kmh: float = 18.0,
                              fleet: int = 8000, block_hours: int = 3, shrink: float = 50.0, seed: int = 0) -> TaxiScenario:
    """A `TaxiScenario` from a uniform random sample of one month's coordinate-era trips
    (`sample_rows` of the month's `month_trips` rows, so each kept trip stands for
    `month_trips / sample_rows` trips). A sample can estimate where and when trips happen,
    not replay a day, so:

    * cells: the `num_cells` hex cells with the most pickups and drop-offs (a thin sample
      leaves quiet cells without a pickup); trips starting or ending elsewhere are dropped;

    * days: the first `train_days` are training days (the paper: 24 of January 2016), the
      rest test days; the training days at positions `validation_days` (spread over weekdays)
      are held out as validation days and estimate nothing;
    * rates: orders per step and cell = the estimation days' trips per hour of day (spread
      evenly over its steps) x each cell's share of its `block_hours`-hour block, shrunk
      toward the cell's all-day share with `shrink` pseudo-trips, scaled to the month;
    * destinations: one all-day table per origin, its trips plus one pseudo-trip spread by
      the drop-off shares (the sample is too thin for hourly tables);
    * trip times and fares: pair medians where a pair has 3+ sampled trips, else by
      distance, from a least-squares line of the sample's fares on the cells' road km;
    * validation and test episodes: Poisson draws (seeded) from the rates times the day's
      volume (its sampled trips over the estimation days' mean), so a day keeps its level
      (the blizzard of 23-24 January 2016 shows as 0.2-0.4), not its hour-by-hour detail."""
    if "pickup_lat" not in trips.columns:
        raise LoaderError("a taxi city from a sample needs coordinate-era trips (2009 - June 2016)")
    if trips.empty:
        raise LoaderError("no usable trips to build a taxi city from")
    if not 0 < sample_rows <= month_trips:
        raise ValueError(f"need 0 < sample_rows <= month_trips, got {sample_rows:,} and {month_trips:,}")
    if 24 % block_hours:
        raise ValueError(f"block_hours must divide 24, got {block_hours}")
    cells, o, d = busiest_cells(trips, num_cells, cell_km, drop_offs=True)
    inside = (o >= 0) & (d >= 0)
    day = trips["pickup_time"].dt.normalize()
    dates = sorted(day.unique())
    if len(dates) <= train_days:
        raise LoaderError(f"{len(dates)} days of trips: need more than train_days={train_days} (the rest are test days)")
    if not all(0 <= v < train_days for v in validation_days) or len(set(validation_days)) != len(validation_days):
        raise ValueError(f"validation_days must be distinct positions in [0, {train_days}), got {validation_days}")
    val_dates = [dates[v] for v in validation_days]
    train_dates = [x for x in dates[:train_days] if x not in val_dates]
    test_dates = dates[train_days:]
    C, weight = len(cells), month_trips / sample_rows
    est = inside & day.isin(train_dates).to_numpy()
    hour = trips["pickup_time"].dt.hour.to_numpy()
    per_hour = np.bincount(hour[est], minlength=24) * weight / len(train_dates)  # orders per day in each hour
    block = hour // block_hours
    counts = np.zeros((24 // block_hours, C))
    np.add.at(counts, (block[est], o[est]), 1.0)
    all_day = (counts.sum(0) + 0.5) / (counts.sum() + 0.5 * C)  # half a pickup each: no sampled pickup is not none
    share = (counts + shrink * all_day) / (counts.sum(1, keepdims=True) + shrink)
    steps_per_hour = steps_per_day // 24
    step_hour = np.arange(steps_per_day) // steps_per_hour
    rate = (per_hour[step_hour] / steps_per_hour)[:, None] * share[step_hour // block_hours]
    drops = np.bincount(d[est], minlength=C) / est.sum()
    od = np.zeros((C, C))
    np.add.at(od, (o[est], d[est]), 1.0)
    od = (od + drops[None, :] + 1e-6) / (od.sum(1, keepdims=True) + 1.0 + C * 1e-6)
    step_minutes = 24 * 60 // steps_per_day
    slope, intercept = np.polyfit(road_km(cells, cell_km)[o[est], d[est]], trips["fare"].to_numpy()[est], 1)
    trip_km, travel, fare = trip_tables(cells, cell_km, step_minutes, speed_kmh, lambda x: intercept + slope * x,
                                        trips[est], o[est], d[est])
    per_day = day[inside].value_counts()
    mean_day = float(np.mean([per_day.get(x, 0) for x in train_dates]))
    rng = np.random.default_rng(seed)
    episodes, level = {}, {}
    for date in list(val_dates) + list(test_dates):
        name_of_day = str(pd.Timestamp(date).date())
        level[name_of_day] = float(per_day.get(date, 0) / mean_day)
        episodes[name_of_day] = rng.poisson(rate * level[name_of_day]).astype(np.int32)
    nbr, mask = neighbor_table(cells, "hex")
    provenance = dict(kind="tlc-sample", sample_rows=int(sample_rows), month_trips=int(month_trips), kept=int(len(trips)),
                      outside_cells=int((~inside).sum()), trips_per_sampled_trip=weight,
                      estimation_days=day_names(train_dates), validation_days=day_names(val_dates),
                      test_days=day_names(test_dates), day_level=level, num_cells=C, cell_km=cell_km,
                      speed_kmh=speed_kmh, block_hours=block_hours, shrink=shrink, fare_per_km=float(slope),
                      fare_base=float(intercept), seed=seed,
                      estimated="rates (hour x cell block shares), destinations (all-day), fares and trip times "
                                "from a uniform sample; episodes are Poisson draws at each day's sampled volume")
    city = TaxiCity(name=name, cells=cells, cell_mask=np.ones(C, bool), neighbors=nbr, neighbor_mask=mask,
                    demand_rate=rate, od_prob=np.broadcast_to(od, (24, C, C)), travel_steps=travel, fare=fare,
                    trip_km=trip_km, cell_km=cell_km, fleet=fleet, provenance=provenance)
    return TaxiScenario(city=city, validation_days=tuple(day_names(val_dates)), test_days=tuple(day_names(test_dates)),
                        episodes=episodes)


def day_names(dates) -> list:
    return [str(pd.Timestamp(x).date()) for x in dates]
