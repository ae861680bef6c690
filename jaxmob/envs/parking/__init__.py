"""On-street parking allocation in Melbourne (every facility an agent; MARL-GCN's setting).

`scenario.py` builds facilities and the calibrated request model from the real
bay-sensor snapshots (bundled as `scenarios/melbourne.npz`), `events.py` reads
the city's historic parking event files into replayable days, `env.py` holds
the compiled minute step, `reference.py` its NumPy oracle, `baselines.py` the
FIFO / SIRO / nearest-free-bay rules and `task.py` the plug-in of the trainer.
"""
