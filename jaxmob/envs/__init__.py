"""Environments: pure `reset`/`step` functions over explicit params (gymnax style).

`base` is the protocol every environment follows, `task` the plug-in through which
the generic trainer, sweep, evaluator and CLI reach an environment, and `registry`
maps `--env NAME` to its plug-in. Each environment is a package of its own
(`rebalance/`, ...); nothing generic imports one directly.
"""
from .base import AutoResetWrapper, Environment, Spec, accumulate, select_tree, step_auto_reset
