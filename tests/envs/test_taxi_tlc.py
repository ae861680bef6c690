"""The TLC yellow-taxi loader: every header era, bad rows counted, a hex city built."""
import csv
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest

from jaxmob.core.errors import LoaderError
from jaxmob.envs.taxi.tlc import read_trips, read_zone_table, resolve_columns, taxi_scenario_from_trips


@pytest.fixture(scope="module")
def tlc(shared_data):
    path = shared_data / "nyc-tlc-samples"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


def test_every_yellow_header_era_is_recognised(tlc):
    files = OrderedDict()
    with open(tlc / "tlc_headers_2009-2020.csv") as fh:
        for row in list(csv.reader(fh))[1:]:
            files.setdefault(row[1], []).append(row[2])
    yellow = {f: cols for f, cols in files.items() if f.startswith("yellow")}
    assert len(yellow) > 100
    for name, cols in yellow.items():
        era, _ = resolve_columns(cols, name)
        month = name.split("_")[-1][:7]
        assert era == ("coordinates" if month <= "2016-06" else "zones"), name


@pytest.mark.parametrize("name", ["yellow_tripdata_2015-01.csv", "yellow_tripdata_2016-01.csv", "yellow_tripdata_2016-02.csv"])
def test_the_samples_load_with_every_drop_counted(tlc, name):
    trips, report = read_trips(tlc / name)
    assert report.era == "coordinates" and report.rows > 1000
    assert report.kept == len(trips) == report.rows - sum(report.dropped.values())
    assert report.kept > 0.9 * report.rows
    assert (trips["minutes"] > 0).all() and (trips["pickup_lat"] != 0).all() and (trips["fare"] >= 0).all()


def test_bad_rows_are_counted_by_reason(tlc, tmp_path):
    lines = (tlc / "yellow_tripdata_2016-01.csv").read_text().splitlines()
    head = lines[0]
    good = next(l for l in lines[1:] if l.split(",")[1] != l.split(",")[2])  # a trip that took time
    f = good.split(",")
    zero = f.copy(); zero[5], zero[6] = "0", "0"
    backwards = f.copy(); backwards[1], backwards[2] = f[2], f[1]
    no_fare = f.copy(); no_fare[12] = ""
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([head, good, ",".join(zero), ",".join(backwards), ",".join(no_fare), "1,2,3"]) + "\n")
    trips, report = read_trips(path)
    assert report.rows == 5
    assert report.dropped["(0, 0) positions"] == 1
    assert report.dropped["non-positive or over-24h durations"] == 1
    assert report.dropped["unparseable times"] == 1  # the short row
    assert report.dropped["negative or missing fares"] == 1
    assert report.kept + sum(report.dropped.values()) == report.rows


def test_unreadable_files_name_the_problem(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LoaderError, match="empty"):
        read_trips(empty)
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(LoaderError, match="missing column"):
        read_trips(other)
    with pytest.raises(LoaderError, match="no such file"):
        read_trips(tmp_path / "absent.csv")


def test_zone_era_trips_are_checked_against_the_zone_table(tlc, tmp_path):
    zones = read_zone_table(tlc / "taxi_zone_lookup.csv")
    assert 260 <= len(zones) <= 265 and 264 not in zones
    path = tmp_path / "2019.csv"
    path.write_text("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
                    "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount\n"
                    "1,2019-01-01 00:10:00,2019-01-01 00:20:00,1,1.5,1,N,142,236,1,7.5\n"
                    "1,2019-01-01 00:10:00,2019-01-01 00:20:00,1,1.5,1,N,264,236,1,7.5\n")
    trips, report = read_trips(path, zones=zones)
    assert report.era == "zones" and report.kept == 1 and report.dropped == {"unknown zones": 1}
    with pytest.raises(LoaderError, match="coordinate-era"):
        taxi_scenario_from_trips(trips)


def test_a_hex_city_from_trips_keeps_the_last_days_for_test():
    rng = np.random.default_rng(0)
    n = 6000
    start = pd.Timestamp("2016-01-01") + pd.to_timedelta(rng.integers(0, 26 * 24 * 60, n), unit="min")
    lat, lon = 40.75 + rng.normal(0, 0.02, (2, n)), -73.98 + rng.normal(0, 0.02, (2, n))
    trips = pd.DataFrame({"pickup_time": start, "dropoff_time": start + pd.Timedelta(minutes=15), "minutes": 15.0,
                          "fare": 9.0, "distance": 2.0, "pickup_lat": lat[0], "pickup_lon": lon[0],
                          "dropoff_lat": lat[1], "dropoff_lon": lon[1]})
    scenario = taxi_scenario_from_trips(trips, num_cells=30, train_days=24, validation_days=3)
    city, episodes = scenario.city, scenario.episodes
    assert city.num_cells == 30 and scenario.test_days == ("2016-01-25", "2016-01-26")
    assert scenario.validation_days == ("2016-01-22", "2016-01-23", "2016-01-24")
    kept = n - city.provenance["outside_cells"]
    held_out = sum(int(e.sum()) for e in episodes.values())
    np.testing.assert_allclose(city.demand_rate.sum() * 21 + held_out, kept, rtol=1e-9)
    np.testing.assert_allclose(city.od_prob.sum(-1), 1.0)
    assert np.all(city.travel_steps >= 1) and (city.travel_steps == 2).mean() > 0.05  # 15-minute medians
