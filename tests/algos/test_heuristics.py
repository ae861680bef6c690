"""Baseline policies: valid actions (masks, padding), the greedy rule on hand-made
states, rollout metrics, and greedy beating no-op on an imbalanced day."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmob.envs.rebalance.baselines import episode, greedy, make_greedy, noop, random_policy, rollout
from jaxmob.envs.rebalance.city import City, neighbor_table, sample_day, synthetic_city
from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv

POLICIES = {"noop": noop, "random": random_policy, "greedy": greedy}


def padded_city(city: City, extra: int = 2) -> City:
    """`city` plus `extra` padding regions (no bikes, demand or neighbours), the
    layout a batch of differently sized cities uses."""
    R = city.num_regions
    n = R + extra
    grow = lambda a, fill=0: np.concatenate([np.asarray(a), np.full((extra,) + np.shape(a)[1:], fill, np.asarray(a).dtype)])
    square = lambda a, fill: np.pad(np.asarray(a), [(0, extra), (0, extra)], constant_values=fill)
    od = np.pad(np.asarray(city.od_prob), [(0, 0), (0, extra), (0, extra)])
    nbr = np.concatenate([np.asarray(city.neighbors), np.repeat(np.arange(R, n)[:, None], city.num_directions, 1)])
    return City.create(
        name="padded", centroid=grow(city.centroid), xy_km=grow(city.xy_km, 50.0), cell=grow(city.cell, -9),
        neighbors=nbr, neighbor_mask=grow(city.neighbor_mask, False), travel_steps=square(city.travel_steps, 1),
        relocation_steps=square(city.relocation_steps, 1),
        demand_rate=np.pad(np.asarray(city.demand_rate), [(0, 0), (0, extra)]), od_prob=od,
        init_inventory=grow(city.init_inventory), capacity=grow(city.capacity), features=grow(city.features),
        feature_names=city.feature_names, region_mask=grow(city.region_mask, False),
        region_ids=tuple(city.region_ids) + tuple(f"pad{i}" for i in range(extra)), step_minutes=city.step_minutes)


@pytest.fixture(scope="module")
def setup():
    """A padded 3x3 replay city (edge regions lack neighbours, two padding agents)."""
    city = padded_city(synthetic_city("square", 3, 3, seed=2, trips_per_day=900))
    env = RebalanceEnv(RebalanceConfig(mode="replay", move_amounts=(2, 4, 8)))
    params = env.make_params(city, days=[sample_day(city, seed=0), sample_day(city, seed=1)])
    return city, env, params


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_actions_respect_the_action_mask_over_an_episode(setup, name):
    city, env, params = setup
    final, traj = episode(POLICIES[name], env, params, jax.random.key(1))
    actions = np.asarray(traj["action"])
    mask = np.asarray(env.agents(params).action_mask)
    assert actions.dtype == np.int32 and actions.shape == (env.config.horizon, city.num_regions)
    rows = np.broadcast_to(np.arange(city.num_regions), actions.shape)
    assert mask[rows, actions].all()
    assert np.all(actions[:, ~np.asarray(city.region_mask)] == 0)  # padding agents stay
    assert int(final.metrics.invalid_action) == 0


def test_noop_never_moves(setup):
    city, env, params = setup
    m = rollout(noop, env, params, jax.random.key(0))
    assert int(m["rebalanced"]) == 0 and float(m["relocation_cost"]) == 0.0


def test_random_policy_draws_every_valid_action_and_only_those(setup):
    city, env, params = setup
    _, state = env.reset(jax.random.key(0), params)
    keys = jax.random.split(jax.random.key(5), 400)
    actions = np.asarray(jax.jit(jax.vmap(lambda k: random_policy(k, state, params, env)))(keys))
    mask = np.asarray(env.agents(params).action_mask)
    seen = np.zeros_like(mask)
    seen[np.broadcast_to(np.arange(city.num_regions), actions.shape), actions] = True
    np.testing.assert_array_equal(seen, mask)


def line_env(inventory, demand_now, *, amounts=(5, 10), arrivals=None):
    """Three regions W-E line (0-1-2) with a constant demand rate per region, and a
    state with the given inventory (and bikes riding in, docking next step)."""
    n = len(inventory)
    cells = np.stack([np.arange(n), np.zeros(n, int)], axis=1)
    nbr, mask = neighbor_table(cells, "square")
    city = City.create(
        name="line", centroid=np.stack([np.full(n, 40.7), -74.0 + 0.01 * np.arange(n)], axis=1),
        neighbors=nbr, neighbor_mask=mask, travel_steps=np.ones((n, n)),
        demand_rate=np.tile(np.asarray(demand_now, float), (144, 1)), od_prob=np.full((n, n), 1.0 / n),
        init_inventory=np.asarray(inventory), capacity=np.full(n, 100), cell=cells)
    env = RebalanceEnv(RebalanceConfig(move_amounts=amounts))
    params = env.make_params(city)
    state = env.initial_state(params)
    if arrivals is not None:
        state = state.replace(riding=state.riding.at[0].set(jnp.asarray(arrivals, jnp.int32)))
    return env, params, state


def decode(action, levels):
    """(direction index, level index) of a move action, None for stay."""
    a = int(action)
    return None if a == 0 else divmod(a - 1, levels)


def test_greedy_sends_the_largest_fitting_amount_to_the_neediest_neighbour():
    """Window 1 step, demand per step [0, 1, 3]: region 0 (12 bikes) has surplus 12,
    region 1 (0 bikes) deficit 1, region 2 (0 bikes) deficit 3. Region 0's only
    neighbour is 1 (east): it sends 10 (largest of 5, 10 not above 12). Region 1
    has no surplus; region 2 has none either."""
    env, params, state = line_env([12, 0, 0], [0, 1, 3])
    actions = make_greedy(1)(jax.random.key(0), state, params, env)
    directions = list(params.city.directions)
    assert decode(actions[0], 2) == (directions.index("E"), 1)
    assert int(actions[1]) == 0 and int(actions[2]) == 0


def test_greedy_picks_the_neighbour_with_the_largest_deficit_and_caps_by_surplus():
    """Region 1 (7 bikes, no demand): surplus 7, so the largest amount is 5; its
    neighbours have deficits 2 (west) and 4 (east): it sends 5 east."""
    env, params, state = line_env([0, 7, 0], [2, 0, 4])
    actions = make_greedy(1)(jax.random.key(0), state, params, env)
    directions = list(params.city.directions)
    assert decode(actions[1], 2) == (directions.index("E"), 0)


def test_greedy_counts_bikes_in_transit():
    """The east neighbour's deficit of 4 is covered by 4 bikes docking next step:
    nothing is sent. Without those arrivals region 1 would send."""
    env, params, state = line_env([0, 7, 0], [0, 0, 4], arrivals=[0, 0, 4])
    assert int(make_greedy(1)(jax.random.key(0), state, params, env)[1]) == 0
    env, params, state = line_env([0, 7, 0], [0, 0, 4])
    assert int(make_greedy(1)(jax.random.key(0), state, params, env)[1]) != 0


def test_greedy_stays_when_surplus_is_below_every_amount():
    env, params, state = line_env([4, 0, 0], [0, 3, 0])
    assert int(make_greedy(1)(jax.random.key(0), state, params, env)[0]) == 0


def test_greedy_rejects_an_empty_window():
    with pytest.raises(ValueError, match="lookahead_steps"):
        make_greedy(0)


def test_rollout_metrics_are_consistent_and_vmappable(setup):
    city, env, params = setup
    keys = jax.random.split(jax.random.key(3), 3)
    runs = jax.vmap(lambda k: rollout(random_policy, env, params, k))(keys)
    served, demand = np.asarray(runs["served"]), np.asarray(runs["demand"])
    np.testing.assert_allclose(np.asarray(runs["service_ratio"]), served / demand, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(runs["relocation_cost"]), 0.1 * np.asarray(runs["rebalanced"]), rtol=1e-6)
    assert set(runs) >= {"service_ratio", "served", "demand", "rebalanced", "relocation_cost", "overflow"}
    assert np.all(served <= demand) and np.all(np.asarray(runs["rebalanced"]) > 0)


def test_rollout_on_a_chosen_day(setup):
    city, env, params = setup
    d0 = rollout(noop, env, params, jax.random.key(0), 0)
    d1 = rollout(noop, env, params, jax.random.key(0), 1)
    assert int(d0["demand"]) == np.sum(np.asarray(params.replay.demand[0]))
    assert int(d1["demand"]) == np.sum(np.asarray(params.replay.demand[1]))


def test_greedy_beats_noop_on_an_imbalanced_day():
    """Commuting peaks drain the outskirts in the morning and the centre in the evening."""
    city = synthetic_city("square", 5, 5, seed=0, trips_per_day=3000)
    env = RebalanceEnv(RebalanceConfig(mode="replay"))
    params = env.make_params(city, days=[sample_day(city, seed=4)])
    base = rollout(noop, env, params, jax.random.key(0))
    smart = rollout(greedy, env, params, jax.random.key(0))
    assert int(base["served"]) < int(base["demand"])
    assert int(smart["served"]) > int(base["served"])
    assert float(smart["service_ratio"]) > float(base["service_ratio"])


# ----------------------------------------------------------------------- the evaluation table
def test_evaluate_day_rows_and_table():
    from jaxmob.envs.rebalance.evaluate import COLUMNS, evaluate_day, format_table

    city = synthetic_city("square", 4, 4, seed=0, trips_per_day=1500, docks_per_region=(400, 400), fill=0.03)
    rows = evaluate_day(city, sample_day(city, seed=2), random_episodes=1)
    assert [r["policy"].split()[0] for r in rows] == ["no-op", "random", "greedy", "MPC", "bound"]
    assert rows[3]["served"] > rows[0]["served"] and rows[3]["planning_seconds"] > 0  # MPC beats no-op
    for row in rows:
        assert set(COLUMNS) <= set(row)
        assert row["demand"] == rows[-1]["demand"]
        assert row["relocation_cost"] == pytest.approx(0.1 * row["rebalanced"], rel=1e-5)
    assert all(r["overflow"] == 0 for r in rows)  # docks for the whole fleet everywhere
    assert all(r["served"] <= rows[-1]["served"] + 1e-6 for r in rows)
    assert rows[2]["served"] > rows[0]["served"]  # greedy beats no-op without any overflow too
    table = format_table(rows)
    assert "fulfilled ratio" in table and "bound (LP)" in table and "note:" not in table and "s per plan" in table
