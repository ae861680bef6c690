"""Tests of the JAX bike-rebalancing env against `docs/rebalance-dynamics.md`.

Kept fast: small synthetic cities, fixed `pipeline_steps`/`max_trips_per_step`
where many cities share one compiled program, short rollouts as one `lax.scan`.
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxmob.envs.rebalance.city import City, DayTrips, synthetic_city
from jaxmob.envs.rebalance import (RebalanceConfig, RebalanceEnv, RebalanceExogenous, alias_tables,
                                   poisson_by_inversion)


# ----------------------------------------------------------------------- helpers
def small_city(grid="square", cols=3, rows=3, *, seed=0, docks=(3, 8), trips=2000.0, fill=0.5) -> City:
    return synthetic_city(grid, cols, rows, seed=seed, docks_per_region=docks, trips_per_day=trips, fill=fill)


def sample_trips(city: City, seed: int, scale: float = 1.0) -> DayTrips:
    """A day of trips drawn from the city's rates and OD probabilities (test-local sampler)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.asarray(city.demand_rate, np.float64) * scale)
    steps, origins = np.nonzero(counts)
    reps = counts[steps, origins]
    depart, origin = np.repeat(steps, reps), np.repeat(origins, reps)
    od = np.asarray(city.od_prob, np.float64)
    dest = np.array([rng.choice(city.num_regions, p=od[t // city.od_bucket_steps, o] / od[t // city.od_bucket_steps, o].sum())
                     for t, o in zip(depart, origin)], dtype=np.int64)
    arrive = depart + np.asarray(city.travel_steps)[origin, dest]
    return DayTrips.create(origin, dest, depart, arrive, num_regions=city.num_regions,
                           steps_per_day=city.steps_per_day, date=f"day-{seed}")


def pad_city(city: City, extra: int) -> City:
    """The same city with `extra` padding regions (masked, no docks, no demand)."""
    R, n = city.num_regions, city.num_regions + extra
    grow = lambda a, fill=0: np.concatenate([np.asarray(a), np.full((extra,) + np.shape(a)[1:], fill, np.asarray(a).dtype)])
    square = lambda a, fill: np.pad(np.asarray(a), ((0, extra), (0, extra)), constant_values=fill)
    neighbors = grow(city.neighbors)
    neighbors[R:] = np.arange(R, n)[:, None]
    od = np.pad(np.asarray(city.od_prob), ((0, 0), (0, extra), (0, extra)))
    return City.create(
        name=city.name + "-padded", centroid=grow(city.centroid), xy_km=grow(city.xy_km, 99.0),
        cell=grow(city.cell, -1), neighbors=neighbors, neighbor_mask=grow(city.neighbor_mask, False),
        travel_steps=square(city.travel_steps, 1), relocation_steps=square(city.relocation_steps, 1),
        demand_rate=np.pad(np.asarray(city.demand_rate), ((0, 0), (0, extra))), od_prob=od,
        init_inventory=grow(city.init_inventory), capacity=grow(city.capacity),
        features=grow(city.features), feature_names=city.feature_names, region_mask=grow(city.region_mask, False),
        region_ids=tuple(city.region_ids) + tuple(f"pad{i}" for i in range(extra)), grid=city.grid,
        grid_shape=city.grid_shape, cell_km=city.cell_km, step_minutes=city.step_minutes,
    )


@functools.lru_cache(maxsize=None)
def rollout_fn(config: RebalanceConfig, steps: int):
    """(env, jitted rollout): `steps` steps of given actions; per-step fleet totals and infos."""
    env = RebalanceEnv(config)

    @jax.jit
    def rollout(key, state, actions, params):
        def one(state, xs):
            step_key, action = xs
            _, state, reward, done, info = env.step(step_key, state, action, params)
            fleet = state.inventory.sum() + state.riding.sum() + state.relocating.sum()
            lowest = jnp.minimum(state.inventory.min(), jnp.minimum(state.riding.min(), state.relocating.min()))
            return state, (fleet, lowest, reward, done, info)
        return jax.lax.scan(one, state, (jax.random.split(key, steps), actions))

    return env, rollout


def random_actions(rng, steps, R, num_actions):
    """Mostly valid actions plus out-of-range ones on both sides."""
    return jnp.asarray(rng.integers(-2, num_actions + 2, size=(steps, R)), jnp.int32)


# ----------------------------------------------------------------------- config validation
@pytest.mark.parametrize("kwargs, field", [
    (dict(horizon=0), "horizon"), (dict(horizon=2.5), "horizon"), (dict(horizon=True), "horizon"),
    (dict(move_amounts=()), "move_amounts"), (dict(move_amounts=(5, 0)), "move_amounts"),
    (dict(move_amounts=(5, 2.5)), "move_amounts"), (dict(relocation_delay=0), "relocation_delay"),
    (dict(mode="uber"), "mode"), (dict(pipeline_steps=0), "pipeline_steps"),
    (dict(pipeline_steps=2, relocation_delay=3), "pipeline_steps"), (dict(max_trips_per_step=0), "max_trips_per_step"),
    (dict(obs_arrival_steps=-1), "obs_arrival_steps"), (dict(obs_lookahead_minutes=0), "obs_lookahead_minutes"),
    (dict(obs_neighbors=1), "obs_neighbors"), (dict(obs_features="yes"), "obs_features"),
])
def test_config_rejects_impossible_values(kwargs, field):
    with pytest.raises(ValueError, match=rf"RebalanceConfig\.{field}:"):
        RebalanceConfig(**kwargs)


def test_config_accepts_lists_and_is_hashable():
    config = RebalanceConfig(move_amounts=[2, 4, 8], relocation_delay=None)
    assert config.move_amounts == (2, 4, 8)
    assert hash(config) == hash(RebalanceConfig(move_amounts=(2, 4, 8), relocation_delay=None))


def test_make_params_rejects_bad_inputs():
    city = small_city()
    with pytest.raises(ValueError, match="mode='replay' needs days"):
        RebalanceEnv(RebalanceConfig(mode="replay")).make_params(city)
    with pytest.raises(ValueError, match="only in mode='replay'"):
        RebalanceEnv().make_params(city, days=[sample_trips(city, 0)])
    with pytest.raises(ValueError, match="demand_scale"):
        RebalanceEnv().make_params(city, demand_scale=-1.0)
    with pytest.raises(TypeError, match="City"):
        RebalanceEnv().make_params("manhattan")
    unordered = DayTrips(origin=np.array([0, 1]), dest=np.array([1, 0]), depart_step=np.array([5, 2]),
                         arrive_step=np.array([6, 3]))
    with pytest.raises(ValueError, match="not ordered by departure"):
        RebalanceEnv(RebalanceConfig(mode="replay")).make_params(city, days=[unordered])
    slow = city.replace(relocation_steps=np.full_like(np.asarray(city.relocation_steps), 5))
    with pytest.raises(ValueError, match="pipeline_steps"):
        RebalanceEnv(RebalanceConfig(relocation_delay=None, pipeline_steps=3)).make_params(slow)


# ----------------------------------------------------------------------- sizes and specs
def test_sizes_specs_and_reset():
    city = small_city("hex", 3, 3)
    env = RebalanceEnv(RebalanceConfig(move_amounts=(1, 2, 3)))
    params = env.make_params(city)
    R, K = city.num_regions, 6
    assert env.num_actions(params) == 1 + K * 3
    assert env.action_spec(params).shape == (R,) and env.action_spec(params).num_values == 1 + K * 3
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (R, env.obs_dim(params)) == env.observation_spec(params).shape and obs.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(obs)))
    g = env.global_state(state, params)
    assert g.shape == (env.global_state_dim(params),) and g.dtype == jnp.float32
    mask = env.agents(params).action_mask
    assert mask.shape == (R, 1 + K * 3) and bool(mask[:, 0].all())
    np.testing.assert_array_equal(np.asarray(mask[:, 1::3]), np.asarray(city.neighbor_mask))
    assert np.array_equal(np.asarray(state.inventory), np.asarray(city.init_inventory))
    assert state.riding.shape == (params.pipeline_steps, R) and state.riding.dtype == jnp.int32
    assert int(state.t) == 0 and int(state.metrics.steps) == 0
    assert env.draws_per_step(params) == R + params.max_trips


