"""Two-phase approximate multiagent rollout on a partitioned map.

One sequential (one-at-a-time) rollout over the whole fleet costs a chain of
m decisions. The map is cut into sectors, as many as it takes for one
sequential rollout to handle at most `cap` taxis each: `partition` groups the
intersections by weighted k-means on their positions, weighted by predicted
pick-up demand, so busy areas get small sectors. Then every step:

1. phase one, between sectors: each sector's desired share of the free taxis
   follows its predicted demand (waiting requests there plus `horizon` steps
   of expected arrivals), at most `cap`; the free taxis beyond a sector's
   share, among those IA-RA leaves without a request, are matched to the
   missing places of the other sectors by instantaneous
   assignment on the distance to each sector's centre intersection, and
   drive there;
2. phase two, inside sectors: every sector runs the one-at-a-time rollout on
   its own free taxis (up to `cap`), up to `queue` of its own waiting
   requests and its own share of the future demand, with IA-RA as the base
   policy (its requests: those IA-RA gives its taxis, then the nearest).
   Its simulations also carry the taxis now driving passengers to
   the sector (up to `cap`), which will be free there. The sectors run side
   by side: a `vmap` over sectors, split over the devices of a mesh when one
   is given (`shard_map`, no communication).

Free taxis that IA-RA sends to a request in another sector, taxis over a
sector's cap and carrying taxis follow the base policy.

`phase_one_rollout_targets` is the controlled comparison: the same phase one
between the same sectors, then one one-at-a-time rollout over all the other
free taxis on the whole map (no sectors, no caps, every waiting request, the
map-wide forecast). Two-phase against it measures what cutting the map into
sectors costs; it against the plain full-map rollout, what phase one buys.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .env import RoutingParams, RoutingState, _rank_within
from .graph import StreetGraph
from .policies import _assign, ia_ra, rollout_targets


@struct.dataclass
class Sectors:
    sector_of: jax.Array  # (N,) int32
    centre: jax.Array  # (S,) int32 the intersection taxis drive to when sent to a sector
    share: jax.Array  # (S,) float32 of the pick-up demand
    pickup_cdf: jax.Array  # (S, N) float32 pick-up distribution restricted to each sector (cumulative)


def partition(graph: StreetGraph, pickup: np.ndarray, num_sectors: int, seed: int = 0, iters: int = 100) -> np.ndarray:
    """(N,) sector of each intersection: weighted k-means (k-means++ start, Lloyd steps) on
    positions in metres, weighted by `pickup`; deterministic for a seed."""
    if num_sectors < 1 or num_sectors > graph.num_nodes:
        raise ValueError(f"num_sectors must lie in [1, {graph.num_nodes}], got {num_sectors}")
    lat0 = np.radians(graph.lat.mean())
    xy = np.stack([np.radians(graph.lon) * np.cos(lat0), np.radians(graph.lat)], 1) * 6_371_008.8
    w = np.asarray(pickup, float) + 1e-12
    rng = np.random.default_rng(seed)
    centres = [xy[rng.choice(len(xy), p=w / w.sum())]]
    for _ in range(1, num_sectors):
        d2 = np.min([((xy - c) ** 2).sum(1) for c in centres], axis=0) * w
        centres.append(xy[rng.choice(len(xy), p=d2 / d2.sum())])
    centres = np.array(centres)
    for _ in range(iters):
        label = np.argmin(((xy[:, None, :] - centres[None]) ** 2).sum(2), axis=1)
        new = np.array([np.average(xy[label == k], axis=0, weights=w[label == k]) if np.any(label == k)
                        else xy[rng.integers(len(xy))] for k in range(num_sectors)])
        if np.allclose(new, centres):
            break
        centres = new
    return np.argmin(((xy[:, None, :] - centres[None]) ** 2).sum(2), axis=1).astype(np.int32)


def make_sectors(graph: StreetGraph, pickup: np.ndarray, sector_of: np.ndarray) -> Sectors:
    """Sector arrays for `two_phase_targets`; a sector's centre is its intersection with the least
    pick-up-weighted mean distance (edges) to the sector's pick-ups."""
    s = int(sector_of.max()) + 1
    centre, share, cdf = [], [], []
    for k in range(s):
        inside = sector_of == k
        p = np.where(inside, pickup, 0.0)
        share.append(p.sum())
        cdf.append(np.cumsum(p / p.sum()) if p.sum() > 0 else np.cumsum(inside / inside.sum()))
        nodes = np.flatnonzero(inside)
        centre.append(nodes[np.argmin(graph.hops[np.ix_(nodes, nodes)] @ p[nodes])])
    return Sectors(sector_of=jnp.asarray(sector_of, jnp.int32), centre=jnp.asarray(centre, jnp.int32),
                   share=jnp.asarray(share, jnp.float32), pickup_cdf=jnp.asarray(np.array(cdf), jnp.float32))


