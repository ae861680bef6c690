"""Algorithms: baseline policies, rollouts and the clairvoyant LP bound."""
from .bound import BoundError, BoundLP, BoundResult, bound_for_env, build_bound_lp, clairvoyant_bound
from .heuristics import episode, episode_metrics, greedy, make_greedy, noop, random_policy, rollout
