"""Orthogonal initialisation without LAPACK.

Flax's `orthogonal` initialiser calls a QR factorisation, which XLA:CPU runs as a
LAPACK custom call that splits batched work over the same thread pool that runs
the program. When several batched QRs run at once (stacked group parameters
initialised under `vmap`, as grouped policies and sweeps do) they can all wait
for pool threads that are busy waiting too, and the program hangs on a 2-core
machine. Here the orthogonal factor comes from Newton-Schulz iterations on a
Gaussian matrix (matmuls only): the polar factor of a Gaussian matrix is
Haar-distributed, the same law as QR with sign correction.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def polar_factor(a: jax.Array, iters: int = 40) -> jax.Array:
    """The orthogonal polar factor U of `a` (a = U P), by Newton-Schulz iteration.

    Scaling by the Frobenius norm puts every singular value in (0, 1]; each step
    maps s -> 1.5 s - 0.5 s^3, which grows small values by 1.5x and converges
    quadratically near 1."""
    x = a / (jnp.linalg.norm(a) + 1e-12)

    def step(x, _):
        return 1.5 * x - 0.5 * x @ (x.T @ x), None

    return jax.lax.scan(step, x, None, iters)[0]


def orthogonal(scale: float = 1.0, dtype=jnp.float32):
    """Flax-style initialiser `init(key, shape, dtype)` for 2-D kernels (in, out):
    orthonormal rows or columns (whichever are fewer) times `scale`."""

    def init(key, shape, dtype=dtype):
        if len(shape) != 2:
            raise ValueError(f"orthogonal init needs a 2-D kernel shape, got {shape}")
        rows, cols = shape
        tall = rows >= cols
        a = jax.random.normal(key, (rows, cols) if tall else (cols, rows), jnp.float32)
        q = polar_factor(a)
        return (scale * (q if tall else q.T)).astype(dtype)

    return init
