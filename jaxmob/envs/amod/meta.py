"""META's dispatch layer (Liu, Chen, Chen, IEEE T-ITS 2021): region actions to empty moves.

Each region agent outputs a in [-1, 1]. With threshold xi >= 0:

* a_i > xi: a high region; it offers n_i = round(a_i * idle_i) vehicles;
* a_i < -xi: a low region; it asks for m_j = round(-a_j * expected requests_j);
* otherwise the region sits this step out.

High and low regions form a complete bipartite graph with weights
w_ij = d_ij * |a_i - a_j| (d_ij: the symmetrised rebalancing time between the
regions, our stand-in for the paper's Manhattan distance on the region grid);
the smaller side is padded with dummy regions at a prohibitive cost, and
Kuhn-Munkres (`solvers.assignment`, in-graph) picks the least-weight one-to-one
pairing. A matched pair moves min(n_i, m_j) vehicles i -> j.
"""
from __future__ import annotations

import jax.numpy as jnp

from ...solvers.assignment import linear_sum_assignment


def meta_moves(idle, expected, action, xi, distance):
    """`(R, R)` int32 moves of one META dispatch (see the module docstring)."""
    R = idle.shape[-1]
    a = jnp.clip(action, -1.0, 1.0)
    high, low = a > xi, a < -xi
    offer = jnp.where(high, jnp.round(a * idle), 0).astype(jnp.int32)
    want = jnp.where(low, jnp.round(-a * expected), 0).astype(jnp.int32)
    weight = distance * jnp.abs(a[:, None] - a[None, :])
    col = linear_sum_assignment(weight, high, low)
    paired = col >= 0
    dest = jnp.maximum(col, 0)
    amount = jnp.where(paired, jnp.minimum(offer, want[dest]), 0)
    return jnp.zeros((R, R), jnp.int32).at[jnp.arange(R), dest].add(amount)
