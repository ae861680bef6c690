"""The hand rules (`STATIC_RULES`, defined in env.py and CONTRACT.md) as policies
`(key, state, params, env) -> actions` of the optimised core.

A rule's score becomes the core facilities' action (score = (a + 1) / 2), so the
rules and a learned policy meet the same allocation step. A rule's row runs with
`static_rule` set to that rule, so the periphery bids by it too and the queue is
served in its order (SIRO's random order; oldest first otherwise):

* FIFO: oldest request first, each to its nearest free bay (every bid equal);
* SIRO: requests in random order, each to its nearest free bay;
* longest-free facility first: the facility that has had free bays longest bids highest;
* random facility: a fresh uniform bid per facility and minute;
* SPT: the request with the shortest intended stay first, each to its nearest free bay
  (a decision per request: it reads what each request states).

Two more rows are not rules of the whole city but a fixed core policy under FIFO
and under SPT: **periphery first**, every core bid at -1, so a request takes its nearest free
bay in the periphery when one is within walking distance and a core bay only
otherwise; it keeps the core's bays for the requests that have no other
choice (and, under the facility-scoped reward, earns less: CONTRACT.md).
"""
from __future__ import annotations

import jax.numpy as jnp

from .env import RULE_LABELS, STATIC_RULES, rule_scores


def rule_policy(key, state, params, env):
    """The core's actions under the hand rule of `params.static_rule` (one function for every
    rule, so their rows share one compiled episode)."""
    return 2.0 * rule_scores(params.static_rule, key, state, params) - 1.0


def periphery_first(key, state, params, env):
    """Every core facility bids -1 (score 0 against the periphery's 1 under FIFO)."""
    return -jnp.ones(params.capacity.shape, jnp.float32)


# row label -> (the rule set as `static_rule`, the core's policy)
BASELINES = {**{RULE_LABELS[rule]: (rule, rule_policy) for rule in STATIC_RULES},
             "periphery first (FIFO, core bids -1)": ("fifo", periphery_first),
             "periphery first (SPT, core bids -1)": ("spt", periphery_first)}
