"""The AMoD benchmark's rebalancing problem inside a compiled program.

`rebalancing_flow(idle, desired, cost)` returns the empty moves of least total
`cost` that bring every region to at least its `desired` idle vehicles (as far
as the fleet allows), over every ordered pair of regions, relays allowed: the
benchmark's own LP. It is solved as a transportation problem by the
successive-shortest-path method on the bipartite residual network: each round
finds, by Bellman-Ford from every node with supply left, the cheapest path to a
node with demand left (forward arcs i -> j at cost[i, j], backward arcs j -> i
at -cost[i, j] where flow runs), and pushes as many units along it as the path
allows. Flows stay integral and each round keeps the flow optimal for what it
ships, so the last one is the optimum of the LP (the tests check it against
HiGHS). Integer costs run in integer arithmetic.

All loops are `lax` loops over fixed shapes; under `vmap` each instance runs
until the slowest of the batch is done.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _unreached(dtype):
    """The distance of a node no path reaches: inf, or for integer costs a bound no real
    path comes near and whose sums cannot overflow int32."""
    return jnp.asarray(jnp.inf if jnp.issubdtype(dtype, jnp.floating) else 2**29, dtype)


def _shortest_paths(cost, arc, flow, has_supply):
    """Distances to sources-side (`dl`) and sink-side (`dr`) nodes from every node with
    supply left, and the predecessors that trace the paths back."""
    n = cost.shape[0]
    inf = _unreached(cost.dtype)
    forward = jnp.where(arc, cost, inf)  # (i, j): left i -> right j
    backward = jnp.where(flow > 0, -cost, inf)  # (i, j): right j -> left i
    dl0 = jnp.where(has_supply, 0, inf).astype(cost.dtype)
    # rounding noise must not count as a shorter path (integer costs have none)
    eps = 1e-5 * (1.0 + jnp.max(jnp.abs(cost))) if jnp.issubdtype(cost.dtype, jnp.floating) else 0

    def relax(c):
        dl, dr, pr, pl, _, k = c
        via = dl[:, None] + forward
        cand = via.min(axis=0)
        pr = jnp.where(cand < dr - eps, via.argmin(axis=0), pr)  # strict improvements only: the
        dr = jnp.where(cand < dr - eps, cand, dr)  # predecessors stay a tree even with zero-cost cycles
        back = dr[None, :] + backward
        best = back.min(axis=1)
        better = best < dl - eps
        pl = jnp.where(better, back.argmin(axis=1), pl)
        new_dl = jnp.where(better, best, dl)
        return new_dl, dr, pr, pl, jnp.any(better), k + 1

    start = (dl0, jnp.full(n, inf), jnp.zeros(n, jnp.int32), jnp.full(n, -1), jnp.bool_(True), 0)
    _, dr, pr, pl, _, _ = jax.lax.while_loop(lambda c: c[4] & (c[5] <= n), relax, start)
    return dr, pr, pl


def _ship_direct(flow, supply, demand, dr, pr, pl):
    """Fill every sink whose shortest path is one arc from a node with supply left,
    splitting each such source's supply over its sinks in index order. The arcs
    are tight under the distances, so the flow stays optimal for what it ships
    (the primal-dual argument), and one shortest-path search serves many sinks."""
    n = flow.shape[0]
    direct = (demand > 0) & (dr < _unreached(dr.dtype)) & (pl[pr] < 0) & (supply[pr] > 0)
    wanted = jnp.where((pr[None, :] == jnp.arange(n)[:, None]) & direct[None, :], demand[None, :], 0)
    before = jnp.cumsum(wanted, axis=1) - wanted
    ship = jnp.clip(supply[:, None] - before, 0, wanted)
    return flow + ship, supply - ship.sum(axis=1), demand - ship.sum(axis=0), ship.sum()


def _augment(state, cost, arc):
    flow, supply, demand, rounds = state
    n = cost.shape[0]
    dr, pr, pl = _shortest_paths(cost, arc, flow, supply > 0)
    flow, supply, demand, shipped = _ship_direct(flow, supply, demand, dr, pr, pl)
    sink = jnp.argmin(jnp.where(demand > 0, dr, _unreached(dr.dtype)))

    nodes = jnp.arange(n)

    def walk(c):
        j, going, path, room, root, k = c
        i = pr[j]
        nxt = pl[i]
        back = nxt >= 0
        j_next = jnp.maximum(nxt, 0)
        row = nodes == i
        path = path + (row[:, None] & (nodes == j)[None, :]) - (back & row[:, None] & (nodes == j_next)[None, :])
        room = jnp.where(back, jnp.minimum(room, jnp.min(jnp.where(row, flow[:, j_next], big))), room)
        root = jnp.where(back, root, i)
        return j_next, back, path, room, root, k + 1

    big = jnp.iinfo(jnp.int32).max
    init = (sink.astype(jnp.int32), jnp.bool_(True), jnp.zeros((n, n), jnp.int32), jnp.int32(big), jnp.int32(0), 0)
    _, going, path, room, root, _ = jax.lax.while_loop(lambda c: c[1] & (c[5] < n), walk, init)
    delta = jnp.minimum(jnp.minimum(room, supply[root]), demand[sink])
    delta = jnp.where((dr[sink] < _unreached(dr.dtype)) & (demand[sink] > 0) & ~going, jnp.maximum(delta, 0), 0)
    flow = flow + delta * path
    progress = (delta > 0) | (shipped > 0)  # none: nothing reachable is left, stop
    return flow, supply.at[root].add(-delta), demand.at[sink].add(-delta), jnp.where(progress, rounds + 1, -1)


def _successive_shortest_paths(supply, demand, cost, flow, arc):
    """Augment `flow` (optimal for what it ships) until `demand` is met or nothing can reach it."""
    n = cost.shape[0]

    def more(state):
        _, _, demand_left, rounds = state
        return jnp.any(demand_left > 0) & (rounds >= 0) & (rounds < 4 * n * n)

    start = (flow, supply, demand, jnp.int32(0))
    flow, _, _, _ = jax.lax.while_loop(more, lambda s: _augment(s, cost, arc), start)
    return flow


def rebalancing_flow(idle: jax.Array, desired: jax.Array, cost: jax.Array) -> jax.Array:
    """`(n, n)` int32 empty moves of the AMoD benchmark's rebalancing problem:
    min sum(cost * f) over every ordered pair, s.t. inflow - outflow >= desired - idle
    and outflow <= idle in every region (so a region short of vehicles may still
    send its own while others refill it: a relay, worth it where cost breaks the
    triangle inequality).

    It is the transportation problem that sends every idle vehicle somewhere,
    staying home at cost 0 (`g[i, i] = idle[i] - outflow[i]`), and fills
    `desired`. Keeping min(idle, desired) at home is optimal for what it ships
    (every residual cycle alternates non-negative forward costs with zero-cost
    backward diagonal arcs), so the search starts there, with the surplus left
    to ship and the deficits left to fill; a relay through k is the backward
    arc of k's stay. `cost` must be non-negative off the diagonal."""
    idle = jnp.asarray(idle, jnp.int32)
    desired = jnp.asarray(desired, jnp.int32)
    n = idle.shape[-1]
    eye = jnp.eye(n, dtype=bool)
    cost = jnp.asarray(cost)
    cost = jnp.where(eye, 0, cost.astype(jnp.int32 if jnp.issubdtype(cost.dtype, jnp.integer) else jnp.float32))
    stay = jnp.minimum(idle, desired)
    flow = jnp.where(eye, stay[:, None], 0).astype(jnp.int32)
    arc = jnp.ones((n, n), bool)
    flow = _successive_shortest_paths(idle - stay, desired - stay, cost, flow, arc)
    return jnp.where(eye, 0, flow)
