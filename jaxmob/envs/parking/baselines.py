"""Hand rules for the optimised core, as policies `(key, state, params, env) -> actions`.

A rule's score becomes the core facilities' action (score = (a + 1) / 2), so the
rules and a learned policy meet the same allocation step; the static periphery
keeps its own rule (`ParkingParams.static_rule`) in every row.

* FIFO: the facility that has had free bays longest is offered first;
* SIRO: service in random order (a fresh uniform score per facility and minute);
* nearest: every core facility bids the same, so a request takes its nearest free bay.
"""
from __future__ import annotations

from .env import STATIC_RULES, rule_scores


def _rule_policy(rule: str):
    index = STATIC_RULES.index(rule)

    def policy(key, state, params, env):
        return 2.0 * rule_scores(index, key, state, params) - 1.0

    policy.__name__ = f"{rule}_policy"
    return policy


fifo_policy = _rule_policy("fifo")
siro_policy = _rule_policy("siro")
nearest_policy = _rule_policy("nearest")
BASELINES = {"FIFO": fifo_policy, "SIRO": siro_policy, "nearest free bay": nearest_policy}
