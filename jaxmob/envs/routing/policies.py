"""Routing policies: instantaneous assignment and one-at-a-time multiagent rollout.

Every policy maps (state, params) to each taxi's target intersection and
its committed request (`env.step` moves a taxi one edge toward its target):

* IA: free taxis without a request are assigned to the unassigned waiting
  requests at least total shortest-path distance (edges); assignments are
  kept until pick-up.
* IA-RA: every step all free taxis are reassigned to all waiting requests.
  Memoryless, so it is the base policy of the rollouts.
* one-at-a-time rollout (`rollout_targets`): taxis choose in index order;
  taxi l tries staying and each out-neighbour, with taxis before it on the
  moves already chosen and taxis after it on the base policy's moves; each
  candidate's Q-factor is the cost of that step plus `horizon - 1` steps of
  the base policy, averaged over `samples` sampled futures (the same futures
  for every candidate: common random numbers). The cheapest candidate wins,
  the base policy's own move on ties, so rollout never trails its base
  policy in its own estimate. Candidates and samples are vmapped; the
  sequence over taxis is a `lax.scan`.

Assignments are solved in-graph by the exact Hungarian method
(`solvers.assignment`, checked against scipy).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ...solvers.assignment import linear_sum_assignment
from .env import RoutingParams, RoutingState, sample_arrivals, step

ARRIVAL_SLOTS = 6  # most new requests drawn in one step (P(more) < 1e-6 at the bundled rate)


def _assign(cost, rows, cols):
    """col_of_row for a (M, Q) cost with real `rows` and `cols` (padded to a square inside)."""
    m, q = cost.shape
    n = max(m, q)
    square = jnp.zeros((n, n), cost.dtype).at[:m, :q].set(cost)
    rmask = jnp.zeros(n, bool).at[:m].set(rows)
    cmask = jnp.zeros(n, bool).at[:q].set(cols)
    return linear_sum_assignment(square, rmask, cmask)[:m]


def _targets_of(state: RoutingState, assigned: jax.Array) -> jax.Array:
    """A taxi drives to its request's pick-up, or stays when it has none."""
    return jnp.where(assigned >= 0, state.req_pick[jnp.maximum(assigned, 0)], state.node)


def ia_ra(state: RoutingState, params: RoutingParams):
    """Instantaneous assignment with reassignment: (targets, assigned)."""
    free = state.present & ~state.carrying
    cost = params.hops[state.node[:, None], state.req_pick[None, :]].astype(jnp.float32)
    assigned = _assign(cost, free, state.req_live)
    return _targets_of(state, assigned), assigned


def ia(state: RoutingState, params: RoutingParams):
    """Instantaneous assignment, committed until pick-up: (targets, assigned)."""
    free = state.present & ~state.carrying
    kept = jnp.where(free, state.assigned, -1)
    q = state.req_live.shape[0]
    taken = jnp.zeros(q, bool).at[jnp.maximum(kept, 0)].max(kept >= 0)
    cost = params.hops[state.node[:, None], state.req_pick[None, :]].astype(jnp.float32)
    new = _assign(cost, free & (kept < 0), state.req_live & ~taken)
    assigned = jnp.where(kept >= 0, kept, new)
    return _targets_of(state, assigned), assigned


BASE_POLICIES = {"ia": ia, "ia_ra": ia_ra}


def base_cost(state: RoutingState, targets, assigned, keys, params: RoutingParams, base=ia_ra) -> jax.Array:
    """Cost of one step on (targets, assigned), then the base policy, one step per key (no terminal
    cost: an estimate of the wait beyond the horizon that ignores how taxis share the requests,
    each request's nearest taxi, misled the rollout once requests outnumber taxis)."""
    slots = ARRIVAL_SLOTS

    def go(carry, key):
        s, first, t, a = carry
        t, a = jax.lax.cond(first, lambda: (t, a), lambda: base(s, params))
        s, cost = step(s, t, a, sample_arrivals(key, params, slots), params)
        return (s, False, t, a), cost

    _, costs = jax.lax.scan(go, (state, True, targets, assigned), keys)
    return jnp.sum(costs)


def future_keys(key: jax.Array, samples: int, horizon: int) -> jax.Array:
    """(samples, horizon) keys of the sampled futures every candidate of a decision shares."""
    return jax.random.split(key, samples * horizon).reshape(samples, horizon)


def rollout_targets(key: jax.Array, state: RoutingState, params: RoutingParams, horizon: int = 30,
                    samples: int = 4, base=ia_ra, active: jax.Array | None = None, deciders: int | None = None,
                    start: tuple | None = None):
    """One-at-a-time rollout's (targets, assigned) (see the module doc); taxis outside
    `active` (default: every present, free taxi) keep their starting move, and so do all
    but the first `deciders` taxis (default all: the scan's length). The starting moves are
    `start` = (targets, assigned), default the base policy's."""
    targets, assigned = base(state, params) if start is None else start
    keys = future_keys(key, samples, horizon)
    free = state.present & ~state.carrying
    active = free if active is None else active & free

    def q_factors(targets, assigned, l):
        cands = params.neighbours[state.node[l]]
        def one(c, ks):
            t = targets.at[l].set(c)
            a = assigned.at[l].set(jnp.where(c == targets[l], assigned[l], -1))
            return base_cost(state, t, a, ks, params, base)
        return jax.vmap(lambda c: jnp.mean(jax.vmap(lambda ks: one(c, ks))(keys).astype(jnp.float32)))(cands), cands

    def choose(carry, l):
        targets, assigned = carry
        base_move = params.next_hop[state.node[l], targets[l]]

        def decide(_):
            q, cands = q_factors(targets, assigned, l)
            base_q = jnp.min(jnp.where(cands == base_move, q, jnp.inf))
            best = cands[jnp.argmin(q)]
            pick = jnp.where(base_q <= jnp.min(q) + 1e-6, targets[l], best)
            keep_assignment = pick == targets[l]
            return targets.at[l].set(pick), assigned.at[l].set(jnp.where(keep_assignment, assigned[l], -1))

        return jax.lax.cond(active[l], decide, lambda _: (targets, assigned), None), None

    (targets, assigned), _ = jax.lax.scan(choose, (targets, assigned), jnp.arange(deciders or state.node.shape[0]))
    return targets, assigned
