"""META's dispatch layer (Liu, Chen, Chen, IEEE T-ITS 2021): region actions to empty moves.

Each region agent outputs a in [-1, 1]. With threshold xi >= 0 and N_s^i the
idle vehicles of region i:

* a_i > xi: a high region; it sends x_i = round(|a_i| * N_s^i) vehicles;
* a_i < -xi: a low region; it asks for y_j = round(|a_j| * N_s^j) vehicles;
* otherwise the region sits this step out.

High and low regions form a complete bipartite graph with weights
w_ij = d_ij * |x_i - y_j| (d_ij: the symmetrised rebalancing time between the
regions, our stand-in for the paper's Manhattan distance on the region grid),
so a sender is paired with a nearby receiver asking about what it sends; the
smaller side is padded with dummy regions at a prohibitive cost, Kuhn-Munkres
(`solvers.assignment`, in-graph) picks the least-weight one-to-one pairing,
and each matched pair moves x_i, which the sender has (`dispatch='paper'`).

`dispatch='min'` is the variant jaxmob ran before it followed the paper: a low
region asks round(|a_j| * expected requests_j), the weights are
d_ij * |a_i - a_j| on the actions, and a pair moves min(offer, ask).
"""
from __future__ import annotations

import jax.numpy as jnp

from ...solvers.assignment import linear_sum_assignment


def meta_moves(idle, expected, action, xi, distance, dispatch: str = "paper"):
    """`(R, R)` int32 moves of one META dispatch (see the module docstring)."""
    R = idle.shape[-1]
    a = jnp.clip(action, -1.0, 1.0)
    high, low = a > xi, a < -xi
    offer = jnp.where(high, jnp.round(jnp.abs(a) * idle), 0).astype(jnp.int32)
    if dispatch == "paper":
        ask = jnp.where(low, jnp.round(jnp.abs(a) * idle), 0).astype(jnp.int32)
        weight = distance * jnp.abs(offer[:, None] - ask[None, :]).astype(jnp.float32)
    else:
        ask = jnp.where(low, jnp.round(jnp.abs(a) * expected), 0).astype(jnp.int32)
        weight = distance * jnp.abs(a[:, None] - a[None, :])
    col = linear_sum_assignment(weight, high, low)
    paired = col >= 0
    dest = jnp.maximum(col, 0)
    amount = jnp.where(paired, offer if dispatch == "paper" else jnp.minimum(offer, ask[dest]), 0)
    return jnp.zeros((R, R), jnp.int32).at[jnp.arange(R), dest].add(amount)