def test_default_pipeline_covers_city_travel_times():
    city = small_city("square", 4, 3)
    params = RebalanceEnv().make_params(city)
    assert params.pipeline_steps == int(np.asarray(city.travel_steps).max())
    params = RebalanceEnv(RebalanceConfig(relocation_delay=None)).make_params(city)
    assert params.pipeline_steps >= int(np.asarray(city.travel_steps).max())


# ----------------------------------------------------------------------- conservation (property)
# (grid, cols, rows, relocation_delay): two compiled programs cover both grids and both delay kinds
LAYOUTS = [("square", 3, 3, 1), ("hex", 3, 3, None)]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 10_000),
       docks=st.sampled_from([(1, 3), (3, 8), (10, 30)]), fill=st.sampled_from([0.0, 0.5, 1.0]),
       trips=st.sampled_from([300.0, 3000.0]), action_seed=st.integers(0, 10_000))
def test_fleet_is_conserved_every_step(layout, seed, docks, fill, trips, action_seed):
    grid, cols, rows, delay = layout
    city = small_city(grid, cols, rows, seed=seed, docks=docks, trips=trips, fill=fill)
    env, rollout = rollout_fn(RebalanceConfig(relocation_delay=delay, pipeline_steps=3, max_trips_per_step=24), 20)
    params = env.make_params(city)
    _, state = env.reset(jax.random.key(seed), params)
    state = state.replace(t=jnp.int32(42))  # start in the morning, when demand is high
    actions = random_actions(np.random.default_rng(action_seed), 20, city.num_regions, env.num_actions(params))
    final, (fleet, lowest, reward, done, info) = rollout(jax.random.key(action_seed), state, actions, params)
    np.testing.assert_array_equal(np.asarray(fleet), city.fleet_size)
    assert int(lowest.min()) >= 0
    assert int(info["over_capacity"].sum()) == 0  # fleet <= docks in every valid city
    # accounting identities
    assert bool(jnp.all(info["served"] + info["unserved"] == info["demand"]))
    assert bool(jnp.all(info["served"] <= info["demand"]))
    assert int(final.metrics.served) == int(info["served"].sum())
    assert int(final.metrics.overflow) == int(info["overflow"].sum())
    assert int(final.metrics.relocated) == int(info["relocated"].sum())


