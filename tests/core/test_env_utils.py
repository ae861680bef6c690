"""The generic environment helpers: auto-reset, tree selection, metric accumulation."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmob.envs.rebalance.city import synthetic_city
from jaxmob.core.env import accumulate, select_tree, step_auto_reset
from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv


def test_select_tree_and_accumulate():
    a = {"x": jnp.arange(3), "y": jnp.float32(1.0)}
    b = {"x": jnp.zeros(3, jnp.int32), "y": jnp.float32(2.0)}
    assert select_tree(jnp.bool_(True), a, b)["y"] == 1.0
    np.testing.assert_array_equal(select_tree(jnp.bool_(False), a, b)["x"], [0, 0, 0])
    total = accumulate({"n": jnp.int32(2), "r": jnp.float32(0.5)}, {"n": 3, "r": 1.0})
    assert int(total["n"]) == 5 and total["n"].dtype == jnp.int32 and float(total["r"]) == 1.5


def test_step_auto_reset_restarts_from_the_precomputed_state():
    city = synthetic_city("square", 3, 3, seed=0)
    env = RebalanceEnv(RebalanceConfig(horizon=3))
    params = env.make_params(city)
    reset_obs, reset_state = env.reset(jax.random.key(0), params)

    @jax.jit
    def run(state):
        def one(state, key):
            obs, state, reward, done, info = env.step_auto_reset(key, state, jnp.ones(9, jnp.int32), params,
                                                                 reset_obs, reset_state)
            return state, (state.t, done, info["final_metrics"].steps, obs)
        return jax.lax.scan(one, state, jax.random.split(jax.random.key(1), 7))

    _, (t, done, finished_steps, obs) = run(reset_state)
    assert np.asarray(t).tolist() == [1, 2, 0, 1, 2, 0, 1]
    three_steps_in = reset_state.replace(t=jnp.int32(2))  # the module function is the same thing
    out = step_auto_reset(env, jax.random.key(2), three_steps_in, jnp.zeros(9, jnp.int32), params, reset_obs, reset_state)
    assert bool(out[3]) and int(out[1].t) == 0 and int(out[4]["final_metrics"].steps) == 1
    assert np.asarray(done).tolist() == [False, False, True, False, False, True, False]
    assert np.asarray(finished_steps)[np.asarray(done)].tolist() == [3, 3]
    np.testing.assert_array_equal(np.asarray(obs[2]), np.asarray(reset_obs))


def test_random_words_are_jax_threefry_bits():
    """The fused generator reproduces JAX's own Threefry bits (non-partitionable layout)."""
    from jaxmob.core.random import random_words

    for n in (1, 2, 7, 300):
        for key in (jax.random.key(3), jax.random.PRNGKey(11)):
            with jax.threefry_partitionable(False):
                expected = np.asarray(jax.random.bits(key, (n,), jnp.uint32))
            np.testing.assert_array_equal(np.asarray(jax.jit(random_words, static_argnums=1)(key, n)), expected)
    other = jax.random.key(0, impl="rbg")  # other key kinds fall back to jax.random.bits
    np.testing.assert_array_equal(np.asarray(random_words(other, 5)), np.asarray(jax.random.bits(other, (5,), jnp.uint32)))
    words = np.asarray(random_words(jax.random.key(1), 100_000))
    assert abs(words.mean() / 2**32 - 0.5) < 0.005  # roughly uniform
