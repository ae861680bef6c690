"""Large LPs by HiGHS's interior point without the crossover to a vertex.

The bounds of a whole day (a 250-cell taxi city, a day of parking requests) are LPs
with hundreds of thousands of columns. HiGHS's interior point solves them in a few
minutes; the simplex clean-up that `scipy.optimize.linprog(method="highs-ipm")`
always runs after it (the crossover, which turns the interior optimum into a vertex)
took more than 20 minutes on the same LPs (measured: a 6,000-taxi test day of
`nyc-jan2016`, 1.15 M columns, 134 s without it on one core, not done at 20 min with
it). A bound needs the optimal value, not a vertex, so the crossover is switched off:
the interior point stops at a relative primal-dual gap below `GAP` (1e-8 here), so
the reported optimum is exact to that tolerance. Small LPs keep `linprog`'s simplex.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

GAP = 1e-8  # relative primal-dual gap at which the interior point stops


@dataclasses.dataclass(frozen=True)
class Solution:
    x: np.ndarray
    objective: float
    optimal: bool
    message: str


def interior_point(c, *, a_ub=None, b_ub=None, a_eq=None, b_eq=None, lower=None, upper=None,
                   time_limit: float | None = None) -> Solution:
    """Minimise c @ x subject to a_ub @ x <= b_ub, a_eq @ x == b_eq, lower <= x <= upper
    (None: 0 and +inf) by HiGHS's interior point, without crossover. `optimal` is False when
    it stops for any other reason (time limit, infeasible, unbounded), named in `message`."""
    import highspy

    c = np.asarray(c, np.float64)
    n = c.size
    blocks, row_lo, row_hi = [], [], []
    if a_ub is not None:
        blocks.append(sp.csr_matrix(a_ub))
        row_lo.append(np.full(blocks[-1].shape[0], -np.inf)), row_hi.append(np.asarray(b_ub, np.float64))
    if a_eq is not None:
        blocks.append(sp.csr_matrix(a_eq))
        row_lo.append(np.asarray(b_eq, np.float64)), row_hi.append(np.asarray(b_eq, np.float64))
    if not blocks:
        raise ValueError("interior_point: the LP has no constraints")
    a = sp.vstack(blocks).tocsc()
    if a.shape[1] != n:
        raise ValueError(f"interior_point: {a.shape[1]} constraint columns for {n} costs")
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, a.shape[0]
    lp.col_cost_ = c
    lp.col_lower_ = np.zeros(n) if lower is None else np.asarray(lower, np.float64)
    lp.col_upper_ = np.clip(np.full(n, np.inf) if upper is None else np.asarray(upper, np.float64), None, inf)
    lp.row_lower_ = np.clip(np.concatenate(row_lo), -inf, None)
    lp.row_upper_ = np.concatenate(row_hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("solver", "ipm")
    h.setOptionValue("run_crossover", "off")
    h.setOptionValue("ipm_optimality_tolerance", GAP)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    optimal = status == highspy.HighsModelStatus.kOptimal
    x = np.asarray(h.getSolution().col_value, np.float64) if optimal else np.full(n, np.nan)
    return Solution(x=x, objective=float(h.getInfo().objective_function_value), optimal=optimal,
                    message=h.modelStatusToString(status))
