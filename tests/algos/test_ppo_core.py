"""PPO building blocks against NumPy / hand-computed values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmob.algos.policies import SharingPolicy, grouped_apply
from jaxmob.algos.ppo import Hyper, Transition, gae, ppo_loss
from jaxmob.nets import MLP


def gae_numpy(rewards, values, dones, last_value, gamma, lam):
    T = rewards.shape[0]
    adv = np.zeros_like(rewards)
    next_adv = np.zeros_like(last_value)
    next_v = last_value
    for t in reversed(range(T)):
        nd = 1.0 - dones[t][..., None]
        delta = rewards[t] + gamma * next_v * nd - values[t]
        next_adv = delta + gamma * lam * nd * next_adv
        adv[t] = next_adv
        next_v = values[t]
    return adv, adv + values


@settings(max_examples=30, deadline=None)
@given(T=st.sampled_from([1, 7]), B=st.just(2), R=st.sampled_from([1, 3]), seed=st.integers(0, 10_000),
       gamma=st.floats(0.5, 1.0), lam=st.floats(0.0, 1.0))
def test_gae_matches_numpy(T, B, R, seed, gamma, lam):
    rng = np.random.default_rng(seed)
    r, v = rng.normal(size=(T, B, R)), rng.normal(size=(T, B, R))
    d = rng.uniform(size=(T, B)) < 0.3
    last = rng.normal(size=(B, R))
    adv, ret = gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(d), jnp.asarray(last), gamma, lam)
    adv_np, ret_np = gae_numpy(r, v, d.astype(float), last, gamma, lam)
    np.testing.assert_allclose(np.asarray(adv), adv_np, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ret), ret_np, rtol=1e-4, atol=1e-4)


def test_gae_hand_computed():
    # two steps, episode ends after step 1: A1 = r1 - v1; A0 = r0 + g v1 - v0 + g l A1
    r = jnp.array([[[1.0]], [[2.0]]])
    v = jnp.array([[[0.5]], [[1.0]]])
    d = jnp.array([[False], [True]])
    adv, _ = gae(r, v, d, jnp.array([[100.0]]), 0.9, 0.8)
    a1 = 2.0 - 1.0
    a0 = 1.0 + 0.9 * 1.0 - 0.5 + 0.9 * 0.8 * a1
    np.testing.assert_allclose(np.asarray(adv)[:, 0, 0], [a0, a1], rtol=1e-6)


class FixedPolicy:
    """Logits and values are the parameters themselves (so the loss is checkable by hand)."""

    def apply(self, params, groups, obs, state):
        shape = obs.shape[:-1]
        return jnp.broadcast_to(params["logits"], shape + params["logits"].shape[-1:]), jnp.broadcast_to(params["v"], shape)


def test_ppo_loss_hand_computed():
    logits = np.array([0.2, -0.1, 0.5], np.float32)
    params = {"logits": jnp.asarray(logits), "v": jnp.asarray(1.5)}
    N, R = 2, 2
    prior = np.array([2.0, 0.0, 0.0], np.float32)  # an environment's fixed prior toward "stay"
    biased = logits + prior
    p = np.exp(biased) / np.exp(biased).sum()
    actions = np.array([[0, 2], [1, 2]])
    old_logp = np.log(p[actions]) - np.array([[0.3, -0.1], [0.0, 0.05]])  # ratios exp(0.3) etc.
    old_v = np.array([[1.0, 2.0], [1.4, 1.5]], np.float32)
    batch = Transition(obs=jnp.zeros((N, R, 1)), gstate=jnp.zeros((N, 1)), action=jnp.asarray(actions),
                       logp=jnp.asarray(old_logp, jnp.float32), value=jnp.asarray(old_v), reward=jnp.zeros((N, R)),
                       done=jnp.zeros((N,), bool))
    adv = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    ret = np.array([[2.0, 1.0], [1.0, 2.5]], np.float32)
    hyper = Hyper.make(ent_coef=0.01, clip_eps=0.2, vf_coef=0.5)
    mask = jnp.ones((R, 3), bool)
    total, aux = ppo_loss(params, FixedPolicy(), None, batch, jnp.asarray(adv), jnp.asarray(ret), mask,
                          jnp.asarray(prior), jnp.ones(R, bool), hyper, 0.2)
    ratio = np.exp(np.log(p[actions]) - old_logp)
    an = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg = -np.minimum(ratio * an, np.clip(ratio, 0.8, 1.2) * an).mean()
    v = 1.5
    vclip = old_v + np.clip(v - old_v, -0.2, 0.2)
    vf = (0.5 * np.maximum((v - ret) ** 2, (vclip - ret) ** 2)).mean()
    ent = -(p * np.log(p)).sum()
    np.testing.assert_allclose(float(aux["pg_loss"]), pg, rtol=1e-5)
    np.testing.assert_allclose(float(aux["vf_loss"]), vf, rtol=1e-5)
    np.testing.assert_allclose(float(aux["entropy"]), ent, rtol=1e-5)
    np.testing.assert_allclose(float(total), pg + 0.5 * vf - 0.01 * ent, rtol=1e-5)


def test_padded_agents_do_not_enter_the_loss():
    params = {"logits": jnp.zeros(3), "v": jnp.asarray(0.0)}
    batch = Transition(obs=jnp.zeros((1, 2, 1)), gstate=jnp.zeros((1, 1)), action=jnp.zeros((1, 2), jnp.int32),
                       logp=jnp.log(jnp.full((1, 2), 1 / 3)), value=jnp.zeros((1, 2)), reward=jnp.zeros((1, 2)),
                       done=jnp.zeros((1,), bool))
    agent_mask = jnp.array([True, False])
    args = (params, FixedPolicy(), None, batch)
    ret_a = jnp.array([[1.0, 0.0]])
    ret_b = jnp.array([[1.0, 1e6]])  # a huge return on the padded agent changes nothing
    la, _ = ppo_loss(*args, jnp.array([[1.0, 5.0]]), ret_a, jnp.ones((2, 3), bool), jnp.zeros(3), agent_mask, Hyper.make(), 10.0)
    lb, _ = ppo_loss(*args, jnp.array([[1.0, -7.0]]), ret_b, jnp.ones((2, 3), bool), jnp.zeros(3), agent_mask, Hyper.make(), 10.0)
    np.testing.assert_allclose(float(la), float(lb), rtol=1e-6)


def test_grouped_apply_uses_each_agents_group():
    net = MLP((8,), 2)
    key = jax.random.PRNGKey(0)
    stack = jax.vmap(lambda k: net.init(k, jnp.zeros(3)))(jax.random.split(key, 3))
    x = jax.random.normal(key, (5, 4, 3))  # batch 5, 4 agents
    groups = jnp.array([2, 0, 0, 1])
    out = grouped_apply(net, stack, groups, x)
    for r, g in enumerate(groups.tolist()):
        ref = net.apply(jax.tree.map(lambda w: w[g], stack), x[:, r])
        np.testing.assert_allclose(np.asarray(out[:, r]), np.asarray(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scheme", ["share_all", "ippo", "mappo", "no_share"])
def test_sharing_schemes_shapes_and_param_counts(scheme):
    from jaxmob.nets.mlp import count_params

    pol = SharingPolicy(scheme, num_agents=6, num_actions=5, hidden=(16,))
    params = pol.init(jax.random.PRNGKey(0), 7, 11)
    obs = jnp.broadcast_to(jax.random.normal(jax.random.PRNGKey(1), (3, 1, 7)), (3, 6, 7))
    logits, values = pol.apply(params, pol.groups(), obs, jnp.ones((3, 11)))
    assert logits.shape == (3, 6, 5) and values.shape == (3, 6)
    one_actor = 7 * 16 + 16 + 16 * 5 + 5
    if scheme == "no_share":
        assert count_params(params["actor"]) == 6 * one_actor
    elif scheme == "ippo":
        assert count_params(params["actor"]) == one_actor
    # No-Share agents really differ; shared schemes give identical outputs for identical inputs
    same = np.allclose(np.asarray(logits[:, 0]), np.asarray(logits[:, 1]))
    assert same == (scheme in ("share_all", "ippo"))


@pytest.mark.parametrize("scheme", ["share_all", "ippo", "mappo", "no_share"])
@pytest.mark.parametrize("critic", ["local", "central"])
def test_sharing_schemes_take_either_critic_and_keep_their_actor(scheme, critic):
    """A central critic reads the global state (and an agent id), a local one the agent's
    observation; the actor is the scheme's own either way, so a comparison can hold the critic fixed."""
    pol = SharingPolicy(scheme, num_agents=6, num_actions=5, hidden=(16,), critic=critic)
    default = SharingPolicy(scheme, num_agents=6, num_actions=5, hidden=(16,))
    params = pol.init(jax.random.PRNGKey(0), 7, 11)
    obs = jax.random.normal(jax.random.PRNGKey(1), (3, 6, 7))
    state = jax.random.normal(jax.random.PRNGKey(2), (3, 11))
    logits, values = pol.apply(params, pol.groups(), obs, state)
    _, values_new_state = pol.apply(params, pol.groups(), obs, state + 1.0)
    logits_new_obs, values_new_obs = pol.apply(params, pol.groups(), obs + 1.0, state)
    assert values.shape == (3, 6) and logits.shape == (3, 6, 5)
    assert np.allclose(values, values_new_state) == (critic == "local")
    assert np.allclose(values, values_new_obs) == (critic == "central")
    assert not np.allclose(logits, logits_new_obs)
    if critic == "central":  # agents differ in value through their id embedding
        assert not np.allclose(values[:, 0], values[:, 1])
    same_actor = jax.tree.map(jnp.shape, params["actor"]) == jax.tree.map(
        jnp.shape, default.init(jax.random.PRNGKey(0), 7, 11)["actor"])
    assert same_actor == (scheme != "share_all" or critic == "local")  # Share-All's torso loses its value output
    if critic == ("central" if scheme == "mappo" else "local"):  # the scheme's own critic: the same network as before
        assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, default.init(jax.random.PRNGKey(0), 7, 11))


