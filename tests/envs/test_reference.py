"""Differential tests: the JAX env and the NumPy reference, fed the same exogenous
draws, must produce exactly the same states and infos, step by step."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmob.envs.rebalance.city import DayTrips, synthetic_city
from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv
from jaxmob.envs.rebalance.reference import METRIC_NAMES, ReferenceRebalance, ReferenceState

STEPS = 36
START = 42  # 7:00, the morning peak


def city_for(grid, cols, rows, seed=0, docks=(2, 6)):
    return synthetic_city(grid, cols, rows, seed=seed, docks_per_region=docks, trips_per_day=3000.0)


def trips_for(city, seed):
    """A day of trips from the city's rates (vectorised inverse-CDF destinations)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.asarray(city.demand_rate, np.float64))
    steps, origins = np.nonzero(counts)
    reps = counts[steps, origins]
    depart, origin = np.repeat(steps, reps), np.repeat(origins, reps)
    cdf = np.cumsum(np.asarray(city.od_prob, np.float64), axis=-1)[depart // city.od_bucket_steps, origin]
    dest = np.minimum((cdf < rng.uniform(size=len(depart))[:, None]).sum(-1), city.num_regions - 1)
    # some long rides so that a short pipeline clips them
    arrive = depart + np.asarray(city.travel_steps)[origin, dest] + rng.integers(0, 4, size=len(depart))
    return DayTrips.create(origin, dest, depart, arrive, num_regions=city.num_regions,
                           steps_per_day=city.steps_per_day, date=f"day{seed}")


@functools.lru_cache(maxsize=None)
def jitted(config):
    env = RebalanceEnv(config)
    return env, jax.jit(env.sample_exogenous), jax.jit(env.step_with)


def assert_same_state(jax_state, ref_state: ReferenceState, where: str):
    for name in ("inventory", "riding", "relocating", "last_demand"):
        np.testing.assert_array_equal(np.asarray(getattr(jax_state, name)), getattr(ref_state, name),
                                      err_msg=f"{where}: {name}")
    assert int(jax_state.t) == ref_state.t and int(jax_state.day) == ref_state.day, where
    for name in METRIC_NAMES:
        assert int(getattr(jax_state.metrics, name)) == ref_state.metrics[name], f"{where}: metrics.{name}"
    np.testing.assert_allclose(float(jax_state.metrics.reward), ref_state.metrics["reward"], rtol=1e-5, atol=1e-3)


def run_both(config, city, days=None, seed=0, steps=STEPS, start=START, state_edit=None):
    """Step both implementations with shared draws; return summed JAX infos."""
    env, sample, step_with = jitted(config)
    params = env.make_params(city, days=days)
    ref = ReferenceRebalance.from_params(config, params, days=days)
    _, state = env.reset(jax.random.key(seed), params)
    state = state.replace(t=jnp.int32(start))
    if state_edit is not None:
        state = state_edit(state, params)
    ref_state = ReferenceState.from_jax(state)
    rng = np.random.default_rng(seed)
    totals = {}
    for i in range(steps):
        action = jnp.asarray(rng.integers(-1, env.num_actions(params) + 1, size=city.num_regions), jnp.int32)
        exog = sample(jax.random.key(1000 * seed + i), state, params)
        _, state, reward, _, info = step_with(exog, state, action, params)
        ref_state, ref_reward, ref_info = ref.step(ref_state, np.asarray(action), np.asarray(exog.demand),
                                                   np.asarray(exog.dest_bits))
        where = f"step {i} (t={ref_state.t - 1})"
        assert_same_state(state, ref_state, where)
        for name, value in ref_info.items():
            np.testing.assert_array_equal(np.asarray(info[name]), value, err_msg=f"{where}: info[{name}]")
            totals[name] = totals.get(name, 0) + int(np.sum(value))
        np.testing.assert_allclose(np.asarray(reward), ref_reward, rtol=1e-6, atol=1e-5)
    return totals


CASES = {
    "poisson-square": (RebalanceConfig(), ("square", 4, 3), dict(overflow=True)),
    "poisson-hex-travel-delays-truncated-clipped": (
        RebalanceConfig(relocation_delay=None, pipeline_steps=1, max_trips_per_step=6, move_amounts=(1, 3)),
        ("hex", 3, 3), dict(overflow=True, truncated=True, clipped=True)),
    "replay-square": (RebalanceConfig(mode="replay", relocation_delay=2), ("square", 3, 3), dict(overflow=True)),
    "replay-hex-truncated-clipped": (
        RebalanceConfig(mode="replay", pipeline_steps=1, max_trips_per_step=4), ("hex", 3, 3),
        dict(truncated=True, clipped=True)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_jax_matches_reference_exactly(case):
    config, (grid, cols, rows), expect = CASES[case]
    city = city_for(grid, cols, rows, seed=1)
    days = [trips_for(city, s) for s in range(2)] if config.mode == "replay" else None
    totals = run_both(config, city, days=days, seed=3)
    assert totals["demand"] > 0 and totals["relocated"] > 0 and totals["invalid_action"] > 0
    if expect.get("overflow"):
        assert totals["overflow"] > 0
    if expect.get("truncated"):
        assert totals["truncated"] > 0
    if expect.get("clipped"):
        assert totals["clipped_travel"] > 0


def test_jax_matches_reference_when_every_dock_is_full():
    """A crafted (non-conserving) state where arrivals find no free dock anywhere."""
    city = city_for("square", 3, 2, docks=(2, 4))

    def fill_up(state, params):
        cap = jnp.asarray(params.city.capacity)
        return state.replace(inventory=cap, riding=state.riding.at[0].set(3).at[1, 0].set(2))

    totals = run_both(RebalanceConfig(pipeline_steps=3), city, seed=5, steps=3, state_edit=fill_up)
    assert totals["over_capacity"] > 0
