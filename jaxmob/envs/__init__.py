"""Environments: pure `reset`/`step` functions over explicit params (gymnax style)."""
from .base import AutoResetWrapper, Environment, Spec, accumulate, select_tree, step_auto_reset
from .rebalance import (RebalanceConfig, RebalanceEnv, RebalanceExogenous, RebalanceMetrics, RebalanceParams,
                        RebalanceState)
