"""The parking day's clairvoyant assignment bound: known answers on one-bay cities, and no
hand rule or random bids parking more than it on an overloaded day."""
from __future__ import annotations

from dataclasses import replace

import jax
import numpy as np
import pytest

from jaxmob.core.rollout import rollout
from jaxmob.envs.parking.baselines import rule_policy
from jaxmob.envs.parking.bound import BoundNotSolved, clairvoyant_bound, initial_departures
from jaxmob.envs.parking.env import STATIC_RULES, ParkingConfig, ParkingEnv, make_params
from jaxmob.envs.parking.scenario import toy_scenario


def one_bay_city(minutes: int = 30):
    """The toy's first facility alone: one bay, a day of `minutes`, nothing parked at the start."""
    toy = toy_scenario()
    return replace(toy, lat=toy.lat[:1], lon=toy.lon[:1], capacity=np.array([1], np.int32), postcode=toy.postcode[:1],
                   region=toy.region[:1], occupied_am=np.zeros(1, np.int32), occupied_pm=np.zeros(1, np.int32),
                   bay_marker=toy.bay_marker[:1], bay_facility=np.zeros(1, np.int32), rates=np.zeros(2),
                   dest_weights=np.ones((2, 1)), day_end=toy.day_start + minutes)


def replay(minutes, requests):
    """(dest, stay, time) tables of requests [(minute, stay)], all for facility 0."""
    K = 4
    dest, stay, when = np.full((minutes, K), -1, np.int32), np.zeros((minutes, K), np.int32), np.zeros((minutes, K), np.float32)
    for m, s in requests:
        k = int((dest[m] >= 0).sum())
        dest[m, k], stay[m, k], when[m, k] = 0, s, 0.5
    return dest, stay, when


def bound_of(requests, max_wait=3, minutes=30):
    params = make_params(one_bay_city(minutes), replay=replay(minutes, requests), neighbours=1)
    return clairvoyant_bound(params, max_wait=max_wait)


def test_one_bay_parks_requests_whose_stays_do_not_overlap():
    # made at 0.5 and 10.5, 5-minute stays: the bay takes both (each parked at its first step, 1 minute's drive)
    b = bound_of([(0, 5), (10, 5)])
    assert b["parked"] == pytest.approx(2) and b["success_rate"] == pytest.approx(1)
    assert b["cruise_min"] == pytest.approx(1.5)  # step 1 (or 11) + 1 minute's drive - request time
    # the second arrives while the first holds the bay for its whole stay: one of them
    assert bound_of([(0, 20), (3, 20)])["parked"] == pytest.approx(1)


def test_the_bound_lets_a_request_wait_for_a_bay_that_frees_in_time():
    # the first holds the bay over steps [1, 1 + 1 + 2) = [1, 4); the second (made 2.5) may wait to step 4,
    # and the LP charges it only from its last possible step: both park with max_wait 3, one with max_wait 1
    assert bound_of([(0, 2), (2, 8)], max_wait=3)["parked"] == pytest.approx(2)
    assert bound_of([(0, 2), (2, 8)], max_wait=1)["parked"] == pytest.approx(1)


def test_initial_fill_in_expectation():
    scenario = toy_scenario()
    params = make_params(scenario)
    occupied, leaving = initial_departures(params)
    np.testing.assert_allclose(occupied, np.minimum(np.asarray(params.expected_occ)[0], scenario.capacity))
    assert leaving.sum(0) == pytest.approx(occupied)  # the stays (<= 9 minutes) end within the hour


def test_no_rule_parks_more_than_the_bound_on_an_overloaded_day(max_wait=3):
    scenario = replace(toy_scenario(rate=4.0), occupied_am=np.zeros(6, np.int32), occupied_pm=np.zeros(6, np.int32))
    day = scenario.day("test-0")
    env = ParkingEnv(ParkingConfig(horizon=scenario.minutes, mode="replay", max_arrivals=day[0].shape[1], queue=32,
                                   max_wait=max_wait))
    episodes = jax.jit(jax.vmap(lambda p, k: rollout(rule_policy, env, p, k)["parked"], in_axes=(None, 0)))
    bound = None
    for rule in STATIC_RULES:
        params = make_params(scenario, replay=day, static_rule=rule, neighbours=3)
        bound = bound or clairvoyant_bound(params, max_wait=max_wait)
        parked = episodes(params, jax.random.split(jax.random.key(0), 4))
        assert float(parked.mean()) <= bound["parked"] + 1e-6, rule
    assert bound["success_rate"] < 1  # overloaded: even the clairvoyant assignment turns requests away


def test_an_lp_out_of_time_says_so():
    """A day the solver does not finish within its time limit raises, naming it; no number is made up."""
    scenario = replace(toy_scenario(rate=4.0), occupied_am=np.zeros(6, np.int32), occupied_pm=np.zeros(6, np.int32))
    params = make_params(scenario, replay=scenario.day("test-0"), neighbours=3)
    with pytest.raises(BoundNotSolved, match="not solved .*Time limit"):
        clairvoyant_bound(params, max_wait=3, time_limit=1e-9)
