"""Bundled scenarios: they load without raw data, keep evaluation days apart, and
regenerate byte for byte from ../shared/data."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import jaxmob
from jaxmob.envs.rebalance.city import scenarios
from jaxmob.envs.rebalance.city.estimate import EstimationOptions, estimate_city
from jaxmob.envs.rebalance.city.regions import MANHATTAN, grid_stations, in_polygon
from jaxmob.envs.rebalance.city.scenarios import SCENARIO_DIR

REAL = sorted(scenarios.SPECS)


@pytest.mark.parametrize("name", jaxmob.envs.rebalance.city.available())
def test_bundled_scenario_loads(name):
    s = jaxmob.envs.rebalance.city.load(name)
    city = s.city
    assert city.num_regions >= 10 and city.fleet_size > 0 and city.trips_per_day > 0
    assert set(s.test_days) <= set(s.days)
    assert not set(s.test_days) & set(s.estimation_days), "evaluation days must not estimate rates"
    for d in s.days.values():
        assert d.num_trips > 0
        assert d.origin.max() < city.num_regions and d.dest.max() < city.num_regions
    text = repr(s)
    assert "regions" in text and "trips/day" in text and "fleet" in text


def test_manhattan_scenario_matches_provenance():
    s = jaxmob.envs.rebalance.city.load("manhattan-citibike")
    prov = s.provenance
    assert prov["regions"] == s.city.num_regions == 48  # 1 km cells; see README for other sizes
    assert prov["clip"] == "manhattan"
    assert sum(s.day(d).num_trips for d in s.training_days + s.test_days) == prov["trips_kept"]  # 2017 file
    assert prov["trips_kept"] + prov["trips_leaving_area"] + prov["trips_over_24h"] + prov["trips_off_days"] == prov["trips_loaded"]
    # demand rates are the mean of the estimation days' departures
    est_trips = sum(s.days[d].num_trips for d in s.estimation_days)
    np.testing.assert_allclose(s.city.trips_per_day, est_trips / len(s.estimation_days), rtol=1e-5)


def test_unknown_scenario_is_named():
    with pytest.raises(KeyError, match="unknown scenario 'atlantis'.*manhattan-citibike"):
        jaxmob.envs.rebalance.city.load("atlantis")


def test_sample_day_is_deterministic():
    city = jaxmob.envs.rebalance.city.load("synthetic-square").city
    a, b = scenarios.sample_day(city, seed=3), scenarios.sample_day(city, seed=3)
    np.testing.assert_array_equal(a.dest, b.dest)
    assert abs(a.num_trips - city.trips_per_day) < 5 * np.sqrt(city.trips_per_day)


@pytest.mark.parametrize("name", REAL)
def test_regeneration_is_byte_identical(name, shared_data, tmp_path):
    scenarios.write_bundled(shared_data, tmp_path, [name])
    for suffix in (".npz", ".json"):
        built = (tmp_path / name).with_suffix(suffix).read_bytes()
        committed = (SCENARIO_DIR / name).with_suffix(suffix).read_bytes()
        assert built == committed, f"{name}{suffix} differs from the committed file; run `make scenarios`"


def test_manhattan_clip_excludes_other_boroughs():
    pts = np.array([[40.758, -73.985],   # Times Square
                    [40.7061, -74.0087],  # Wall St
                    [40.8010, -73.9580],  # Morningside
                    [40.7195, -74.0431],  # Grove St, Jersey City
                    [40.6928, -73.9903],  # Brooklyn Heights
                    [40.7447, -73.9485],  # Long Island City
                    [40.7620, -73.9500]])  # Roosevelt Island
    assert in_polygon(pts, MANHATTAN).tolist() == [True, True, True, False, False, False, False]


def test_grid_stations_cells_and_errors():
    st = pd.DataFrame({"lat": [40.70, 40.70, 40.712, 40.70], "lon": [-74.00, -73.9995, -74.00, -73.985]},
                      index=pd.Index(["a", "b", "c", "d"], name="station_id"))
    g = grid_stations(st, cell_km=1.0)
    # a and b share a cell; c is ~1.3 km north of a; d is ~1.3 km east
    assert g.num_regions == 3 and g.station_region["a"] == g.station_region["b"]
    assert sorted(g.stations_per_region.tolist()) == [1, 1, 2]
    bad = st.copy()
    bad.loc["b", "lat"] = np.nan
    with pytest.raises(ValueError, match="NaN or zero coordinates"):
        grid_stations(bad)
    with pytest.raises(ValueError, match="cell_km"):
        grid_stations(st, cell_km=0)


def test_estimation_known_answer():
    """Two regions, two days: rates, OD, travel time and capacity by hand."""
    st = pd.DataFrame({"lat": [40.70, 40.70], "lon": [-74.0, -73.985]}, index=pd.Index(["a", "b"]))
    g = grid_stations(st, cell_km=1.0)
    ra, rb = g.station_region["a"], g.station_region["b"]
    trips = pd.DataFrame({
        "start_time": pd.to_datetime(["2017-01-01 08:05", "2017-01-01 08:07", "2017-01-02 08:01", "2017-01-02 09:30"]),
        "duration_s": [600.0, 1200.0, 900.0, 300.0],
        "origin": [ra, ra, ra, rb], "dest": [rb, rb, ra, ra]})
    city = estimate_city(trips, g, ["2017-01-01", "2017-01-02"], name="t",
                         options=EstimationOptions(min_pair_trips=2, docks_per_station=10, fill=0.5))
    rate = np.asarray(city.demand_rate)
    assert rate[48, ra] == 1.5 and rate[57, rb] == 0.5 and rate.sum() == 2.0
    od = np.asarray(city.od_prob)
    np.testing.assert_allclose(od[8, ra, [rb, ra]], [2 / 3, 1 / 3])
    np.testing.assert_allclose(od[9, rb, ra], 1.0)
    assert city.travel_steps[ra, rb] == 2  # median of 10 and 20 minutes = 15 min -> rint(1.5) = 2
    assert city.capacity.tolist() == [10, 10] and city.init_inventory.tolist() == [5, 5]


def test_show_writes_png(tmp_path):
    out = tmp_path / "map.png"
    proc = subprocess.run([sys.executable, "-m", "jaxmob", "show", "manhattan-citibike", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert "48 regions" in proc.stdout
