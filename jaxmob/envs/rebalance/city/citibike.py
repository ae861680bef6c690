"""Loaders for official Citi Bike trip files, whatever header era they come from.

The official monthly files changed their header three times (Title Case 2016-17,
quoted lower case before and after, `ride_id` from 2021), and the compact day files
in `citibike-nyc/` use a fourth layout without coordinates. Every loader here turns
them into one `TripTable` with the same columns, and a `LoadReport` that says how
many rows were read, kept and dropped for which reason, so a scenario built from
real data can state exactly what it left out.

Dropped rows are counted under the first reason that applies, in this order:
'malformed row' (wrong number of fields, or a duration that is not a number),
'unparseable time', 'unknown station' (empty id, or not in the given station
table), 'bad coordinates' (NaN, 0 or out of range; per-row-coordinate schemas
only), 'non-positive duration'. Hence `rows_read == rows_kept + sum(dropped)`.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ....core.errors import LoaderError

DROP_REASONS = ("malformed row", "unparseable time", "unknown station", "bad coordinates", "non-positive duration")
# Time styles seen in official files, tried in order on the values still unparsed:
# ISO (with or without fractional seconds), then the NYC 2014-2016 month/day/year styles.
TIME_FORMATS = ("ISO8601", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M")
MISSING_IDS = ("", "NULL", "null", "NaN", "nan")




@dataclass
class LoadReport:
    """What a loader did with one file (or, merged, with several)."""

    source: str
    schema: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {r: 0 for r in DROP_REASONS})

    def __str__(self) -> str:
        text = f"{self.source} [{self.schema}]: {self.rows_read:,} rows read, {self.rows_kept:,} kept"
        drops = [f"{n:,} {reason}" for reason, n in self.dropped.items() if n]
        return text + ("; dropped: " + ", ".join(drops) if drops else "; nothing dropped")

    @staticmethod
    def merge(reports: Iterable["LoadReport"]) -> "LoadReport":
        """One report for several files: counts add up, sources and schemas are listed."""
        reports = list(reports)
        dropped = {r: 0 for r in DROP_REASONS}
        for rep in reports:
            for reason, n in rep.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + n
        schemas = list(dict.fromkeys(rep.schema for rep in reports))
        return LoadReport(
            source=", ".join(rep.source for rep in reports), schema="+".join(schemas),
            rows_read=sum(rep.rows_read for rep in reports), rows_kept=sum(rep.rows_kept for rep in reports),
            dropped=dropped,
        )


@dataclass
class TripTable:
    """Trips in one canonical layout, the stations they use, and how they were loaded.

    trips: start_time, end_time (datetime64[ns], naive local time), duration_s (float64),
    start_station, end_station (str). stations: index station_id (str); lat, lon, name.
    """

    trips: pd.DataFrame
    stations: pd.DataFrame
    report: LoadReport


# ------------------------------------------------------------------ schemas
@dataclass(frozen=True)
class _Schema:
    name: str
    columns: dict  # role -> header name
    per_row_coords: bool

    def matches(self, header: Sequence[str]) -> bool:
        return set(self.columns.values()) <= set(header)


def _endpoint_columns(start_id, start_name, start_lat, start_lon, end_id, end_name, end_lat, end_lon) -> dict:
    return dict(start_id=start_id, start_name=start_name, start_lat=start_lat, start_lon=start_lon,
                end_id=end_id, end_name=end_name, end_lat=end_lat, end_lon=end_lon)


def _legacy_columns(t) -> dict:
    """The pre-2021 layouts differ only in letter case and spacing; `t` spells a name."""
    return dict(
        duration=t("trip duration"), start_time=t("start time"), end_time=t("stop time"),
        **_endpoint_columns(*(t(f"{end} station {what}") for end in ("start", "end")
                              for what in ("id", "name", "latitude", "longitude"))),
    )


SCHEMAS = (
    _Schema("ride-id-2021", dict(
        start_time="started_at", end_time="ended_at",
        **_endpoint_columns("start_station_id", "start_station_name", "start_lat", "start_lng",
                            "end_station_id", "end_station_name", "end_lat", "end_lng")), True),
    _Schema("title-case", _legacy_columns(lambda s: s.title().replace(" Id", " ID")), True),
    _Schema("legacy-lower", _legacy_columns(
        lambda s: s.replace("trip duration", "tripduration").replace("start time", "starttime")
        .replace("stop time", "stoptime")), True),
    _Schema("compact-day", dict(start_time="start_ts", duration="duration",
                                start_id="start_station", end_id="end_station"), False),
)
STATIONS_COLUMNS = ("station_id", "latitude", "longitude", "name")


def _expected_headers() -> str:
    return "; ".join(f"{s.name}: {', '.join(s.columns.values())}" for s in SCHEMAS)


def detect_schema(header: Sequence[str], path="<header>") -> _Schema:
    """The first known schema whose columns all appear in `header`."""
    for schema in SCHEMAS:
        if schema.matches(header):
            return schema
    raise LoaderError(f"{path}: header matches no known Citi Bike schema; got columns {list(header)}; "
                      f"expected one of these column sets: {_expected_headers()}")


# ------------------------------------------------------------------ raw rows
def _read_header(path: Path) -> list[str]:
    """The header fields; raises LoaderError for a missing or empty file."""
    path = Path(path)
    if not path.is_file():
        raise LoaderError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise LoaderError(f"{path}: file is empty (0 bytes)")
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        for row in csv.reader(fh):
            if row:
                return [c.strip() for c in row]
    raise LoaderError(f"{path}: file is empty (no header line)")


def _field_counts(path: Path) -> np.ndarray:
    """Fields per non-blank data record, counted with the csv module (pandas pads
    short rows silently, so it cannot tell them from rows with empty trailing fields)."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        counts = np.fromiter((len(r) if len(r) > 1 or (r and r[0].strip()) else 0
                              for r in csv.reader(fh)), dtype=np.int64)
    counts = counts[counts > 0]  # blank or whitespace-only lines: pandas skips them too
    return counts[1:]  # the header


