"""Graph layers over a fixed, padded neighbour list (every node has K slots).

`TwoStageGAT` is the facility encoder of MARL-GCN: stage one attends over a
node's neighbours of each kind separately (graph attention, Velickovic et al.,
with the node itself among its neighbours), stage two attends over those
per-kind summaries (a semantic-level attention, so a node weighs what its
optimised and its static neighbours say). `gated_topk_readout` pools a
graph into one vector per node kind: each node gets a gate in (0, 1), the k
highest-gated nodes of a kind are summed with their gates as weights.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .init import orthogonal


class TwoStageGAT(nn.Module):
    """x (..., N, D) -> (..., N, features); the graph is static (NumPy): `neighbours` (N, K) int,
    `mask` (N, K) bool, `kind` (N,) in [0, kinds)."""

    features: int
    kinds: int = 2

    @nn.compact
    def __call__(self, x, neighbours, mask, kind):
        N = x.shape[-2]
        nb = np.concatenate([np.arange(N)[:, None], np.asarray(neighbours)], 1)  # self first
        nb_mask = np.concatenate([np.ones((N, 1), bool), np.asarray(mask, bool)], 1)
        z = nn.Dense(self.features, kernel_init=orthogonal(np.sqrt(2.0)))(x)  # (..., N, H)
        zn = z[..., nb, :]  # (..., N, K+1, H)
        src = nn.Dense(1, use_bias=False)(z)  # (..., N, 1)
        dst = nn.Dense(1, use_bias=False)(zn)[..., 0]  # (..., N, K+1)
        e = nn.leaky_relu(src + dst, 0.2)
        nb_kind = np.asarray(kind)[nb]  # (N, K+1)
        summaries, present = [], []
        for k in range(self.kinds):  # stage one: attention among the neighbours of one kind
            m = nb_mask & (nb_kind == k)
            w = jax.nn.softmax(jnp.where(m, e, -1e9), axis=-1) * m
            summaries.append((w[..., None] * zn).sum(-2))
            present.append(m.any(-1))
        h = jnp.stack(summaries, -2)  # (..., N, kinds, H)
        has = jnp.stack(present, -1)  # (N, kinds)
        # stage two: attention over the kinds present around the node
        s = nn.Dense(1, use_bias=False)(jnp.tanh(nn.Dense(self.features)(h)))[..., 0]  # (..., N, kinds)
        beta = jax.nn.softmax(jnp.where(has, s, -1e9), axis=-1) * has
        out = (beta[..., None] * h).sum(-2)
        return nn.elu(out) + z


class NodeMLP(nn.Module):
    """The 'no GAT' ablation: the same width, each node on its own."""

    features: int

    @nn.compact
    def __call__(self, x, neighbours, mask, kind):
        z = nn.Dense(self.features, kernel_init=orthogonal(np.sqrt(2.0)))(x)
        return nn.elu(nn.Dense(self.features)(nn.elu(z))) + z


def gated_topk_readout(h, gate, kind, kinds: int, k: int):
    """h (..., N, H), gate (..., N) in (0, 1), kind (N,) NumPy: (..., kinds, H) = for each kind the
    gate-weighted mean of its k highest-gated nodes (fewer where the kind has fewer nodes)."""
    out = []
    for c in range(kinds):
        member = kind == c
        kk = int(min(k, max(int(np.sum(np.asarray(member))), 1)))
        score = jnp.where(member, gate, -1.0)
        top, idx = jax.lax.top_k(score, kk)
        chosen = jnp.take_along_axis(h, idx[..., None], axis=-2)  # (..., kk, H)
        w = jnp.where(top >= 0, top, 0.0)
        out.append((w[..., None] * chosen).sum(-2) / kk)
    return jnp.stack(out, -2)
