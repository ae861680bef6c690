"""The clairvoyant LP bound: known answers on hand-built days, and differential
checks against the JAX simulator (policies never beat it; simulated trajectories
are feasible points of the LP, checked constraint by constraint)."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxmob.envs.rebalance import bound as bound_mod
from jaxmob.envs.rebalance.bound import BoundError, bound_for_env, build_bound_lp, clairvoyant_bound
from jaxmob.envs.rebalance.baselines import episode, greedy, noop, random_policy, rollout
from jaxmob.envs.rebalance.city import City, DayTrips, neighbor_table, sample_day, synthetic_city
from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv

STEP_MINUTES = 240  # 6 steps per day: tiny days for hand-computed answers
T_TINY = 1440 // STEP_MINUTES


def line_city(init, *, travel=6, docks=100) -> City:
    """Regions 0..n-1 in a west-east line (neighbours E/W), uniform OD, no expected demand."""
    n = len(init)
    cells = np.stack([np.arange(n), np.zeros(n, int)], axis=1)
    nbr, mask = neighbor_table(cells, "square")
    od = np.full((n, n), 1.0 / n)
    return City.create(
        name="line", centroid=np.stack([np.full(n, 40.7), -74.0 + 0.01 * np.arange(n)], axis=1),
        neighbors=nbr, neighbor_mask=mask, travel_steps=np.full((n, n), travel),
        demand_rate=np.zeros((T_TINY, n)), od_prob=od, init_inventory=np.asarray(init),
        capacity=np.full(n, docks), cell=cells, step_minutes=STEP_MINUTES)


def day(city: City, trips) -> DayTrips:
    """DayTrips from (origin, dest, depart, arrive) tuples."""
    o, d, s, a = (np.asarray(c, dtype=np.int64) for c in zip(*trips))
    return DayTrips.create(o, d, s, a, num_regions=city.num_regions, steps_per_day=city.steps_per_day)


def tiny_bound(city, trips, **kw):
    kw.setdefault("horizon", T_TINY)
    kw.setdefault("pipeline_steps", T_TINY)
    return clairvoyant_bound(city, trips, **kw)


def replay(city, trips, policy=noop, **cfg):
    """Simulate one replay episode of `policy`; returns (env, params, metrics dict)."""
    cfg.setdefault("horizon", T_TINY)
    cfg.setdefault("pipeline_steps", T_TINY)
    env = RebalanceEnv(RebalanceConfig(mode="replay", **cfg))
    params = env.make_params(city, days=[trips])
    metrics = jax.tree.map(lambda x: np.asarray(x).item(), rollout(policy, env, params, jax.random.key(0)))
    return env, params, metrics


# ----------------------------------------------------------------------- known answers
def test_serves_at_most_the_docked_bikes():
    city = line_city([2, 0])
    trips = day(city, [(0, 1, 0, 3)] * 3)
    b = tiny_bound(city, trips)
    assert b.served == pytest.approx(2.0) and b.demand == 3
    assert b.service_ratio == pytest.approx(2 / 3)
    assert b.bikes_moved == pytest.approx(0.0)
    assert "Optimal" in b.status


def test_relocation_reaches_an_empty_region_exactly():
    """3 bikes at A, none at B; at step 2 two requests at A and two at B. Without moves A
    serves 2; moving one bike A->B (delay 1, in time) serves the third: +1 exactly,
    with exactly one bike moved (the tie-break keeps no useless move)."""
    city = line_city([3, 0])
    trips = day(city, [(0, 1, 2, 5), (0, 1, 2, 5), (1, 0, 2, 5), (1, 0, 2, 5)])
    no_moves = tiny_bound(city, trips, move_amounts=(0,))
    with_moves = tiny_bound(city, trips, move_amounts=(5,), beta=0.5)
    assert no_moves.served == pytest.approx(2.0)
    assert with_moves.served == pytest.approx(3.0)
    assert with_moves.served - no_moves.served == pytest.approx(1.0)
    assert with_moves.bikes_moved == pytest.approx(1.0)
    assert with_moves.relocation_cost == pytest.approx(0.5)
    # the simulator agrees with the no-move LP
    assert replay(city, trips)[2]["served"] == 2


def test_relocation_delay_decides_what_is_reachable():
    """Requests at the empty B at steps 1 and 2; a move made at step 0 is docked at
    step 0 + delay: delay 1 reaches both, delay 2 only the second, delay 3 neither."""
    city = line_city([4, 0])
    trips = day(city, [(1, 0, 1, 5), (1, 0, 2, 5)])
    served = [tiny_bound(city, trips, relocation_delay=d, move_amounts=(5,)).served for d in (1, 2, 3)]
    assert served == pytest.approx([2.0, 1.0, 0.0])


def test_moves_per_region_and_step_are_capped():
    """Five requests at B at step 3; A can send at most 1 bike per step (cap 1), at
    steps 0, 1, 2 (docked by step 3): 3 served. Cap 2: 5 served (6 possible)."""
    city = line_city([10, 0])
    trips = day(city, [(1, 0, 3, 5)] * 5)
    assert tiny_bound(city, trips, move_amounts=(1,)).served == pytest.approx(3.0)
    assert tiny_bound(city, trips, move_amounts=(1, 2)).served == pytest.approx(5.0)
    assert tiny_bound(city, trips, move_amounts=(1, 2)).bikes_moved == pytest.approx(5.0)


def test_moves_only_toward_neighbours_with_chained_hops():
    """A-B-C line, bikes at A, a request at C at step 2: two hops (A->B at 0, B->C at 1)."""
    city = line_city([1, 0, 0])
    trips = day(city, [(2, 0, 2, 5)])
    b = tiny_bound(city, trips, move_amounts=(1,))
    assert b.served == pytest.approx(1.0) and b.bikes_moved == pytest.approx(2.0)
    late = day(city, [(2, 0, 1, 5)])  # one step is too short for two hops
    assert tiny_bound(city, late, move_amounts=(1,)).served == pytest.approx(0.0)


def test_returning_bike_is_available_at_its_arrive_step():
    """One bike at A on an A-B-C line, no moves. Real chain: A->B (0->2), B->A (2->3),
    A->B (3->4), then B->C at 5: 4 trips, the optimum and the simulator's answer.
    Decoys B->C (1->2), C->B (2->3), ... form a longer chain reachable only if the
    bike were available at B one step early; one step late gives at most 3."""
    city = line_city([1, 0, 0])
    chain = [(0, 1, 0, 2), (1, 0, 2, 3), (0, 1, 3, 4)]
    decoy = [(1, 2, 1, 2), (2, 1, 2, 3), (1, 2, 3, 4), (2, 1, 4, 5), (1, 2, 5, 6)]
    trips = day(city, chain + decoy)
    b = tiny_bound(city, trips, move_amounts=(0,))
    assert b.served == pytest.approx(4.0)
    assert replay(city, trips)[2]["served"] == 4


def test_pipeline_clipping_matches_the_simulator():
    """A trip of 4 steps clipped to P = 2 brings its bike back 2 steps early."""
    city = line_city([1, 0], travel=2)
    trips = day(city, [(0, 1, 0, 4), (1, 0, 2, 6)])
    assert tiny_bound(city, trips, move_amounts=(0,), pipeline_steps=2).served == pytest.approx(2.0)
    assert tiny_bound(city, trips, move_amounts=(0,), pipeline_steps=6).served == pytest.approx(1.0)
    assert replay(city, trips, pipeline_steps=2)[2]["served"] == 2


def test_horizon_limits_demand_and_longer_horizons_replay_the_day_again():
    city = line_city([5, 5])
    trips = day(city, [(0, 1, 0, 1), (1, 0, 3, 4), (0, 1, 5, 6)])
    assert tiny_bound(city, trips, horizon=3).demand == 1
    twice = tiny_bound(city, trips, horizon=2 * T_TINY)
    assert twice.demand == 6 and twice.served == pytest.approx(6.0)


def test_lp_size_fields_are_consistent():
    city = line_city([3, 0, 2])
    trips = day(city, [(0, 1, 0, 2), (0, 1, 0, 2), (1, 2, 1, 3), (2, 0, 2, 9)])
    lp = build_bound_lp(city, trips, horizon=T_TINY, pipeline_steps=T_TINY)
    b = tiny_bound(city, trips)
    assert b.num_variables == lp.num_variables == lp.A_eq.shape[1]
    # S per (t, r), 3 trip groups (two identical trips merge), moves for 4 arcs x 5 steps
    assert lp.num_variables == T_TINY * 3 + 3 + 4 * (T_TINY - 1)
    assert b.num_constraints == T_TINY * 3 + 3 * (T_TINY - 1)
    assert b.num_nonzeros == lp.num_nonzeros
    assert b.solve_seconds >= 0 and b.build_seconds >= 0


def test_solver_failure_raises_a_clear_error(monkeypatch):
    class Failed:
        status, message, x, fun = 4, "numerical difficulties", None, None

    monkeypatch.setattr(bound_mod, "linprog", lambda *a, **k: Failed())
    city = line_city([1, 0])
    with pytest.raises(BoundError, match="HiGHS.*numerical difficulties"):
        tiny_bound(city, day(city, [(0, 1, 0, 2)]))


# ----------------------------------------------------------------------- against the simulator
@pytest.fixture(scope="module")
def ample():
    """A 4x4 synthetic replay day with docks for the whole fleet everywhere (no overflow
    possible) and a small fleet, so stock-outs happen and relocation matters."""
    city = synthetic_city("square", 4, 4, seed=0, trips_per_day=1500, docks_per_region=(400, 400), fill=0.03)
    trips = sample_day(city, seed=1)
    env = RebalanceEnv(RebalanceConfig(mode="replay"))
    params = env.make_params(city, days=[trips])
    return city, trips, env, params


POLICIES = {"noop": noop, "greedy": greedy, "random": random_policy}


@pytest.fixture(scope="module")
def episodes(ample):
    """(name, final state, trajectory) of every policy on the ample day; random with 3 seeds."""
    city, trips, env, params = ample
    runs = []
    for name, policy in POLICIES.items():
        for seed in range(3 if name == "random" else 1):
            final, traj = episode(policy, env, params, jax.random.key(seed))
            runs.append((name, final, traj))
    return runs


def test_no_policy_serves_more_than_the_bound(ample, episodes):
    city, trips, env, params = ample
    bound = bound_for_env(env, params, trips)
    for name, final, _ in episodes:
        assert int(final.metrics.overflow) == 0, name
        assert int(final.metrics.demand) == bound.demand, name
        assert int(final.metrics.served) <= bound.served + 1e-6, name
    served_noop = next(int(f.metrics.served) for n, f, _ in episodes if n == "noop")
    assert bound.served > served_noop  # relocation helps on this day


def test_bound_orders_noop_no_move_bound_and_full_bound(ample, episodes):
    """noop <= LP without moves (it may still refuse trips) <= LP with moves."""
    city, trips, env, params = ample
    served_noop = next(int(f.metrics.served) for n, f, _ in episodes if n == "noop")
    no_moves = bound_for_env(env, params, trips, move_amounts=(0,))
    full = bound_for_env(env, params, trips)
    assert served_noop <= no_moves.served + 1e-6 <= full.served + 2e-6
    assert no_moves.bikes_moved == 0.0


def trajectory_point(lp, trips: DayTrips, traj, move_levels: int) -> np.ndarray:
    """Map a simulated replay episode onto the LP's columns (S, x, m).

    Served trips are the first `served[t, r]` of each (step, origin) in DayTrips
    order (the simulator's rule); a move at (t, r) goes to the column of its
    direction; moves that land after the horizon have no column, so their bikes
    stay in S (the LP point then keeps them docked, which is still feasible).
    """
    served = np.asarray(traj["info"]["served"], np.int64)  # (H, R)
    moved = np.asarray(traj["info"]["relocated"], np.int64)
    action = np.asarray(traj["action"], np.int64)
    inventory = np.asarray(traj["inventory"], np.int64)
    H, R = served.shape
    s, o = np.asarray(trips.depart_step, np.int64), np.asarray(trips.origin, np.int64)
    inside = lp.trip_in_horizon
    s, o = s[inside], o[inside]
    key = s * R + o
    order = np.argsort(key, kind="stable")
    first = np.searchsorted(key[order], key[order])
    rank = np.empty(len(key), np.int64)
    rank[order] = np.arange(len(key)) - first
    trip_served = rank < served[s, o]
    x = np.bincount(lp.group_index, weights=trip_served, minlength=len(lp.served_cols))
    direction = (action - 1) // move_levels
    m = np.where(direction[lp.move_t, lp.move_r] == lp.move_k, moved[lp.move_t, lp.move_r], 0)
    with_column = np.zeros((H, R), np.int64)
    np.add.at(with_column, (lp.move_t, lp.move_r), m)
    late = moved - with_column
    S = inventory - served - moved + np.cumsum(late, axis=0)
    return np.concatenate([S.ravel(), x, m]).astype(np.float64)


def test_simulated_trajectories_are_feasible_lp_points(ample, episodes):
    """The differential check of the LP's dynamics: for every simulated episode every
    balance row holds exactly (same step order, arrival steps, relocation delay and
    clipping as the simulator), and the move caps and trip counts are respected."""
    city, trips, env, params = ample
    lp = build_bound_lp(city, trips, horizon=env.config.horizon, move_amounts=env.config.move_amounts,
                        relocation_delay=env.config.relocation_delay, pipeline_steps=params.pipeline_steps)
    for name, final, traj in episodes:
        z = trajectory_point(lp, trips, traj, len(env.config.move_amounts))
        np.testing.assert_array_equal(lp.A_eq @ z, lp.b_eq, err_msg=name)
        assert np.all(lp.A_ub @ z <= lp.b_ub), name
        assert np.all(z >= lp.bounds[:, 0]) and np.all(z <= lp.bounds[:, 1]), name
        assert z[lp.served_cols].sum() == int(final.metrics.served), name
        assert z[lp.move_cols].sum() <= int(final.metrics.relocated), name
    assert any(int(f.metrics.relocated) > 0 for _, f, _ in episodes)


def test_no_move_bound_equals_noop_when_service_order_cannot_matter(ample):
    """Exact LP-vs-simulator equality without relocation, on a full synthetic day.

    In general the no-move LP can beat no-op: it may refuse a trip to keep the bike
    for a better later one, which the simulator (served = min(inventory, demand))
    never does. Refusing cannot pay when no served bike comes back within the
    horizon, so there both must serve exactly sum_r min(bikes_r, requests_r)."""
    city, trips, _, _ = ample
    H = 144
    env = RebalanceEnv(RebalanceConfig(mode="replay", horizon=H, pipeline_steps=H))
    gone = DayTrips.create(trips.origin, trips.dest, trips.depart_step, trips.depart_step + H,
                           num_regions=city.num_regions, steps_per_day=city.steps_per_day)
    params = env.make_params(city, days=[gone])
    served_noop = int(rollout(noop, env, params, jax.random.key(0))["served"])
    lp_served = bound_for_env(env, params, gone, move_amounts=(0,)).served
    expected = np.minimum(np.asarray(city.init_inventory), np.bincount(gone.origin, minlength=city.num_regions)).sum()
    assert served_noop == expected < gone.num_trips
    assert lp_served == pytest.approx(expected, abs=1e-6)
