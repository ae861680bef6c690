"""Region-level fleet repositioning on the AMoD benchmark cities (every region an agent).

`scenario.py` reads the benchmark files (bundled as `scenarios/*.npz`), `env.py`
holds the compiled step (revenue-optimal passenger matching and min-cost
rebalancing flows, both in-graph), `meta.py` META's Kuhn-Munkres dispatch,
`reference.py` the NumPy/HiGHS reference, `bound.py` the clairvoyant LP bound,
`baselines.py` the hand rules and `task.py` the plug-in of the generic trainer.
"""
