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
