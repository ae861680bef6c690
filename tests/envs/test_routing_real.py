"""Real San Francisco requests: the bundled Cabspotting scenario, its replay, and the controlled rollout."""
import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmob.core.geometry import haversine_m
from jaxmob.envs.routing import env as E
from jaxmob.envs.routing import real_demand
from jaxmob.envs.routing.evaluate import Episode, RoutingSetup, run_policy
from jaxmob.envs.routing.graph import bundled_graph
from jaxmob.envs.routing.policies import ia_ra, rollout_targets
from jaxmob.envs.routing.two_phase import (
    phase_one_rollout_targets,
    rebalance_between_sectors,
    sectors_for,
)

GRAPH = bundled_graph()
REAL = real_demand.load()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(37.775, 37.816), st.floats(-122.49, -122.39)), min_size=1, max_size=40))
def test_snapping_finds_the_nearest_intersection_by_great_circle(points):
    lat, lon = np.array(points).T
    idx, dist = GRAPH.nearest_node(lat, lon)
    brute = haversine_m(lat[:, None], lon[:, None], GRAPH.lat[None, :], GRAPH.lon[None, :])
    np.testing.assert_allclose(dist, brute.min(axis=1), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(brute[np.arange(len(lat)), idx], dist, rtol=1e-9, atol=1e-6)


def test_the_days_are_split_in_time_order_and_never_shared():
    train, val, test = REAL.train_days, REAL.validation_days, REAL.test_days
    assert not (set(train) & set(val)) and not (set(val) & set(test)) and not (set(train) & set(test))
    assert max(train) < min(val) and max(val) < min(test)
    assert set(REAL.days) == set(val) | set(test)
    assert REAL.pickup_counts.sum() == REAL.dropoff_counts.sum() > 50_000  # ~7,000 real requests a training day


def test_the_forecast_is_the_training_days_counts_in_the_window():
    """An hour-aligned window's forecast: its hours' training counts, normalised, at their mean rate x scale."""
    d = REAL.demand(start_hour=18, steps=480, step_seconds=15.0, scale=0.5)  # 18:00-20:00
    pick = REAL.pickup_counts[18] + REAL.pickup_counts[19]
    np.testing.assert_allclose(d.pickup, pick / pick.sum())
    assert d.rate == pytest.approx(0.5 * pick.sum() / len(REAL.train_days) / 480)
    half = REAL.demand(start_hour=18.5, steps=120, step_seconds=15.0, scale=1.0)  # 18:30-19:00: half of hour 18
    assert half.rate == pytest.approx(0.5 * REAL.pickup_counts[18].sum() / len(REAL.train_days) / 120)
    with pytest.raises(ValueError, match="within one day"):
        REAL.demand(start_hour=23.5, steps=240)
    with pytest.raises(ValueError, match="scale"):
        REAL.demand(scale=0.0)


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_a_replayed_day_is_the_days_requests_in_the_window(scale):
    day = REAL.test_days[0]
    second, pick, drop = REAL.days[day]
    count, picks, drops = REAL.replay(day, start_hour=19, steps=240, step_seconds=15.0, scale=scale, slots=6)
    inside = (second >= 19 * 3600) & (second < 20 * 3600)
    if scale == 1.0:
        assert count.sum() == inside.sum()
        step = (second[inside] - 19 * 3600) // 15
        for t in np.unique(step)[:30]:  # each step holds its own requests, in time order
            n = min(int((step == t).sum()), 6)
            np.testing.assert_array_equal(picks[t, :n], pick[inside][step == t][:n])
            np.testing.assert_array_equal(drops[t, :n], drop[inside][step == t][:n])
    else:  # a thinning: about the share kept, and the same draw every time
        assert 0.15 * inside.sum() < count.sum() < 0.35 * inside.sum()
        again = REAL.replay(day, start_hour=19, steps=240, step_seconds=15.0, scale=scale, slots=6)
        np.testing.assert_array_equal(count, again[0])
    with pytest.raises(ValueError, match="not a held-out day"):
        REAL.replay(REAL.train_days[0])


def test_replayed_requests_are_the_ones_the_episode_serves():
    """Requests in = requests queued + turned away; a day with no requests costs nothing."""
    setup = RoutingSetup(fleet=6, steps=40, queue=16, chunk=10)
    demand = REAL.demand(19, 40)
    arrivals = REAL.replay(REAL.test_days[0], 19, 40, 15.0, 1.0, 6)
    quiet = tuple(np.zeros_like(a) for a in arrivals)
    row = run_policy("ia_ra", GRAPH, demand, setup, episodes=[Episode("day", 2000, arrivals), Episode("quiet", 2001, quiet)])
    busy, empty = row["episodes"]
    assert busy["arrived"] + busy["turned_away"] == arrivals[0].sum() > 0
    assert empty["arrived"] == empty["total_wait"] == 0
    with pytest.raises(ValueError, match="steps of arrivals"):
        run_policy("ia", GRAPH, demand, RoutingSetup(fleet=6, steps=20, chunk=10), episodes=[Episode("day", 2000, arrivals)])


def _busy(seed, m=8, q=12):
    rng = np.random.default_rng(seed)
    demand = REAL.demand()
    live = rng.random(q) < 0.8
    return E.initial_state(rng.choice(GRAPH.num_nodes, m, p=demand.dropoff), q).replace(
        req_pick=jnp.asarray(rng.choice(GRAPH.num_nodes, q, p=demand.pickup), jnp.int32),
        req_drop=jnp.asarray(rng.choice(GRAPH.num_nodes, q, p=demand.dropoff), jnp.int32),
        req_live=jnp.asarray(live), arrived=jnp.int32(int(live.sum()))), demand


def test_the_controlled_rollout_is_phase_one_then_the_full_map_rollout(seed=0):
    """Taxis phase one moves keep its targets; the rest get exactly the full-map rollout started
    from those moves; with one sector phase one moves nobody and it is the plain rollout."""
    state, demand = _busy(seed)
    params = E.params_from(GRAPH, demand)
    key = jax.random.key(seed)
    sectors = sectors_for(GRAPH, demand.pickup, fleet=8, cap=2)
    targets, assigned = ia_ra(state, params)
    moved, p1 = rebalance_between_sectors(state, params, sectors, assigned, 2, 6)
    t, _ = phase_one_rollout_targets(key, state, params, sectors, cap=2, horizon=6, samples=2)
    moved = np.asarray(moved)
    np.testing.assert_array_equal(np.asarray(t)[moved], np.asarray(p1)[moved])
    start = (jnp.where(moved, p1, targets), jnp.where(moved, -1, assigned))
    t2, _ = rollout_targets(key, state, params, 6, 2, active=jnp.asarray(~moved), start=start)
    np.testing.assert_array_equal(np.asarray(t), np.asarray(t2))
    one = sectors_for(GRAPH, demand.pickup, fleet=8, cap=8)
    t1, _ = phase_one_rollout_targets(key, state, params, one, cap=8, horizon=6, samples=2)
    np.testing.assert_array_equal(np.asarray(t1), np.asarray(rollout_targets(key, state, params, 6, 2)[0]))


def _trips_file(path, rows):
    header = "cab_id,pickup_unix,pickup_local,pickup_lat,pickup_lon,dropoff_unix,dropoff_local,dropoff_lat,dropoff_lon\n"
    with gzip.open(path, "wt") as f:
        f.write(header + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def test_the_builder_splits_days_and_counts_what_it_drops(tmp_path):
    a, b = (GRAPH.lat[10], GRAPH.lon[10]), (GRAPH.lat[500], GRAPH.lon[500])
    rows = [("c", 1211200000 + k, f"{day} 19:{k:02d}:00", *a, 1211200400, f"{day} 19:30:00", *b)
            for k, day in enumerate(["2008-05-20", "2008-05-20", "2008-06-04", "2008-06-09"])]
    rows.append(("c", 1211200004, "2008-05-21 08:00:00", 10.0, 10.0, 1211200400, "2008-05-21 08:10:00", *b))
    built = real_demand.build(_trips_file(tmp_path / "trips.csv.gz", rows), GRAPH)
    assert built.pickup_counts[19, 10] == 2 and built.dropoff_counts[19, 500] == 2 and built.pickup_counts.sum() == 2
    np.testing.assert_array_equal(built.days["2008-06-04"][1], [10])
    assert len(built.days["2008-06-05"][0]) == 0
    assert built.dropped == {"pickup outside the map": 1,
                             "pick-up on an incomplete day (05-17 from 03:00, 06-09, 06-10) or an unreadable local time": 1}
    again = real_demand.load(built.save(tmp_path / "s.npz"))
    np.testing.assert_array_equal(again.pickup_counts, built.pickup_counts)
    assert {d: v[1].tolist() for d, v in again.days.items()} == {d: v[1].tolist() for d, v in built.days.items()}


def test_the_bundled_scenario_is_rebuilt_from_the_shared_trips(shared_data):
    trips = shared_data.joinpath(*real_demand.RAW_TRIPS)
    if not trips.is_file():
        pytest.skip(f"{trips} is absent")
    built = real_demand.build(trips, GRAPH)
    np.testing.assert_array_equal(built.pickup_counts, REAL.pickup_counts)
    np.testing.assert_array_equal(built.dropoff_counts, REAL.dropoff_counts)
    assert built.dropped == REAL.dropped and built.source == REAL.source
    for day, arrays in REAL.days.items():
        for x, y in zip(built.days[day], arrays):
            np.testing.assert_array_equal(x, y)


def test_the_shared_trips_file_reads_as_a_request_file(shared_data):
    """`--requests` takes the shared file as it is (`pickup_unix` is its time: unix seconds)."""
    from jaxmob.envs.routing.demand import demand_from_csv

    trips = shared_data.joinpath(*real_demand.RAW_TRIPS)
    if not trips.is_file():
        pytest.skip(f"{trips} is absent")
    d = demand_from_csv(trips, GRAPH)
    kept = int(d.source.split(": ")[1].split(" requests")[0].replace(",", ""))
    assert kept == 442_750 - sum(d.dropped.values())
    hours = float(d.source.split(" over ")[1].split(" h")[0])
    assert 570 < hours < 580  # 17 May 03:00 to 10 June: the span in hours, not in thousands of them
