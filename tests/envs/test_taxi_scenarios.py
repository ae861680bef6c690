"""Taxi scenarios: the bundled AMoD NYC areas, scenario files, `jaxmob scenarios taxi`,
and the demand-gap greedy rule."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from jaxmob.core.errors import LoaderError
from jaxmob.envs.taxi import scenarios
from jaxmob.envs.taxi.baselines import demand_gap
from jaxmob.envs.taxi.city import TaxiCity
from jaxmob.envs.taxi.env import TaxiConfig, TaxiEnv, make_params


def test_bundled_amod_areas_load_without_the_raw_data():
    for name in (scenarios.amod_name(a) for a in scenarios.AMOD_AREAS):
        s = scenarios.load(name)
        c = s.city
        assert c.provenance["kind"] == "amod" and c.start_step == 19 * 12 and c.horizon == 36
        assert c.fleet in (800, 1500) and 12 <= c.num_cells <= 14
        # every topology edge of the file is a neighbour slot, never the cell itself
        edges = _edges(c)
        assert len(edges) == c.provenance["topology_edges"] - c.provenance["topology_edges_dropped"]
        assert all(i != j for i, j in edges)
        # demand only inside the window; episodes are that window
        rate = c.demand_rate
        assert rate[:c.start_step].sum() == 0 and rate[c.start_step + c.horizon:].sum() == 0
        assert all(e.shape == (36, c.num_cells) for e in s.episodes.values())
        assert not set(s.validation_days) & set(s.test_days) and len(s.test_days) == 5


def _edges(city):
    return {(i, int(j)) for i in range(city.num_cells) for j, m in zip(city.neighbors[i], city.neighbor_mask[i]) if m}


def test_bundled_amod_areas_rebuild_byte_for_byte(shared_data, tmp_path):
    from jaxmob.envs.taxi.amod_regions import load_amod

    _, info = load_amod(shared_data / "amod-scenarios" / "scenario_nyc_man_south.json")
    assert _edges(scenarios.load("amod-nyc-man-south").city) == set(info.topology)  # (one-way edges included)
    paths = scenarios.write_bundled(shared_data, tmp_path)
    assert [p.stem for p in paths] == scenarios.bundled()
    for p in paths:
        assert p.read_bytes() == (scenarios.SCENARIO_DIR / p.name).read_bytes(), p.name
        assert p.with_suffix(".json").read_text() == (scenarios.SCENARIO_DIR / p.with_suffix(".json").name).read_text()
    raw = json.loads((shared_data / "amod-scenarios" / "scenario_nyc_brooklyn.json").read_text())
    expected = 9.0 * sum(r["demand"] for r in raw["demand"])  # the calibrated demand ratio of nyc_brooklyn
    np.testing.assert_allclose(scenarios.load("amod-nyc-brooklyn").city.demand_rate.sum(), expected, rtol=1e-5)


def test_january_2016_is_the_papers_city_and_month_and_loads_without_the_raw_data():
    s = scenarios.load(scenarios.JANUARY_2016)
    c, p = s.city, s.city.provenance
    assert c.num_cells == 250 and c.cell_km == 1.0 and c.fleet == 8000 and c.episode_steps == 144
    assert p["kind"] == "tlc-sample" and p["sample_rows"] == 21_799 and p["month_trips"] == 10_906_858
    # the paper's split: 24 days of January for training (3 of them held out to validate), the last 7 for test
    assert s.test_days == tuple(f"2016-01-{d}" for d in range(25, 32))
    assert s.validation_days == ("2016-01-05", "2016-01-13", "2016-01-21")
    assert len(p["estimation_days"]) == 21 and not set(p["estimation_days"]) & set(s.validation_days)
    # scaled to the month: the kept trips of the sample's cells, about 0.33 M orders a day
    assert 2.9e5 < c.orders_per_day < 3.6e5
    np.testing.assert_allclose(c.od_prob.sum(-1), 1.0, rtol=1e-5)
    assert np.all(c.demand_rate > 0) and np.all(c.od_prob[0] == c.od_prob[13])
    for day in s.validation_days + s.test_days:
        assert s.episodes[day].shape == (144, 250)
        np.testing.assert_allclose(s.episodes[day].sum(), c.orders_per_day * p["day_level"][day], rtol=0.01)


def test_a_city_from_a_sample_scales_to_the_month_and_draws_each_days_volume():
    from jaxmob.envs.taxi.tlc import taxi_scenario_from_sample

    rng = np.random.default_rng(0)
    per_day = np.where(np.arange(1, 32) == 27, 40, 200)  # a quiet test day, the 27th
    day = np.repeat(np.arange(31), per_day)
    minute = rng.integers(0, 24 * 60, len(day))
    start = pd.Timestamp("2016-01-01") + pd.to_timedelta(day, unit="D") + pd.to_timedelta(minute, unit="min")
    lat, lon = 40.75 + rng.normal(0, 0.01, (2, len(day))), -73.98 + rng.normal(0, 0.01, (2, len(day)))
    km = np.hypot((lat[1] - lat[0]) * 111.0, (lon[1] - lon[0]) * 84.0)
    trips = pd.DataFrame({"pickup_time": start, "dropoff_time": start + pd.Timedelta(minutes=12), "minutes": 12.0,
                          "fare": 4.0 + 2.0 * km, "distance": km, "pickup_lat": lat[0], "pickup_lon": lon[0],
                          "dropoff_lat": lat[1], "dropoff_lon": lon[1]})
    s = taxi_scenario_from_sample(trips, sample_rows=len(trips), month_trips=100 * len(trips), num_cells=12)
    c, p = s.city, s.city.provenance
    kept = p["kept"] - p["outside_cells"]
    est = [d for d in range(24) if d not in (4, 12, 20)]
    est_trips = sum(per_day[d] for d in est) * kept / len(trips)
    np.testing.assert_allclose(c.orders_per_day, 100 * est_trips / len(est), rtol=0.02)  # x100: the sample's weight
    assert p["day_level"]["2016-01-27"] < 0.3 and s.test_days[0] == "2016-01-25"
    assert 1.0 < p["fare_per_km"] < 3.0  # the fare line is fitted, not assumed
    with pytest.raises(ValueError, match="validation_days"):
        taxi_scenario_from_sample(trips, sample_rows=len(trips), month_trips=len(trips), validation_days=(3, 3))
    with pytest.raises(ValueError, match="sample_rows"):
        taxi_scenario_from_sample(trips, sample_rows=len(trips), month_trips=10)


def test_graph_neighbours_keep_the_six_cheapest_and_count_the_rest():
    cost = np.arange(64, dtype=float).reshape(8, 8)[:, ::-1].copy()  # cheaper for larger j
    edges = [(0, j) for j in range(1, 8)] + [(1, 0), (1, 1)]
    nbr, mask, dropped = scenarios.graph_neighbors(edges, cost, 8)
    assert dropped == 1 and list(nbr[0]) == [7, 6, 5, 4, 3, 2] and mask[0].all()
    assert list(nbr[1][mask[1]]) == [0] and not mask[2].any() and list(nbr[2]) == [2] * 6


def test_scenario_files_round_trip_and_foreign_files_are_named(tmp_path):
    s = scenarios.load("amod-nyc-man-north")
    path = scenarios.save(s.city, tmp_path / "copy", s)
    back = scenarios.load_file(path)
    assert back.test_days == s.test_days and back.city.start_step == s.city.start_step
    for n in s.episodes:
        np.testing.assert_array_equal(back.episodes[n], s.episodes[n])
    (tmp_path / "other.npz").write_bytes(b"not a zip")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(LoaderError, match="not a taxi scenario"):
        scenarios.load_file(tmp_path / "other.npz")
    with pytest.raises(LoaderError, match="no such file"):
        scenarios.load_file(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="unknown taxi scenario"):
        scenarios.load("atlantis")


def _tlc_month(path, days=26, per_day=300, seed=0):
    """A coordinate-era TLC yellow file (2016 header) with one bad row of each kind."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    start = pd.Timestamp("2016-01-01") + pd.to_timedelta(rng.integers(0, days * 24 * 60, n), unit="min")
    lat, lon = 40.75 + rng.normal(0, 0.015, (2, n)), -73.98 + rng.normal(0, 0.015, (2, n))
    fmt = "%Y-%m-%d %H:%M:%S"
    rows = ["VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,"
            "pickup_latitude,RatecodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount"]
    for i in range(n):
        t0 = start[i]
        rows.append(f"1,{t0.strftime(fmt)},{(t0 + pd.Timedelta(minutes=12)).strftime(fmt)},1,2.0,{lon[0, i]:.5f},"
                    f"{lat[0, i]:.5f},1,N,{lon[1, i]:.5f},{lat[1, i]:.5f},1,9.5")
    rows.append("1,2016-01-02 10:00:00,2016-01-02 10:10:00,1,2.0,0,0,1,N,-73.98,40.75,1,9.5")  # (0, 0)
    rows.append("1,2016-01-02 10:00:00,2016-01-02 09:50:00,1,2.0,-73.98,40.75,1,N,-73.98,40.75,1,9.5")  # negative
    path.write_text("\n".join(rows) + "\n")
    return n