def test_fleet_is_conserved_in_replay_mode():
    city = small_city("hex", 3, 3, docks=(2, 5))
    env, rollout = rollout_fn(RebalanceConfig(mode="replay", pipeline_steps=3), 40)
    params = env.make_params(city, days=[sample_trips(city, 1, scale=3.0)])
    _, state = env.reset(jax.random.key(0), params)
    state = state.replace(t=jnp.int32(40))
    actions = random_actions(np.random.default_rng(0), 40, city.num_regions, env.num_actions(params))
    _, (fleet, lowest, *_rest) = rollout(jax.random.key(1), state, actions, params)
    np.testing.assert_array_equal(np.asarray(fleet), city.fleet_size)
    assert int(lowest.min()) >= 0


# ----------------------------------------------------------------------- replay
def test_replay_with_ample_bikes_reproduces_the_day():
    base = small_city("square", 3, 3, seed=3)
    big = np.full(base.num_regions, 10_000, np.int32)
    city = base.replace(init_inventory=big, capacity=2 * big)  # ample bikes and room to dock them
    days = [sample_trips(city, seed) for seed in (1, 2)]
    env = RebalanceEnv(RebalanceConfig(mode="replay", horizon=city.steps_per_day))
    params = env.make_params(city, days=days)
    run = jax.jit(lambda state: jax.lax.scan(
        lambda s, _: (lambda out: (out[1], out[4]))(env.step(jax.random.key(0), s, jnp.zeros(9, jnp.int32), params)),
        state, None, length=city.steps_per_day))
    for d, trips in enumerate(days):
        final, info = run(env.initial_state(params, day=d))
        expected = np.zeros((city.steps_per_day, city.num_regions), np.int64)
        np.add.at(expected, (np.asarray(trips.depart_step), np.asarray(trips.origin)), 1)
        np.testing.assert_array_equal(np.asarray(info["demand"]), expected)
        np.testing.assert_array_equal(np.asarray(info["served"]), expected)
        assert int(final.metrics.served) == int(final.metrics.demand) == trips.num_trips
        assert int(final.metrics.overflow) == int(final.metrics.truncated) == int(final.metrics.clipped_travel) == 0
        assert float(final.metrics.fulfilled_service_ratio) == 1.0


def test_replay_reset_draws_days_uniformly():
    city = small_city()
    env = RebalanceEnv(RebalanceConfig(mode="replay"))
    params = env.make_params(city, days={f"d{i}": sample_trips(city, i, scale=0.1) for i in range(3)})
    days = jax.vmap(lambda k: env.reset(k, params)[1].day)(jax.random.split(jax.random.key(0), 300))
    assert set(np.asarray(days).tolist()) == {0, 1, 2}
    assert env.draws_per_step(params) == 0


def test_poisson_demand_levels_are_drawn_per_episode():
    """Each reset picks one level; that episode's demand is level x the rates
    (level 0: no demand at all), while the operator's view keeps the plain rates."""
    city = small_city(trips=4000.0)
    env = RebalanceEnv(RebalanceConfig(mode="poisson", horizon=144))
    params = env.make_params(city, demand_levels=[0.0, 2.0])
    plain = env.make_params(city)
    from jaxmob.envs.rebalance.baselines import noop, rollout

    keys = jax.random.split(jax.random.key(1), 64)
    levels = np.asarray(jax.vmap(lambda k: env.reset(k, params)[1].day)(keys))
    assert set(levels.tolist()) == {0, 1}
    demand = np.asarray(jax.vmap(lambda k: rollout(noop, env, params, k)["demand"])(keys))
    base = np.asarray(jax.vmap(lambda k: rollout(noop, env, plain, k)["demand"])(keys)).mean()
    # rollout resets with the first half of its key
    lvl = np.asarray(jax.vmap(lambda k: env.reset(jax.random.split(k)[0], params)[1].day)(keys))
    assert (demand[lvl == 0] == 0).all()
    assert abs(demand[lvl == 1].mean() / base - 2.0) < 0.05
    state = env.initial_state(params, 1)
    np.testing.assert_array_equal(env.observe(state, params), env.observe(env.initial_state(plain), plain))
    with pytest.raises(ValueError, match="demand_levels"):
        env.make_params(city, demand_levels=[1.0, np.nan])


