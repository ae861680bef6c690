"""Taxi dispatch and empty-vehicle repositioning, every taxi an agent (TDEVR).

The package holds the dynamics (`env.py`, contract in `CONTRACT.md`), the NumPy
reference (`reference.py`), taxi cities (`city.py`), the baselines
(`baselines.py`: stay, random, demand-gap greedy) and the plug-in the generic
trainer loads (`task.py`).
"""
from .city import TaxiCity, synthetic_hex_city
from .env import TaxiConfig, TaxiEnv, TaxiExogenous, TaxiMetrics, TaxiParams, TaxiState, make_params
