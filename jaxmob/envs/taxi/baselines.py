"""Baseline repositioning policies for `TaxiEnv` (`policy(key, state, params, env) -> (N,) int32`).

* `stay`: idle taxis wait where they are (no repositioning).
* `random_policy`: uniform over the 7 actions (`jaxmob.rollout.random_policy`).
* `demand_gap`: a greedy repositioner. Per cell, need = waiting orders +
  expected orders next step, gap = need - idle taxis. In a cell with a surplus
  (gap < 0), the idle taxis beyond the cell's need (highest index first) move to
  the neighbour with the largest gap, if that gap is positive; everyone else
  stays. It reads only the rates and the current state, never future orders;
  like any uncoordinated rule, several cells may feed the same neighbour.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ...rollout import random_policy  # noqa: F401  (a baseline of every env)
from .env import rank_within


def stay(key, state, params, env) -> jax.Array:
    return jnp.zeros(params.taxi_mask.shape, jnp.int32)


def demand_gap(key, state, params, env) -> jax.Array:
    C = params.cell_mask.shape[0]
    idle = params.taxi_mask & (state.busy == 0)
    idle_count = jnp.zeros((C,), jnp.float32).at[state.cell].add(idle.astype(jnp.float32))
    need = state.waiting.sum(1).astype(jnp.float32) + env.expected_orders(state.t, params)
    gap = need - idle_count
    nbr_gap = jnp.where(params.neighbor_mask, gap[params.neighbors], -jnp.inf)  # (C, 6)
    best = jnp.argmax(nbr_gap, axis=1)
    target_gap = jnp.max(nbr_gap, axis=1)
    rank = rank_within(state.cell, idle, C)
    spare = idle & (rank >= jnp.ceil(need)[state.cell]) & (target_gap[state.cell] > 0)
    return jnp.where(spare, 1 + best[state.cell], 0).astype(jnp.int32)
