"""The taxi environment: NumPy reference, conservation, the matching rule."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmob.envs.taxi.city import synthetic_hex_city
from jaxmob.envs.taxi.env import TaxiConfig, TaxiEnv, TaxiExogenous, make_params, rank_within, take_oldest
from jaxmob.envs.taxi.reference import ReferenceTaxi


def small(num_taxis=40, slots=48, seed=0, orders=3000.0, start_step=0, **config):
    city = dataclasses.replace(synthetic_hex_city(19, orders_per_day=orders, seed=seed), start_step=start_step)
    env = TaxiEnv(TaxiConfig(horizon=24, **config))
    return env, make_params(city, num_taxis=num_taxis, taxi_slots=slots, seed=seed)


def test_rank_within_matches_numpy():
    rng = np.random.default_rng(0)
    group, member = rng.integers(0, 5, 200), rng.uniform(size=200) < 0.6
    got = np.asarray(rank_within(jnp.asarray(group), jnp.asarray(member), 5))
    want = np.full(200, -1)
    for g in range(5):
        idx = np.flatnonzero(member & (group == g))
        want[idx] = np.arange(len(idx))
    np.testing.assert_array_equal(got, want)


def test_oldest_orders_are_served_first():
    waiting = jnp.asarray([[2, 1, 3], [0, 0, 4]])  # ages 0, 1, 2
    np.testing.assert_array_equal(np.asarray(take_oldest(waiting, jnp.asarray([4, 1]))), [[2, 0, 0], [0, 0, 3]])


def test_idle_taxis_of_a_cell_take_its_orders_and_the_rest_reposition():
    env, params = small(num_taxis=4, slots=4)
    state = env.initial_state(params).replace(cell=jnp.asarray([0, 0, 0, 1]))
    exog = TaxiExogenous(new_orders=jnp.zeros(19, jnp.int32).at[0].set(2), dest_u=jnp.full(4, 0.5))
    action = jnp.asarray([3, 3, 3, 0])
    _, nxt, reward, _, info = env.step_with(exog, state, action, params)
    busy = np.asarray(nxt.busy)
    assert int(info["served"]) == 2 and int(info["orders"]) == 2
    assert busy[2] == 0 and int(nxt.cell[2]) == int(params.neighbors[0, 2])  # unmatched taxi 2 moved SE
    assert int(nxt.metrics.moves) == 1 and int(nxt.waiting.sum()) == 0
    assert np.all(np.asarray(reward) >= 0) and np.all(np.asarray(reward) <= 1)


@pytest.mark.parametrize("reward,start_step", [("local", 0), ("global", 60), ("both", 137), ("served", 5)])
def test_numpy_reference_matches_the_jax_step(reward, start_step):
    """Also for episodes that start later in the day (137 + 24 steps wraps past midnight)."""
    env, params = small(reward=reward, max_wait=3, start_step=start_step)
    ref = ReferenceTaxi(params, max_wait=3, reward=reward)
    step = jax.jit(env.step_with)
    sample = jax.jit(env.sample_exogenous)
    state, rstate = env.initial_state(params), ref.initial_state()
    key = jax.random.key(0)
    total = {"served": 0, "moves": 0, "expired": 0}
    for t in range(24):
        key, k_e, k_a = jax.random.split(key, 3)
        exog = sample(k_e, state, params)
        action = jax.random.randint(k_a, (48,), 0, 7)
        _, state, r, _, _ = step(exog, state, action, params)
        rstate, rr, counts = ref.step(rstate, np.asarray(action), np.asarray(exog.new_orders), np.asarray(exog.dest_u))
        np.testing.assert_array_equal(np.asarray(state.cell), rstate["cell"], err_msg=f"cell at {t}")
        np.testing.assert_array_equal(np.asarray(state.busy), rstate["busy"], err_msg=f"busy at {t}")
        np.testing.assert_array_equal(np.asarray(state.waiting), rstate["waiting"], err_msg=f"waiting at {t}")
        np.testing.assert_allclose(np.asarray(r), rr, rtol=1e-5, atol=1e-6, err_msg=f"reward at {t}")
        for k in total:
            total[k] += counts[k]
    m = state.metrics
    assert (int(m.served), int(m.moves), int(m.expired)) == (total["served"], total["moves"], total["expired"])
    assert total["served"] > 0 and total["moves"] > 0 and total["expired"] > 0


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), taxis=st.integers(1, 48), wait=st.integers(1, 4),
       orders=st.sampled_from([500.0, 4000.0, 20000.0]))
def test_taxis_and_orders_are_never_created_or_lost(seed, taxis, wait, orders):
    env, params = small(num_taxis=taxis, seed=seed % 7, orders=orders, max_wait=wait)
    key = jax.random.key(seed)

    @jax.jit
    def run(key):
        def one(state, k):
            k_a, k_s = jax.random.split(k)
            action = jax.random.randint(k_a, (48,), 0, 7)
            _, state, _, _, _ = env.step(k_s, state, action, params)
            return state, (state.cell, state.busy, state.waiting.sum(), state.metrics)
        return jax.lax.scan(one, env.initial_state(params), jax.random.split(key, 24))[1]

    cells, busy, waiting, metrics = jax.device_get(run(key))
    real = np.asarray(params.taxi_mask)
    assert np.all(np.asarray(params.cell_mask)[cells]), "a taxi left the city"
    assert np.all(busy >= 0) and np.all(busy <= int(np.max(params.travel_steps)))
    # padding taxis never move or work
    np.testing.assert_array_equal(cells[:, ~real], np.broadcast_to(np.asarray(params.init_cell)[~real], cells[:, ~real].shape))
    assert np.all(busy[:, ~real] == 0)
    # every order placed is served, expired or still waiting
    np.testing.assert_array_equal(metrics.orders, metrics.served + metrics.expired + waiting)
    # served orders never exceed the fleet's idle taxis
    assert np.all(np.diff(np.concatenate([[0], metrics.served])) <= real.sum())


def test_inverse_cdf_counts_entries_below_u():
    from jaxmob.envs.taxi.env import inverse_cdf

    rng = np.random.default_rng(3)
    p = rng.uniform(size=(5, 13)) * (rng.uniform(size=(5, 13)) < 0.6)
    p[:, 0] += 1e-3
    cdf = np.cumsum(p / p.sum(1, keepdims=True), 1).astype(np.float32)
    row, u = rng.integers(0, 5, 500), rng.uniform(size=500).astype(np.float32)
    u[:5] = cdf[row[:5], 3]  # exactly on an entry
    got = np.asarray(inverse_cdf(jnp.asarray(cdf), jnp.asarray(row), jnp.asarray(u)))
    np.testing.assert_array_equal(got, (cdf[row] <= u[:, None]).sum(1))


# (ORR, PCR, CI) as the TDEVR paper prints them (three of its eleven triples)
PAPER_TRIPLES = [(0.8795, 130.31, 10.81), (0.9613, 143.4, 37.05), (0.9634, 144.56, 39.5)]


@pytest.mark.parametrize("orr, pcr, ci", PAPER_TRIPLES)
def test_composite_index_reproduces_the_papers_triples(orr, pcr, ci):
    from jaxmob.envs.taxi.env import composite_index

    assert abs(composite_index(orr, pcr) - ci) <= 0.01 + 1e-9
    assert abs(float(composite_index(jnp.float32(orr), jnp.float32(pcr))) - ci) <= 0.011


def test_period_metrics_take_orr_and_ci_from_the_periods_totals():
    """The paper's ORR and CI over a test period are those of its totals: a quiet day that served
    every order makes each day's mean CI infinite (and lifts the mean of daily ORRs), not the
    period's; CI x days is the paper's CI with PCR cumulative over the period."""
    from jaxmob.envs.taxi.env import PCR_UNIT, composite_index, period_metrics

    served, orders, revenue = np.array([90.0, 10.0]), np.array([100.0, 10.0]), np.array([3e5, 4e4])
    p = period_metrics(served.sum(), orders.sum(), revenue.sum(), episodes=2)
    assert p["order_response_rate"] == pytest.approx(100 / 110)  # the daily rates' mean is 0.95
    assert p["pcr"] == pytest.approx(3.4e5 / 2 / PCR_UNIT)
    assert p["ci"] * 2 == pytest.approx(0.01 * (3.4e5 / PCR_UNIT) / (10 / 110))
    with np.errstate(divide="ignore"):
        assert np.isinf(np.mean(composite_index(served / orders, revenue / PCR_UNIT)))  # the daily mean
    assert np.isinf(period_metrics(10.0, 10.0, 1e4)["ci"])  # every order of the period served
    for orr, pcr, ci in PAPER_TRIPLES:  # one day: the paper's triples
        assert abs(period_metrics(orr * 1e4, 1e4, pcr * PCR_UNIT)["ci"] - ci) <= 0.01 + 1e-9
    for bad in ((11.0, 10.0, 1.0), (1.0, 0.0, 1.0), (-1.0, 10.0, 1.0)):
        with pytest.raises(ValueError, match="period_metrics"):
            period_metrics(*bad)


def test_episode_metrics_report_pcr_ci_and_both_kinds_of_km():
    from jaxmob.core.rollout import run_episode
    from jaxmob.envs.taxi.baselines import demand_gap
    from jaxmob.envs.taxi.env import PCR_UNIT, composite_index

    env, params = small(num_taxis=20, slots=24, orders=6000.0)
    final, _ = run_episode(demand_gap, env, params, jax.random.key(0))
    m = jax.device_get(env.episode_metrics(final, params))
    orr = float(m["order_response_rate"])
    assert 0.0 < orr < 1.0  # a small fleet under heavy demand loses orders, so CI is finite
    assert m["empty_km"] > 0 and m["occupied_km"] > 0
    np.testing.assert_allclose(m["pcr"], m["revenue"] / PCR_UNIT, rtol=1e-6)
    np.testing.assert_allclose(m["ci"], composite_index(orr, float(m["pcr"])), rtol=1e-4)
    share = m["occupied_km"] / (m["occupied_km"] + m["empty_km"])
    np.testing.assert_allclose(m["orr_x_occupied_share"], orr * share, rtol=1e-5)


def test_ci_is_infinite_exactly_when_every_order_is_served_never_negative():
    """CI's lost share comes from the counts: +inf for an episode that served every order, finite
    and positive for one that lost a single order, at any order count (compiled and vmapped, as
    the evaluator runs it)."""
    from types import SimpleNamespace

    from jaxmob.envs.taxi.env import TaxiMetrics, TaxiState

    env, _ = small(num_taxis=4, slots=4, orders=10.0)
    orders = jnp.arange(1000, 200_000, 7, dtype=jnp.int32)

    def ci(served, orders):
        m = TaxiMetrics.zeros().replace(orders=orders, served=served, revenue=1e5 + orders.astype(jnp.float32))
        state = TaxiState(cell=jnp.zeros(2, jnp.int32), busy=jnp.zeros(2, jnp.int32),
                          waiting=jnp.zeros((2, 2), jnp.int32), t=jnp.int32(36), metrics=m)
        return env.episode_metrics(state, SimpleNamespace(move_km=jnp.float32(1.0)))["ci"]

    every = np.asarray(jax.jit(jax.vmap(ci))(orders, orders))
    assert np.all(np.isposinf(every))
    one_lost = np.asarray(jax.jit(jax.vmap(ci))(orders - 1, orders))
    assert np.all(np.isfinite(one_lost) & (one_lost > 0))


def test_distinct_observations_are_each_taxis_observation_built_taxi_by_taxi():
    env, params = small(num_taxis=40, slots=48, orders=3000.0)
    state = env.initial_state(params)
    key = jax.random.key(1)
    for t in range(3):  # a few steps in, so taxis have moved and orders wait
        k, key = jax.random.split(key)
        _, state, *_ = env.step(k, state, jax.random.randint(k, (48,), 0, 7), params)
    state = state.replace(busy=state.busy.at[::3].set(2))  # and some are on a trip
    table, index = jax.device_get(env.distinct_observations(state, params))
    feats = np.asarray(env._cell_features(state, params))
    cell, busy, real = np.asarray(state.cell), np.asarray(state.busy) > 0, np.asarray(params.taxi_mask)
    nbr, nmask = np.asarray(params.neighbors), np.asarray(params.neighbor_mask)
    clock = np.asarray(env._clock(state.t, params))
    for i in range(48):
        want = np.zeros(24, np.float32)
        if real[i]:
            c = cell[i]
            want = np.concatenate([feats[c], (feats[nbr[c]] * nmask[c][:, None]).reshape(-1), [float(busy[i])], clock])
        np.testing.assert_allclose(table[index[i]], want, rtol=1e-6, atol=1e-7)
    assert table.shape[0] == 2 * params.num_cells + 1 and busy.any()
    np.testing.assert_array_equal(np.asarray(env.observe(state, params)), table[index])
