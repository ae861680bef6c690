"""Many environments, one trainer: the plug-in contract.

* A tiny second environment (agents walking to a target on a ring), registered
  at run time, trains through the very path `jaxmob train` uses: config,
  checkpoints, validation-chosen checkpoint, test report, sweep, resume.
* The import layering itself is guarded by `test_layers.py`.
* The bike results did not move: the trainer on the corridor scenario
  reproduces numbers recorded with the code before environments became
  plug-ins (commit f0c1283, `tests/data/trainer_fixed_seed.json`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from jaxmob.config import ConfigError, TrainConfig
from jaxmob.core import registry
from jaxmob.core.env import Agents, Environment, Spec
from jaxmob.core.task import Built, Task
from jaxmob.train import train

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------- the tiny environment
@struct.dataclass
class RingParams:
    target: jax.Array  # (A,) each agent's target cell on a ring of `size` cells
    start: jax.Array  # (A,) where it starts


@struct.dataclass
class RingState:
    pos: jax.Array
    t: jax.Array
    hits: jax.Array


class RingEnv(Environment):
    """A agents on a ring of `size` cells; action 0 stays, 1 steps left, 2 right;
    reward 1 per step spent on one's target."""

    def __init__(self, size=6, steps=8):
        self.size, self.steps = size, steps

    episode_length = property(lambda self: self.steps)

    def reset(self, key, params):
        state = RingState(params.start, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))
        return self.observe(state, params), state

    def step(self, key, state, action, params):
        pos = (state.pos + jnp.array([0, -1, 1])[action]) % self.size
        reward = (pos == params.target).astype(jnp.float32)
        state = RingState(pos, state.t + 1, state.hits + reward.sum())
        return self.observe(state, params), state, reward, state.t >= self.steps, {}

    def observe(self, state, params):
        gap = (params.target - state.pos) % self.size
        return jax.nn.one_hot(gap, self.size)

    def global_state(self, state, params):
        return self.observe(state, params).reshape(-1)

    def observation_spec(self, params):
        return Spec((params.target.shape[0], self.size), jnp.float32)

    def action_spec(self, params):
        return Spec(params.target.shape, jnp.int32, 3)

    def agents(self, params):
        return Agents.discrete(jnp.ones(params.target.shape, bool), 3)

    def training_metrics(self, sums, num_envs):
        return {"hit_rate": sums["reward"] / (num_envs * self.steps * 4)}

    def episode_metrics(self, state, params):
        return {"hit_rate": state.hits / (self.steps * params.target.shape[0])}


@dataclass(frozen=True)
class RingOptions:
    size: int = field(default=6, metadata={"help": "cells on the ring"})


class RingTask(Task):
    name, headline, Options, default_scenario = "ring", "hit_rate", RingOptions, "four"
    columns, headers = ("hit_rate",), ("hit rate",)

    def scenarios(self):
        return ["four"]

    def load(self, name):
        return name

    def validate(self, config):
        if config.options.size < 3:
            raise ValueError(f"size: must be >= 3, got {config.options.size}")

    def build(self, config, scenario):
        env = RingEnv(config.options.size)
        episode = lambda shift: RingParams(jnp.array([0, 1, 2, 3]), jnp.array([3, 3, 0, 0]) + shift)
        return Built(scenario=scenario, env=env, env_params=episode(0), eval_env=env,
                     validation={"v": episode(1)}, test={"t": episode(2)})

    def baseline_rows(self, scenario, episodes, config, *, bound=True):
        from jaxmob.core.rollout import rollout

        env = RingEnv(config.options.size)
        stay = lambda key, state, params, env: jnp.zeros((4,), jnp.int32)
        starts = {"v": 1, "t": 2}
        return {d: [{"policy": "stay", **{k: float(v) for k, v in rollout(
            stay, env, RingParams(jnp.array([0, 1, 2, 3]), jnp.array([3, 3, 0, 0]) + starts[d]),
            jax.random.key(0)).items()}}] for d in episodes}


registry.register("ring", RingTask())


def ring_config(tmp_path, **kw):
    base = dict(env="ring", alg="mappo", total_updates=20, updates_per_chunk=5, num_envs=4, rollout_steps=8,
                epochs=4, minibatches=2, hidden=(32,), lr=3e-3, progress=False, out_dir=str(tmp_path / "ring"))
    return TrainConfig(**{**base, **kw})