def _read_rows(path: Path, header: list[str]) -> tuple[pd.DataFrame, int, int]:
    """All well-formed rows as strings, the number of records read and the number
    of malformed ones (wrong field count) left out."""
    counts = _field_counts(path)
    n = len(header)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip", engine="c",
                        encoding="utf-8-sig", encoding_errors="replace", skipinitialspace=False)
    frame.columns = header
    parsed = counts[counts <= n]  # pandas skips rows with too many fields, pads short ones
    if len(parsed) != len(frame):
        frame, parsed = _read_rows_csv(path, header), counts[counts == n]
    frame = frame.loc[parsed == n].reset_index(drop=True)
    return frame, int(len(counts)), int(np.sum(counts != n))


def _read_rows_csv(path: Path, header: list[str]) -> pd.DataFrame:
    """Slow but certain fallback for when pandas and the csv module disagree on rows."""
    n = len(header)
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        rows = [r for r in csv.reader(fh) if len(r) > 1 or (r and r[0].strip())]
    return pd.DataFrame([r for r in rows[1:] if len(r) == n], columns=header, dtype=str)


# ------------------------------------------------------------------ parsing
def parse_times(values: pd.Series) -> pd.Series:
    """Timestamps (datetime64[ns], NaT where unparseable) from any official style,
    trying each format only on the values the previous ones left unparsed."""
    values = values.astype(str).str.strip()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    todo = values != ""
    for fmt in TIME_FORMATS:
        if not todo.any():
            break
        parsed = pd.to_datetime(values[todo], format=fmt, errors="coerce")
        if getattr(parsed.dt, "tz", None) is not None:  # keep the files' naive local time
            parsed = parsed.dt.tz_localize(None)
        out.loc[todo] = parsed.astype("datetime64[ns]")
        todo &= out.isna()
    return out