def test_unknown_sharing_critic_is_named():
    from jaxmob.config import ConfigError, TrainConfig

    with pytest.raises((ConfigError, ValueError), match="critic"):
        TrainConfig(alg="ippo", critic="global").validate()


def _grid_env_state(seed):
    from jaxmob.envs.rebalance.city import synthetic_city
    from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv

    city = synthetic_city("square", 3, 3, seed=seed, docks_per_region=(3, 8), trips_per_day=3000.0)
    env = RebalanceEnv(RebalanceConfig(move_amounts=(2, 5)))
    params = env.make_params(city)
    return env, params, env.initial_state(params)


def test_share_rewards_matches_numpy():
    from jaxmob.envs.rebalance.env import share_rewards

    env, params, _ = _grid_env_state(0)
    city = params.city
    reward = np.random.default_rng(0).normal(size=city.num_regions).astype(np.float32)
    nbr, ok = np.asarray(city.neighbors), np.asarray(city.neighbor_mask)
    own = np.asarray(share_rewards(jnp.asarray(reward), city, "own"))
    team = np.asarray(share_rewards(jnp.asarray(reward), city, "team"))
    local = np.asarray(share_rewards(jnp.asarray(reward), city, "neighbors"))
    np.testing.assert_allclose(own, reward)
    np.testing.assert_allclose(team, np.full_like(reward, reward.mean()), rtol=1e-6)
    want = [(reward[r] + reward[nbr[r][ok[r]]].sum()) / (1 + ok[r].sum()) for r in range(city.num_regions)]
    np.testing.assert_allclose(local, want, rtol=1e-6)
    with pytest.raises(ValueError, match="reward_sharing"):
        share_rewards(jnp.asarray(reward), city, "everyone")