# ----------------------------------------------------------------------- actions
def test_invalid_and_padded_actions_stay_and_are_counted():
    city = pad_city(small_city("square", 3, 3, docks=(20, 20), fill=1.0), extra=2)
    env = RebalanceEnv(RebalanceConfig(move_amounts=(5, 10)))
    params = env.make_params(city, demand_scale=0.0)
    _, state = env.reset(jax.random.key(0), params)
    R, A = city.num_regions, env.num_actions(params)
    corner = 0  # cell (0, 0): no S (k=1) and no W (k=3) neighbour
    assert not bool(city.neighbor_mask[corner, 1]) and bool(city.neighbor_mask[corner, 0])
    action = np.zeros(R, np.int32)
    action[corner] = 1 + 1 * 2 + 1  # 10 bikes south: missing neighbour
    action[1] = -1  # below range
    action[2] = A  # above range
    action[3] = 999
    action[4] = 1 + 0 * 2 + 0  # 5 bikes north: valid
    action[9] = 0  # padded agent staying: fine
    action[10] = 1  # padded agent moving: invalid
    _, next_state, reward, _, info = jax.jit(env.step)(jax.random.key(1), state, jnp.asarray(action), params)
    invalid = np.asarray(info["invalid_action"])
    np.testing.assert_array_equal(invalid, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1])
    relocated = np.asarray(info["relocated"])
    assert relocated[4] == 5 and relocated.sum() == 5
    assert int(next_state.metrics.invalid_action) == 5
    np.testing.assert_allclose(np.asarray(reward)[4], -0.5)  # beta 0.1 x 5 bikes, no demand
    assert np.all(np.asarray(reward)[[0, 1, 2, 3, 9, 10]] == 0)
    mask = np.asarray(env.agents(params).action_mask)
    assert not mask[corner, 1 + 1 * 2 + 1] and mask[4, 1] and mask[9:, 0].all() and not mask[9:, 1:].any()


def test_padded_agents_are_masked_and_inert():
    city = pad_city(small_city("hex", 3, 3), extra=3)
    env = RebalanceEnv()
    params = env.make_params(city)
    np.testing.assert_array_equal(np.asarray(env.agents(params).mask), [True] * 9 + [False] * 3)
    obs, state = env.reset(jax.random.key(0), params)
    state = state.replace(t=jnp.int32(40))
    step = jax.jit(env.step)
    rng = np.random.default_rng(0)
    for i in range(20):
        action = jnp.asarray(rng.integers(0, env.num_actions(params), city.num_regions), jnp.int32)
        obs, state, reward, _, info = step(jax.random.key(i), state, action, params)
        assert not np.any(np.asarray(obs)[9:]) and np.all(np.asarray(obs)[:9, -1] == 1)
        assert not np.any(np.asarray(state.inventory)[9:]) and not np.any(np.asarray(state.riding)[:, 9:])
        assert not np.any(np.asarray(reward)[9:]) and not np.any(np.asarray(info["demand"])[9:])


def test_move_takes_at_most_the_docked_bikes_after_demand():
    city = small_city("square", 2, 2, docks=(20, 20), fill=0.0)
    city = city.replace(init_inventory=np.array([3, 0, 0, 0], np.int32))
    env = RebalanceEnv(RebalanceConfig(move_amounts=(10,), relocation_delay=2, pipeline_steps=2))
    params = env.make_params(city)
    state = env.initial_state(params)
    exog = RebalanceExogenous(demand=jnp.asarray([1, 0, 0, 0], jnp.int32),
                              dest_bits=jnp.zeros(params.max_trips, jnp.uint32))
    north = 1  # direction N (k=0), 10 bikes
    _, state, _, _, info = jax.jit(env.step_with)(exog, state, jnp.asarray([north, 0, 0, 0], jnp.int32), params)
    assert int(info["served"][0]) == 1 and int(info["relocated"][0]) == 2  # 3 docked - 1 served
    nbr = int(city.neighbors[0, 0])
    assert int(state.relocating[0, nbr]) == 2 and int(state.inventory[nbr]) == 0  # arrives next step
    _, state, *_ = jax.jit(env.step_with)(exog.replace(demand=jnp.zeros(4, jnp.int32)), state, jnp.zeros(4, jnp.int32), params)
    assert int(state.inventory[nbr]) == 2


