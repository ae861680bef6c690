"""Citi Bike loaders: every header era of the real files, and every kind of bad input."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxmob.envs.rebalance.city.citibike import (DROP_REASONS, LoaderError, LoadReport, TripTable, read_stations, read_trips,
                                  read_trips_many, _read_rows, _read_rows_csv, _read_header)

JC_SCHEMAS = {
    "JC-201702-citibike-tripdata.csv": "title-case",
    "JC-201704-citibike-tripdata.csv": "legacy-lower",
    "JC-201901-citibike-tripdata.csv": "legacy-lower",
    "JC-202101-citibike-tripdata.csv": "legacy-lower",
    "JC-202102-citibike-tripdata.csv": "ride-id-2021",
    "JC-202104-citibike-tripdata.csv": "ride-id-2021",
}
NYC_DAYS = ["trips-20160910-11.csv"] + [f"trips-2017-{d}.csv" for d in (
    "04-01", "04-18", "05-21", "05-22", "06-03", "06-04", "06-05", "06-09", "07-15", "07-16")]

LEGACY_HEADER = ('"tripduration","starttime","stoptime","start station id","start station name",'
                 '"start station latitude","start station longitude","end station id","end station name",'
                 '"end station latitude","end station longitude","bikeid","usertype","birth year","gender"')
RIDE_HEADER = ("ride_id,rideable_type,started_at,ended_at,start_station_name,start_station_id,end_station_name,"
               "end_station_id,start_lat,start_lng,end_lat,end_lng,member_casual")
COMPACT_HEADER = "start_ts,duration,start_station,end_station,subscriber,birth_year"


def legacy_row(dur="300", start="2017-04-01 08:00:00", stop="2017-04-01 08:05:00", sid="3186", eid="3203",
               slat="40.7196", slon="-74.0431", elat="40.7276", elon="-74.0442") -> str:
    return f'{dur},"{start}","{stop}",{sid},"Grove St PATH",{slat},{slon},{eid},"Hamilton Park",{elat},{elon},1,"Subscriber",1980,1'


def ride_row(rid="A", start="2021-04-01 08:00:00", end="2021-04-01 08:10:00", sid="JC105", eid="JC034",
             slat="40.7352", slon="-74.0469", elat="40.7347", elon="-74.0504") -> str:
    return f"{rid},docked_bike,{start},{end},Hoboken Ave,{sid},Christ Hospital,{eid},{slat},{slon},{elat},{elon},member"


def write(tmp_path: Path, name: str, header: str, rows: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def check_invariants(table: TripTable) -> None:
    rep = table.report
    assert rep.rows_read == rep.rows_kept + sum(rep.dropped.values())
    assert len(table.trips) == rep.rows_kept
    assert list(table.trips.columns) == ["start_time", "end_time", "duration_s", "start_station", "end_station"]
    assert table.trips["start_time"].dtype == "datetime64[ns]"
    assert table.trips["end_time"].dtype == "datetime64[ns]"
    assert table.trips["duration_s"].dtype == np.float64
    assert (table.trips["duration_s"] > 0).all()
    for c in ("start_station", "end_station"):
        assert pd.api.types.is_string_dtype(table.trips[c])
        assert table.trips[c].map(type).eq(str).all()
        assert not table.trips[c].str.fullmatch(r"\d+\.0").any()
        assert table.trips[c].isin(table.stations.index).all()
    assert table.stations.index.name == "station_id"
    assert table.stations["lat"].dtype == np.float64 and table.stations["lon"].dtype == np.float64


def raw_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------ real files
@pytest.mark.parametrize("name", sorted(JC_SCHEMAS))
def test_every_jc_file_loads(shared_data, name):
    path = shared_data / "citibike-jc" / name
    table = read_trips(path)
    check_invariants(table)
    rep = table.report
    assert rep.schema == JC_SCHEMAS[name]
    assert rep.source == name
    assert rep.rows_read == len(raw_rows(path))
    assert rep.rows_kept > 0.95 * rep.rows_read
    assert table.trips["start_time"].dt.year.between(2017, 2021).all()
    # stations sit in/near Jersey City and Manhattan
    assert table.stations["lat"].between(40.6, 40.9).all()
    assert table.stations["lon"].between(-74.2, -73.9).all()


def test_2021_drops_dockless_rows_and_uses_median_coordinates(shared_data):
    path = shared_data / "citibike-jc" / "JC-202102-citibike-tripdata.csv"
    rows = raw_rows(path)
    no_id = sum(1 for r in rows if not r["start_station_id"] or not r["end_station_id"])
    table = read_trips(path)
    assert no_id > 0 and table.report.dropped["unknown station"] == no_id
    # median of every coordinate seen for JC105, computed from the raw rows here
    lats = [float(r[f"{e}_lat"]) for r in rows for e in ("start", "end")
            if r[f"{e}_station_id"] == "JC105" and r["start_station_id"] and r["end_station_id"]
            and r["started_at"] < r["ended_at"]]
    assert len(set(lats)) > 1  # the raw coordinates really do jitter
    assert table.stations.loc["JC105", "lat"] == pytest.approx(np.median(lats))
    assert table.stations.loc["JC105", "name"] == "Hoboken Ave at Monmouth St"
    # durations come from the two timestamps
    np.testing.assert_allclose(table.trips["duration_s"],
                               (table.trips["end_time"] - table.trips["start_time"]).dt.total_seconds())


def test_legacy_fractional_seconds_kept(shared_data):
    table = read_trips(shared_data / "citibike-jc" / "JC-201901-citibike-tripdata.csv")
    first = table.trips.iloc[0]
    assert first["start_time"] == pd.Timestamp("2019-01-01 03:09:09.711")
    assert first["start_station"] == "3183" and first["duration_s"] == 201.0


def test_read_many_merges_reports_and_stations(shared_data):
    paths = [shared_data / "citibike-jc" / n for n in sorted(JC_SCHEMAS)]
    singles = [read_trips(p) for p in paths]
    many = read_trips_many(paths)
    check_invariants(many)
    assert len(many.trips) == sum(len(t.trips) for t in singles)
    assert many.report.rows_read == sum(t.report.rows_read for t in singles)
    assert many.report.dropped == {r: sum(t.report.dropped[r] for t in singles) for r in DROP_REASONS}
    assert many.report.schema == "title-case+legacy-lower+ride-id-2021"
    assert set(many.stations.index) == set().union(*(set(t.stations.index) for t in singles))
    assert "JC105" in many.stations.index and "3186" in many.stations.index


@pytest.fixture(scope="module")
def nyc_stations(shared_data):
    return read_stations(shared_data / "citibike-nyc" / "stations.csv")[0]


@pytest.mark.parametrize("name", NYC_DAYS)
def test_every_compact_day_loads(shared_data, nyc_stations, name):
    folder = shared_data / "citibike-nyc"
    stations = read_stations(folder / "stations-2016-09.csv")[0] if "2016" in name else nyc_stations
    t0 = time.perf_counter()
    table = read_trips(folder / name, stations)
    elapsed = time.perf_counter() - t0
    check_invariants(table)
    rep = table.report
    assert rep.schema == "compact-day"
    assert rep.rows_kept > 0.95 * rep.rows_read
    rows = raw_rows(folder / name)
    known = set(stations.index)
    unknown = sum(1 for r in rows if r["start_station"] not in known or r["end_station"] not in known)
    assert rep.rows_read == len(rows)
    assert rep.dropped["unknown station"] == unknown
    if name.startswith("trips-2017-04"):
        assert unknown > 0
    # end = start + duration, and every trip starts on the file's day(s)
    delta = (table.trips["end_time"] - table.trips["start_time"]).dt.total_seconds()
    np.testing.assert_allclose(delta, table.trips["duration_s"])
    days = table.trips["start_time"].dt.strftime("%Y-%m-%d").unique()
    assert set(days) <= ({"2016-09-10", "2016-09-11"} if "2016" in name else {name[6:16]})
    assert elapsed < 2.0


def test_station_files(shared_data):
    for name, n in (("stations.csv", 614), ("stations-2016-09.csv", 572)):
        table, rep = read_stations(shared_data / "citibike-nyc" / name)
        assert rep.rows_read == n and rep.rows_kept == n and len(table) == n
        assert all(type(i) is str for i in table.index) and "72" in table.index
        assert table.loc["72", "name"] == "W 52 St & 11 Ave"


# ------------------------------------------------------------------ errors
def test_zero_byte_file_raises(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(LoaderError, match="empty.csv.*empty"):
        read_trips(path)


def test_header_only_file_gives_no_trips(tmp_path):
    table = read_trips(write(tmp_path, "h.csv", LEGACY_HEADER, []))
    assert table.report.rows_read == 0 and len(table.trips) == 0 and len(table.stations) == 0
    check_invariants(table)


def test_unknown_header_lists_expected_columns(tmp_path):
    path = write(tmp_path, "odd.csv", "when,from,to", ["1,2,3"])
    with pytest.raises(LoaderError) as err:
        read_trips(path)
    msg = str(err.value)
    assert "odd.csv" in msg and "no known" in msg
    for col in ("tripduration", "Trip Duration", "started_at", "start_ts"):
        assert col in msg


def test_missing_file_raises(tmp_path):
    with pytest.raises(LoaderError, match="nope.csv.*no such file"):
        read_trips(tmp_path / "nope.csv")


def test_compact_without_stations_raises(tmp_path):
    path = write(tmp_path, "day.csv", COMPACT_HEADER, ["2017-04-01 00:00:58,195,217,430,1,1966"])
    with pytest.raises(LoaderError, match="day.csv.*stations"):
        read_trips(path)


def test_malformed_rows_counted(tmp_path):
    rows = [legacy_row(), legacy_row() + ",extra", legacy_row(), '252,"2017-04-01 00:14:36",3186', legacy_row()]
    table = read_trips(write(tmp_path, "m.csv", LEGACY_HEADER, rows))
    assert table.report.dropped["malformed row"] == 2
    assert table.report.rows_read == 5 and table.report.rows_kept == 3
    check_invariants(table)


def test_non_numeric_duration_is_malformed(tmp_path):
    table = read_trips(write(tmp_path, "d.csv", LEGACY_HEADER, [legacy_row(dur="abc"), legacy_row()]))
    assert table.report.dropped["malformed row"] == 1 and table.report.rows_kept == 1


def test_unparseable_times_counted(tmp_path):
    rows = [legacy_row(start="yesterday"), legacy_row(stop="2017-13-45 00:00:00"), legacy_row(start=""),
            legacy_row()]
    table = read_trips(write(tmp_path, "t.csv", LEGACY_HEADER, rows))
    assert table.report.dropped["unparseable time"] == 3 and table.report.rows_kept == 1


def test_nan_coordinates_counted(tmp_path):
    rows = [legacy_row(slat="NULL"), legacy_row(elon=""), legacy_row(slat="nan"), legacy_row()]
    table = read_trips(write(tmp_path, "n.csv", LEGACY_HEADER, rows))
    assert table.report.dropped["bad coordinates"] == 3 and table.report.rows_kept == 1
    assert table.stations.loc["3186", "lat"] == pytest.approx(40.7196)


def test_zero_coordinates_counted(tmp_path):
    rows = [ride_row(slat="0", slon="0"), ride_row(elat="0.0"), ride_row()]
    table = read_trips(write(tmp_path, "z.csv", RIDE_HEADER, rows))
    assert table.report.dropped["bad coordinates"] == 2 and table.report.rows_kept == 1


def test_non_positive_durations_counted(tmp_path):
    legacy = read_trips(write(tmp_path, "l.csv", LEGACY_HEADER,
                              [legacy_row(dur="0"), legacy_row(dur="-5"), legacy_row()]))
    assert legacy.report.dropped["non-positive duration"] == 2 and legacy.report.rows_kept == 1
    rides = read_trips(write(tmp_path, "r.csv", RIDE_HEADER, [
        ride_row(end="2021-04-01 08:00:00"), ride_row(end="2021-04-01 07:59:00"), ride_row()]))
    assert rides.report.dropped["non-positive duration"] == 2 and rides.report.rows_kept == 1
    assert rides.trips["duration_s"].tolist() == [600.0]


def test_unknown_station_counted(tmp_path):
    stations = pd.DataFrame({"lat": [40.7, 40.71], "lon": [-74.0, -74.01], "name": ["a", "b"]},
                            index=pd.Index(["217", "430"], name="station_id"))
    day = write(tmp_path, "day.csv", COMPACT_HEADER, [
        "2017-04-01 00:00:58,195,217,430,1,1966", "2017-04-01 00:01:54,585,490,430,1,1995",
        "2017-04-01 00:02:00,100,217,999,0,0", "2017-04-01 00:03:00,100,430,217,0,0"])
    table = read_trips(day, stations)
    assert table.report.dropped["unknown station"] == 2 and table.report.rows_kept == 2
    assert table.trips["end_time"].iloc[0] == pd.Timestamp("2017-04-01 00:04:13")
    # empty ids (dockless e-bikes) in the 2021 schema, and a given table for a per-row schema
    rides = write(tmp_path, "r.csv", RIDE_HEADER, [ride_row(eid="", elat="", elon=""), ride_row(sid=""),
                                                   ride_row(), ride_row(sid="JC999")])
    assert read_trips(rides).report.dropped["unknown station"] == 2
    given = pd.DataFrame({"lat": [40.73, 40.73], "lon": [-74.04, -74.05]}, index=["JC105", "JC034"])
    table = read_trips(rides, given)
    assert table.report.dropped["unknown station"] == 3 and table.report.rows_kept == 1
    assert list(table.stations.index) == ["JC105", "JC034"]


def test_nyc_month_day_year_times(tmp_path):
    rows = [legacy_row(start="9/1/2015 0:00:05", stop="9/1/2015 0:05:05"),
            legacy_row(start="1/15/2015 13:07", stop="1/15/2015 13:12"),
            legacy_row(start="12/31/2014 23:59:59", stop="1/1/2015 00:04:59")]
    table = read_trips(write(tmp_path, "nyc.csv", LEGACY_HEADER, rows))
    assert table.report.rows_kept == 3
    assert table.trips["start_time"].tolist() == [pd.Timestamp("2015-09-01 00:00:05"),
                                                  pd.Timestamp("2015-01-15 13:07"),
                                                  pd.Timestamp("2014-12-31 23:59:59")]
    assert table.trips["end_time"].iloc[2] == pd.Timestamp("2015-01-01 00:04:59")


def test_title_case_header_detected(tmp_path):
    header = ("Trip Duration,Start Time,Stop Time,Start Station ID,Start Station Name,Start Station Latitude,"
              "Start Station Longitude,End Station ID,End Station Name,End Station Latitude,"
              "End Station Longitude,Bike ID,User Type,Birth Year,Gender")
    row = "435,2017-02-01 00:06:33,2017-02-01 00:13:49,3214,Essex,40.71,-74.03,3199,Newport,40.72,-74.03,1,Subscriber,,1"
    table = read_trips(write(tmp_path, "tc.csv", header, [row]))
    assert table.report.schema == "title-case" and table.trips["start_station"].tolist() == ["3214"]


def test_station_file_drops_bad_coordinates(tmp_path):
    path = write(tmp_path, "st.csv", "station_id,latitude,longitude,name",
                 ['72,40.767,-73.993,"W 52 St & 11 Ave"', "79,0,0,zero", "80,,-73.9,nan", "81,40.7,-73.9,ok",
                  "82,40.7"])
    table, rep = read_stations(path)
    assert rep.dropped["bad coordinates"] == 2 and rep.dropped["malformed row"] == 1
    assert list(table.index) == ["72", "81"] and rep.rows_kept == 2


def test_float_station_index_becomes_whole_number_strings(tmp_path):
    stations = pd.DataFrame({"lat": [40.7, 40.71], "lon": [-74.0, -74.01]}, index=[217.0, 430.0])
    day = write(tmp_path, "day.csv", COMPACT_HEADER, ["2017-04-01 00:00:58,195,217,430,1,1966"])
    table = read_trips(day, stations)
    assert table.report.rows_kept == 1 and list(table.stations.index) == ["217", "430"]


def test_csv_fallback_reads_the_same_rows(tmp_path):
    rows = [legacy_row(), legacy_row() + ",x", "", "   ", legacy_row(sid="3"), "1,2"]
    path = write(tmp_path, "f.csv", LEGACY_HEADER, rows)
    header = _read_header(path)
    fast, read, malformed = _read_rows(path, header)
    assert (read, malformed) == (4, 2)
    pd.testing.assert_frame_equal(fast, _read_rows_csv(path, header), check_dtype=False)


def test_report_text_and_merge():
    a = LoadReport("a.csv", "legacy-lower", 100, 90, {**dict.fromkeys(DROP_REASONS, 0), "unknown station": 10})
    b = LoadReport("b.csv", "ride-id-2021", 1000, 999, {**dict.fromkeys(DROP_REASONS, 0), "bad coordinates": 1})
    assert str(a) == "a.csv [legacy-lower]: 100 rows read, 90 kept; dropped: 10 unknown station"
    m = LoadReport.merge([a, b])
    assert (m.rows_read, m.rows_kept) == (1100, 1089)
    assert m.dropped["unknown station"] == 10 and m.dropped["bad coordinates"] == 1
    assert "1,100 rows read" in str(m) and m.schema == "legacy-lower+ride-id-2021"
