"""A plain MLP with orthogonal initialisation, the workhorse of the PPO learners."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from .init import orthogonal


class MLP(nn.Module):
    """tanh hidden layers; the output layer's init scale is separate because
    policy logits want a small one (near-uniform start) and values a unit one."""

    hidden: Sequence[int]
    out: int
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.tanh(nn.Dense(h, kernel_init=orthogonal(np.sqrt(2.0)))(x))
        return nn.Dense(self.out, kernel_init=orthogonal(self.out_scale),
                        bias_init=nn.initializers.zeros)(x)


def count_params(params) -> int:
    import jax

    return int(sum(np.prod(jnp.shape(x)) for x in jax.tree.leaves(params)))


def apply_shared_input(mlp: MLP, params, shared, per_agent):
    """`mlp.apply(params, concat([shared broadcast to every agent, per_agent], -1))`
    without building that concatenation: shared (..., S), per_agent (..., R, E) ->
    (..., R, out).

    A centralised critic reads the global state beside each agent's identity
    embedding; the state part of the first layer is the same for every agent, so
    it is computed once per state instead of R times (the first layer dominates:
    S is a few hundred where E is 8). Same parameters as `mlp.init` on the
    concatenated input, so the two are interchangeable."""
    layers = params["params"]
    first = layers["Dense_0"]
    S = shared.shape[-1]
    x = (shared @ first["kernel"][:S])[..., None, :] + per_agent @ first["kernel"][S:] + first["bias"]
    n = len(mlp.hidden)
    if n == 0:
        return x
    x = jnp.tanh(x)
    for i in range(1, n + 1):
        layer = layers[f"Dense_{i}"]
        x = x @ layer["kernel"] + layer["bias"]
        if i < n:
            x = jnp.tanh(x)
    return x
