"""Request-level taxi routing on a street graph, as pure compiled functions.

A state is a fleet and a padded queue of outstanding requests. One step,
given each taxi's target intersection and the step's new requests, is

1. move: every present taxi goes one edge along a shortest path toward its
   target (a carrying taxi toward its drop-off, whatever the target; target =
   its own node: it stays);
2. drop-off: a carrying taxi at its drop-off node becomes free;
3. pick-up: free taxis at a node with waiting requests take them, oldest
   request first, taxis in index order (a taxi may leave its assignment for a
   request at the node it reached: requests are interchangeable at pick-up);
4. cost: the number of requests still waiting, i.e. one step of wait for
   each (the episode's total cost is the requests' total wait);
5. arrivals: the step's new requests fill free queue slots, oldest slot
   first; requests beyond the queue's room are turned away and counted.

Taxis and requests are never created or lost: every request that arrived is
waiting, riding or delivered, or was turned away (`conserved`, property-
tested); `reference.py` is the same step in NumPy. `present` masks padding
taxis, so fleets of different sizes share one compiled program.

`assigned` records each taxi's committed request (queue slot, -1 none): the
status "driving to a pick-up" of instantaneous assignment (IA). The step
stores the action's assignment and clears it once the request is picked up.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ...core.random import poisson_by_inversion, random_words, uniform_from_bits


@struct.dataclass
class RoutingParams:
    """The street graph and the demand model, as arrays."""

    next_hop: jax.Array  # (N, N) int32
    hops: jax.Array  # (N, N) int32
    neighbours: jax.Array  # (N, K) int32, column 0 the node itself
    pickup_cdf: jax.Array  # (N,) float32
    dropoff_cdf: jax.Array  # (N,) float32
    rate: jax.Array  # () float32 expected new requests per step


@struct.dataclass
class RoutingState:
    node: jax.Array  # (M,) int32 where each taxi is
    carrying: jax.Array  # (M,) bool
    dest: jax.Array  # (M,) int32 drop-off node while carrying
    assigned: jax.Array  # (M,) int32 committed queue slot, -1 none
    present: jax.Array  # (M,) bool, False for padding taxis
    req_pick: jax.Array  # (Q,) int32
    req_drop: jax.Array  # (Q,) int32
    req_time: jax.Array  # (Q,) int32 step of arrival
    req_live: jax.Array  # (Q,) bool waiting for a taxi
    t: jax.Array  # () int32
    arrived: jax.Array  # () int32 requests that entered the queue
    turned_away: jax.Array  # () int32 requests that found the queue full
    delivered: jax.Array  # () int32
    wait: jax.Array  # () int32 total wait so far (sum of the step costs)


@struct.dataclass
class Arrivals:
    """The new requests of one step: the first `count` entries are real."""

    count: jax.Array  # () int32
    pick: jax.Array  # (A,) int32
    drop: jax.Array  # (A,) int32


def params_from(graph, demand) -> RoutingParams:
    return RoutingParams(next_hop=jnp.asarray(graph.next_hop), hops=jnp.asarray(graph.hops),
                         neighbours=jnp.asarray(graph.neighbours),
                         pickup_cdf=jnp.asarray(np.cumsum(demand.pickup), jnp.float32),
                         dropoff_cdf=jnp.asarray(np.cumsum(demand.dropoff), jnp.float32),
                         rate=jnp.float32(demand.rate))


def initial_state(taxi_nodes, queue: int, fleet: int | None = None) -> RoutingState:
    """Free taxis at `taxi_nodes` (the first `fleet` present, the rest padding) and an empty queue."""
    taxi_nodes = jnp.asarray(taxi_nodes, jnp.int32)
    m = taxi_nodes.shape[0]
    present = jnp.arange(m) < (m if fleet is None else fleet)
    zero = jnp.zeros((), jnp.int32)
    return RoutingState(node=taxi_nodes, carrying=jnp.zeros(m, bool), dest=taxi_nodes, assigned=jnp.full(m, -1, jnp.int32),
                        present=present, req_pick=jnp.zeros(queue, jnp.int32), req_drop=jnp.zeros(queue, jnp.int32),
                        req_time=jnp.zeros(queue, jnp.int32), req_live=jnp.zeros(queue, bool), t=zero, arrived=zero,
                        turned_away=zero, delivered=zero, wait=zero)


def sample_arrivals(key: jax.Array, params: RoutingParams, slots: int) -> Arrivals:
    """Poisson(rate) new requests (at most `slots`; the excess is turned away too), pick-up and
    drop-off nodes drawn independently from the demand model's distributions."""
    u = uniform_from_bits(random_words(key, 1 + 2 * slots))
    count = poisson_by_inversion(u[:1], params.rate[None])[0]
    n = params.pickup_cdf.shape[0]
    pick = jnp.minimum(jnp.searchsorted(params.pickup_cdf, u[1:1 + slots] * params.pickup_cdf[-1], side="right"), n - 1)
    drop = jnp.minimum(jnp.searchsorted(params.dropoff_cdf, u[1 + slots:] * params.dropoff_cdf[-1], side="right"), n - 1)
    return Arrivals(count=count, pick=pick.astype(jnp.int32), drop=drop.astype(jnp.int32))


