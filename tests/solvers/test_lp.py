"""The interior point without crossover (core/lp.py) against scipy's simplex: same optimum."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st
from scipy.optimize import linprog

from jaxmob.core.lp import interior_point


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 30), m_ub=st.integers(1, 12), m_eq=st.integers(0, 4))
def test_interior_point_matches_simplex(seed, n, m_ub, m_eq):
    """Random bounded LPs with a feasible point: the optimum agrees to the gap's tolerance and the
    returned x is feasible."""
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0, 1, n)  # feasible by construction
    a_ub = sp.random(m_ub, n, density=0.5, random_state=seed, format="csr")
    b_ub = a_ub @ x0 + rng.uniform(0, 1, m_ub)
    a_eq = sp.random(m_eq, n, density=0.5, random_state=seed + 1, format="csr") if m_eq else None
    b_eq = a_eq @ x0 if m_eq else None
    upper = rng.uniform(1, 2, n)
    c = rng.normal(size=n)
    ref = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=np.stack([np.zeros(n), upper], 1), method="highs")
    got = interior_point(c, a_ub=a_ub, b_ub=b_ub, a_eq=a_eq, b_eq=b_eq, upper=upper)
    assert ref.status == 0 and got.optimal, got.message
    assert got.objective == pytest.approx(ref.fun, abs=1e-6 * max(1.0, abs(ref.fun)))
    assert c @ got.x == pytest.approx(got.objective, abs=1e-6)
    assert np.all(a_ub @ got.x <= b_ub + 1e-6) and np.all(got.x >= -1e-7) and np.all(got.x <= upper + 1e-7)
    if m_eq:
        np.testing.assert_allclose(a_eq @ got.x, b_eq, atol=1e-6)


def test_infeasible_and_unbounded_are_reported_not_returned():
    """x >= 0 with x <= -1 is infeasible; min -x with x unbounded above is unbounded: neither is
    'optimal', and x is NaN so no caller can read a plan from it."""
    bad = interior_point(np.ones(1), a_ub=sp.csr_matrix([[1.0]]), b_ub=[-1.0])
    assert not bad.optimal and np.isnan(bad.x).all() and bad.message == "Infeasible"
    free = interior_point(-np.ones(1), a_ub=sp.csr_matrix([[-1.0]]), b_ub=[0.0])
    assert not free.optimal and np.isnan(free.x).all() and free.message == "Unbounded"


def test_no_constraints_and_shape_mismatch_are_named():
    with pytest.raises(ValueError, match="no constraints"):
        interior_point(np.ones(2))
    with pytest.raises(ValueError, match="3 constraint columns for 2 costs"):
        interior_point(np.ones(2), a_ub=sp.csr_matrix(np.ones((1, 3))), b_ub=[1.0])
