"""The routing step in plain NumPy, loop by loop, for differential tests of `env.step`.

Written from the rules in `env.py`'s module doc, not from its array code:
taxis move, drop off, then pick up in index order taking the oldest waiting
request at their node; arrivals fill the lowest free slots.
"""
from __future__ import annotations

import numpy as np


def reference_step(state: dict, targets, assigned, arrivals: dict, next_hop) -> tuple[dict, int]:
    """`state` and `arrivals` as dicts of NumPy arrays (the fields of RoutingState / Arrivals)."""
    s = {k: np.array(v, copy=True) for k, v in state.items()}
    m, q = len(s["node"]), len(s["req_live"])
    for i in range(m):
        if not s["present"][i]:
            continue
        goal = s["dest"][i] if s["carrying"][i] else targets[i]
        s["node"][i] = next_hop[s["node"][i], goal]
        if s["carrying"][i] and s["node"][i] == s["dest"][i]:
            s["carrying"][i] = False
            s["delivered"] += 1
    s["assigned"] = np.array(assigned, np.int32, copy=True)
    for i in range(m):
        if not s["present"][i]:
            s["assigned"][i] = -1
            continue
        if s["carrying"][i]:
            s["assigned"][i] = -1
            continue
        here = [j for j in range(q) if s["req_live"][j] and s["req_pick"][j] == s["node"][i]]
        if here:
            j = min(here, key=lambda j: (s["req_time"][j], j))
            s["req_live"][j] = False
            s["carrying"][i] = True
            s["dest"][i] = s["req_drop"][j]
            s["assigned"][i] = -1
    for i in range(m):
        a = s["assigned"][i]
        if a >= 0 and not s["req_live"][a]:
            s["assigned"][i] = -1
    cost = int(s["req_live"].sum())
    count = int(arrivals["count"])
    entering = 0
    for k in range(min(count, len(arrivals["pick"]))):
        free = [j for j in range(q) if not s["req_live"][j]]
        if not free:
            break
        j = free[0]
        s["req_live"][j] = True
        s["req_pick"][j], s["req_drop"][j], s["req_time"][j] = arrivals["pick"][k], arrivals["drop"][k], s["t"] + 1
        entering += 1
    s["arrived"] += entering
    s["turned_away"] += count - entering
    s["t"] += 1
    s["wait"] += cost
    return s, cost
