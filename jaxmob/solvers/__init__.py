"""Exact combinatorial solvers that run inside compiled programs (fixed shapes, `lax` loops).

`assignment`: Kuhn-Munkres for (padded, rectangular) assignment problems;
`transport`: the AMoD benchmark's rebalancing LP (relays allowed) by successive shortest paths.
Each is checked against SciPy/HiGHS in the tests.
"""