def station_ids(values) -> pd.Series:
    """Station ids as clean strings: '3186' stays '3186', never '3186.0'; missing -> ''."""
    s = pd.Series(values)
    if pd.api.types.is_float_dtype(s.dtype):  # e.g. a station table read without dtype=str
        s = s.map(lambda v: "" if pd.isna(v) else str(int(v)) if float(v).is_integer() else str(v))
    s = s.astype(str).str.strip()
    return s.where(~s.isin(MISSING_IDS), "")


def _coords(frame: pd.DataFrame, lat_col: str, lon_col: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Latitude, longitude (float64) and whether the pair is unusable (NaN, 0, out of range)."""
    lat = pd.to_numeric(frame[lat_col], errors="coerce")
    lon = pd.to_numeric(frame[lon_col], errors="coerce")
    bad = lat.isna() | lon.isna() | (lat == 0) | (lon == 0) | (lat.abs() > 90) | (lon.abs() > 180)
    return lat, lon, bad


class _Dropper:
    """Applies drop reasons in order, counting each dropped row once."""

    def __init__(self, n: int):
        self.keep = np.ones(n, dtype=bool)
        self.dropped = {r: 0 for r in DROP_REASONS}

    def drop(self, reason: str, bad) -> None:
        bad = np.asarray(bad, dtype=bool)
        self.dropped[reason] += int(np.sum(self.keep & bad))
        self.keep &= ~bad


def _check_stations_table(stations: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("lat", "lon") if c not in stations.columns]
    if missing:
        raise LoaderError(f"stations table lacks columns {missing}; build it with read_stations()")
    out = stations.copy()
    out.index = pd.Index(station_ids(out.index.to_series()).to_numpy(), name="station_id")
    if "name" not in out.columns:
        out["name"] = ""
    return out


def _stations_from_endpoints(ends: pd.DataFrame) -> pd.DataFrame:
    """One row per station id: median coordinates (they jitter row to row in 2021+
    files) and the most common name (ties: alphabetical)."""
    if ends.empty:
        return _empty_stations()
    coords = ends.groupby("station_id", sort=True)[["lat", "lon"]].median()
    names = (ends.groupby(["station_id", "name"]).size().rename("n").reset_index()
             .sort_values(["station_id", "n", "name"], ascending=[True, False, True])
             .drop_duplicates("station_id").set_index("station_id")["name"])
    coords["name"] = names.reindex(coords.index).fillna("")
    coords.index = coords.index.astype(str)
    return coords


def _empty_stations() -> pd.DataFrame:
    return pd.DataFrame({"lat": pd.Series(dtype="float64"), "lon": pd.Series(dtype="float64"),
                         "name": pd.Series(dtype=str)}, index=pd.Index([], dtype=str, name="station_id"))


# ------------------------------------------------------------------ one file
def _load(path, stations: pd.DataFrame | None):
    """Parse one trip file: (trips, endpoint rows for a station table or None, report)."""
    path = Path(path)
    header = _read_header(path)
    schema = detect_schema(header, path)
    if not schema.per_row_coords and stations is None:
        raise LoaderError(f"{path}: {schema.name} files carry no station coordinates; "
                          f"pass stations=read_stations(<stations csv>)[0]")
    frame, rows_read, malformed = _read_rows(path, header)
    col = {role: frame[name] for role, name in schema.columns.items()}
    dropper = _Dropper(len(frame))

    start = parse_times(col["start_time"])
    if "duration" in col:
        duration = pd.to_numeric(col["duration"].str.strip(), errors="coerce").astype("float64")
        dropper.drop("malformed row", duration.isna())
    if "end_time" in col:
        end = parse_times(col["end_time"])
        dropper.drop("unparseable time", start.isna() | end.isna())
    else:
        dropper.drop("unparseable time", start.isna())
        end = start + pd.to_timedelta(duration.fillna(0), unit="s")
    if "duration" not in col:
        duration = (end - start).dt.total_seconds()

    sid, eid = station_ids(col["start_id"]), station_ids(col["end_id"])
    unknown = (sid == "") | (eid == "")
    if stations is not None:
        known = stations.index
        unknown |= ~sid.isin(known) | ~eid.isin(known)
    dropper.drop("unknown station", unknown)

    ends = None
    if schema.per_row_coords:
        slat, slon, sbad = _coords(frame, schema.columns["start_lat"], schema.columns["start_lon"])
        elat, elon, ebad = _coords(frame, schema.columns["end_lat"], schema.columns["end_lon"])
        dropper.drop("bad coordinates", sbad | ebad)
    dropper.drop("non-positive duration", ~(duration > 0))

    keep = dropper.keep
    trips = pd.DataFrame({
        "start_time": start[keep].astype("datetime64[ns]"), "end_time": end[keep].astype("datetime64[ns]"),
        "duration_s": duration[keep].astype("float64"),
        "start_station": sid[keep].astype(str), "end_station": eid[keep].astype(str),
    }).reset_index(drop=True)
    if schema.per_row_coords:
        ends = pd.DataFrame({
            "station_id": pd.concat([sid[keep], eid[keep]], ignore_index=True),
            "lat": pd.concat([slat[keep], elat[keep]], ignore_index=True),
            "lon": pd.concat([slon[keep], elon[keep]], ignore_index=True),
            "name": pd.concat([col["start_name"][keep], col["end_name"][keep]], ignore_index=True).str.strip(),
        })
    dropper.dropped["malformed row"] += malformed
    report = LoadReport(source=path.name, schema=schema.name, rows_read=rows_read,
                        rows_kept=int(keep.sum()), dropped=dropper.dropped)
    return trips, ends, report


# ------------------------------------------------------------------ public API
def read_stations(path) -> tuple[pd.DataFrame, LoadReport]:
    """A `station_id,latitude,longitude,name` file as a station table (index station_id
    str; lat, lon, name); rows with unusable coordinates are dropped and counted."""
    path = Path(path)
    header = _read_header(path)
    missing = [c for c in STATIONS_COLUMNS[:3] if c not in header]
    if missing:
        raise LoaderError(f"{path}: station file lacks columns {missing}; got {header}; "
                          f"expected {', '.join(STATIONS_COLUMNS)}")
    frame, rows_read, malformed = _read_rows(path, header)
    dropper = _Dropper(len(frame))
    ids = station_ids(frame["station_id"])
    dropper.drop("unknown station", ids == "")
    lat, lon, bad = _coords(frame, "latitude", "longitude")
    dropper.drop("bad coordinates", bad)
    keep = dropper.keep
    names = frame["name"].str.strip() if "name" in frame.columns else pd.Series("", index=frame.index)
    table = pd.DataFrame({"lat": lat[keep].to_numpy("float64"), "lon": lon[keep].to_numpy("float64"),
                          "name": names[keep].astype(str).to_numpy()},
                         index=pd.Index(ids[keep].astype(str).to_numpy(), name="station_id"))
    table = table[~table.index.duplicated(keep="last")]  # a later line revises an id
    dropper.dropped["malformed row"] += malformed
    report = LoadReport(source=path.name, schema="stations", rows_read=rows_read,
                        rows_kept=int(keep.sum()), dropped=dropper.dropped)
    return table, report


def read_trips(path, stations: pd.DataFrame | None = None) -> TripTable:
    """One trip file in any known schema (detected from its header).

    Files with per-row coordinates build their own station table unless `stations`
    is given, in which case trips at stations missing from it are 'unknown station'.
    Compact day files need `stations` (from `read_stations`).
    """
    return read_trips_many([path], stations)


def read_trips_many(paths: Iterable, stations: pd.DataFrame | None = None) -> TripTable:
    """Several trip files as one table, with a merged report; the station table is
    `stations` if given, else built from the coordinates on every file's rows."""
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise LoaderError("read_trips_many: no files given")
    given = _check_stations_table(stations) if stations is not None else None
    parts = [_load(p, given) for p in paths]
    trips = pd.concat([t for t, _, _ in parts], ignore_index=True)
    if given is not None:
        table = given
    else:
        table = _stations_from_endpoints(pd.concat([e for _, e, _ in parts], ignore_index=True))
    report = parts[0][2] if len(parts) == 1 else LoadReport.merge(r for _, _, r in parts)
    return TripTable(trips=trips, stations=table, report=report)
