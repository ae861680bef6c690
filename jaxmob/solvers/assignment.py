"""Kuhn-Munkres (Hungarian) assignment inside a compiled program.

`linear_sum_assignment(cost, row_mask, col_mask)` solves the rectangular
assignment problem on a padded square matrix: the real rows and columns are
the masked ones, and as many real pairs are matched as the smaller real side
allows, at least total cost. It is the shortest-augmenting-path form of the
Hungarian method (Jonker-Volgenant style potentials, O(n^3)): one row at a
time joins the matching along a shortest alternating path of reduced costs.

Everything is `lax` loops over fixed shapes, so one compiled program serves
every instance of a padded size (`jit`, `vmap` over a batch of matrices), and
the answer is exact: the tests check it against
`scipy.optimize.linear_sum_assignment` on random and adversarial matrices.

Padding follows the usual construction: a real row paired with a padding
column (or a padding row with a real column) costs `big`, larger than any
difference of real assignments, so the optimum matches as many real pairs as
possible; padding with padding costs 0. Every perfect matching of the square
matrix then costs (its real pairs) + big * (real rows + real columns - 2 *
real pairs), which the optimum keeps at its least.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _padded_costs(cost, row_mask, col_mask):
    """The square matrix the Hungarian loop solves (see the module docstring)."""
    real = row_mask[:, None] & col_mask[None, :]
    span = jnp.max(jnp.where(real, jnp.abs(cost), 0.0))
    big = (2.0 * span + 1.0) * cost.shape[0]
    mixed = row_mask[:, None] ^ col_mask[None, :]
    return jnp.where(real, cost, jnp.where(mixed, big, 0.0))


def _hungarian(a: jax.Array) -> jax.Array:
    """`row_of_col` (n,) for the square float matrix `a`: the row each column is assigned to.

    Indices are 1-based inside (column 0 and row 0 are the virtual start of each
    augmenting search), as in the textbook form of the algorithm."""
    n = a.shape[0]
    inf = jnp.asarray(jnp.inf, a.dtype)
    a = jnp.pad(a, ((1, 0), (1, 0)))

    def add_row(i, carry):
        u, v, p = carry
        p = p.at[0].set(i)

        def search_cond(c):
            _, _, p, _, _, _, j0 = c
            return p[j0] != 0

        def search_step(c):
            u, v, p, minv, way, used, j0 = c
            used = used.at[j0].set(True)
            i0 = p[j0]
            cur = a[i0] - u[i0] - v
            better = (~used) & (cur < minv)
            minv = jnp.where(better, cur, minv)
            way = jnp.where(better, j0, way)
            free = jnp.where(used, inf, minv)
            j1 = jnp.argmin(free)
            delta = free[j1]
            u = u.at[p].add(jnp.where(used, delta, 0.0))
            v = v - jnp.where(used, delta, 0.0)
            minv = jnp.where(used, minv, minv - delta)
            return u, v, p, minv, way, used, j1

        start = (u, v, p, jnp.full(n + 1, inf), jnp.zeros(n + 1, jnp.int32), jnp.zeros(n + 1, bool), jnp.int32(0))
        u, v, p, _, way, _, j0 = jax.lax.while_loop(search_cond, search_step, start)

        def unwind(c):
            p, j0 = c
            j1 = way[j0]
            return p.at[j0].set(p[j1]), j1

        p, _ = jax.lax.while_loop(lambda c: c[1] != 0, unwind, (p, j0))
        return u, v, p

    init = (jnp.zeros(n + 1, a.dtype), jnp.zeros(n + 1, a.dtype), jnp.zeros(n + 1, jnp.int32))
    _, _, p = jax.lax.fori_loop(1, n + 1, add_row, init)
    return p[1:] - 1


def linear_sum_assignment(cost: jax.Array, row_mask: jax.Array | None = None,
                          col_mask: jax.Array | None = None) -> jax.Array:
    """`col_of_row` (n,) int32: the column matched to each row of the square `cost`,
    -1 for padding rows and for real rows left unmatched (more real rows than
    real columns). Minimises the total cost of the real pairs."""
    n = cost.shape[-1]
    if cost.shape[-2] != n:
        raise ValueError(f"cost must be square (pad it and pass masks), got shape {cost.shape}")
    cost = jnp.asarray(cost, jnp.float32)
    row_mask = jnp.ones(n, bool) if row_mask is None else jnp.asarray(row_mask, bool)
    col_mask = jnp.ones(n, bool) if col_mask is None else jnp.asarray(col_mask, bool)
    row_of_col = _hungarian(_padded_costs(cost, row_mask, col_mask))
    col_of_row = jnp.zeros(n, jnp.int32).at[row_of_col].set(jnp.arange(n, dtype=jnp.int32))
    real = row_mask & col_mask[col_of_row]
    return jnp.where(real, col_of_row, -1)


def assignment_cost(cost: jax.Array, col_of_row: jax.Array) -> jax.Array:
    """Total cost of the matched pairs of `col_of_row` (-1: unmatched)."""
    matched = col_of_row >= 0
    picked = jnp.take_along_axis(cost, jnp.maximum(col_of_row, 0)[:, None], axis=1)[:, 0]
    return jnp.sum(jnp.where(matched, picked, 0.0))