# ----------------------------------------------------------------------- overflow
def test_overflow_goes_to_nearest_free_region_or_stays_over_capacity():
    city = small_city("square", 3, 1, docks=(4, 4), fill=0.0)  # regions 0-1-2 in a row
    env = RebalanceEnv(RebalanceConfig(pipeline_steps=2))
    params = env.make_params(city, demand_scale=0.0)
    step_with = jax.jit(env.step_with)
    start = env.initial_state(params)
    exog = env.sample_exogenous(jax.random.key(0), start, params)
    stay = jnp.zeros(3, jnp.int32)
    # 3 bikes come back to the full middle region: all go on to region 2, the only free one
    state = start.replace(inventory=jnp.asarray([4, 4, 3], jnp.int32), riding=start.riding.at[0, 1].set(3))
    _, state, _, _, info = step_with(exog, state, stay, params)
    assert int(info["overflow"][1]) == 3 and int(info["over_capacity"].sum()) == 0
    travel = int(city.travel_steps[1, 2])
    assert int(state.riding[min(travel, 2) - 1, 2]) == 3
    # every dock taken: the excess stays docked above capacity
    state = start.replace(inventory=jnp.asarray([4, 4, 4], jnp.int32), riding=start.riding.at[0, 0].set(2))
    _, state, _, _, info = step_with(exog, state, stay, params)
    assert int(info["over_capacity"][0]) == 2 and int(info["overflow"].sum()) == 0
    assert int(state.inventory[0]) == 6


# ----------------------------------------------------------------------- randomness
def test_poisson_sampler_matches_moments():
    u = jax.random.uniform(jax.random.key(0), (100_000,))
    sample = jax.jit(poisson_by_inversion)
    for lam in (0.0, 0.2, 2.0, 15.0, 60.0, 90.0):
        draws = np.asarray(sample(u, jnp.full(u.shape, lam, jnp.float32)))
        assert abs(draws.mean() - lam) <= 5 * np.sqrt(max(lam, 1e-3) / len(u)) + 1e-9
        assert abs(draws.var() - lam) <= 0.03 * lam + 1e-9
    mixed = np.asarray(poisson_by_inversion(u[:4], jnp.asarray([0.0, 1.0, 200.0, 30.0])))
    assert mixed[0] == 0 and mixed.dtype == np.int32


def test_alias_tables_reproduce_od_probabilities():
    city = small_city("hex", 3, 3)
    od = np.asarray(city.od_prob, np.float64)
    keep, alias = alias_tables(od)
    R = city.num_regions
    q = float(2**32 // R)
    implied = np.zeros_like(od)
    H = od.shape[0]
    for h in range(H):
        for o in range(R):
            for j in range(R):
                kept = keep[h, o, j] / q
                implied[h, o, j] += kept / R
                implied[h, o, alias[h, o, j]] += (1 - kept) / R
    np.testing.assert_allclose(implied, od / od.sum(-1, keepdims=True), atol=1e-7)
    # a destination of probability zero is never the kept column nor an alias
    zero = np.zeros(R)
    zero[[2, 5]] = 0.5
    k0, a0 = alias_tables(zero[None, None])
    assert set(a0[0, 0].tolist()) <= {2, 5} and np.all(k0[0, 0][[0, 1, 3, 4, 6, 7, 8]] == 0)


def test_draws_per_step_and_slot_truncation():
    city = small_city("square", 3, 3, docks=(30, 30), fill=1.0)
    env = RebalanceEnv(RebalanceConfig(max_trips_per_step=4))
    params = env.make_params(city)
    state = env.initial_state(params)
    exog = RebalanceExogenous(demand=jnp.full(9, 2, jnp.int32), dest_bits=jnp.arange(4, dtype=jnp.uint32))
    _, _, reward, _, info = jax.jit(env.step_with)(exog, state, jnp.zeros(9, jnp.int32), params)
    assert env.draws_per_step(params) == 9 + 4
    np.testing.assert_array_equal(np.asarray(info["served"]), [2, 2] + [0] * 7)
    np.testing.assert_array_equal(np.asarray(info["truncated"]), [0, 0] + [2] * 7)
    np.testing.assert_array_equal(np.asarray(info["unserved"]), [0, 0] + [2] * 7)


# ----------------------------------------------------------------------- compilation, batching
def test_jitted_reset_and_step_do_not_retrace():
    city = small_city()
    env = RebalanceEnv()
    params = env.make_params(city)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def reset(key, params):
        return env.reset(key, params)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state, action, params):
        return env.step(key, state, action, params)

    obs, state = reset(jax.random.key(0), params)
    for i in range(5):
        obs, state, *_ = step(jax.random.key(i), state, jnp.full(9, i % 3, jnp.int32), params)
        reset(jax.random.key(i), params)
    # new values of traced params (weights, demand scale) reuse the program
    params2 = params.replace(alpha=jnp.float32(0.9), demand_scale=jnp.float32(2.0))
    step(jax.random.key(9), state, jnp.zeros(9, jnp.int32), params2)
    reset(jax.random.key(9), params2)