def sectors_for(graph: StreetGraph, pickup: np.ndarray, fleet: int, cap: int, seed: int = 0) -> Sectors:
    """As many sectors as one rollout of at most `cap` taxis each needs for `fleet` taxis."""
    return make_sectors(graph, pickup, partition(graph, pickup, max(1, -(-fleet // cap)), seed))


def rebalance_between_sectors(state: RoutingState, params: RoutingParams, sectors: Sectors, base_assigned,
                              cap: int, horizon: int):
    """Phase one: (moved (M,) bool, target (M,) int32) of the taxis sent to another sector."""
    n_sec = sectors.centre.shape[0]
    free = state.present & ~state.carrying
    sec = sectors.sector_of[state.node]
    supply = jax.ops.segment_sum(free.astype(jnp.int32), sec, n_sec)
    waiting = jax.ops.segment_sum(state.req_live.astype(jnp.float32), sectors.sector_of[state.req_pick], n_sec)
    weight = waiting + horizon * params.rate * sectors.share
    desired = jnp.minimum(jnp.floor(jnp.sum(free) * weight / jnp.sum(weight) + 0.5).astype(jnp.int32), cap)
    surplus = jnp.maximum(supply - desired, 0)
    deficit = jnp.maximum(desired - supply, 0)
    idle = free & (base_assigned < 0)  # never pull a taxi away from a request IA-RA gives it
    rank = _rank_within(sec, idle, jnp.zeros_like(sec))
    spare = idle & (rank < surplus[sec])
    m = state.node.shape[0]
    ends = jnp.cumsum(deficit)
    slot_sector = jnp.minimum(jnp.searchsorted(ends, jnp.arange(m), side="right"), n_sec - 1)
    slot_real = jnp.arange(m) < ends[-1]
    cost = params.hops[state.node[:, None], sectors.centre[slot_sector][None, :]].astype(jnp.float32)
    slot = _assign(cost, spare, slot_real)
    moved = slot >= 0
    return moved, sectors.centre[slot_sector[jnp.maximum(slot, 0)]]


def _sector_problem(state: RoutingState, params: RoutingParams, sectors: Sectors, s, candidates, assigned,
                    cap: int, queue: int):
    """(taxi indices (2 cap,), sub-state) of sector `s`: up to `cap` of its candidate taxis, up to
    `cap` carrying taxis bound for it (they will be free there, so its rollouts count on them), and
    `queue` of its waiting requests: those IA-RA gives its candidate taxis, then the nearest to
    them (a queue of the oldest would, once requests pile up, send the simulated base policy past
    nearer ones). Only the first `cap` taxis are decided on."""
    m = state.node.shape[0]
    mine = candidates & (sectors.sector_of[state.node] == s)
    coming = state.present & state.carrying & (sectors.sector_of[state.dest] == s)
    idx = jnp.concatenate([jnp.argsort(~mine, stable=True)[:cap], jnp.argsort(~coming, stable=True)[:cap]])
    valid = jnp.concatenate([mine, coming])[jnp.concatenate([idx[:cap], idx[cap:] + m])]
    in_s = state.req_live & (sectors.sector_of[state.req_pick] == s)
    given = jnp.zeros(in_s.shape, bool).at[jnp.where(mine & (assigned >= 0), assigned, in_s.shape[0])].set(True, mode="drop")
    reach = jnp.min(jnp.where(mine[:, None], params.hops[state.node[:, None], state.req_pick[None, :]], m * 1000), axis=0)
    big = jnp.iinfo(jnp.int32).max
    req = jnp.argsort(jnp.where(in_s, jnp.where(given, -1, reach), big), stable=True)[:queue]
    zero = jnp.zeros((), jnp.int32)
    sub = RoutingState(node=state.node[idx], carrying=state.carrying[idx], dest=state.dest[idx],
                       assigned=jnp.full(2 * cap, -1, jnp.int32), present=valid, req_pick=state.req_pick[req],
                       req_drop=state.req_drop[req], req_time=state.req_time[req], req_live=in_s[req], t=state.t,
                       arrived=zero, turned_away=zero, delivered=zero, wait=zero)
    decided = jnp.arange(2 * cap) < cap
    return jnp.where(valid & decided, idx, m), sub


def phase_one_rollout_targets(key: jax.Array, state: RoutingState, params: RoutingParams, sectors: Sectors,
                              cap: int = 6, horizon: int = 30, samples: int = 4):
    """Phase one, then the full-map one-at-a-time rollout over the taxis it did not move."""
    targets, assigned = ia_ra(state, params)
    moved, phase_one_target = rebalance_between_sectors(state, params, sectors, assigned, cap, horizon)
    start = jnp.where(moved, phase_one_target, targets), jnp.where(moved, -1, assigned)
    return rollout_targets(key, state, params, horizon, samples, active=~moved, start=start)


def two_phase_targets(key: jax.Array, state: RoutingState, params: RoutingParams, sectors: Sectors, cap: int = 6,
                      queue: int = 16, horizon: int = 30, samples: int = 4, mesh=None):
    """The two-phase policy's (targets, assigned) (see the module doc)."""
    targets, assigned = ia_ra(state, params)
    moved, phase_one_target = rebalance_between_sectors(state, params, sectors, assigned, cap, horizon)
    targets = jnp.where(moved, phase_one_target, targets)
    assigned = jnp.where(moved, -1, assigned)
    n_sec = sectors.centre.shape[0]
    # a taxi that IA-RA sends to a request in another sector is already moving between sectors
    own = sectors.sector_of[state.req_pick[jnp.maximum(assigned, 0)]] == sectors.sector_of[state.node]
    candidates = state.present & ~state.carrying & ~moved & ((assigned < 0) | own)

    def sector_rollout(s, key, pickup_cdf, share):
        idx, sub = _sector_problem(state, params, sectors, s, candidates, assigned, cap, queue)
        sub_params = params.replace(pickup_cdf=pickup_cdf, rate=params.rate * share)
        t, _ = rollout_targets(key, sub, sub_params, horizon, samples, deciders=cap)
        return idx, t

    args = (jnp.arange(n_sec), jax.random.split(key, n_sec), sectors.pickup_cdf, sectors.share)
    if mesh is None:
        idx, t = jax.vmap(sector_rollout)(*args)
    else:  # pad to a multiple of the devices with empty sectors (index -1 holds no intersection)
        from ...core.sharding import BATCH, BATCHED

        pad = -n_sec % mesh.shape[BATCH]
        args = tuple(jnp.concatenate([a, jnp.repeat(a[:1] if i else jnp.array([-1]), pad, axis=0)])
                     for i, a in enumerate(args))
        idx, t = jax.shard_map(jax.vmap(sector_rollout), mesh=mesh, in_specs=BATCHED, out_specs=BATCHED,
                               check_vma=False)(*args)
    idx, t = idx.reshape(-1), t.reshape(-1)
    before = targets
    targets = targets.at[idx].set(t, mode="drop")
    return targets, jnp.where(targets != before, -1, assigned)