@pytest.mark.parametrize("sharing", ["team", "own"])
def test_learning_reward_adds_each_agents_move_credit(sharing):
    """The rebalance env's learning reward = shared env reward + coefs['move_credit'] x
    env.move_credit; with move_credit 0 or nobody moving it is the shared reward alone."""
    from jaxmob.envs.rebalance import RebalanceEnv, RebalanceShaping
    from jaxmob.envs.rebalance.env import share_rewards

    env, params, state = _grid_env_state(1)
    env = RebalanceEnv(env.config, RebalanceShaping(reward_sharing=sharing, credit_window=4))
    R = params.city.num_regions
    action = jnp.asarray(np.random.default_rng(1).integers(0, env.num_actions(params), R), jnp.int32)
    _, _, reward, _, info = env.step(jax.random.PRNGKey(0), state, action, params)
    shared = np.asarray(share_rewards(reward, params.city, sharing))
    credit = np.asarray(env.move_credit(state, action, info["relocated"], params, 4, env.shaping.credit_model))
    assert np.any(np.asarray(info["relocated"]) > 0) and np.any(credit != 0)
    learn = lambda c, a, m: np.asarray(env.learning_reward(state, a, reward, {"relocated": m}, params,
                                                           Hyper.make(shaping={"move_credit": c}).shaping))
    np.testing.assert_allclose(learn(0.0, action, info["relocated"]), shared, rtol=1e-6)
    np.testing.assert_allclose(learn(2.0, action, info["relocated"]), shared + 2.0 * credit, rtol=1e-5, atol=1e-5)
    stay = jnp.zeros((R,), jnp.int32)
    np.testing.assert_allclose(learn(2.0, stay, jnp.zeros((R,), jnp.int32)), shared, rtol=1e-6)