def test_a_second_environment_trains_through_the_same_path(tmp_path):
    """The ring env has nothing in common with bikes: its agents, observations,
    metrics and headline are its own, and the trainer learns on it."""
    from jaxmob.report import training_report

    result = train(ring_config(tmp_path), log=lambda *_: None)
    assert result["headline"] == "hit_rate"
    rows = [json.loads(l) for l in (tmp_path / "ring" / "metrics.jsonl").read_text().splitlines()]
    first, last = np.mean([r["hit_rate"] for r in rows[:3]]), np.mean([r["hit_rate"] for r in rows[-3:]])
    assert last > first + 0.2, (first, last)
    assert result["test"]["hit_rate"] > 0.6  # reaching and holding the target: up to 6/8 of the steps
    assert result["test"]["sampled"]["episodes_per_day"] == 5
    report = training_report(result, bound=False)
    assert "stay" in report and "hit rate" in report
    assert (tmp_path / "ring" / "learning_curve.png").exists()


def test_a_second_environment_brings_its_own_options_and_checks():
    assert ring_config(Path("/tmp")).size == 6
    with pytest.raises(ConfigError, match="size: must be >= 3"):
        ring_config(Path("/tmp"), size=2).validate()
    with pytest.raises(TypeError, match="train_mode"):
        ring_config(Path("/tmp"), train_mode="levels")  # a bike option means nothing here
    with pytest.raises(ConfigError, match="unknown scenario"):
        ring_config(Path("/tmp"), scenario="manhattan-106").validate()


def test_the_sweep_ranks_a_second_environment_by_its_headline(tmp_path):
    from jaxmob.sweep import run_sweep, sweepable

    assert "move_credit" not in sweepable(ring_config(tmp_path)) and "move_credit" in sweepable(TrainConfig())
    assert "d_split" in sweepable(TrainConfig(alg="hagps")) and "d_split" not in sweepable(TrainConfig(alg="mappo"))
    assert "tau" in sweepable(TrainConfig(env="amod", alg="meta")) and "clip_eps" not in sweepable(TrainConfig(env="amod", alg="meta"))
    out = run_sweep(ring_config(tmp_path, total_updates=6, updates_per_chunk=3), 2, {"lr": [1e-3, 3e-3]},
                    out_dir=str(tmp_path / "sw"), progress=False, validation_curve=True)
    assert len(out["rows"]) == 2 and out["rows"][0]["headline"] == "hit_rate"
    # one validation score per run and chunk; the last is the final policy's validation score
    curve = out["curves"]["validation_hit_rate"]
    assert curve.shape == (4, 2)
    np.testing.assert_allclose(curve[:, -1], [e["hit_rate"] for e in out["evals"]])
    assert "hit rate" in (tmp_path / "sw" / "results.md").read_text()


def test_a_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    """Stopped after one chunk of three and resumed twice from its checkpoint, a sweep ends with the
    same curves, validation and test scores as one run straight through; a resume under another
    grid is refused, and a finished sweep leaves no checkpoint behind."""
    from jaxmob.sweep import run_sweep

    cfg = ring_config(tmp_path, total_updates=6, updates_per_chunk=2)
    kw = dict(progress=False, validation_curve=True)
    whole = run_sweep(cfg, 2, {"lr": [1e-3, 3e-3]}, out_dir=str(tmp_path / "whole"), **kw)
    assert not (tmp_path / "whole" / "checkpoint").exists()
    assert run_sweep(cfg, 2, {"lr": [1e-3, 3e-3]}, out_dir=str(tmp_path / "cut"), max_chunks=1, **kw) is None
    assert (tmp_path / "cut" / "checkpoint").exists()
    with pytest.raises(ValueError, match="different config, seeds or grid"):
        run_sweep(cfg, 2, {"lr": [1e-3]}, out_dir=str(tmp_path / "cut"), resume=True, **kw)
    steps = lambda: sorted(d.name for d in (tmp_path / "cut" / "checkpoint").iterdir() if d.name.isdigit())  # noqa: E731
    assert steps() == ["1"]
    run_sweep(cfg, 2, {"lr": [1e-3, 3e-3]}, out_dir=str(tmp_path / "cut"), resume=True, max_chunks=1, **kw)
    assert steps() == ["2"]  # went on from chunk 1, not from the start
    resumed = run_sweep(cfg, 2, {"lr": [1e-3, 3e-3]}, out_dir=str(tmp_path / "cut"), resume=True, **kw)
    assert set(resumed["curves"]) == set(whole["curves"])
    for k, v in whole["curves"].items():
        np.testing.assert_allclose(resumed["curves"][k], v, rtol=1e-6, err_msg=k)
    assert resumed["evals"] == whole["evals"] and resumed["rows"] == whole["rows"]
    assert resumed["best"] == whole["best"]  # the best-on-validation parameters survive the checkpoint too


