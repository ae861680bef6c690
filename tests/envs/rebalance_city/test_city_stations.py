"""Station -> region maps: every real scenario stores one, it reproduces the
regions the build gave, and a new day in any header era maps onto the regions
with unknown stations counted, never raised."""
import numpy as np
import pytest

import jaxmob
from jaxmob.envs.rebalance.city import scenarios
from jaxmob.core.errors import LoaderError
from jaxmob.envs.rebalance.city.stations import UNKNOWN, map_day_file

REAL = sorted(scenarios.SPECS)


@pytest.mark.parametrize("name", REAL)
def test_three_disjoint_day_sets(name):
    s = jaxmob.envs.rebalance.city.load(name)
    train, val, test = set(s.training_days), set(s.validation_days), set(s.test_days)
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    assert set(s.estimation_days) == train, "only training days estimate the rates"
    assert s.provenance["day_split"] == {"training": list(s.estimation_days), "validation": list(s.validation_days),
                                         "test": list(s.test_days)}


@pytest.mark.parametrize("name", REAL)
def test_station_positions_reproduce_their_regions(name):
    m = jaxmob.envs.rebalance.city.load(name).station_map
    assert m is not None and m.num_regions == jaxmob.envs.rebalance.city.load(name).city.num_regions
    by_xy = m.region_of_points(m.lat, m.lon)
    assert np.array_equal(by_xy, m.region)  # placing by coordinates = placing by id
    assert (m.region_of_points([np.nan, 0.0, 10.0], [-74.0, 0.0, 10.0]) == UNKNOWN).all()


def test_manhattan_106_is_the_papers_regime():
    s = jaxmob.envs.rebalance.city.load("manhattan-106")
    p = s.provenance
    assert s.city.num_regions == p["regions"] == 108
    assert p["cell_km"] == 0.6 and p["fill"] == 0.15 and p["docks_per_station"] == 30
    assert 1_500 <= s.city.fleet_size <= 1_700
    # the same 2017 trips as manhattan-citibike: only the grid and the fleet differ (the 2016
    # validation days differ a little: stations new to the map are placed by position on each grid)
    base = jaxmob.envs.rebalance.city.load("manhattan-citibike")
    same = s.training_days + s.test_days
    assert [s.day(d).num_trips for d in same] == [base.day(d).num_trips for d in same]


def _write(path, header, rows):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_new_day_in_two_header_eras_with_unknown_stations(tmp_path):
    m = jaxmob.envs.rebalance.city.load("manhattan-citibike").station_map
    a, b = m.ids[0], m.ids[-1]
    compact = _write(tmp_path / "day.csv", "start_ts,duration,start_station,end_station,subscriber,birth_year", [
        f"2018-05-01 08:00:00,600,{a},{b},1,1980",
        f"2018-05-01 09:00:00,900,{b},{a},1,1980",
        f"2018-05-01 10:00:00,900,{a},999999,1,1980",  # a station the map has never seen
        "2018-05-01 11:00:00,oops,1,2,1,1980"])  # malformed
    days, rep = map_day_file(m, compact)
    assert list(days) == ["2018-05-01"] and days["2018-05-01"].num_trips == 2
    assert "1 unknown station" in rep["load_report"] and "1 malformed row" in rep["load_report"]
    ra, rb = m.region[0], m.region[-1]
    assert sorted(days["2018-05-01"].origin.tolist()) == sorted([ra, rb])

    header = ("ride_id,rideable_type,started_at,ended_at,start_station_name,start_station_id,end_station_name,"
              "end_station_id,start_lat,start_lng,end_lat,end_lng,member_casual")
    la, lo = m.lat[0], m.lon[0]
    modern = _write(tmp_path / "modern.csv", header, [
        f"x1,classic_bike,2024-06-01 08:00:00,2024-06-01 08:20:00,A,NEW1,B,NEW2,{la},{lo},{m.lat[-1]},{m.lon[-1]},member",
        f"x2,classic_bike,2024-06-01 09:00:00,2024-06-01 09:20:00,A,NEW1,C,FAR,{la},{lo},40.60,-73.80,member"])
    days, rep = map_day_file(m, modern)  # new ids: placed by their coordinates
    assert days["2024-06-01"].num_trips == 1 and rep["outside_regions"] == 1
    assert days["2024-06-01"].origin.tolist() == [ra] and days["2024-06-01"].dest.tolist() == [rb]
    with pytest.raises(LoaderError, match="no mapped trips on 2024-06-02"):
        map_day_file(m, modern, days=["2024-06-02"])
    nowhere = _write(tmp_path / "nowhere.csv", header, [
        "x3,classic_bike,2024-06-01 09:00:00,2024-06-01 09:20:00,A,F1,C,F2,40.60,-73.80,40.61,-73.81,member"])
    with pytest.raises(LoaderError, match="no trip could be mapped"):
        map_day_file(m, nowhere)
