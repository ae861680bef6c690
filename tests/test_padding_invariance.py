"""Padding changes nothing: the env and PPO on a city and on the same city padded.

Env (Poisson): both envs get the same exogenous demand for the real regions (0
for padding) and the same destination for every served trip. The slot words
cannot simply be copied: a word picks column `word % R` of the alias table, and R
is the padded region count, so the padded run gets words re-encoded to select
the same destinations (`equivalent_word`). Replay mode draws nothing, so the same
DayTrips drive both runs. PPO: replay mode (no draws, and action sampling with
one environment draws prefix-consistent keys per agent), so one update on the
padded city must reproduce the unpadded metrics and parameters.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmob.algos.policies import SharingPolicy
from jaxmob.algos.ppo import Hyper, PPOConfig, Transition, make_train, ppo_loss
from jaxmob.envs.rebalance.city import sample_day, synthetic_city
from jaxmob.envs.rebalance.city.pad import pad_city, take_city
from jaxmob.envs.rebalance.city.sample import CitySpec, sample_cities
from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv, RebalanceExogenous

EXTRA = 5  # padding regions added
PER_AGENT = ("served", "demand", "unserved", "relocated", "overflow", "over_capacity", "invalid_action", "truncated")


def busy_city(kind: str):
    """Few docks, nearly full and lots of demand: overflow and truncation happen."""
    if kind == "sampled":
        spec = CitySpec(r_max=12, cols=(3, 3), rows=(2, 3), docks_per_region=(3, 6), fill=(0.8, 0.9),
                        trips_per_region=(200.0, 250.0))
        return take_city(sample_cities(jax.random.key(5), spec, 1), 0)
    return synthetic_city(kind, 4, 3, seed=1, docks_per_region=(3, 6), fill=0.9, trips_per_day=3000.0)


# ----------------------------------------------------------------------- destination words
def alias_dest(keep, alias, word: int, R: int) -> int:
    column = word % R
    return column if word // R < keep[column] else int(alias[column])


def equivalent_word(keep, alias, dest: int, R: int) -> int:
    """A word that the alias row (keep, alias) of an R-column table maps to `dest`."""
    if keep[dest] > 0:
        return dest  # word // R == 0 < keep[dest]: column dest keeps itself
    q = 2**32 // R
    for j in np.flatnonzero(alias == dest):
        if keep[j] < q:
            return int(j + R * int(keep[j]))  # word // R == keep[j]: column j gives its alias
    raise AssertionError("destination unreachable in the padded alias table")


def reencode(exog, state, small, big, bucket_steps: int):
    """Padded-run exogenous draws equal to `exog` of the unpadded run, trip for trip."""
    R0, R1 = small.city.num_regions, big.city.num_regions
    inv, demand, words = (np.asarray(x).astype(np.int64) for x in (state.inventory, exog.demand, exog.dest_bits))
    wanted = np.minimum(inv, demand)
    ends = np.cumsum(wanted)
    h = (int(state.t) % small.city.steps_per_day) // bucket_steps
    keep0, alias0 = np.asarray(small.dest_keep)[h], np.asarray(small.dest_alias)[h]
    keep1, alias1 = np.asarray(big.dest_keep)[h], np.asarray(big.dest_alias)[h]
    new = words.copy()
    for m in range(min(int(ends[-1]), len(words))):
        o = int(np.searchsorted(ends, m, side="right"))  # the slot's origin (slots grouped by origin)
        d = alias_dest(keep0[o], alias0[o], int(words[m]), R0)
        new[m] = equivalent_word(keep1[o], alias1[o], d, R1)
    padded_demand = np.concatenate([demand, np.zeros(R1 - R0, np.int64)])
    return RebalanceExogenous(demand=jnp.asarray(padded_demand, jnp.int32), dest_bits=jnp.asarray(new, jnp.uint32))


# ----------------------------------------------------------------------- comparisons
def assert_same_real(small_out, big_out, R0, big_actions):
    obs0, s0, r0, d0, i0 = small_out
    obs1, s1, r1, d1, i1 = big_out
    np.testing.assert_array_equal(np.asarray(obs1)[:R0], np.asarray(obs0))
    assert not np.any(np.asarray(obs1)[R0:]), "padding agents observe zeros"
    np.testing.assert_array_equal(np.asarray(r1)[:R0], np.asarray(r0))
    assert not np.any(np.asarray(r1)[R0:])
    assert bool(d0) == bool(d1)
    for k in PER_AGENT:
        np.testing.assert_array_equal(np.asarray(i1[k])[:R0], np.asarray(i0[k]), err_msg=k)
    for k in ("served", "demand", "relocated", "overflow", "over_capacity", "truncated"):
        assert not np.any(np.asarray(i1[k])[R0:]), f"padding agent has {k}"
    np.testing.assert_array_equal(np.asarray(i1["invalid_action"])[R0:], (np.asarray(big_actions)[R0:] != 0))
    assert int(i1["clipped_travel"]) == int(i0["clipped_travel"])
    np.testing.assert_array_equal(np.asarray(s1.inventory)[:R0], np.asarray(s0.inventory))
    assert not np.any(np.asarray(s1.inventory)[R0:])
    for pipe in ("riding", "relocating"):
        np.testing.assert_array_equal(np.asarray(getattr(s1, pipe))[:, :R0], np.asarray(getattr(s0, pipe)))
        assert not np.any(np.asarray(getattr(s1, pipe))[:, R0:])
    assert int(s1.t) == int(s0.t)


def assert_same_metrics(m0, m1, padded_moves: int):
    for k in ("served", "demand", "unserved", "relocated", "overflow", "over_capacity", "truncated",
              "clipped_travel", "reward", "steps"):
        np.testing.assert_array_equal(np.asarray(getattr(m1, k)), np.asarray(getattr(m0, k)), err_msg=k)
    # the episode total counts every agent's invalid moves, padded ones included
    assert int(m1.invalid_action) == int(m0.invalid_action) + padded_moves


def random_actions(rng, env, params, R0, R1):
    A = env.num_actions(params)
    a = rng.integers(-1, A + 1, size=R1)  # includes out-of-range actions
    return jnp.asarray(a[:R0], jnp.int32), jnp.asarray(a, jnp.int32)


@pytest.mark.parametrize("kind, relocation_delay", [("square", 1), ("hex", None), ("sampled", 1)])
def test_poisson_env_ignores_padding(kind, relocation_delay):
    city = busy_city(kind)
    R0 = city.num_regions
    padded = pad_city(city, R0 + EXTRA)
    env = RebalanceEnv(RebalanceConfig(max_trips_per_step=12, relocation_delay=relocation_delay))
    small, big = env.make_params(city), env.make_params(padded)
    assert (small.pipeline_steps, small.max_trips) == (big.pipeline_steps, big.max_trips)
    step = jax.jit(env.step_with)
    sample = jax.jit(env.sample_exogenous)
    s0 = env.initial_state(small).replace(t=jnp.asarray(42, jnp.int32))  # start at 7:00, busy
    s1 = env.initial_state(big).replace(t=jnp.asarray(42, jnp.int32))
    rng = np.random.default_rng(0)
    key = jax.random.key(0)
    padded_moves = 0
    totals = dict(overflow=0, truncated=0, relocated=0)
    for _ in range(30):
        key, sub = jax.random.split(key)
        exog = sample(sub, s0, small)
        exog_big = reencode(exog, s0, small, big, city.od_bucket_steps)
        a0, a1 = random_actions(rng, env, small, R0, R0 + EXTRA)
        out0 = step(exog, s0, a0, small)
        out1 = step(exog_big, s1, a1, big)
        assert_same_real(out0, out1, R0, a1)
        padded_moves += int(np.sum(np.asarray(a1)[R0:] != 0))
        s0, s1 = out0[1], out1[1]
        for k in totals:
            totals[k] += int(np.sum(out0[4][k]))
    assert_same_metrics(s0.metrics, s1.metrics, padded_moves)
    assert all(v > 0 for v in totals.values()), f"the test should exercise every mechanism: {totals}"


@pytest.mark.parametrize("kind", ["square", "hex"])
def test_replay_env_ignores_padding(kind):
    city = busy_city(kind)
    R0 = city.num_regions
    padded = pad_city(city, R0 + EXTRA)
    day = sample_day(city, seed=3)
    env = RebalanceEnv(RebalanceConfig(mode="replay", max_trips_per_step=12))
    small, big = env.make_params(city, days=[day]), env.make_params(padded, days=[day])
    step = jax.jit(env.step)
    s0, s1 = env.initial_state(small), env.initial_state(big)
    rng = np.random.default_rng(1)
    padded_moves = 0
    key = jax.random.key(0)
    for _ in range(env.config.horizon):
        a0, a1 = random_actions(rng, env, small, R0, R0 + EXTRA)
        out0, out1 = step(key, s0, a0, small), step(key, s1, a1, big)
        assert_same_real(out0, out1, R0, a1)
        padded_moves += int(np.sum(np.asarray(a1)[R0:] != 0))
        s0, s1 = out0[1], out1[1]
    assert_same_metrics(s0.metrics, s1.metrics, padded_moves)
    assert int(s0.metrics.overflow) > 0 and int(s0.metrics.served) > 0


# ----------------------------------------------------------------------- PPO
def test_ppo_loss_excludes_padded_agents():
    rng = np.random.default_rng(0)
    n, R0, R1, A = 6, 4, 7, 5
    policy = SharingPolicy("share_all", R1, A, (8,))

    def batch(R, extra_rows):
        obs = rng.normal(size=(n, R1, 3)).astype(np.float32)
        take = lambda x: jnp.asarray(x[:, :R])
        tr = Transition(obs=take(obs), gstate=jnp.zeros((n, 1)), action=take(rng.integers(0, A, (n, R1))),
                        logp=take(rng.normal(size=(n, R1)) - 2.0), value=take(rng.normal(size=(n, R1))),
                        reward=take(np.zeros((n, R1))), done=jnp.zeros((n,), bool))
        return tr, take(rng.normal(size=(n, R1))), take(rng.normal(size=(n, R1)))

    state = rng.bit_generator.state
    tr0, adv0, ret0 = batch(R0, 0)
    rng.bit_generator.state = state
    tr1, adv1, ret1 = batch(R1, 0)  # same values for the first R0 agents, garbage for the padded ones
    params = policy.init(jax.random.key(0), 3, 1)
    groups = policy.groups()
    hyper = Hyper.make()
    mask0, mask1 = jnp.ones((R0,), bool), jnp.arange(R1) < R0
    amask = jnp.ones((R1, A), bool)
    loss = jax.jit(jax.value_and_grad(ppo_loss, has_aux=True), static_argnums=(1, 10))
    prior = jnp.zeros((A,))
    (l0, aux0), g0 = loss(params, policy, groups, tr0, adv0, ret0, amask[:R0], prior, mask0, hyper, 10.0)
    (l1, aux1), g1 = loss(params, policy, groups, tr1, adv1, ret1, amask, prior, mask1, hyper, 10.0)
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-5)
    for k in aux0:
        np.testing.assert_allclose(float(aux1[k]), float(aux0[k]), rtol=1e-5, atol=1e-7, err_msg=k)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-7)


def test_ppo_update_metrics_unchanged_by_padding(scheme="share_all"):
    city = busy_city("square")
    R0 = city.num_regions
    padded = pad_city(city, R0 + EXTRA)
    day = sample_day(city, seed=4)
    env = RebalanceEnv(RebalanceConfig(mode="replay", horizon=24))
    config = PPOConfig(num_envs=1, rollout_steps=24, epochs=2, minibatches=2)
    runs = {}
    for name, c in (("small", city), ("padded", padded)):
        params = env.make_params(c, days=[day])
        policy = SharingPolicy(scheme, c.num_regions, env.num_actions(params), (16, 16))
        init, chunk = make_train(env, params, policy, config)
        runner = jax.jit(init)(jax.random.key(7), Hyper.make(lr=1e-3))
        runner, metrics = jax.jit(chunk, static_argnums=1)(runner, 2)
        runs[name] = (runner, jax.device_get(metrics))
    (r0, m0), (r1, m1) = runs["small"], runs["padded"]
    assert set(m0) == set(m1)
    for k in m0:
        np.testing.assert_allclose(m1[k], m0[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert m0["relocated"].sum() > 0
    for a, b in zip(jax.tree.leaves(r0.params), jax.tree.leaves(r1.params)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(r1.env_state.inventory)[:, :R0], np.asarray(r0.env_state.inventory))
