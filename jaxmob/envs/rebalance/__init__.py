"""Bike-sharing rebalancing: region agents move bikes between neighbouring regions.

The package holds the dynamics (`env.py`, contract in `CONTRACT.md`), the NumPy
reference (`reference.py`), the baselines (`baselines.py`: no-op, random,
greedy), the clairvoyant LP bound (`bound.py`), the baseline table
(`evaluate.py`) and the plug-in the generic trainer loads (`task.py`).
Cities and bundled scenarios come from `jaxmob.envs.rebalance.city`.
"""
from .env import (RebalanceConfig, RebalanceEnv, RebalanceExogenous, RebalanceMetrics, RebalanceParams,
                  RebalanceShaping, RebalanceState, alias_tables, alias_threshold, default_max_trips,
                  default_pipeline_steps, expected_poisson_excess, poisson_by_inversion)
