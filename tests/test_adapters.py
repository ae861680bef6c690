"""The PettingZoo and Gymnasium adapters: the libraries' own API checks, and the same numbers as the native env."""
import warnings

import jax
import numpy as np
import pytest

pytest.importorskip("pettingzoo")
pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402
from pettingzoo.test import parallel_api_test  # noqa: E402

import jaxmob  # noqa: E402
from jaxmob.adapters import GymEnv, ParallelEnv, VectorEnv  # noqa: E402

SHORT = {"rebalance-v1": {"horizon": 12}, "taxi-v1": {"horizon": 6}, "amod-v1": {}, "parking-v1": {"episode_minutes": 30}}


@pytest.mark.parametrize("env_id", ["rebalance-v1", "taxi-v1", "amod-v1"])
def test_pettingzoo_parallel_api_test_passes(env_id):
    env = ParallelEnv(env_id, **SHORT[env_id])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PettingZoo warns of agents without an observation, reward, ...
        parallel_api_test(env, num_cycles=30)
    kind = jaxmob.make(env_id)[0].agent_name
    assert env.possible_agents[0] == f"{kind}_0"


@pytest.mark.parametrize("env_id", ["rebalance-v1", "parking-v1"])
def test_gymnasium_env_checker_passes(env_id):
    env = GymEnv(env_id, **SHORT[env_id])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*Box observation space (min|max)imum value is")  # unbounded counts
        check_env(env, skip_render_check=True)


def native_episode(env_id, seed, actions, **options):
    """The per-agent rewards of an episode through jaxmob.make, with the adapters' key schedule."""
    env, params = jaxmob.make(env_id, **options)
    key = jax.random.key(seed)
    key, k = jax.random.split(key)
    _, state = env.reset(k, params)
    rewards, step = [], jax.jit(env.step)
    for a in actions:
        key, k = jax.random.split(key)
        _, state, r, _, _ = step(k, state, a, params)
        rewards.append(np.asarray(r))
    return np.array(rewards), env.episode_metrics(state, params)


def test_the_adapters_give_the_native_numbers():
    opts = SHORT["rebalance-v1"]
    gym = GymEnv("rebalance-v1", **opts)
    pz = ParallelEnv("rebalance-v1", **opts)
    rng = np.random.default_rng(0)
    gym.reset(seed=7)
    pz.reset(seed=7)
    actions, gym_rewards, pz_rewards = [], [], []
    real = gym._city.real
    for t in range(12):
        a = rng.integers(0, gym.action_space.nvec[0], len(real))
        actions.append(gym._city.full_action(a))
        _, r, term, trunc, _ = gym.step(a)
        gym_rewards.append(r)
        _, rs, _, truncs, _ = pz.step({f"region_{i}": int(x) for i, x in zip(real, a)})
        pz_rewards.append(sum(rs.values()))
        assert trunc == all(truncs.values()) == (t == 11) and not term
    native, metrics = native_episode("rebalance-v1", 7, actions, **opts)
    np.testing.assert_allclose(gym_rewards, native[:, real].sum(1), rtol=1e-6)
    np.testing.assert_allclose(pz_rewards, native[:, real].sum(1), rtol=1e-6)
    assert pz.episode_metrics()["service_ratio"] == pytest.approx(float(metrics["service_ratio"]))
    assert pz.agents == []
    with pytest.raises(RuntimeError, match="call reset"):
        pz.step({})


def test_the_vector_env_resets_each_city_in_the_step_it_ends():
    env = VectorEnv("rebalance-v1", num_envs=3, **SHORT["rebalance-v1"])
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, *env.single_observation_space.shape) and env.action_space.shape == (3, obs.shape[1])
    ends = []
    for t in range(24):
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        assert np.isfinite(reward).all() and not term.any()
        if trunc.any():
            assert trunc.all() and info["_final_obs"].all() and info["final_obs"].shape == obs.shape
            ends.append(t)
    assert ends == [11, 23]
    with pytest.raises(ValueError, match="num_envs"):
        VectorEnv("rebalance-v1", num_envs=0)
