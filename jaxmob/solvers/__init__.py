"""Exact combinatorial solvers that run inside compiled programs (fixed shapes, `lax` loops).

`assignment`: Kuhn-Munkres for (padded, rectangular) assignment problems;
`transport`: min-cost transportation (rebalancing flows) by successive shortest paths.
Each is checked against SciPy/HiGHS in the tests.
"""
