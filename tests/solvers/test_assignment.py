"""In-graph Kuhn-Munkres against scipy.optimize.linear_sum_assignment."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmob.solvers.assignment import assignment_cost, linear_sum_assignment

N = 7  # padded size of every instance below: one compiled program for all
solve = jax.jit(linear_sum_assignment)


def check(cost, rows, cols):
    got = np.asarray(solve(jnp.asarray(cost, jnp.float32), jnp.asarray(rows), jnp.asarray(cols)))
    matched = got >= 0
    assert matched.sum() == min(rows.sum(), cols.sum())
    assert rows[matched].all() and cols[got[matched]].all() and len(set(got[matched])) == matched.sum()
    sub = cost[np.ix_(rows, cols)]
    r, c = scipy.optimize.linear_sum_assignment(sub)
    want = sub[r, c].sum()
    np.testing.assert_allclose(float(assignment_cost(jnp.asarray(cost, jnp.float32), jnp.asarray(got))), want,
                               rtol=1e-5, atol=1e-3)


masks = st.lists(st.booleans(), min_size=N, max_size=N).map(np.array)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rows=masks, cols=masks, kind=st.sampled_from(["int", "float", "wide"]))
def test_matches_scipy_on_random_rectangular_instances(seed, rows, cols, kind):
    rng = np.random.default_rng(seed)
    if kind == "int":
        cost = rng.integers(-5, 6, (N, N)).astype(float)  # many ties
    elif kind == "float":
        cost = rng.normal(size=(N, N))
    else:
        cost = rng.uniform(0, 1, (N, N)) * 10.0 ** rng.integers(-3, 4, (N, N))  # six orders of magnitude
    check(cost, rows, cols)


@pytest.mark.parametrize("name,cost", [
    ("constant", np.full((N, N), 3.0)),
    ("identity is worst", 1.0 - np.eye(N)[::-1] * 0 - np.eye(N) * -5.0),
    ("anti-diagonal optimum", np.add.outer(np.arange(N), np.arange(N)) % N * 1.0 + np.eye(N)[::-1] * -10.0),
    ("rank one", np.outer(np.arange(1, N + 1), np.arange(1, N + 1)) * 1.0),
    ("one cheap column", np.where(np.arange(N)[None, :] == 2, 0.0, 100.0) + np.arange(N)[:, None]),
])
def test_adversarial_matrices(name, cost):
    full = np.ones(N, bool)
    check(cost, full, full)
    check(cost, full, np.arange(N) < 3)  # more rows than columns: 4 rows stay unmatched
    check(cost, np.arange(N) % 2 == 0, full)


def test_empty_side_matches_nothing():
    got = np.asarray(solve(jnp.ones((N, N)), jnp.zeros(N, bool), jnp.ones(N, bool)))
    assert (got == -1).all()


def test_one_compiled_program_serves_every_instance():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(cost, rows, cols):
        return linear_sum_assignment(cost, rows, cols)

    rng = np.random.default_rng(0)
    for _ in range(4):
        f(jnp.asarray(rng.normal(size=(N, N)), jnp.float32), jnp.asarray(rng.uniform(size=N) < 0.5),
          jnp.asarray(rng.uniform(size=N) < 0.5))
    batched = jax.jit(jax.vmap(linear_sum_assignment))
    costs = rng.normal(size=(16, N, N)).astype(np.float32)
    got = np.asarray(batched(costs, np.ones((16, N), bool), np.ones((16, N), bool)))
    for k in range(16):
        r, c = scipy.optimize.linear_sum_assignment(costs[k])
        np.testing.assert_allclose(costs[k][np.arange(N), got[k]].sum(), costs[k][r, c].sum(), rtol=1e-5)


def test_non_square_input_is_refused():
    with pytest.raises(ValueError, match="square"):
        linear_sum_assignment(jnp.zeros((3, 4)))
