"""The fused trainer: config errors, learning, determinism, kill-and-resume, NaN guard."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxmob.train as jtrain
from jaxmob.envs.rebalance.city import City, Scenario, sample_day
from jaxmob.config import ConfigError, TrainConfig
from jaxmob.train import TrainingDiverged, train

REPO = Path(__file__).resolve().parents[1]


def corridor_scenario() -> Scenario:
    """Three regions west-to-east; all demand rides from the east end to the west
    end, so bikes pile up in the west unless agents send them back east."""
    R, T = 3, 144
    rate = np.zeros((T, R))
    rate[:, 2] = 1.5
    od = np.zeros((24, R, R))
    od[:, :, 0] = 1.0
    city = City.create(
        name="corridor", centroid=[[40.75, -74.0], [40.75, -73.988], [40.75, -73.976]],
        cell=[[0, 0], [1, 0], [2, 0]],
        neighbors=[[0, 0, 1, 0], [1, 1, 2, 0], [2, 2, 2, 1]],
        neighbor_mask=[[False, False, True, False], [False, False, True, True], [False, False, False, True]],
        travel_steps=np.full((R, R), 2), demand_rate=rate, od_prob=od,
        init_inventory=[6, 6, 6], capacity=[60, 60, 60], grid_shape=(3, 1))
    days = {f"d{i}": sample_day(city, seed=i, date=f"d{i}") for i in range(2)}
    return Scenario(city, days, estimation_days=(), test_days=("d1",), validation_days=("d0",))


def tiny(tmp_path, **kw) -> TrainConfig:
    base = dict(alg="ippo", scenario="corridor", total_updates=4, updates_per_chunk=2, num_envs=2, rollout_steps=24,
                horizon=48, epochs=2, minibatches=2, hidden=(16,), eval_every=1, progress=False,
                out_dir=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("field, value, message", [
    ("alg", "dqn", "alg: unknown algorithm"),
    ("rollout_steps", 50, "rollout_steps: must divide the horizon"),
    ("minibatches", 7, "minibatches: must divide"),
    ("updates_per_chunk", 7, "updates_per_chunk: must divide total_updates"),
    ("lr", 0.0, "lr: must lie in"),
    ("gamma", 1.5, "gamma: must lie in"),
    ("num_envs", 0, "num_envs: must be >= 1"),
    ("move_amounts", (0,), "move_amounts"),
    ("scenario", "atlantis", "scenario: unknown scenario"),
    ("reward_sharing", "all", "reward_sharing"),
])
def test_impossible_configs_are_rejected(field, value, message):
    with pytest.raises(ConfigError, match=message):
        replace(TrainConfig(), **{field: value}).validate()


def test_cli_rejects_bad_config_before_compiling():
    proc = subprocess.run([sys.executable, "-m", "jaxmob", "train", "--rollout-steps", "50"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "rollout_steps: must divide the horizon" in proc.stderr
    helptext = subprocess.run([sys.executable, "-m", "jaxmob", "train", "--help"], capture_output=True, text=True,
                              timeout=120, cwd=REPO).stdout
    for flag in ("--alg", "--gae-lambda", "--reward-sharing", "--resume", "--eval-every"):
        assert flag in helptext


def _final_params(run_dir: Path):
    import orbax.checkpoint as ocp

    mngr = ocp.CheckpointManager(run_dir / "checkpoints" / "last")
    restored = mngr.restore(mngr.latest_step(), args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return mngr.latest_step(), restored["state"]["params"]


def test_levels_mode_reports_test_days_with_argmax_and_sampled(tmp_path):
    """Validation days choose the checkpoint, the test days get argmax and sampled rows."""
    from jaxmob.report import training_report

    scen = corridor_scenario()
    scen.days["d2"] = sample_day(scen.city, seed=2, date="d2")
    result = train(tiny(tmp_path, train_mode="levels", eval_episodes=3), scenario=scen, log=lambda *_: None)
    assert result["validation_days"] == ["d0"] and result["test_days"] == ["d1"] and result["training_days"] == ["d2"]
    text = training_report(result, bound=False)
    assert "ippo (sampled, 3 episodes)" in text and "argmax minus greedy" in text and "test days d1" in text
    test = result["test"]
    assert set(test["per_day"]) == {"d1"} and test["sampled"]["episodes_per_day"] == 3
    assert 0.0 <= test["sampled"]["mean"]["service_ratio"]["mean"] <= 1.0
    assert test["sampled"]["mean"]["service_ratio"]["std"] >= 0.0


def test_same_seed_same_result(tmp_path):
    scen = corridor_scenario()
    a = train(tiny(tmp_path / "a"), scenario=scen, log=lambda *_: None)
    b = train(tiny(tmp_path / "b"), scenario=scen, log=lambda *_: None)
    jax.tree.map(np.testing.assert_array_equal, a["runner"].params, b["runner"].params)
    assert a["final_eval"]["service_ratio"] == b["final_eval"]["service_ratio"]



def test_fresh_run_replaces_an_older_runs_checkpoints(tmp_path):
    """Re-running into the same folder without --resume must not keep the older
    run's checkpoints: its "best" could outrank the new run's and be restored."""
    scen = corridor_scenario()
    steps = lambda kind: sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints" / kind).iterdir()
                                if p.name.isdigit())
    train(tiny(tmp_path), scenario=scen, log=lambda *_: None)
    assert steps("last") == [2, 4] and steps("best")
    train(tiny(tmp_path, seed=1, total_updates=2), scenario=scen, log=lambda *_: None)
    assert steps("last") == [2] and steps("best") == [2]


def test_sigkill_and_resume_matches_uninterrupted(tmp_path):
    """Kill a CLI run with SIGKILL after its first checkpoint, resume it, compare parameters."""
    args = ["--alg", "ippo", "--scenario", "synthetic-square", "--total-updates", "6", "--updates-per-chunk", "1",
            "--num-envs", "2", "--rollout-steps", "12", "--horizon", "24", "--epochs", "1", "--minibatches", "2",
            "--hidden", "16", "--eval-every", "0", "--no-progress", "--no-bound"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, "-m", "jaxmob", "train", *args, "--out-dir", str(straight)], check=True,
                   capture_output=True, timeout=600, cwd=REPO, env=env)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "jaxmob", "train", *args, "--out-dir", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env)
    ckpt = killed / "checkpoints" / "last"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and any(p.name.isdigit() and int(p.name) >= 2 for p in ckpt.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_killed, _ = _final_params(killed)
    assert 2 <= step_killed < 6
    resumed = subprocess.run([sys.executable, "-m", "jaxmob", "train", *args, "--out-dir", str(killed), "--resume"],
                             capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert resumed.returncode == 0, resumed.stderr
    step_a, pa = _final_params(straight)
    step_b, pb = _final_params(killed)
    assert step_a == step_b == 6
    jax.tree.map(np.testing.assert_array_equal, pa, pb)
    rows = [json.loads(l) for l in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == list(range(1, 7))


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    scen = corridor_scenario()
    config = tiny(tmp_path)
    train(config, scenario=scen, max_chunks=1, log=lambda *_: None)
    good_step, good = _final_params(Path(config.run_dir))
    real_build = jtrain.build

    def poisoned_build(cfg, scenario=None):
        parts = real_build(cfg, scenario)
        chunk = parts["update_chunk"]

        def nan_chunk(runner, n):
            runner, m = chunk(runner, n)
            return runner.replace(params=jax.tree.map(lambda x: x * np.nan, runner.params)), m

        parts["update_chunk"] = nan_chunk
        return parts

    monkeypatch.setattr(jtrain, "build", poisoned_build)
    with pytest.raises(TrainingDiverged, match="non-finite values.*last good checkpoint \\(update 2\\)"):
        train(config, scenario=scen, resume=True, log=lambda *_: None)
    step, params = _final_params(Path(config.run_dir))
    assert step == good_step == 2
    jax.tree.map(np.testing.assert_array_equal, params, good)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


def test_ppo_learns_to_rebalance_the_corridor(tmp_path):
    """Fixed seed: the learned policy clearly beats random and no-op on a replayed day.

    Learned from the environment's reward alone (move_credit 0): the corridor needs a
    relay (west -> middle -> east) and the middle region has no shortfall of its
    own, so move credit would charge the first hop its cost and credit nothing."""
    from jaxmob.envs.rebalance.baselines import noop, random_policy, rollout
    from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv

    scen = corridor_scenario()
    config = tiny(tmp_path, total_updates=60, updates_per_chunk=20, num_envs=4, rollout_steps=48, hidden=(32,),
                  epochs=4, minibatches=4, lr=3e-3, eval_every=0, move_credit=0.0)
    result = train(config, scenario=scen, log=lambda *_: None)
    learned = result["final_eval"]["service_ratio"]
    env = RebalanceEnv(RebalanceConfig(mode="replay", horizon=48))
    params = env.make_params(scen.city, days=[scen.day("d1")])
    base_noop = float(rollout(noop, env, params, jax.random.PRNGKey(0))["service_ratio"])
    base_random = np.mean([float(rollout(random_policy, env, params, jax.random.PRNGKey(s))["service_ratio"])
                           for s in range(5)])
    assert learned > base_random + 0.1 and learned > base_noop + 0.1, (learned, base_random, base_noop)


def test_hagps_cli_logs_groups_and_draws_the_group_map(tmp_path):
    out = tmp_path / "hagps"
    proc = subprocess.run([sys.executable, "-m", "jaxmob", "train", "--alg", "hagps", "--scenario", "synthetic-square",
                           "--total-updates", "4", "--updates-per-chunk", "2", "--num-envs", "2", "--rollout-steps", "24",
                           "--horizon", "24", "--window", "12", "--epochs", "1", "--minibatches", "2", "--hidden", "16",
                           "--no-progress", "--no-bound", "--out-dir", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hagps (argmax)" in proc.stdout and "hagps (sampled, 5 episodes)" in proc.stdout and "greedy" in proc.stdout
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"local_groups", "global_groups", "group_kl_avg", "regroup_period", "regroup_event"} <= set(rows[-1])
    assert all(1 <= r["local_groups"] <= 8 and 1 <= r["global_groups"] <= 4 for r in rows)
    snaps = [json.loads(l) for l in (out / "groups.jsonl").read_text().splitlines()]
    assert [s["update"] for s in snaps] == [2, 4] and len(snaps[0]["local"]) == 64
    assert (out / "groups.png").read_bytes()[:4] == b"\x89PNG" and (out / "learning_curve.png").exists()