def test_scenarios_taxi_builds_a_trainable_scenario_from_a_users_tlc_file(tmp_path, capsys):
    from jaxmob.cli import main
    from jaxmob.config import TrainConfig

    month = tmp_path / "yellow_tripdata_2016-01.csv"
    _tlc_month(month)
    out = tmp_path / "my-nyc.npz"
    assert main(["scenarios", "taxi", "--trips", str(month), "--out", str(out), "--num-cells", "20",
                 "--fleet", "300"]) == 0
    text = capsys.readouterr().out
    assert "1 (0, 0) positions" in text and "1 non-positive or over-24h durations" in text
    cfg = TrainConfig(env="taxi", scenario=str(out)).validate()
    s = cfg.task.load(cfg.scenario)
    assert s.validation_days == ("2016-01-22", "2016-01-23", "2016-01-24")
    assert s.test_days == ("2016-01-25", "2016-01-26") and cfg.task.fleet(cfg.options, s) == 300
    assert cfg.run_dir.endswith("madarl-my-nyc-s0")  # the file's stem names the run, not its path
    assert main(["train", "--env", "taxi", "--scenario", str(tmp_path / "absent.npz")]) == 2
    assert "absent.npz: a taxi scenario is a .npz" in capsys.readouterr().err
    assert main(["scenarios", "taxi", "--trips", str(tmp_path / "absent.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def _line_city(idle, need_rate):
    """Cells in a line 0-1-2-...; `idle[c]` idle taxis in cell c, `need_rate[c]` expected orders."""
    C = len(idle)
    nbr = np.tile(np.arange(C)[:, None], (1, 6))
    mask = np.zeros((C, 6), bool)
    for c in range(C):
        if c > 0:
            nbr[c, 0], mask[c, 0] = c - 1, True
        if c < C - 1:
            nbr[c, 1], mask[c, 1] = c + 1, True
    city = TaxiCity(name="line", cells=np.stack([np.arange(C), np.zeros(C, int)], 1), cell_mask=np.ones(C, bool),
                    neighbors=nbr, neighbor_mask=mask, demand_rate=np.tile(np.asarray(need_rate, float), (144, 1)),
                    od_prob=np.tile(np.eye(C), (24, 1, 1)), travel_steps=np.ones((C, C), np.int32),
                    fare=np.ones((C, C)), trip_km=np.ones((C, C)), cell_km=1.0, provenance={})
    params = make_params(city, num_taxis=int(sum(idle)))
    params = params.replace(init_cell=jnp.asarray(np.repeat(np.arange(C), idle), jnp.int32))
    env = TaxiEnv(TaxiConfig())
    return env, params, env.initial_state(params)


def test_greedy_sends_the_gap_and_keeps_what_a_cell_needs():
    # cell 0: 10 idle, needs 2; cell 1: 0 idle, needs 3 -> exactly 3 move 0 -> 1, the 2 kept stay
    env, params, state = _line_city([10, 0], [2.0, 3.0])
    act = np.asarray(demand_gap(jax.random.key(0), state, params, env))
    assert (act == 2).sum() == 3 and (act == 0).sum() == 7
    assert np.all(act[:2] == 0)  # the lowest ranks stay to serve the cell's own orders
    # a starving cell two hops away draws taxis through a balanced middle cell
    env, params, state = _line_city([10, 1, 0], [1.0, 1.0, 4.0])
    act = np.asarray(demand_gap(jax.random.key(0), state, params, env))
    sent = int((act[:10] == 2).sum())
    assert 4 <= sent <= 9 and act[0] == 0 and act[10] == 0  # cell 0 keeps its one, cell 1 its one
    # no shortage anywhere: nobody moves
    env, params, state = _line_city([3, 3], [1.0, 1.0])
    assert not np.asarray(demand_gap(jax.random.key(0), state, params, env)).any()


def test_zone_era_months_build_a_scenario_with_the_users_zone_centroids(tmp_path, capsys):
    from jaxmob.cli import main
    from jaxmob.envs.taxi.tlc import read_zone_centroids

    rng = np.random.default_rng(1)
    zones = {z: (40.70 + 0.01 * k, -74.00 + 0.008 * k) for k, z in enumerate(range(100, 112))}
    centroids = tmp_path / "zones.csv"
    centroids.write_text("LocationID,latitude,longitude\n" + "".join(f"{z},{a},{b}\n" for z, (a, b) in zones.items()))
    n, days = 26 * 200, 26
    start = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, days * 24 * 60, n), unit="min")
    pu, do = rng.choice(list(zones), n), rng.choice(list(zones), n)
    rows = ["VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
            "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount"]
    fmt = "%Y-%m-%d %H:%M:%S"
    rows += [f"1,{t.strftime(fmt)},{(t + pd.Timedelta(minutes=9)).strftime(fmt)},1,1.5,1,N,{a},{b},1,8.0"
             for t, a, b in zip(start, pu, do)]
    rows.append("1,2019-01-03 10:00:00,2019-01-03 10:10:00,1,1.5,1,N,264,100,1,8.0")  # a zone without a centroid
    month = tmp_path / "yellow_tripdata_2019-01.csv"
    month.write_text("\n".join(rows) + "\n")
    out = tmp_path / "zones.npz"
    assert main(["scenarios", "taxi", "--trips", str(month), "--zone-centroids", str(centroids), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "zones era" in printed and "1 unknown zones" in printed
    s = scenarios.load_file(out)
    assert s.city.num_cells <= len(zones) and s.test_days == ("2019-01-25", "2019-01-26")
    assert sum(int(e.sum()) for e in s.episodes.values()) > 0
    assert main(["scenarios", "taxi", "--trips", str(month), "--out", str(out)]) == 2  # no centroids: named
    assert "zone centroids" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("LocationID,latitude,longitude\n100,40.7,-74.0\n101,nan,-74.0\n")
    with pytest.raises(LoaderError, match="row 3"):
        read_zone_centroids(bad)
