"""The parking environment: conservation, the NumPy oracle, retracing, scenario building and bad input."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmob.envs.parking.env import STATIC_RULES, ParkingConfig, ParkingEnv, make_params, offer_scores, service_order
from jaxmob.envs.parking.reference import reference_step
from jaxmob.envs.parking.scenario import ScenarioError, build_from_snapshots, load, read_snapshot, toy_scenario


SMALL = ParkingConfig(horizon=40, max_arrivals=4, queue=5, max_wait=3, history=2)


@pytest.fixture(scope="module")
def small():
    env = ParkingEnv(SMALL)
    params = make_params(toy_scenario(), neighbours=3)
    step = jax.jit(env.step)
    return env, params, step


def test_bays_and_vehicles_are_conserved_under_any_actions(small):
    env, params, step = small

    failures = []

    @settings(max_examples=6, deadline=None)
    @given(st.integers(0, 2**31 - 1))
    def check(seed):
        key = jax.random.key(seed)
        _, state = env.reset(key, params)
        made = 0
        for t in range(12):
            key, k_a, k_s = jax.random.split(key, 3)
            action = jax.random.uniform(k_a, (6,), minval=-1.5, maxval=1.5)  # clipped by the env
            _, state, reward, _, info = step(k_s, state, action, params)
            made += int(info["requests"])
            s = jax.device_get(state)
            row = int(s.t) + 1
            assert (s.free >= 0).all() and (s.free <= np.asarray(params.capacity)).all()
            np.testing.assert_array_equal(s.free + s.departs[row:].sum(0), np.asarray(params.capacity))
            np.testing.assert_array_equal(s.en_route, s.arrives[row:].sum(0))
            m = s.metrics
            assert made == int(m.requests.sum()) == int(s.queue.valid.sum() + m.parked.sum() + m.failed.sum())
            assert np.all(np.asarray(reward)[~np.asarray(params.optimised)] == 0)
        failures.append(int(state.metrics.failed.sum()))

    check()
    assert sum(failures) > 0  # the toy city is overloaded: failures and their bookkeeping are exercised


def _as_dict(state):
    s = jax.device_get(state)
    q = s.queue
    return dict(t=s.t, free=np.asarray(s.free), free_since=np.asarray(s.free_since), en_route=np.asarray(s.en_route),
                departs=np.asarray(s.departs), arrives=np.asarray(s.arrives), due_reward=np.asarray(s.due_reward),
                q_dest=np.asarray(q.dest), q_time=np.asarray(q.time), q_stay=np.asarray(q.stay), q_valid=np.asarray(q.valid))


@pytest.mark.parametrize("scope", [0, 1])  # the reward of vehicles parked in the core; of requests for the core
def test_step_matches_the_numpy_reference(small, scope):
    env, params, _ = small
    params = params.replace(reward_scope=jnp.int32(scope), walk_penalty=jnp.float32(0.05 * scope))
    p = {k: np.asarray(v) for k, v in vars(params).items()}
    step_with = jax.jit(env.step_with)
    rng = np.random.default_rng(0)
    key = jax.random.key(3)
    _, state = env.reset(key, params)
    checked = 0
    for t in range(25):
        key, k_arr, k_sc = jax.random.split(key, 3)
        scores = jnp.asarray(rng.random(6), jnp.float32)
        C = state.queue.valid.shape[0]
        waiting = int(state.queue.valid.sum())  # the queue's waiting requests are its first slots
        order = np.arange(C) if t % 2 else np.r_[rng.permutation(waiting), np.arange(waiting, C)]  # FIFO, SIRO
        arrivals = env.arrivals(k_arr, state.t, params)
        ref, counts = reference_step(_as_dict(state), np.asarray(scores), order, [np.asarray(a) for a in arrivals], p,
                                     SMALL.max_wait)
        before = jax.device_get(state.metrics)
        state, info = step_with(state, scores, jnp.asarray(order), arrivals, params)
        got = _as_dict(state)
        for k in ("free", "free_since", "en_route", "departs", "arrives"):
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{k} at minute {t}")
        np.testing.assert_allclose(got["due_reward"], ref["due_reward"], rtol=1e-5, atol=1e-5)
        n = len(ref["q_dest"])
        assert got["q_valid"].sum() == n
        np.testing.assert_array_equal(got["q_dest"][:n], ref["q_dest"])
        np.testing.assert_allclose(got["q_time"][:n], ref["q_time"], rtol=1e-6)
        m = jax.device_get(state.metrics)
        for k in ("parked", "failed", "requests"):
            np.testing.assert_array_equal(getattr(m, k) - getattr(before, k), counts[k], err_msg=k)
        np.testing.assert_allclose(m.cruise - before.cruise, counts["cruise"], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(float(info["team_reward"]), counts["paid"], rtol=1e-5, atol=1e-5)
        checked += int(counts["parked"].sum())
    assert checked > 10


def test_the_reward_scope_pays_the_cores_requests_wherever_they_park(small):
    """Under the destination scope the pay scheduled over an episode is exactly 1 - 0.1 x cruise -
    walk_penalty x walk summed over the parked requests for the core (the metrics count by
    destination); under the facility scope it is not (periphery vehicles parked in the core pay,
    core requests parked in the periphery do not)."""
    env, params, step = small

    def run(scope, walk):
        p = params.replace(reward_scope=jnp.int32(scope), walk_penalty=jnp.float32(walk))
        key = jax.random.key(7)
        _, state = env.reset(key, p)
        for t in range(30):
            key, k_a, k = jax.random.split(key, 3)
            _, state, *_ = step(k, state, jax.random.uniform(k_a, (6,), minval=-1, maxval=1), p)
        m = jax.device_get(state.metrics)
        core = m.parked[:2].sum() - 0.1 * m.cruise[:2].sum() - walk * m.walk[:2].sum()
        return float(np.asarray(state.due_reward).sum()), float(core), int(m.parked[:2].sum())

    for walk in (0.0, 0.5):
        scheduled, core, parked = run(1, walk)
        assert parked > 5
        np.testing.assert_allclose(scheduled, core, rtol=1e-4)
    scheduled, core, _ = run(0, 0.0)
    assert abs(scheduled - core) > 0.05  # (the tolerance above is 0.002)


def test_the_step_compiles_once(small):
    env, params, _ = small

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state, action):
        return env.step(key, state, action, params)

    _, state = env.reset(jax.random.key(0), params)
    for i in range(3):
        _, state, *_ = step(jax.random.key(i), state, jnp.zeros(6))


def test_rules_score_and_order_as_documented(small):
    env, params, _ = small
    _, state = env.reset(jax.random.key(0), params)
    state = state.replace(t=jnp.int32(30), free_since=jnp.array([0, 30, 10, 1 << 20, 0, 0], jnp.int32),
                          free=jnp.array([1, 1, 1, 0, 1, 1], jnp.int32))
    action = jnp.array([1.0, -1.0, 0.0, 0.5, 0.5, 0.5])
    expect_static = {"fifo": [1.0, 1.0, 1.0], "siro": [1.0, 1.0, 1.0],  # nearest free bay
                     "longest_free": [0.0, 1 - np.exp(-1.0), 1 - np.exp(-1.0)]}  # 30 minutes free
    for rule, static in expect_static.items():
        p = params.replace(static_rule=jnp.int32(STATIC_RULES.index(rule)))
        scores = np.asarray(offer_scores(jax.random.key(1), state, action, p))
        np.testing.assert_allclose(scores[:3], [1.0, 0.0, 0.5])  # optimised: (a + 1) / 2
        np.testing.assert_allclose(scores[3:], static, rtol=1e-6, err_msg=rule)
    p = params.replace(static_rule=jnp.int32(STATIC_RULES.index("random_facility")))
    draws = np.stack([np.asarray(offer_scores(jax.random.key(i), state, action, p))[3:] for i in range(50)])
    assert 0.3 < draws.mean() < 0.7 and draws.std() > 0.2
    C = state.queue.valid.shape[0]
    for rule in ("fifo", "longest_free", "random_facility"):  # oldest first
        np.testing.assert_array_equal(service_order(STATIC_RULES.index(rule), jax.random.key(0), state.queue), np.arange(C))
    queue = state.queue.replace(valid=jnp.arange(C) < 4)  # four waiting
    orders = [np.asarray(service_order(1, jax.random.key(i), queue)) for i in range(20)]  # SIRO: random, waiting first
    assert all(sorted(o[:4]) == [0, 1, 2, 3] and list(o[4:]) == list(range(4, C)) for o in orders)
    assert len({tuple(o) for o in orders}) >= 12  # of 24
    stays = jnp.zeros(C, jnp.int32).at[:5].set(jnp.array([90, 30, 240, 30, 5]))  # the fifth is not waiting
    spt = np.asarray(service_order(STATIC_RULES.index("spt"), jax.random.key(0), queue.replace(stay=stays)))
    assert list(spt[:4]) == [1, 3, 0, 2] and sorted(spt[4:]) == list(range(4, C))  # shortest first, ties oldest first
    p = params.replace(static_rule=jnp.int32(STATIC_RULES.index("spt")))
    np.testing.assert_allclose(np.asarray(offer_scores(jax.random.key(1), state, action, p))[3:], 1.0)  # nearest free bay


def test_training_starts_at_a_random_minute_with_bays_taken():
    scenario = toy_scenario(rate=1.0)
    env = ParkingEnv(ParkingConfig(horizon=10, random_start=True, max_arrivals=4, queue=5))
    params = make_params(scenario, neighbours=3)
    starts, taken = [], []
    for i in range(20):
        _, s = env.reset(jax.random.key(i), params)
        starts.append(int(s.t))
        taken.append(int((params.capacity - s.free).sum()))
    assert len(set(starts)) > 3 and max(starts) <= 50
    assert np.mean(taken) > 0.5


def test_bundled_scenario():
    s = load("melbourne")
    assert s.num_facilities == 168 and int(s.capacity.sum()) == 3075
    assert int(s.occupied_am.sum()) == 1613 and int(s.occupied_pm.sum()) == 1411
    assert set(np.unique(s.region)) == {0, 1, 2} and s.optimised.sum() == 72
    assert np.all(s.rates > 0) and np.allclose(s.dest_weights.sum(1), 1)
    span = s.walk_m() / 1.3
    for f in range(s.num_facilities):  # a facility holds exactly the bays assigned to it
        bays = s.bay_facility == f
        assert bays.sum() == s.capacity[f]
    assert np.all(np.diag(span) == 0)
    with pytest.raises(ScenarioError, match="unknown parking scenario"):
        load("atlantis")


def test_bundled_scenario_is_rebuilt_from_the_sensor_files(shared_data):
    rebuilt = build_from_snapshots(shared_data / "melbourne-parking", calibrate=False, log=lambda *_: None)
    bundled = load("melbourne")
    for k in ("capacity", "region", "postcode", "occupied_am", "occupied_pm", "bay_facility", "lat", "lon"):
        np.testing.assert_array_equal(getattr(rebuilt, k), getattr(bundled, k), err_msg=k)
    np.testing.assert_array_equal(rebuilt.bay_marker, bundled.bay_marker)


def test_calibrated_occupancy_matches_the_snapshots_per_area():
    from jaxmob.envs.parking.scenario import region_totals, simulated_snapshot_occupancy

    s = load("melbourne")
    sim = [region_totals(s, occ) for occ in simulated_snapshot_occupancy(s, days=4)]  # the calibration's days
    real = [region_totals(s, s.occupied_pm), region_totals(s, s.occupied_am)]
    np.testing.assert_allclose(sim, real, rtol=0.02)  # CBD, Southbank, periphery at 16:38 and 11:18: as calibrated


def test_bad_sensor_files_are_named(tmp_path):
    header = "bay_id,st_marker_id,status,location,lat,lon\n"
    cases = {"empty.csv": ("", "empty file"),
             "cols.csv": ("bay_id,status\n1,Present\n", "missing column"),
             "nan.csv": (header + '1,A1,Present,"",nan,144.9\n', "missing or impossible position"),
             "far.csv": (header + '1,A1,Present,"",999,-999\n', "latitude outside"),
             "header-only.csv": (header, "no bay rows"),
             "truncated.csv": (header + '1,A1,Present,"(-37.8, 144.9)",-37.8,144.9\n2,A2,Present,"(-37.8', "not a readable CSV"),
             "status.csv": (header + '1,A1,Parked,"",-37.8,144.9\n', "Present/Unoccupied"),
             "dup.csv": (header + '1,A1,Present,"",-37.8,144.9\n1,A2,Present,"",-37.8,144.9\n', "appears twice")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ScenarioError, match=message):
            read_snapshot(tmp_path / name)
    (tmp_path / "bytes.csv").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(ScenarioError, match="bytes.csv: not a readable CSV"):
        read_snapshot(tmp_path / "bytes.csv")
    with pytest.raises(ScenarioError, match="no such file"):
        read_snapshot(tmp_path / "absent.csv")


def test_impossible_configs_are_refused():
    with pytest.raises(ValueError, match="mode"):
        ParkingConfig(mode="live")
    with pytest.raises(ValueError, match="queue"):
        ParkingConfig(queue=0)
    with pytest.raises(ValueError, match="static_rule"):
        make_params(toy_scenario(), static_rule="lottery")
