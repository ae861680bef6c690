"""A hypernetwork head: one shared generator writes each agent's own output layer.

MARL-GCN's personalised policies: the generator reads an agent's meta
features (from its recent history) and its region, and outputs the weights
and bias of that agent's linear head over its graph embedding; agents share
the generator, not the head, so similar histories give similar heads while
regions can differ."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class HyperHead(nn.Module):
    """(embedding (..., N, E), meta (..., N, M), region one-hot (..., N, G)) -> (..., N, out)."""

    hidden: int
    out: int = 1
    init_scale: float = 0.01

    @nn.compact
    def __call__(self, embedding, meta, region):
        E = embedding.shape[-1]
        g = nn.tanh(nn.Dense(self.hidden)(jnp.concatenate([meta, region], -1)))
        params = nn.Dense(self.out * (E + 1), kernel_init=nn.initializers.variance_scaling(
            self.init_scale, "fan_in", "truncated_normal"))(g)
        w = params[..., : self.out * E].reshape(params.shape[:-1] + (E, self.out))
        b = params[..., self.out * E:]
        return jnp.einsum("...e,...eo->...o", embedding, w) + b
