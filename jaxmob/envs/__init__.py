"""Environments, one package each (`rebalance`, `taxi`, `amod`, `routing`, `parking`).

Each package holds its dynamics (the `jaxmob.core.env.Environment` protocol),
its NumPy reference, baselines, scenarios and loaders, and its plug-in
(`task.py`, a `jaxmob.core.task.Task`) through which the generic trainer,
sweep, evaluator and CLI reach it by name (`jaxmob.core.registry`). An
environment imports only `jaxmob.core`, `jaxmob.nets`, `jaxmob.solvers` and
its own modules; nothing generic imports an environment directly.
"""
