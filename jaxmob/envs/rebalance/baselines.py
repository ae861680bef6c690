"""Baseline policies for `RebalanceEnv` and a jitted episode rollout.

A policy is any callable `policy(key, state, params, env) -> actions (R,) int32`
that is pure and traceable, so it can be jitted, vmapped over keys/params and
scanned over an episode. `env` is the static `RebalanceEnv` (its config gives
the action layout `a = 1 + k * L + l`, see `CONTRACT.md`).

* `noop`: every agent stays (the "do nothing" operator).
* `random_policy`: uniform over each agent's valid actions (`env.agents(params).action_mask`).
* `greedy` / `make_greedy(lookahead_steps)`: a myopic dispatcher (rule below).

`rollout(policy, env, params, key)` runs one whole episode in one `lax.scan`
and returns its metrics; `episode(...)` also returns the per-step trajectory.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from ...core.rollout import Policy, random_policy, run_episode  # noqa: F401  (random_policy: a baseline of every env)

STAY = 0


def noop(key, state, params, env) -> jax.Array:
    """Always stay: the no-rebalancing baseline."""
    return jnp.zeros((params.city.num_regions,), jnp.int32)


def make_greedy(lookahead_steps: int = 6) -> Policy:
    """A greedy dispatcher looking `lookahead_steps` steps ahead (6 = one hour of 10-min steps).

    Rule, per region r at the start of step t (before this step's demand):
      balance[r] = inventory[r] + arrivals[r] - expected[r]
    where `expected` is `demand_scale * city.demand_rate` summed over steps
    t .. t+W-1 (wrapping at midnight) and `arrivals` the bikes already riding or
    relocating that dock within the next W steps. surplus = max(balance, 0),
    deficit = max(-balance, 0). A region with surplus picks, among its valid
    neighbours, the one with the largest deficit (lowest direction index on ties)
    and sends the largest move amount not exceeding its surplus nor its docked
    bikes; it stays if no neighbour has a deficit or no amount fits.

    Why this rule: it uses only what a real operator knows (average demand
    rates, bikes in transit), never the replayed day's trips, so it is a fair
    non-clairvoyant baseline. Its known weaknesses: it ignores future *returns*
    of trips not yet started, and several surplus regions may all feed one
    deficit neighbour in the same step (no coordination).
    """
    window = int(lookahead_steps)
    if window < 1:
        raise ValueError(f"make_greedy: lookahead_steps must be >= 1, got {lookahead_steps}")

    def greedy(key, state, params, env) -> jax.Array:
        surplus, deficit = _surplus_deficit(state, params, env, window)
        return _dispatch(surplus, deficit, state.inventory, params, env)

    greedy.__name__ = f"greedy_{window}"
    return greedy


greedy = make_greedy()


def _surplus_deficit(state, params, env, window: int):
    """Per-region (surplus, deficit) in bikes, as float32 (see `make_greedy`)."""
    balance = env.expected_balance(state, params, window)
    return jnp.maximum(balance, 0.0), jnp.maximum(-balance, 0.0)


def _dispatch(surplus, deficit, inventory, params, env) -> jax.Array:
    """Turn surplus/deficit into actions: best neighbour, largest amount that fits."""
    city = params.city
    nbr = jnp.asarray(city.neighbors)
    valid = jnp.asarray(city.neighbor_mask) & jnp.asarray(city.region_mask)[:, None]
    need = jnp.where(valid, deficit[nbr], -1.0)  # (R, K)
    direction = jnp.argmax(need, axis=-1)
    target_need = jnp.take_along_axis(need, direction[:, None], axis=-1)[:, 0]
    amounts = jnp.asarray(env.config.move_amounts, jnp.float32)
    room = jnp.minimum(surplus, inventory.astype(jnp.float32))
    fits = amounts[None, :] <= room[:, None]  # (R, L)
    level = jnp.argmax(jnp.where(fits, amounts[None, :], -1.0), axis=-1)
    send = (target_need > 0) & fits.any(axis=-1)
    L = len(env.config.move_amounts)
    action = 1 + direction * L + level
    return jnp.where(send, action, STAY).astype(jnp.int32)


# ----------------------------------------------------------------------- rollouts
@partial(jax.jit, static_argnums=(0, 1))
def episode(policy: Policy, env, params, key: jax.Array, day=None):
    """One whole episode in a single `lax.scan` (`jaxmob.core.rollout.run_episode`).

    Starts from `env.reset(key)` (a random replay day), or from replay day index
    `day` when given. Returns `(final_state, trajectory)`, the trajectory holding
    per step the inventory before the step, the actions and the step's `info`.
    """
    start = None if day is None else env.initial_state(params, day)
    return run_episode(policy, env, params, key, start_state=start,
                       record=lambda state, action, info: {"inventory": state.inventory, "action": action, "info": info})


@partial(jax.jit, static_argnums=(0, 1))
def rollout(policy: Policy, env, params, key: jax.Array, day=None) -> dict:
    """Run one episode of `policy` (from replay day `day` if given) and return
    `env.episode_metrics`: service_ratio, served, demand, rebalanced,
    relocation_cost (= beta * rebalanced), overflow, plus over_capacity,
    truncated, invalid_action and reward (jitted; vmap over `key` or `params`)."""
    start = None if day is None else env.initial_state(params, day)
    final_state, _ = run_episode(policy, env, params, key, start_state=start)
    return env.episode_metrics(final_state, params)
