"""Request-level taxi routing on a real street network (every taxi an agent).

`graph.py` reads an OpenStreetMap extract into a strongly connected street
graph (bundled: `scenarios/sf_north.npz`), `demand.py` the request model or a
user's request file, `env.py` the compiled step, `reference.py` the NumPy
step, `policies.py` IA, IA-RA and one-at-a-time rollout, `two_phase.py` the
sector partition and the two-phase rollout, `theory.py` the fleet-size
bounds, `evaluate.py` episodes, tables and plots, and `task.py` the plug-in.
"""
