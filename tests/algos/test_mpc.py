"""The bike MPC controller: its LP on hand-solved cities, its Poisson service cuts against a
direct sum, the rounding of plans to env actions, and its settings' errors."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import poisson

from jaxmob.envs.rebalance.city import City, neighbor_table
from jaxmob.envs.rebalance.mpc import MPCSettings, _poisson_cuts, plan_moves, round_moves

T = 6  # 4-hour steps: tiny days


def line_city(init, rate) -> City:
    """Regions in a west-east line; `rate[r]` expected departures per step at every step;
    trips take 6 steps (they never come back inside the test horizons)."""
    n = len(init)
    cells = np.stack([np.arange(n), np.zeros(n, int)], axis=1)
    nbr, mask = neighbor_table(cells, "square")
    return City.create(
        name="line", centroid=np.stack([np.full(n, 40.7), -74.0 + 0.01 * np.arange(n)], axis=1),
        neighbors=nbr, neighbor_mask=mask, travel_steps=np.full((n, n), 6),
        demand_rate=np.tile(np.asarray(rate, float), (T, 1)), od_prob=np.full((n, n), 1.0 / n),
        init_inventory=np.asarray(init), capacity=np.full(n, 100), cell=cells, step_minutes=1440 // T)


def east(city) -> int:
    return list(city.directions).index("E")


def test_fluid_plan_moves_exactly_the_bikes_that_serve_trips_within_the_horizon():
    # region 0: 10 idle bikes, no demand; region 1: empty, 3 departures a step. Moves land a step
    # later, so steps 1..3 of a 4-step plan can serve 9 trips: each worth 1.5, each move costs 0.1.
    city = line_city([10, 0], [0.0, 3.0])
    flows = plan_moves(city, 0, np.array([10.0, 0.0]), np.zeros((6, 2)), horizon=4, move_amounts=(5, 10),
                       relocation_delay=1, service="fluid")
    assert flows.shape == (4, 2, len(city.directions))
    assert flows[:, 0, east(city)].sum() == pytest.approx(9.0, abs=1e-6)
    assert flows.sum() == pytest.approx(9.0, abs=1e-6)  # nothing else moves
    assert flows[3].sum() == pytest.approx(0.0, abs=1e-9)  # a move at the last step serves no one
    assert (flows.sum(axis=2) <= 10 + 1e-6).all()  # the env's one move per region and step


def test_known_arrivals_count_and_poisson_service_keeps_a_safety_stock():
    city = line_city([10, 0], [0.0, 3.0])
    # 9 bikes already riding to region 1, docking at the end of step 0: the fluid plan needs no move
    riding = np.zeros((6, 2))
    riding[0, 1] = 9
    fluid = plan_moves(city, 0, np.array([10.0, 0.0]), riding, horizon=4, move_amounts=(5, 10), relocation_delay=1,
                       service="fluid")
    assert fluid.sum() == pytest.approx(0.0, abs=1e-6)
    # Poisson departures: 9 bikes for 3 expected trips a step serve fewer than 9, so more bikes are worth moving
    stock = plan_moves(city, 0, np.array([10.0, 0.0]), riding, horizon=4, move_amounts=(5, 10), relocation_delay=1,
                       service="poisson")
    assert stock[:, 0, east(city)].sum() > 1.0


def test_poisson_cuts_equal_the_expected_service_at_their_knots():
    lam = np.array([[0.4, 3.0, 12.5]])
    n = 2 * lam.size
    v_col, y_col = np.arange(lam.size), lam.size + np.arange(lam.size)
    A, b = _poisson_cuts(lam, v_col, y_col, n)
    A = A.toarray()
    for cell, rate in enumerate(lam.reshape(-1)):
        rows = A[:, y_col[cell]] != 0
        slope, intercept = -A[rows, v_col[cell]], b[rows]
        for v in range(0, int(rate + 5 * np.sqrt(rate) + 3)):
            exact = float((np.minimum(v, np.arange(400)) * poisson.pmf(np.arange(400), rate)).sum())
            allowed = min(float(np.min(intercept + slope * v)), rate)  # y <= every cut and y <= lam (its bound)
            last_knot = poisson.ppf(0.98, rate) + 1
            # never promises more than E[min(v, D)] up to the last knot; beyond it, y <= lam misses only the tail
            assert allowed <= exact + (1e-9 if v <= last_knot else 0.02 * rate)
            if v in (0, int(poisson.ppf(0.5, rate)) + 1):  # a knot: exact there
                assert allowed == pytest.approx(exact, abs=1e-9)


def test_round_moves_sends_the_nearest_amount_and_carries_the_rest():
    valid = np.array([[True, True], [True, False]])
    owed = np.zeros((2, 2))
    actions, owed = round_moves(np.array([[7.0, 1.0], [2.0, 0.0]]), owed, (5, 10), valid, min_send=2.5)
    assert actions.tolist() == [1 + 0 * 2 + 0, 0]  # region 0: 5 bikes toward k=0; region 1: 2 < 2.5 stays
    assert owed.tolist() == [[2.0, 1.0], [2.0, 0.0]]
    actions, owed = round_moves(np.array([[6.0, 0.0], [1.0, 9.0]]), owed, (5, 10), valid, min_send=2.5)
    assert actions.tolist() == [1 + 0 * 2 + 1, 1 + 0 * 2 + 0]  # 8 -> 10; 3 -> 5 (k=1 invalid: dropped)
    assert owed[:, 1].tolist() == [1.0, 0.0]
    actions, _ = round_moves(np.array([[1.2, 0.0], [0.0, 0.0]]), np.zeros((2, 2)), (5, 10), valid)  # default: 1 bike
    assert actions.tolist() == [1, 0]


@pytest.mark.parametrize("kw, field", [(dict(horizon=0), "horizon"), (dict(horizon=6, replan=7), "replan"),
                                       (dict(service="normal"), "service")])
def test_bad_settings_are_named(kw, field):
    with pytest.raises(ValueError, match=f"MPCSettings.{field}"):
        MPCSettings(**kw)
