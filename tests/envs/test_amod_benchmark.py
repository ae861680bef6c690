"""The AMoD env against the benchmark's own simulator: on the request draws of its 10 test
episodes (`../shared/data/amod-scenarios/peer-draws/`, drawn by RL4AMOD's `macro_env.py`,
commit 76bea1b), no rebalancing and equal distribution reproduce the figures that simulator
reports in its conserving form (vehicles of two trips landing together are added), within 1%."""
import jax
import numpy as np
import pytest

from jaxmob.core.rollout import rollout
from jaxmob.envs.amod.baselines import equal_distribution, no_rebalancing
from jaxmob.envs.amod.env import AmodConfig, AmodEnv, make_params
from jaxmob.envs.amod.scenario import load, read_draws

# peer-draws/README.md: mean over the 10 episodes, conserving simulator: (served ratio, reward)
BENCHMARK = {
    ("nyc_brooklyn", "no rebalancing"): (0.445, 28_602), ("nyc_brooklyn", "equal distribution"): (0.778, 50_501),
    ("nyc_man_south", "no rebalancing"): (0.595, 28_991), ("nyc_man_south", "equal distribution"): (0.835, 36_528),
    ("san_francisco", "no rebalancing"): (0.481, 10_455), ("san_francisco", "equal distribution"): (0.760, 14_598),
}
POLICIES = {"no rebalancing": no_rebalancing, "equal distribution": equal_distribution}


@pytest.mark.parametrize("city", ["nyc_brooklyn", "nyc_man_south", "san_francisco"])
def test_hand_rules_reproduce_the_benchmark_simulator_on_its_own_draws(city, shared_data):
    scenario = load(city)
    draws = read_draws(shared_data / "amod-scenarios" / "peer-draws" / f"draws_{city}.npz", scenario)
    assert draws.shape == (10, 20, scenario.num_regions, scenario.num_regions)  # 20 matchings an episode
    env = AmodEnv(AmodConfig(horizon=scenario.horizon, mode="replay", max_steps=scenario.max_steps))
    for label, policy in POLICIES.items():
        episodes = [jax.device_get(rollout(policy, env, make_params(scenario, replay=d), jax.random.key(0)))
                    for d in draws]
        served = np.mean([float(m["served_ratio"]) for m in episodes])
        reward = np.mean([float(m["reward"]) for m in episodes])
        want_served, want_reward = BENCHMARK[city, label]
        assert served == pytest.approx(want_served, rel=0.01), (label, served)
        assert reward == pytest.approx(want_reward, rel=0.01), (label, reward)


def test_draw_files_are_checked(tmp_path):
    from jaxmob.core.errors import LoaderError

    scenario = load("san_francisco")
    R = scenario.num_regions
    np.savez(tmp_path / "short.npz", draws=np.zeros((2, 5, R, R), np.int32))
    with pytest.raises(LoaderError, match=r"must be \(episodes, >= 20 steps"):
        read_draws(tmp_path / "short.npz", scenario)
    np.savez(tmp_path / "neg.npz", draws=-np.ones((1, 20, R, R), np.int32))
    with pytest.raises(LoaderError, match="non-negative integer"):
        read_draws(tmp_path / "neg.npz", scenario)
    np.savez(tmp_path / "other.npz", requests=np.zeros(3))
    with pytest.raises(LoaderError, match="not a request-draw file"):
        read_draws(tmp_path / "other.npz", scenario)


def test_eval_replays_a_draw_file_through_the_command_line(tmp_path):
    """`jaxmob eval --env amod --draws FILE`: the hand rules on a user's own request draws."""
    from test_cli import jaxmob

    scenario = load("san_francisco")
    draws = np.stack([scenario.requests("test-2000"), scenario.requests("test-2001")])
    np.savez(tmp_path / "mine.npz", draws=draws)
    proc = jaxmob("eval", "--env", "amod", "--scenario", "san_francisco", "--draws", tmp_path / "mine.npz",
                  "--no-bound")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 episodes of 20 matchings" in proc.stdout and "-- day draw-1" in proc.stdout
    assert "equal distribution" in proc.stdout and "-- mean over 2 days" in proc.stdout
    np.savez(tmp_path / "bad.npz", draws=draws[:, :3])
    proc = jaxmob("eval", "--env", "amod", "--scenario", "san_francisco", "--draws", tmp_path / "bad.npz")
    assert proc.returncode == 2 and "must be (episodes, >= 20 steps" in proc.stderr