def test_vmap_over_a_thousand_demand_scales():
    city = small_city("square", 3, 3, docks=(10, 20))
    config = RebalanceConfig()
    env = RebalanceEnv(config)
    B = 1000
    params = env.make_params(city, demand_scale=2.0)
    scales = jnp.linspace(0.0, 2.0, B, dtype=jnp.float32)
    batch_params = params.replace(demand_scale=scales)
    axes = jax.tree.map(lambda _: None, params).replace(demand_scale=0)

    @jax.jit
    def run(keys, batch_params):
        _, states = jax.vmap(env.reset, in_axes=(0, axes))(keys, batch_params)
        states = states.replace(t=jnp.full((B,), 48, jnp.int32))

        def one(states, step_keys):
            actions = jnp.zeros((B, 9), jnp.int32)
            _, states, _, _, info = jax.vmap(env.step, in_axes=(0, 0, 0, axes))(step_keys, states, actions, batch_params)
            return states, info["demand"].sum(-1)
        return jax.lax.scan(one, states, jax.random.split(keys[0], (6, B)))

    states, demand = run(jax.random.split(jax.random.key(0), B), batch_params)
    fleet = states.inventory.sum(-1) + states.riding.sum((-2, -1)) + states.relocating.sum((-2, -1))
    np.testing.assert_array_equal(np.asarray(fleet), city.fleet_size)
    demand = np.asarray(demand).sum(0)
    assert demand[0] == 0
    assert demand[B // 2:].mean() > 1.5 * demand[: B // 2].mean()


def test_vmap_over_a_batch_of_different_cities():
    config = RebalanceConfig(pipeline_steps=4, max_trips_per_step=32)
    env = RebalanceEnv(config)
    cities = [small_city("hex", 3, 3, seed=s) for s in range(8)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[env.make_params(c) for c in cities])
    keys = jax.random.split(jax.random.key(0), 8)
    obs, states = jax.vmap(env.reset)(keys, stacked)
    step = jax.jit(jax.vmap(env.step))
    for i in range(5):
        obs, states, reward, done, info = step(keys, states, jnp.ones((8, 9), jnp.int32), stacked)
    fleet = states.inventory.sum(-1) + states.riding.sum((-2, -1)) + states.relocating.sum((-2, -1))
    np.testing.assert_array_equal(np.asarray(fleet), [c.fleet_size for c in cities])
    assert obs.shape == (8, 9, env.obs_dim(stacked)) and reward.shape == (8, 9)


def test_episode_ends_at_horizon_and_metrics_add_up():
    city = small_city("square", 3, 3)
    env, rollout = rollout_fn(RebalanceConfig(horizon=10), 12)
    params = env.make_params(city)
    _, state = env.reset(jax.random.key(0), params)
    actions = random_actions(np.random.default_rng(0), 12, 9, env.num_actions(params))
    final, (_, _, reward, done, info) = rollout(jax.random.key(0), state, actions, params)
    assert np.asarray(done).tolist() == [False] * 9 + [True] * 3
    m = final.metrics
    assert int(m.steps) == 12 and int(m.demand) == int(info["demand"].sum())
    assert int(m.invalid_action) == int(info["invalid_action"].sum())
    np.testing.assert_allclose(float(m.reward), float(reward.sum()), rtol=1e-5)
    np.testing.assert_allclose(float(m.fulfilled_service_ratio), int(m.served) / max(int(m.demand), 1), rtol=1e-6)


def test_observation_columns_follow_the_documented_layout():
    city = small_city("square", 3, 3, docks=(10, 20))
    env = RebalanceEnv(RebalanceConfig(obs_arrival_steps=2))
    params = env.make_params(city, demand_scale=2.0)
    state = env.initial_state(params)
    state = state.replace(t=jnp.int32(36), riding=state.riding.at[1, 4].set(3), last_demand=jnp.arange(9, dtype=jnp.int32))
    obs = np.asarray(jax.jit(env.observe)(state, params))
    cap = np.asarray(city.capacity, np.float64)
    angle = 2 * np.pi * 36 / city.steps_per_day
    np.testing.assert_allclose(obs[:, 0], np.sin(angle), rtol=1e-5)
    np.testing.assert_allclose(obs[:, 1], np.cos(angle), atol=1e-6)
    np.testing.assert_allclose(obs[:, 2], np.asarray(city.init_inventory) / cap, rtol=1e-6)
    np.testing.assert_allclose(obs[:, 3], np.arange(9) / cap, rtol=1e-6)
    rate = np.asarray(city.demand_rate, np.float64)
    np.testing.assert_allclose(obs[:, 4], 2.0 * rate[36] / cap, rtol=1e-5)
    np.testing.assert_allclose(obs[:, 5], 2.0 * rate[36:42].sum(0) / cap, rtol=1e-5)
    np.testing.assert_allclose(obs[4, 6:8], [0.0, 3 / cap[4]], rtol=1e-6)  # arrivals in 1 and 2 steps
    K = 4
    nbr_inv = obs[:, 8:8 + K]
    expected = np.where(np.asarray(city.neighbor_mask), obs[np.asarray(city.neighbors), 2], 0.0)
    np.testing.assert_allclose(nbr_inv, expected, rtol=1e-6)
    balance = obs[:, 2] + obs[:, 6:8].sum(1) - obs[:, 5]
    expected = np.where(np.asarray(city.neighbor_mask), balance[np.asarray(city.neighbors)], 0.0)
    np.testing.assert_allclose(obs[:, 8 + 2 * K:8 + 3 * K], expected, rtol=1e-5, atol=1e-6)
    features = obs[:, 8 + 3 * K:-1]
    np.testing.assert_allclose(features.mean(0), 0.0, atol=1e-5)
    assert np.all(obs[:, -1] == 1.0) and obs.shape[1] == env.obs_dim(params) == 7 + 2 + 3 * K + 3


def test_demand_level_follows_the_day_and_is_observed_when_asked():
    city = small_city("square", 3, 3)
    env = RebalanceEnv(RebalanceConfig(obs_level=True))
    plain = RebalanceEnv(RebalanceConfig())
    params = env.make_params(city, demand_scale=2.0)
    state = env.initial_state(params)
    assert float(env.demand_level(state, params)) == pytest.approx(1.0)  # nothing seen yet: the rates' level
    per_step = 2.0 * np.asarray(city.demand_rate, np.float64).sum(1)
    expected, prior = per_step[:40].sum(), 6 * per_step.mean()
    busy = state.replace(t=jnp.int32(40), metrics=state.metrics.replace(demand=jnp.int32(round(1.5 * expected))))
    level = (round(1.5 * expected) + prior) / (expected + prior)
    assert float(env.demand_level(busy, params)) == pytest.approx(level, rel=1e-5)
    next_day = busy.replace(t=jnp.int32(40 + city.steps_per_day))  # a second day expects a whole day more
    assert float(env.demand_level(next_day, params)) == pytest.approx(
        (round(1.5 * expected) + prior) / (expected + per_step.sum() + prior), rel=1e-5)
    obs, gstate = env.observe(busy, params), env.global_state(busy, params)
    assert obs.shape[1] == env.obs_dim(params) == plain.obs_dim(params) + 1
    assert gstate.shape[0] == env.global_state_dim(params) == plain.global_state_dim(params) + 1
    np.testing.assert_allclose(np.asarray(obs[:, -2]), level - 1.0, rtol=1e-5)  # before the region mask
    np.testing.assert_allclose(float(gstate[-1]), level - 1.0, rtol=1e-5)


def test_level_scaled_credit_reads_the_days_level():
    city = small_city("square", 3, 3, docks=(20, 40), trips=6000.0)
    env = RebalanceEnv(RebalanceConfig())
    params = env.make_params(city)
    state = env.initial_state(params).replace(t=jnp.int32(40))
    action = jnp.full((9,), 1, jnp.int32)  # everyone sends 5 bikes in direction 0
    moved = jnp.full((9,), 5, jnp.int32)
    per_step = np.asarray(city.demand_rate, np.float64).sum(1)
    on_rates = state.replace(metrics=state.metrics.replace(demand=jnp.int32(round(per_step[:40].sum()))))
    credit = lambda st, lvl: np.asarray(env.move_credit(st, action, moved, params, 6, "poisson", lvl))
    np.testing.assert_allclose(credit(on_rates, True), credit(on_rates, False), atol=5e-3)  # level ~1 (counts rounded)
    busy = state.replace(metrics=state.metrics.replace(demand=jnp.int32(round(3 * per_step[:40].sum()))))
    assert float(env.demand_level(busy, params)) > 2.0
    assert not np.allclose(credit(busy, True), credit(busy, False))
    np.testing.assert_allclose(credit(busy, False), credit(on_rates, False))  # the plain credit ignores the level


# ----------------------------------------------------------------------- operator's view
def _poisson_excess_numpy(supply, lam):
    from scipy.stats import poisson

    k = np.arange(0, int(lam + 12 * np.sqrt(lam + 1) + supply + 20))
    return float((np.maximum(k - supply, 0) * poisson.pmf(k, lam)).sum())


@settings(max_examples=40, deadline=None)
@given(supply=st.integers(0, 80), lam=st.floats(0.0, 60.0))
def test_expected_poisson_excess_matches_scipy(supply, lam):
    from jaxmob.envs.rebalance import expected_poisson_excess

    got = float(expected_poisson_excess(jnp.float32(supply), jnp.float32(lam)))
    assert got == pytest.approx(_poisson_excess_numpy(supply, lam), rel=1e-3, abs=1e-4)


LOSSES = {"mean": lambda s, lam: max(lam - s, 0.0), "poisson": _poisson_excess_numpy}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), steps=st.integers(0, 40), window=st.integers(1, 8),
       model=st.sampled_from(sorted(LOSSES)))
