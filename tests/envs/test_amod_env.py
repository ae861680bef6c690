"""The region-level AMoD fleet env: conservation, the NumPy/HiGHS reference, the scenarios."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmob.core.errors import LoaderError
from jaxmob.envs.amod.env import AmodConfig, AmodEnv, make_params, match_passengers, schedule
from jaxmob.envs.amod.reference import ReferenceAmod, matching_lp
from jaxmob.envs.amod.scenario import AmodScenario, bundled, from_json, load, save, load_file


def toy(R=5, S=12, seed=0, horizon=8):
    """A small city with float prices and costs (unique LP optima)."""
    rng = np.random.default_rng(seed)
    reb = rng.integers(1, 4, (R, R)).astype(np.int32)
    np.fill_diagonal(reb, 0)
    return AmodScenario(
        name="toy", source="test", tstep=3, start_minute=0, beta=0.5, demand_ratio=1.0, fleet_hour=0,
        demand=rng.uniform(0, 4, (S, R, R)).astype(np.float32), price=rng.uniform(5, 30, (S, R, R)).astype(np.float32),
        trip_steps=rng.integers(1, 5, (S, R, R)).astype(np.int32), reb_steps=reb,
        init_idle=rng.integers(3, 12, R).astype(np.int32), horizon=horizon)


def env_for(scenario, **kw):
    return AmodEnv(AmodConfig(horizon=scenario.horizon, max_steps=scenario.max_steps, **kw))


def test_matching_is_the_revenue_lp_optimum():
    rng = np.random.default_rng(1)
    for _ in range(30):
        R = rng.integers(1, 7)
        idle, requests = rng.integers(0, 9, R), rng.integers(0, 5, (R, R))
        price = rng.uniform(1, 10, (R, R))
        rank = np.argsort(-price, axis=-1)
        served = np.asarray(match_passengers(jnp.asarray(idle), jnp.asarray(requests), jnp.asarray(rank)))
        assert (served <= requests).all() and (served.sum(1) <= idle).all() and (served >= 0).all()
        _, best = matching_lp(idle, requests, price)
        np.testing.assert_allclose((served * price).sum(), best, rtol=1e-9)


def test_same_step_arrivals_from_several_origins_all_land():
    transit = jnp.zeros((3, 3), jnp.int32)
    flows = jnp.asarray([[0, 2, 5], [0, 0, 4], [1, 0, 0]])
    steps = jnp.asarray([[1, 2, 2], [1, 1, 2], [2, 1, 1]])  # 0->2 and 1->2 both land at 2 after 2 steps
    got = np.asarray(schedule(transit, flows, steps))  # filed under k = steps: idle for the matching steps + 1 on
    assert got[2, 2] == 9 and got[2, 1] == 2 and got[2, 0] == 1 and got.sum() == 12


_STEPS = {kind: jax.jit(AmodEnv(AmodConfig(horizon=8, max_steps=8, action=kind)).step) for kind in ("levels", "meta")}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["levels", "meta"]))
def test_vehicles_are_never_created_or_lost(seed, kind):
    """Random cities (one compiled step per action kind serves them all) and random actions."""
    scenario = toy(seed=seed)
    assert scenario.max_steps <= 8
    env = AmodEnv(AmodConfig(horizon=8, max_steps=8, action=kind))
    params = make_params(scenario, xi=0.1)
    key = jax.random.key(seed)
    _, state = env.reset(key, params)
    fleet = scenario.fleet
    for t in range(scenario.horizon):
        key, k1, k2 = jax.random.split(key, 3)
        if kind == "levels":
            action = jax.random.randint(k1, (scenario.num_regions,), 0, 5)
        else:
            action = jax.random.uniform(k1, (scenario.num_regions,), minval=-1, maxval=1)
        _, state, _, done, _ = _STEPS[kind](k2, state, action, params)
        assert int(state.idle.sum() + state.transit.sum()) == fleet
        assert int(state.idle.min()) >= 0 and int(state.transit.min()) >= 0
    assert bool(done) and int(state.metrics.served) <= int(state.metrics.requests)


def test_the_step_matches_the_numpy_highs_reference():
    scenario = toy(seed=3)
    requests = np.random.default_rng(5).poisson(scenario.demand[: scenario.horizon + 1]).astype(np.int32)
    env = env_for(scenario, mode="replay")
    params = make_params(scenario, replay=requests)
    ref = ReferenceAmod(params, scenario.max_steps)
    _, state = env.reset(jax.random.key(0), params)
    rstate, out = ref.initial(requests[0])
    step = jax.jit(env.step_moves)
    moves_of = jax.jit(env.moves)
    rng = np.random.default_rng(0)
    total = dict(revenue=out["revenue"], rebalancing_cost=0.0)
    for t in range(scenario.horizon):
        np.testing.assert_array_equal(np.asarray(state.idle), rstate["idle"])
        np.testing.assert_array_equal(np.asarray(state.transit), rstate["transit"])
        moves = moves_of(state, jnp.asarray(rng.integers(0, 5, scenario.num_regions)), params)
        _, state, reward, _, info = step(jax.random.key(t), state, moves, params)
        rstate, out = ref.step(rstate, np.asarray(moves), requests[t + 1])
        np.testing.assert_allclose(float(info["profit"]), out["revenue"] - out["trip_cost"], rtol=1e-5)
        np.testing.assert_allclose(out["revenue"], out["optimal_revenue"], rtol=1e-7)
        np.testing.assert_allclose(float(info["rebalancing_cost"]), out["rebalancing_cost"], rtol=1e-6)
        np.testing.assert_allclose(float(reward.sum()), out["revenue"] - out["trip_cost"] - out["rebalancing_cost"],
                                   rtol=1e-5)
        total["revenue"] += out["revenue"]
    m = env.episode_metrics(state, params)
    np.testing.assert_allclose(float(m["revenue"]), total["revenue"], rtol=1e-5)


def test_desired_distribution_moves_are_the_least_cost_flow():
    from jaxmob.envs.amod.reference import rebalancing_lp

    scenario = toy(seed=4)
    env, params = env_for(scenario), make_params(scenario)
    _, state = env.reset(jax.random.key(1), params)
    action = jnp.asarray([4, 0, 1, 3, 0])
    moves = np.asarray(env.moves(state, action, params))
    idle = np.asarray(state.idle)
    desired = np.asarray(action) * idle.sum() // 8
    after = idle - moves.sum(1) + moves.sum(0)
    assert (after >= np.minimum(desired, idle + moves.sum(0))).all()
    _, best = rebalancing_lp(idle, desired, scenario.reb_steps.astype(float))
    np.testing.assert_allclose((moves * scenario.reb_steps).sum(), best)
    assert np.asarray(env.moves(state, jnp.zeros(5, jnp.int32), params)).sum() == 0  # all zero: stay


def test_bundled_cities_load_and_are_plausible():
    names = bundled()
    assert len(names) == 11 and "nyc_brooklyn" in names
    s = load("nyc_brooklyn")
    assert s.num_regions == 14 and s.tstep == 4 and s.fleet == 107 * 14 and s.window_steps == 45
    assert (s.reb_steps[~np.eye(14, dtype=bool)] >= 1).all() and (np.diag(s.reb_steps) == 0).all()
    a, b = s.requests("test-2000"), s.requests("test-2000")
    assert a is b and a.shape == (20, 14, 14)  # 20 matchings
    with pytest.raises(ValueError, match="unknown episode"):
        s.requests("tomorrow")
    with pytest.raises(ValueError, match="unknown AMoD scenario"):
        load("atlantis")


def test_bundled_cities_rebuild_byte_for_byte(shared_data, tmp_path):
    from jaxmob.envs.amod.scenario import BUNDLED_DIR, write_bundled

    written, failed = write_bundled(shared_data / "amod-scenarios", tmp_path)
    assert not failed and sorted(p.stem for p in written) == bundled()
    for path in written:
        assert path.read_bytes() == (BUNDLED_DIR / path.name).read_bytes(), path.name


def _edited(shared_data, tmp_path, city="porto", name=None, edit=lambda data: None):
    """A copy of a benchmark city (with the calibration file when `name` keeps the city's name), edited."""
    import json
    import shutil

    src = shared_data / "amod-scenarios"
    data = json.loads((src / f"scenario_{city}.json").read_text())
    edit(data)
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / f"scenario_{name or city}.json"
    out.write_text(json.dumps(data))
    if name is None:
        shutil.copy(src / "RL4AMOD_calibrated_parameters.json", tmp_path)
    return out


def test_loader_names_the_problem(shared_data, tmp_path):
    src = shared_data / "amod-scenarios" / "scenario_porto.json"
    with pytest.raises(LoaderError, match="no demand rows"):
        from_json(src, json_hr=23)
    with pytest.raises(LoaderError, match="horizon=100 needs 101"):
        from_json(src, horizon=100)
    bad = tmp_path / "scenario_x.json"
    bad.write_text("[1, 2]")
    with pytest.raises(LoaderError, match="JSON object"):
        from_json(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not an AMoD scenario"):
        load_file(tmp_path / "junk.npz")


def test_nothing_is_guessed_when_a_city_is_built(shared_data, tmp_path):
    """No calibration entry: a named error until every setting is given; a missing rebTime row
    or a time over a day (1e12 min would overflow int32) is named, never a silent 0 or -2^31."""
    mine = _edited(shared_data, tmp_path, name="my_city")
    with pytest.raises(LoaderError, match="no entry in RL4AMOD_calibrated_parameters.json.*demand_ratio, json_hr, tstep"):
        from_json(mine)
    s = from_json(mine, demand_ratio=4, json_hr=8, tstep=3, beta=0.1)
    assert s.name == "my_city" and s.demand_ratio == 4 and s.source == "scenario_my_city.json"
    same = load("porto")
    np.testing.assert_array_equal(s.demand, same.demand)

    def drop_row(data):
        data["rebTime"] = [r for r in data["rebTime"] if not (r["origin"] == 1 and r["destination"] == 2)]
    with pytest.raises(LoaderError, match=r"lacks \d+ of the 156 region pairs.*1->2"):
        from_json(_edited(shared_data, tmp_path / "a", edit=drop_row))

    def huge(key, field, value):
        def edit(data):
            data[key][0][field] = value
        return edit
    for key, field, value in (("rebTime", "reb_time", 1e12), ("demand", "travel_time", 1e6)):
        with pytest.raises(LoaderError, match=f"'{key}.{field}' of .* min .* over a day"):
            from_json(_edited(shared_data, tmp_path / field, edit=huge(key, field, value)))


def test_each_city_of_a_folder_succeeds_or_fails_on_its_own(shared_data, tmp_path):
    from test_cli import jaxmob

    folder = tmp_path / "data" / "amod-scenarios"
    folder.mkdir(parents=True)
    _edited(shared_data, folder)
    _edited(shared_data, folder, city="rome", edit=lambda d: d["rebTime"].clear())
    proc = jaxmob("scenarios", "amod", "--data", tmp_path / "data", "--out", tmp_path / "out")
    assert proc.returncode == 1 and "wrote" in proc.stdout and (tmp_path / "out" / "porto.npz").exists()
    assert "failed scenario_rome.json" in proc.stderr and "1 of 2 failed" in proc.stderr

    mine = _edited(shared_data, tmp_path / "mine", name="my_city")
    proc = jaxmob("scenarios", "amod", "--json", mine)
    assert proc.returncode == 2 and "--json needs --out" in proc.stderr
    proc = jaxmob("scenarios", "amod", "--json", mine, "--out", tmp_path / "built", "--demand-ratio", "4",
                  "--json-hr", "8", "--tstep", "3", "--beta", "0.1")
    assert proc.returncode == 0, proc.stderr
    assert load_file(tmp_path / "built" / "my_city.npz").fleet == load("porto").fleet


def test_save_and_load_round_trip(tmp_path):
    s = toy()
    save(s, tmp_path / "toy.npz")
    back = load_file(tmp_path / "toy.npz")
    for f in ("demand", "price", "trip_steps", "reb_steps", "init_idle"):
        np.testing.assert_array_equal(getattr(back, f), getattr(s, f))
    assert back.horizon == s.horizon and back.beta == s.beta


def test_clairvoyant_bound_of_a_hand_solved_city():
    """One vehicle in region 0, one request 1 -> 0 at step 2 paying 10: moving there at step 0
    (1 step, cost 1; back for the matching of step 2, the benchmark's timing) and serving
    (1 step, cost 1) earns 10 - 1 - 1 = 8. A request at step 1 cannot be reached in time."""
    from jaxmob.envs.amod.bound import clairvoyant_bound

    s = AmodScenario(name="hand", source="test", tstep=1, start_minute=0, beta=1.0, demand_ratio=1.0, fleet_hour=0,
                     demand=np.zeros((3, 2, 2), np.float32), price=np.full((3, 2, 2), 10.0, np.float32),
                     trip_steps=np.ones((3, 2, 2), np.int32), reb_steps=np.array([[0, 1], [1, 0]], np.int32),
                     init_idle=np.array([1, 0], np.int32), horizon=2)
    requests = np.zeros((3, 2, 2), np.int32)
    requests[2, 1, 0] = 1
    b = clairvoyant_bound(s, requests)
    assert b["reward"] == pytest.approx(8.0) and b["served"] == pytest.approx(1.0) and b["rebalanced"] == pytest.approx(1.0)
    early = np.zeros_like(requests)
    early[1, 1, 0] = 1
    assert clairvoyant_bound(s, early)["reward"] == pytest.approx(0.0)


def test_mpc_plans_from_the_state_on_the_forecast_and_rounds_to_whole_vehicles():
    """A vehicle due back at region 0 for the next matching and one idle at 0; region 1 expects
    2 requests to 0 (price 10) at step 2: MPC sends one vehicle now and plans the other later."""
    from jaxmob.envs.amod.bound import mpc_moves, whole_moves

    demand = np.zeros((4, 2, 2), np.float32)
    demand[2, 1, 0] = 2.0
    s = AmodScenario(name="hand", source="test", tstep=1, start_minute=0, beta=1.0, demand_ratio=1.0, fleet_hour=0,
                     demand=demand, price=np.full((4, 2, 2), 10.0, np.float32), trip_steps=np.ones((4, 2, 2), np.int32),
                     reb_steps=np.array([[0, 1], [1, 0]], np.int32), init_idle=np.array([2, 0], np.int32), horizon=3)
    transit = np.zeros((3, 2), np.int64)
    transit[0, 0] = 1  # idle for the matching of step 1: too late to reach step 2's requests
    assert mpc_moves(s, 0, np.array([1, 0]), transit).tolist() == [[0, 1], [0, 0]]
    assert mpc_moves(s, 3, np.array([1, 0]), transit).sum() == 0  # the episode is over
    y = np.array([[0.0, 0.6, 0.6], [0.2, 0.0, 0.2], [0.0, 2.9, 0.0]])
    moves = whole_moves(y, np.array([1, 5, 2]))
    assert moves.tolist() == [[0, 1, 0], [0, 0, 0], [0, 2, 0]]  # rounded per origin, never above idle


def test_meta_dispatch_as_published_and_the_earlier_variant():
    """Regions 0, 1 high (a = 0.5, 1.0 of 10 and 4 idle: x = 5, 4); regions 2, 3 low
    (a = -0.5, -1.0 of 8 and 4 idle: y = 4, 4). Paper weights d_ij |x_i - y_j| pair 0 with
    the y-closest receiver at the lower distance and each pair moves x_i."""
    from jaxmob.envs.amod.meta import meta_moves

    idle = jnp.asarray([10, 4, 8, 4])
    action = jnp.asarray([0.5, 1.0, -0.5, -1.0])
    distance = jnp.asarray([[0, 1, 1, 3], [1, 0, 2, 1], [1, 2, 0, 1], [3, 1, 1, 0]], jnp.float32)
    expected = jnp.asarray([0.0, 0.0, 2.0, 6.0])
    paper = np.asarray(meta_moves(idle, expected, action, 0.1, distance, "paper"))
    # weights: 0->2: 1*|5-4| = 1, 0->3: 3*1 = 3, 1->2: 2*0 = 0, 1->3: 1*0 = 0 -> best pairing {0->2, 1->3}
    assert paper.tolist() == [[0, 0, 5, 0], [0, 0, 0, 4], [0] * 4, [0] * 4]
    earlier = np.asarray(meta_moves(idle, expected, action, 0.1, distance, "min"))
    # asks round(|a| * expected) = 1, 6; weights d |a_i - a_j|: 0->2 1, 0->3 4.5, 1->2 3, 1->3 2 -> {0->2, 1->3}
    assert earlier.tolist() == [[0, 0, 1, 0], [0, 0, 0, 4], [0] * 4, [0] * 4]


def test_the_bound_is_above_every_policy():
    from jaxmob.envs.amod.baselines import equal_distribution, no_rebalancing
    from jaxmob.envs.amod.bound import clairvoyant_bound
    from jaxmob.core.rollout import random_policy, rollout

    scenario = toy(seed=2)
    requests = np.random.default_rng(9).poisson(scenario.demand[: scenario.horizon + 1]).astype(np.int32)
    env, params = env_for(scenario, mode="replay"), make_params(scenario, replay=requests)
    bound = clairvoyant_bound(scenario, requests)["reward"]
    for seed, policy in enumerate([no_rebalancing, equal_distribution] + [random_policy] * 5):
        got = float(rollout(policy, env, params, jax.random.key(seed))["reward"])
        assert got <= bound + 1e-3


def test_amod_trains_through_the_generic_trainer_and_reports_test_episodes(tmp_path):
    from jaxmob.config import TrainConfig
    from jaxmob.train import train

    cfg = TrainConfig(env="amod", alg="mappo", scenario="san_francisco", total_updates=2, updates_per_chunk=1,
                      num_envs=2, minibatches=2, eval_episodes=2, progress=False, out_dir=str(tmp_path / "run"))
    out = train(cfg, log=lambda *a: None)
    assert out["updates"] == 2 and out["headline"] == "reward"
    assert set(out["test"]["per_day"]) == set(load("san_francisco").test_days)
    assert np.isfinite(out["test"]["reward"]) and 0 < out["test"]["served_ratio"] <= 1
    with pytest.raises(ValueError, match="action"):
        TrainConfig(env="amod", options={"action": "teleport"}).validate()


def test_meta_balance_reward_is_min_over_max_of_requests_and_idle():
    scenario = toy(seed=6)
    requests = np.random.default_rng(2).poisson(scenario.demand[: scenario.horizon + 1]).astype(np.int32)
    env = env_for(scenario, mode="replay", action="meta", reward="balance")
    params = make_params(scenario, replay=requests, xi=0.1)
    _, state = env.reset(jax.random.key(0), params)
    moves = jnp.zeros((5, 5), jnp.int32)
    idle_before = np.asarray(state.idle + state.transit[0])  # nothing moves: idle after arrivals
    _, _, reward, _, info = env.step_moves(jax.random.key(1), state, moves, params)
    demand = requests[1].sum(axis=1)
    want = np.where(np.maximum(demand, idle_before) > 0,
                    np.minimum(demand, idle_before) / np.maximum(np.maximum(demand, idle_before), 1), 1.0)
    np.testing.assert_allclose(np.asarray(reward), want, rtol=1e-6)
    assert float(info["team"]) == pytest.approx(float(info["profit"]))  # the team reward is still profit
