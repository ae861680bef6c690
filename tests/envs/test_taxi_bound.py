"""The taxi fleet's clairvoyant LP bound: known answers on tiny cities, and every policy
below it on a real AMoD episode."""
import jax
import numpy as np
import pytest

from jaxmob.config import TrainConfig
from jaxmob.core.rollout import rollout
from jaxmob.envs.taxi.baselines import demand_gap, random_policy, stay
from jaxmob.envs.taxi.bound import clairvoyant_bound, destination_zones, hop_distances
from jaxmob.envs.taxi.city import TaxiCity
from jaxmob.envs.taxi.env import TaxiConfig, TaxiEnv, make_params
from jaxmob.envs.taxi.task import TASK


def line_city(cells: int, travel: int = 1) -> TaxiCity:
    """Cells in a row, each the neighbour of the next; every trip ends where it starts."""
    nbr = np.tile(np.arange(cells)[:, None], (1, 6))
    mask = np.zeros((cells, 6), bool)
    for c in range(cells - 1):
        nbr[c, 0], mask[c, 0] = c + 1, True
        nbr[c + 1, 1], mask[c + 1, 1] = c, True
    od = np.broadcast_to(np.eye(cells), (24, cells, cells)).copy()
    return TaxiCity(name="line", cells=np.stack([np.arange(cells), np.zeros(cells)], 1), cell_mask=np.ones(cells, bool),
                    neighbors=nbr, neighbor_mask=mask, demand_rate=np.ones((24, cells)), od_prob=od,
                    travel_steps=np.full((cells, cells), travel), fare=np.full((cells, cells), 10.0),
                    trip_km=np.ones((cells, cells)), cell_km=1.0, provenance={})


def bound_of(city, orders, taxis, max_wait, **kw):
    params = make_params(city, num_taxis=taxis, replay_orders=np.asarray(orders))
    return clairvoyant_bound(params, horizon=len(orders), max_wait=max_wait, **kw)


def test_one_cell_serves_at_most_its_taxis_each_step():
    # one-step trips: 3 taxis serve min(3, orders) a step when orders cannot wait
    orders = np.array([[5], [1], [4], [0], [3]])
    city = line_city(1)
    b = bound_of(city, orders, taxis=3, max_wait=1)
    assert b["served"] == pytest.approx(3 + 1 + 3 + 0 + 3)
    # waiting one step lets each surplus be served a step later: 2 of step 0's at step 1, 1 of step 2's at step 3
    assert bound_of(city, orders, taxis=3, max_wait=2)["served"] == pytest.approx(3 + 3 + 3 + 1 + 3)
    assert b["revenue"] == pytest.approx(10.0 * 10)


def test_taxis_must_drive_to_orders_one_neighbour_a_step():
    # all taxis start in cell 0 (the only cell with demand in the rates); orders appear two cells away
    city = line_city(3)
    rates = np.zeros((24, 3))
    rates[:, 0] = 1.0
    city = TaxiCity(**{**city.__dict__, "demand_rate": rates})
    orders = np.zeros((4, 3), int)
    orders[1, 2] = 5  # reachable only at step 2: too late with max_wait 1, in time with max_wait 2
    orders[3, 2] = 5
    assert bound_of(city, orders, taxis=2, max_wait=1)["served"] == pytest.approx(2)
    assert bound_of(city, orders, taxis=2, max_wait=2)["served"] == pytest.approx(4)


def test_long_trips_keep_taxis_busy():
    orders = np.full((6, 1), 4)
    # trips of 3 steps: 4 taxis serve at steps 0 and 3 only
    assert bound_of(line_city(1, travel=3), orders, taxis=4, max_wait=1)["served"] == pytest.approx(8)


def amod_episode(name="amod-nyc-man-south"):
    cfg = TrainConfig(env="taxi", scenario=name).validate()
    scenario = TASK.load(name)
    day = scenario.test_days[0]
    params = TASK.episode_params(cfg, scenario, TASK.episodes(scenario, [day]))[day]
    return cfg, scenario, params


def test_every_policy_serves_no_more_than_the_bound_on_a_real_episode():
    cfg, scenario, params = amod_episode()
    horizon = TASK.horizon(cfg.options, scenario)
    bound = clairvoyant_bound(params, horizon=horizon, max_wait=cfg.options.max_wait)
    env = TaxiEnv(TaxiConfig(horizon=horizon, max_wait=cfg.options.max_wait, mode="replay"))
    for policy in (stay, random_policy, demand_gap):
        served = [float(rollout(policy, env, params, jax.random.key(s))["served"]) for s in range(3)]
        assert np.mean(served) <= bound["served"] + 1e-6, policy.__name__
    assert bound["order_response_rate"] < 1.0  # the real evening is not trivially servable by this fleet


def test_destination_zones_are_compact_and_exact_at_one_cell_each():
    _, _, params = amod_episode()
    C = params.num_cells
    assert (destination_zones(params, C) == np.arange(C)).all()
    hops = hop_distances(params)
    for z in (2, 4, 8):
        zones = destination_zones(params, z)
        assert sorted(set(zones.tolist())) == list(range(z))
        # compact: cells of one zone are, on average, closer to each other than cells of the whole area
        within = np.mean([hops[np.ix_(zones == k, zones == k)].mean() for k in range(z)])
        assert within < 0.75 * hops.mean()


def test_weighted_zones_are_small_where_the_weight_is():
    """On a line of 12 cells with the weight at one end, each heavy cell gets its own zone,
    where the geometric cut puts the three in one; equal weights are the geometric cut."""
    params = make_params(line_city(12), num_taxis=4, replay_orders=np.ones((4, 12)))
    weight = np.where(np.arange(12) < 3, 100.0, 1.0)
    zones = destination_zones(params, 4, weight=weight)
    assert sorted(set(zones.tolist())) == [0, 1, 2, 3]
    assert len(set(zones[:3].tolist())) == 3 and len(set(destination_zones(params, 4)[:3].tolist())) == 1
    assert (destination_zones(params, 4, weight=np.ones(12)) == destination_zones(params, 4)).all()
    with pytest.raises(ValueError, match="weight"):
        destination_zones(params, 4, weight=np.zeros(12))


def test_zone_relaxation_never_lowers_the_bound():
    cfg, scenario, params = amod_episode()
    kw = dict(horizon=TASK.horizon(cfg.options, scenario), max_wait=cfg.options.max_wait)
    exact = clairvoyant_bound(params, **kw)
    same = clairvoyant_bound(params, zones=destination_zones(params, params.num_cells), **kw)
    assert same["served"] == pytest.approx(exact["served"], rel=1e-9) and same["lp_zones"] == params.num_cells
    for z in (1, 4, 8):
        relaxed = clairvoyant_bound(params, zones=destination_zones(params, z), **kw)
        assert relaxed["lp_zones"] == z and relaxed["served"] >= exact["served"] - 1e-6
    with pytest.raises(ValueError, match="zones"):
        clairvoyant_bound(params, zones=np.zeros(3, int), **kw)
