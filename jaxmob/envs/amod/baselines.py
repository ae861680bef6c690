"""The AMoD benchmark's hand rules as policies of the 'levels' action
(`(key, state, params, env) -> actions`, like every jaxmob baseline)."""
from __future__ import annotations

import jax.numpy as jnp


def no_rebalancing(key, state, params, env):
    """Every weight 0: the desired distribution is the current one, nothing moves."""
    return jnp.zeros((params.num_regions,), jnp.int32)


def equal_distribution(key, state, params, env):
    """Equal weights: every region aims at an equal share of the idle fleet."""
    return jnp.ones((params.num_regions,), jnp.int32)


def mpc_episode(env, params, scenario, key) -> dict:
    """Episode metrics of MPC (`bound.mpc_moves`: the fleet LP on the expected requests,
    re-planned after every matching) in `env` on `params`' requests. A host loop: one
    HiGHS solve per decision between compiled steps."""
    import jax

    from .bound import mpc_moves

    _, state = jax.jit(env.reset)(key, params)
    step = jax.jit(env.step_moves)
    for t in range(env.episode_length):
        idle, transit = jax.device_get((state.idle, state.transit))
        moves = mpc_moves(scenario, t, idle, transit)
        _, state, _, _, _ = step(jax.random.fold_in(key, t), state, jnp.asarray(moves, jnp.int32), params)
    return env.episode_metrics(state, params)
