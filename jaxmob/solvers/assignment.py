"""Kuhn-Munkres (Hungarian) assignment inside a compiled program.

`linear_sum_assignment(cost, row_mask, col_mask)` solves the rectangular
assignment problem on a padded square matrix: the real rows and columns are
the masked ones, and as many real pairs are matched as the smaller real side
allows, at least total cost. It is the shortest-augmenting-path form of the
Hungarian method (Jonker-Volgenant style potentials, O(k n^2) for k real
pairs): one row at a time joins the matching along a shortest alternating
path of reduced costs.

Only the smaller real side is added row by row (the matrix is transposed
when there are more real rows than real columns), and the columns of the
other side that are not real cost `big`, more than any difference of real
assignments, so every added row ends on a real column. A few waiting
requests against a large fleet thus cost a few augmentations, not one per
padded row.

Everything is `lax` loops over fixed shapes, so one compiled program serves
every instance of a padded size (`jit`, `vmap` over a batch of matrices), and
the answer is exact: the tests check it against
`scipy.optimize.linear_sum_assignment` on random and adversarial matrices.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _hungarian(a: jax.Array, k: jax.Array) -> jax.Array:
    """`row_of_col` (n,) for the first `k` rows of the square float matrix `a`: the row each
    column is assigned to (-1: none).

    Indices are 1-based inside (column 0 and row 0 are the virtual start of each
    augmenting search), as in the textbook form of the algorithm."""
    n = a.shape[0]
    inf = jnp.asarray(jnp.inf, a.dtype)
    a = jnp.pad(a, ((1, 0), (1, 0)))

    def add_row(carry):
        i, u, v, p = carry
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
        return i + 1, u, v, p

    init = (jnp.int32(1), jnp.zeros(n + 1, a.dtype), jnp.zeros(n + 1, a.dtype), jnp.zeros(n + 1, jnp.int32))
    _, _, _, p = jax.lax.while_loop(lambda c: c[0] <= k, add_row, init)
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
    flip = jnp.sum(row_mask) > jnp.sum(col_mask)  # add the smaller real side row by row
    a = jnp.where(flip, cost.T, cost)
    rows, cols = jnp.where(flip, col_mask, row_mask), jnp.where(flip, row_mask, col_mask)
    real = rows[:, None] & cols[None, :]
    span = jnp.max(jnp.where(real, jnp.abs(a), 0.0))
    a = jnp.where(cols[None, :], a, (2.0 * span + 1.0) * n)
    order = jnp.argsort(~rows, stable=True)  # real rows first
    row_of_col = _hungarian(a[order], jnp.sum(rows))
    matched = row_of_col >= 0
    row_of_col = jnp.where(matched, order[jnp.maximum(row_of_col, 0)], -1)
    pair = matched & cols & rows[jnp.maximum(row_of_col, 0)]
    # back to the caller's orientation: pairs (row_of_col[j], j) of a, i.e. (j, row) when flipped
    col_of_a_row = jnp.full(n, -1, jnp.int32).at[jnp.where(pair, row_of_col, n)].set(jnp.arange(n, dtype=jnp.int32), mode="drop")
    row_of_a_col = jnp.where(pair, row_of_col, -1).astype(jnp.int32)
    return jnp.where(flip, row_of_a_col, col_of_a_row)


def assignment_cost(cost: jax.Array, col_of_row: jax.Array) -> jax.Array:
    """Total cost of the matched pairs of `col_of_row` (-1: unmatched)."""
    matched = col_of_row >= 0
    picked = jnp.take_along_axis(cost, jnp.maximum(col_of_row, 0)[:, None], axis=1)[:, 0]
    return jnp.sum(jnp.where(matched, picked, 0.0))
