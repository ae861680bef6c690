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
