"""A scenario's station -> region map, so any new day of trips lands on its regions.

The map keeps what built the regions: the stations with their ids, coordinates
and regions, the projection origin, the cell size, the cells and the clip
polygon. A station is placed by id when the map knows it, else by its
coordinates (the cell it falls in, if that cell is a region and the point lies
inside the clip polygon). Anything else is an unknown station: its trips are
dropped and counted, never guessed.
"""
from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .core import project_km
from .regions import BOROUGHS, RegionGrid, in_polygon

UNKNOWN = -1


@dataclass(frozen=True)
class StationMap:
    ids: np.ndarray  # (S,) str
    lat: np.ndarray  # (S,) float64
    lon: np.ndarray  # (S,) float64
    region: np.ndarray  # (S,) int32
    origin: tuple  # (lat, lon) of the projection origin
    cell_km: float
    cells: np.ndarray  # (R, 2) int (col, row) of each region
    clip: str | None

    @classmethod
    def from_grid(cls, grid: RegionGrid, stations: pd.DataFrame, clip: str | None) -> "StationMap":
        """The map of every station the grid kept (`stations`: index id, lat, lon)."""
        ids = np.array(sorted(grid.station_region), dtype=str)
        table = stations.loc[ids]
        return cls(ids=ids, lat=table["lat"].to_numpy(np.float64), lon=table["lon"].to_numpy(np.float64),
                   region=np.array([grid.station_region[i] for i in ids], np.int32), origin=tuple(grid.origin),
                   cell_km=float(grid.cell_km), cells=np.asarray(grid.cells, np.int32), clip=clip)

    @property
    def num_regions(self) -> int:
        return len(self.cells)

    def stations_table(self) -> pd.DataFrame:
        """The mapped stations as a loader station table (for files that carry only ids)."""
        return pd.DataFrame({"lat": self.lat, "lon": self.lon, "name": ""},
                            index=pd.Index(self.ids, name="station_id"))

    def region_of_points(self, lat, lon) -> np.ndarray:
        """(N,) region of each point, UNKNOWN outside every region or the clip polygon (or NaN)."""
        latlon = np.stack([np.asarray(lat, np.float64), np.asarray(lon, np.float64)], axis=-1).reshape(-1, 2)
        out = np.full(len(latlon), UNKNOWN, np.int32)
        ok = np.isfinite(latlon).all(1) & (latlon != 0).all(1)
        if self.clip is not None and ok.any():
            ok[ok] = in_polygon(latlon[ok], BOROUGHS[self.clip])
        if not ok.any():
            return out
        cell = np.floor(project_km(latlon[ok], np.asarray(self.origin)) / self.cell_km).astype(np.int64)
        lookup = {(int(c), int(r)): i for i, (c, r) in enumerate(self.cells.tolist())}
        out[ok] = [lookup.get((int(c), int(r)), UNKNOWN) for c, r in cell]
        return out

    def region_of(self, stations: pd.DataFrame) -> pd.Series:
        """Region of each station of a loader table (index id; lat, lon): by id, else by position."""
        known = dict(zip(self.ids.tolist(), self.region.tolist()))
        by_id = np.array([known.get(str(i), UNKNOWN) for i in stations.index], np.int32)
        by_xy = self.region_of_points(stations["lat"], stations["lon"]) if len(stations) else by_id
        return pd.Series(np.where(by_id != UNKNOWN, by_id, by_xy), index=stations.index.astype(str))

    def map_trips(self, table) -> tuple[pd.DataFrame, dict]:
        """A loader `TripTable` onto the regions: (trips with origin/dest, counts).

        Counts: trips read, mapped, and dropped because a station is unknown to
        the map and lies outside the scenario's regions (`outside_regions`)."""
        region = self.region_of(table.stations)
        trips = table.trips
        origin = trips["start_station"].map(region).fillna(UNKNOWN).astype(np.int64)
        dest = trips["end_station"].map(region).fillna(UNKNOWN).astype(np.int64)
        inside = (origin != UNKNOWN) & (dest != UNKNOWN)
        mapped = trips[inside].assign(origin=origin[inside], dest=dest[inside])
        counts = {"trips": int(len(trips)), "mapped": int(inside.sum()), "outside_regions": int((~inside).sum())}
        return mapped, counts

    # ------------------------------------------------------------- storage
    def to_arrays(self) -> dict:
        return {"stations/id": self.ids.astype(str), "stations/lat": self.lat, "stations/lon": self.lon,
                "stations/region": self.region, "stations/cells": self.cells}

    def to_meta(self) -> dict:
        return {"origin": list(self.origin), "cell_km": self.cell_km, "clip": self.clip}

    @classmethod
    def from_storage(cls, arrays: dict, meta: dict) -> "StationMap":
        return cls(ids=arrays["stations/id"].astype(str), lat=arrays["stations/lat"], lon=arrays["stations/lon"],
                   region=arrays["stations/region"].astype(np.int32), origin=tuple(meta["origin"]),
                   cell_km=float(meta["cell_km"]), cells=arrays["stations/cells"].astype(np.int32), clip=meta["clip"])


def days_in(trips: pd.DataFrame) -> list[str]:
    """The dates (YYYY-MM-DD) on which mapped trips depart, in order."""
    return sorted(trips["start_time"].dt.strftime("%Y-%m-%d").unique().tolist())


def map_day_file(station_map: StationMap, path, *, stations_file=None, days=None,
                 step_minutes: int = 10) -> tuple[dict, dict]:
    """Read a Citi Bike trip file in any official header era onto the map's regions.

    Returns ({date: DayTrips}, report) for the dates in `days` or every day in the file. Files
    that carry only station ids use `stations_file` if given, else the map's own
    stations. Unknown stations, malformed rows and the like are counted in the
    report, never raised; a file with no usable trip raises a LoaderError."""
    from .citibike import LoaderError, detect_schema, read_stations, read_trips, _read_header
    from .estimate import day_trips

    path = Path(path)  # the command line passes a str
    schema = detect_schema(_read_header(path), path)
    stations = None
    if stations_file is not None:
        stations, _ = read_stations(stations_file)
    elif not schema.per_row_coords:
        stations = station_map.stations_table()
    table = read_trips(path, stations)
    trips, counts = station_map.map_trips(table)
    over_day = trips["duration_s"] > 24 * 3600
    trips = trips[~over_day]
    dates = days_in(trips)
    if days is not None:
        missing = [d for d in days if d not in dates]
        if missing:
            raise LoaderError(f"{path}: no mapped trips on {', '.join(missing)}; the file has trips on "
                              f"{', '.join(dates[:10]) or 'no day'}")
        dates = list(days)
    if not dates:
        raise LoaderError(f"{path}: no trip could be mapped onto the scenario's regions ({counts})")
    out = {d: day_trips(trips, d, num_regions=station_map.num_regions, step_minutes=step_minutes) for d in dates}
    report = {"load_report": str(table.report), **counts, "trips_over_24h": int(over_day.sum()),
              "days": {d: out[d].num_trips for d in dates}}
    return out, report