def test_move_credit_is_the_loss_each_move_avoids(seed, steps, window, model):
    """Against NumPy/scipy: each agent's credit is (1 + alpha) x (city-wide lost
    trips with its move undone - with every move) - beta x its bikes, where a
    region's supply is docked bikes + arrivals within the window and its loss is
    the shortfall against expected departures ('mean') or its Poisson expectation."""
    city = small_city(seed=seed, trips=4000.0)
    env = RebalanceEnv(RebalanceConfig(move_amounts=(2, 5)))
    params = env.make_params(city, alpha=0.7, beta=0.3)
    rng = np.random.default_rng(seed)
    R, A = city.num_regions, env.num_actions(params)
    _, rollout = rollout_fn(env.config, max(steps, 1))
    state = env.initial_state(params)
    if steps:
        state, _ = rollout(jax.random.PRNGKey(seed), state, jnp.asarray(random_actions(rng, steps, R, A)), params)
    action = jnp.asarray(random_actions(rng, 1, R, A)[0])
    _, _, _, _, info = env.step(jax.random.PRNGKey(seed + 1), state, action, params)
    moved = np.asarray(info["relocated"], np.float64)
    credit = np.asarray(env.move_credit(state, action, info["relocated"], params, window, model))

    t = np.asarray((int(state.t) + np.arange(window)) % city.steps_per_day)
    expected = np.asarray(city.demand_rate, np.float64)[t].sum(0)
    arrivals = (np.asarray(state.riding) + np.asarray(state.relocating))[:window].sum(0)
    supply = np.asarray(state.inventory, np.float64) + arrivals
    L, K = len(env.config.move_amounts), city.num_directions  # out-of-range actions move nothing
    target = np.array([np.asarray(city.neighbors)[r, min(max(int(a) - 1, 0) // L, K - 1)]
                       for r, a in enumerate(np.asarray(action))])
    flows = np.zeros(R)
    for r in range(R):
        flows[r] -= moved[r]
        flows[target[r]] += moved[r]
    lost = lambda f: sum(LOSSES[model](supply[r] + f[r], expected[r]) for r in range(R))
    with_all = lost(flows)
    for r in range(R):
        undone = flows.copy()
        undone[r] += moved[r]
        undone[target[r]] -= moved[r]
        want = 1.7 * (lost(undone) - with_all) - 0.3 * moved[r]
        np.testing.assert_allclose(credit[r], want, rtol=1e-3, atol=2e-3, err_msg=f"agent {r}")


def test_two_senders_share_the_credit_for_one_deficit():
    """The middle of three regions expects 5 departures in the next hour and has
    no bikes. One neighbour sending 5 avoids the whole shortfall; when both
    neighbours send 5, undoing either move loses nothing: neither gets credit,
    both pay the cost."""
    city = small_city(cols=3, rows=1, docks=(40, 40), trips=1.0)
    rate = np.zeros_like(np.asarray(city.demand_rate))
    rate[:, 1] = 5.0 / 6.0
    city = city.replace(demand_rate=jnp.asarray(rate, jnp.float32))
    env = RebalanceEnv(RebalanceConfig(move_amounts=(5,)))
    params = env.make_params(city, alpha=0.5, beta=0.1)
    state = env.initial_state(params).replace(inventory=jnp.asarray([20, 0, 20], jnp.int32))
    assert float(env.expected_balance(state, params, 6)[1]) == pytest.approx(-5.0, abs=1e-4)
    nbr, ok = np.asarray(city.neighbors), np.asarray(city.neighbor_mask)
    to_middle = lambda r: 1 + int(np.flatnonzero((nbr[r] == 1) & ok[r])[0])
    one = env.move_credit(state, jnp.asarray([to_middle(0), 0, 0]), jnp.asarray([5, 0, 0]), params, 6, "mean")
    both = env.move_credit(state, jnp.asarray([to_middle(0), 0, to_middle(2)]), jnp.asarray([5, 0, 5]), params, 6, "mean")
    np.testing.assert_allclose(np.asarray(one), [1.5 * 5 - 0.5, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(np.asarray(both), [-0.5, 0.0, -0.5], atol=1e-4)