def test_the_sweep_keeps_each_runs_best_on_validation_parameters(tmp_path):
    """With a validation curve each run keeps the parameters of its best chunk (the first of equal
    scores): scored on the validation days again they give that chunk's score, the test days score
    them, and they are the final parameters where the last chunk was the best."""
    from jaxmob.sweep import keep_better, run_sweep
    from jaxmob.train import build, validation_scorer

    cfg = ring_config(tmp_path, total_updates=8, updates_per_chunk=2)
    out = run_sweep(cfg, 3, {"lr": [1e-1]}, out_dir=str(tmp_path / "sw"), progress=False, validation_curve=True)
    curve, best = out["curves"]["validation_hit_rate"], out["best"]
    assert any(c.max() > c[-1] for c in curve)  # a run whose best is not its last: the test can tell them apart
    assert best["update"] == [2 * (int(np.argmax(c)) + 1) for c in curve]
    np.testing.assert_allclose(best["validation"], curve.max(1))
    evaluate, deployed = validation_scorer(build(cfg), cfg)
    for i in range(3):
        kept = jax.tree.map(lambda x: x[i], out["best_params"])
        again = deployed(evaluate(kept["params"], kept["groups"], jax.random.PRNGKey(10_000 + cfg.seed)))
        assert again == pytest.approx(best["validation"][i], abs=1e-6)
        if best["update"][i] == 8:
            assert best["tests"][i] == out["tests"][i]
    runs = json.loads((tmp_path / "sw" / "results.json").read_text())["runs"]
    assert [r["best"]["update"] for r in runs] == best["update"]
    kept = keep_better({"w": jnp.zeros((3, 2)), "b": jnp.zeros(3)}, {"w": jnp.ones((3, 2)), "b": jnp.ones(3)},
                       np.array([True, False, True]))
    np.testing.assert_array_equal(kept["w"], [[1, 1], [0, 0], [1, 1]])
    np.testing.assert_array_equal(kept["b"], [1, 0, 1])


# ----------------------------------------------------------------------- the bike numbers did not move
FIXED = json.loads((REPO / "tests" / "data" / "trainer_fixed_seed.json").read_text())


@pytest.mark.parametrize("alg", ["share_all", "mappo", "hagps"])
def test_rebalance_training_numbers_are_those_before_the_plugin_refactor(alg, tmp_path):
    from test_train import corridor_scenario

    kw = dict(alg=alg, scenario="corridor", total_updates=2, updates_per_chunk=1, num_envs=2, rollout_steps=24,
              horizon=48, epochs=2, minibatches=2, hidden=(16,), eval_every=1, progress=False, eval_episodes=2,
              out_dir=str(tmp_path / alg), move_credit=0.5, obs_level=False,  # the defaults of the recording
              **(dict(window=8) if alg == "hagps" else {}))
    r = train(TrainConfig(**kw), scenario=corridor_scenario(), log=lambda *_: None)
    want = FIXED[alg]
    rows = [json.loads(l) for l in (tmp_path / alg / "metrics.jsonl").read_text().splitlines()]
    for got, exp in zip(rows, want["train"]):
        for k, v in exp.items():
            np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-7, err_msg=k)
    np.testing.assert_allclose(r["final_eval"]["service_ratio"], want["validation"], rtol=1e-6)
    np.testing.assert_allclose(r["test"]["service_ratio"], want["test"], rtol=1e-6)
    np.testing.assert_allclose(r["test"]["sampled"]["mean"]["service_ratio"]["mean"], want["test_sampled"], rtol=1e-6)
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(r["runner"].params)]
    np.testing.assert_allclose(sum(np.abs(l).sum() for l in leaves), want["param_abs"], rtol=1e-5)
