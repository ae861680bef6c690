"""Whole episodes of a policy in one `lax.scan`, for any environment.

A policy is any pure callable `policy(key, state, params, env) -> actions`, so
baselines and learned policies run through the same loop, jitted and vmapped
over keys or params.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp

Policy = Callable  # (key, state, params, env) -> actions


def random_policy(key, state, params, env) -> jax.Array:
    """Uniform over each agent's valid actions (`env.agents(params).action_mask`)."""
    logits = jnp.where(env.agents(params).action_mask, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def run_episode(policy: Policy, env, params, key: jax.Array, start_state=None, record: Callable | None = None):
    """`(final_state, records)`: one episode of `env.episode_length` steps from
    `env.reset(key)` (or from `start_state`); `record(state, action, info)`, if
    given, is stacked over the steps (the state is the one the step started from)."""
    reset_key, run_key = jax.random.split(key)
    state = env.reset(reset_key, params)[1] if start_state is None else start_state

    def one_step(state, step_key):
        policy_key, env_key = jax.random.split(step_key)
        action = policy(policy_key, state, params, env)
        _, next_state, _, _, info = env.step(env_key, state, action, params)
        return next_state, (record(state, action, info) if record is not None else None)

    return jax.lax.scan(one_step, state, jax.random.split(run_key, env.episode_length))


@partial(jax.jit, static_argnums=(0, 1))
def rollout(policy: Policy, env, params, key: jax.Array) -> dict:
    """One episode of `policy`; returns `env.episode_metrics` of its final state."""
    final_state, _ = run_episode(policy, env, params, key)
    return env.episode_metrics(final_state, params)
