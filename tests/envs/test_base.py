"""The generic environment helpers: auto-reset, tree selection, metric accumulation."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmob.city import synthetic_city
from jaxmob.envs import AutoResetWrapper, RebalanceConfig, RebalanceEnv, accumulate, select_tree, step_auto_reset


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
    assert np.asarray(done).tolist() == [False, False, True, False, False, True, False]
    assert np.asarray(finished_steps)[np.asarray(done)].tolist() == [3, 3]
    np.testing.assert_array_equal(np.asarray(obs[2]), np.asarray(reset_obs))


def test_auto_reset_wrapper_batches_and_never_ends():
    city = synthetic_city("hex", 3, 3, seed=0)
    env = AutoResetWrapper(RebalanceEnv(RebalanceConfig(horizon=4)))
    params = env.make_params(city)
    keys = jax.random.split(jax.random.key(0), 5)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    dones = []
    for i in range(9):
        obs, state, reward, done, info = step(keys, state, jnp.zeros((5, 9), jnp.int32), params)
        dones.append(np.asarray(done))
    assert np.asarray(dones)[:, 0].tolist() == [False, False, False, True] * 2 + [False]
    assert obs.shape == (5, 9, env.obs_dim(params)) and env.num_agents(params) == 9
    assert env.global_state(jax.tree.map(lambda x: x[0], state), params).shape == (env.global_state_dim(params),)
    fleet = state[0].inventory.sum(-1) + state[0].riding.sum((-2, -1)) + state[0].relocating.sum((-2, -1))
    np.testing.assert_array_equal(np.asarray(fleet), city.fleet_size)


def test_generic_function_matches_method():
    city = synthetic_city("square", 2, 2, seed=0)
    env = RebalanceEnv(RebalanceConfig(horizon=1))
    params = env.make_params(city)
    obs0, state0 = env.reset(jax.random.key(0), params)
    a = jax.jit(lambda *args: step_auto_reset(env, *args))(jax.random.key(1), state0, jnp.zeros(4, jnp.int32), params,
                                                          obs0, state0)
    assert bool(a[3]) and int(a[1].t) == 0 and int(a[4]["final_metrics"].steps) == 1