def _rank_within(group: jax.Array, member: jax.Array, order: jax.Array) -> jax.Array:
    """For each member: how many members of its group come before it in `order` (a key, ties by index)."""
    n = group.shape[0]
    idx = jnp.arange(n)
    before = (order[None, :] < order[:, None]) | ((order[None, :] == order[:, None]) & (idx[None, :] < idx[:, None]))
    same = (group[None, :] == group[:, None]) & member[None, :] & member[:, None]
    return jnp.sum(same & before, axis=1)


def pickups(node, free, req_pick, req_live, req_time):
    """(slot each taxi picks up or -1, whether each slot is picked up): the k-th free taxi at a
    node (by index) takes the k-th oldest waiting request there."""
    taxi_rank = _rank_within(node, free, jnp.zeros_like(node))
    req_rank = _rank_within(req_pick, req_live, req_time)
    match = (free[:, None] & req_live[None, :] & (node[:, None] == req_pick[None, :])
             & (taxi_rank[:, None] == req_rank[None, :]))
    slot = jnp.where(match.any(axis=1), jnp.argmax(match, axis=1), -1).astype(jnp.int32)
    return slot, match.any(axis=0)


def step(state: RoutingState, targets: jax.Array, assigned: jax.Array, arrivals: Arrivals,
         params: RoutingParams) -> tuple[RoutingState, jax.Array]:
    """One step (see the module doc): the next state and its cost (requests still waiting)."""
    goal = jnp.where(state.carrying, state.dest, targets)
    node = jnp.where(state.present, params.next_hop[state.node, goal], state.node)
    dropped_off = state.present & state.carrying & (node == state.dest)
    carrying = state.carrying & ~dropped_off
    free = state.present & ~carrying
    slot, taken = pickups(node, free, state.req_pick, state.req_live, state.req_time)
    got = slot >= 0
    safe = jnp.maximum(slot, 0)
    carrying = carrying | got
    dest = jnp.where(got, state.req_drop[safe], state.dest)
    live = state.req_live & ~taken
    assigned = jnp.where(carrying | ~state.present, -1, assigned)  # carrying includes `got`
    assigned = jnp.where((assigned >= 0) & ~live[jnp.maximum(assigned, 0)], -1, assigned)
    cost = jnp.sum(live).astype(jnp.int32)
    # arrivals into the free slots, lowest slot first
    a = arrivals.pick.shape[0]
    free_rank = jnp.cumsum(~live) - 1  # rank of each free slot
    entering = jnp.minimum(jnp.minimum(arrivals.count, a), jnp.sum(~live))
    fills = ~live & (free_rank < entering)
    src = jnp.clip(free_rank, 0, a - 1)
    req_pick = jnp.where(fills, arrivals.pick[src], state.req_pick)
    req_drop = jnp.where(fills, arrivals.drop[src], state.req_drop)
    req_time = jnp.where(fills, state.t + 1, state.req_time)
    new = RoutingState(node=node, carrying=carrying, dest=dest, assigned=assigned, present=state.present,
                       req_pick=req_pick, req_drop=req_drop, req_time=req_time, req_live=live | fills,
                       t=state.t + 1, arrived=state.arrived + entering,
                       turned_away=state.turned_away + arrivals.count - entering,
                       delivered=state.delivered + jnp.sum(dropped_off).astype(jnp.int32), wait=state.wait + cost)
    return new, cost


def conserved(state: RoutingState) -> jax.Array:
    """Every request that entered is waiting, riding or delivered."""
    riding = jnp.sum(state.present & state.carrying)
    return state.arrived == jnp.sum(state.req_live) + riding + state.delivered
