"""The AMoD benchmark files as taxi-env regions (one parser, `envs/amod/benchmark.py`): all shared
scenarios, a hand-checked tiny one, bad files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jaxmob.envs.taxi.amod_regions import AmodInfo, AmodRegions, load_amod
from jaxmob.core.errors import LoaderError

CITIES = ["chicago", "nyc_brooklyn", "nyc_man_middle", "nyc_man_north", "nyc_man_south", "porto", "rome",
          "san_francisco", "shenzhen_baoan", "shenzhen_downtown_east", "shenzhen_downtown_west"]


@pytest.fixture(scope="module")
def amod_dir(shared_data) -> Path:
    return shared_data / "amod-scenarios"


@pytest.mark.parametrize("city", CITIES)
def test_every_scenario_loads(amod_dir, city):
    path = amod_dir / f"scenario_{city}.json"
    raw = json.loads(path.read_text())
    ratio = json.loads((amod_dir / "RL4AMOD_calibrated_parameters.json").read_text())[city]["demand_ratio"]
    c, info = load_amod(path)
    assert isinstance(c, AmodRegions) and isinstance(info, AmodInfo)
    R = raw["nlat"] * raw["nlon"]
    assert c.num_regions == R and c.region_ids == tuple(str(i) for i in range(R))
    assert c.steps_per_day == 480 and c.step_minutes == 3
    assert info.demand_ratio == ratio and info.minutes_per_stamp == 1

    # differential: total expected requests = sum(demand * 1 minute) * ratio, straight from the JSON
    expected = sum(r["demand"] for r in raw["demand"]) * ratio
    assert float(np.asarray(c.demand_rate, np.float64).sum()) == pytest.approx(expected, rel=1e-5)

    # the 3-hour window: demand only inside it
    stamps = [r["time_stamp"] for r in raw["demand"]]
    assert (info.window_start_min, info.window_end_min) == (min(stamps), max(stamps) + 1)
    assert info.window_end_min - info.window_start_min == 180
    assert info.calibration["json_hr"] * 60 == info.window_start_min
    rate = np.asarray(c.demand_rate)
    inside = np.zeros(480, bool)
    inside[info.window_start_min // 3: info.window_end_min // 3] = True
    assert not rate[~inside].any() and rate[inside].sum() > 0

    # fleet and layout
    first = min(raw["totalAcc"], key=lambda a: a["hour"])["acc"]
    inv = np.asarray(c.init_inventory)
    assert inv.sum() == first and inv.max() - inv.min() <= 1
    assert (np.asarray(c.capacity) == first).all()
    np.testing.assert_allclose(np.asarray(c.od_prob).sum(-1), 1.0, atol=1e-5)
    assert (np.asarray(c.travel_steps) >= 1).all() and (np.asarray(c.relocation_steps) >= 1).all()
    edges = {(e["i"], e["j"]) for e in raw["topology_graph"]}
    assert set(info.topology) == edges


def test_per_step_demand_and_pair_means_match_json(amod_dir):
    path = amod_dir / "scenario_san_francisco.json"
    raw = json.loads(path.read_text())
    c, _ = load_amod(path, step_minutes=5, demand_ratio=1.0)
    R = c.num_regions
    expected = np.zeros((288, R))
    num, den = np.zeros((R, R)), np.zeros((R, R))
    for r in raw["demand"]:
        expected[r["time_stamp"] // 5, r["origin"]] += r["demand"]
        num[r["origin"], r["destination"]] += r["demand"] * r["travel_time"]
        den[r["origin"], r["destination"]] += r["demand"]
    np.testing.assert_allclose(np.asarray(c.demand_rate), expected, rtol=1e-5, atol=1e-6)
    seen = den > 0
    want = np.maximum(1, np.ceil(num[seen] / den[seen] / 5 - 1e-9))
    np.testing.assert_array_equal(np.asarray(c.travel_steps)[seen], want)
    # each hour-19 OD row is the destinations' share of that origin's requests in the hour
    dest = np.zeros((R, R))
    for r in raw["demand"]:
        if 1140 <= r["time_stamp"] < 1200:
            dest[r["origin"], r["destination"]] += r["demand"]
    busy = dest.sum(1) > 0
    assert busy.sum() >= R // 2
    np.testing.assert_allclose(np.asarray(c.od_prob)[19][busy], dest[busy] / dest[busy].sum(1, keepdims=True),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(c.od_prob)[19][~busy], np.eye(R)[~busy])


def tiny_scenario(**changes) -> dict:
    """2 x 1 grid plus an unused third id; hand-computable numbers."""
    data = {
        "nlat": 3, "nlon": 1,
        "demand": [
            {"time_stamp": 600, "origin": 0, "destination": 1, "demand": 1.0, "travel_time": 4, "price": 10.0},
            {"time_stamp": 601, "origin": 0, "destination": 1, "demand": 3.0, "travel_time": 8, "price": 20.0},
            {"time_stamp": 602, "origin": 0, "destination": 0, "demand": 0.5, "travel_time": 2, "price": 5.0},
            {"time_stamp": 660, "origin": 1, "destination": 0, "demand": 2.0, "travel_time": 7, "price": 9.0},
        ],
        "totalAcc": [{"hour": 11, "acc": 9}, {"hour": 10, "acc": 5}],
        "rebTime": [{"time_stamp": 10, "origin": 1, "destination": 1, "reb_time": 1.0},
                    {"time_stamp": 10, "origin": 0, "destination": 1, "reb_time": 5.0},
                    {"time_stamp": 11, "origin": 0, "destination": 1, "reb_time": 8.0}],
        "topology_graph": [{"i": 0, "j": 1}, {"i": 1, "j": 0}, {"i": 0, "j": 1}],
    }
    data.update(changes)
    return data


def write_json(tmp_path: Path, data, name="scenario_tiny.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_tiny_scenario_by_hand(tmp_path):
    c, info = load_amod(write_json(tmp_path, tiny_scenario()))
    assert info.calibration is None and info.demand_ratio == 1.0  # no calibration file beside it
    assert c.num_regions == 2 and c.region_ids == ("0", "1")  # id 2 never appears
    assert (info.window_start_min, info.window_end_min) == (600, 661)
    rate = np.asarray(c.demand_rate)
    assert rate[200, 0] == pytest.approx(4.5) and rate[220, 1] == pytest.approx(2.0) and rate.sum() == pytest.approx(6.5)
    od = np.asarray(c.od_prob)
    np.testing.assert_allclose(od[10, 0], [0.5 / 4.5, 4.0 / 4.5], rtol=1e-6)
    np.testing.assert_allclose(od[10, 1], [0.0, 1.0])  # no requests from 1 at 10h: stays home
    np.testing.assert_allclose(od[11, 1], [1.0, 0.0])
    travel = np.asarray(c.travel_steps)
    # 0->1: weighted mean (4*1 + 8*3)/4 = 7 min -> 3 steps; 1->1 unobserved: rebTime 1 min -> 1 step;
    # 0->0: 2 min -> 1; 1->0: 7 min -> 3
    np.testing.assert_array_equal(travel, [[1, 3], [3, 1]])
    reloc = np.asarray(c.relocation_steps)
    # 0->1: mean(5, 8) = 6.5 min -> 3 steps; others lack rebTime: travel steps
    np.testing.assert_array_equal(reloc, [[1, 3], [3, 1]])
    np.testing.assert_allclose(np.asarray(c.price), [[5.0, 17.5], [9.0, 0.0]])
    assert info.fleet_by_hour == {10: 5, 11: 9}
    np.testing.assert_array_equal(np.asarray(c.init_inventory), [3, 2])
    np.testing.assert_array_equal(np.asarray(c.capacity), [5, 5])
    assert info.topology == ((0, 1), (1, 0)) and info.topology_on_grid == 2
    # chain grid: 0 is south of 1
    assert np.asarray(c.neighbors)[0, 0] == 1 and np.asarray(c.neighbor_mask).sum() == 2


def test_median_fallback_and_calibration_beside_file(tmp_path):
    data = tiny_scenario(rebTime=[])
    (tmp_path / "RL4AMOD_calibrated_parameters.json").write_text(json.dumps({"tiny": {"demand_ratio": 2.0}}))
    c, info = load_amod(write_json(tmp_path, data))
    assert info.demand_ratio == 2.0 and info.calibration == {"demand_ratio": 2.0}
    assert np.asarray(c.demand_rate).sum() == pytest.approx(13.0)
    # 1->1 seen nowhere: median travel time of all rows (median(4, 8, 2, 7) = 5.5 min) -> 2 steps
    assert np.asarray(c.travel_steps)[1, 1] == 2
    # an explicit ratio wins and skips the calibration file
    _, info = load_amod(tmp_path / "scenario_tiny.json", demand_ratio=1.0)
    assert info.demand_ratio == 1.0 and info.calibration is None


@pytest.mark.parametrize("data, problem", [
    ("{not json", "not valid JSON"),
    ({k: v for k, v in tiny_scenario().items() if k != "rebTime"}, "missing keys.*rebTime"),
    (tiny_scenario(demand=[{"time_stamp": 600, "origin": 0, "destination": 1, "demand": -1.0,
                            "travel_time": 4, "price": 1.0}]), "demand.demand.*non-negative"),
    (tiny_scenario(demand=[{"time_stamp": 600, "origin": 7, "destination": 1, "demand": 1.0,
                            "travel_time": 4, "price": 1.0}]), r"demand.origin.*\[0, 3\).*7"),
    (tiny_scenario(demand=[{"time_stamp": 600, "origin": 0, "destination": 1, "demand": 1.0}]),
     "without field.*travel_time"),
    (tiny_scenario(demand=[]), "'demand' is empty"),
    (tiny_scenario(topology_graph=[{"i": 0, "j": -1}]), "topology_graph.j"),
    (tiny_scenario(demand=[{"time_stamp": 1500, "origin": 0, "destination": 1, "demand": 1.0,
                            "travel_time": 4, "price": 1.0}]), "time_stamp.*minute of day"),
    ([1, 2, 3], "JSON object"),
])
def test_bad_json_raises(tmp_path, data, problem):
    path = write_json(tmp_path, data, "scenario_bad.json")
    with pytest.raises(LoaderError, match=f"scenario_bad.json: .*{problem}"):
        load_amod(path)


def test_missing_file_and_bad_step(tmp_path):
    with pytest.raises(LoaderError, match="nope.json.*no such file"):
        load_amod(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="step_minutes"):
        load_amod(write_json(tmp_path, tiny_scenario()), step_minutes=7)
