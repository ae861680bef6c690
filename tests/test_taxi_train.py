"""The taxi env through the one trainer: `--env taxi` config, CLI and a short run."""
import json

import numpy as np
import pytest

from jaxmob.config import ConfigError, TrainConfig
from jaxmob.train import train


def test_taxi_options_and_defaults_come_from_its_plugin():
    cfg = TrainConfig(env="taxi")
    assert cfg.scenario == "amod-nyc-man-south" and cfg.num_envs == 2 and cfg.alg == "madarl"
    scenario = cfg.task.load(cfg.scenario)
    assert cfg.task.fleet(cfg.options, scenario) == 1500 and cfg.task.horizon(cfg.options, scenario) == 36
    synthetic = TrainConfig(env="taxi", scenario="nyc-hex-synthetic")
    scenario = synthetic.task.load(synthetic.scenario)
    assert synthetic.task.fleet(synthetic.options, scenario) == 8000 and synthetic.task.horizon(synthetic.options, scenario) == 144
    with pytest.raises(ConfigError, match="num_taxis"):
        TrainConfig(env="taxi", num_taxis=-1).validate()
    with pytest.raises(ConfigError, match="rollout_steps.*horizon \\(36\\)"):
        TrainConfig(env="taxi", scenario="amod-nyc-brooklyn", rollout_steps=24).validate()
    with pytest.raises(ConfigError, match="madarl attends|attention"):
        TrainConfig(env="taxi", attention="sideways").validate()


def test_cli_offers_the_chosen_environments_options():
    from jaxmob.cli import build_parser

    help_text = build_parser("taxi")._subparsers._group_actions[0].choices["train"].format_help()
    assert "--num-taxis" in help_text and "--train-mode" not in help_text
    assert "--train-mode" in build_parser("rebalance")._subparsers._group_actions[0].choices["train"].format_help()


def test_madarl_trains_on_a_real_amod_area_resumes_exactly_and_reports_test_episodes(tmp_path):
    """The default taxi scenario (real AMoD demand, episodes from 19:00) through the one
    trainer; a run stopped after its first chunk and resumed ends where an
    uninterrupted run ends."""
    import jax

    from jaxmob.report import training_report

    def config(name):
        return TrainConfig(env="taxi", alg="madarl", num_taxis=300, total_updates=2, updates_per_chunk=1,
                           rollout_steps=18, out_dir=str(tmp_path / name), progress=False, eval_episodes=2)

    assert config("a").scenario == "amod-nyc-man-south"
    result = train(config("a"), log=lambda *_: None)
    assert result["headline"] == "order_response_rate"
    assert result["test_days"] == ["test-2000", "test-2001", "test-2002", "test-2003", "test-2004"]
    assert result["validation_days"] == ["val-1000", "val-1001", "val-1002"]
    test = result["test"]
    assert 0 < test["order_response_rate"] <= 1 and test["orders"] > 20_000  # 3 h of man_south's evening demand
    rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["order_response_rate"]) for r in rows)
    report = training_report(result, bound=False)
    assert "greedy (demand gap)" in report and "ORR" in report and "best sampled policy" in report
    # checkpoints are chosen by the deployed (sampled) policy on the validation episodes
    evals = [json.loads(l) for l in (tmp_path / "a" / "eval.jsonl").read_text().splitlines()]
    assert result["selection"] == "sampled" and len(evals) == 2
    for e in evals:
        assert e["selection_score"] == e["sampled"]["mean"]["order_response_rate"]["mean"]
    assert result["best_eval"] == max(e["selection_score"] for e in evals)

    train(config("b"), max_chunks=1, log=lambda *_: None)
    resumed = train(config("b"), resume=True, log=lambda *_: None)
    jax.tree.map(np.testing.assert_array_equal, resumed["runner"].params, result["runner"].params)
    assert resumed["test"]["order_response_rate"] == test["order_response_rate"]


@pytest.mark.parametrize("alg, losses, settings", [
    ("madarl", ("pg_loss", "vf_loss", "entropy"), dict(epochs=1, minibatches=2)),
    ("sac_discrete", ("critic_loss", "actor_loss", "q_mean"), dict(buffer_size=8, batch_size=4, gradient_steps=3))])
def test_per_distinct_observation_trains_as_per_taxi(tmp_path, alg, losses, settings):
    """MADARL and the soft actor-critic run their networks once per (cell, status) row, not once
    per taxi (the soft one's replay keeps the rows); the maths says that gives the same actions,
    losses and gradients, so a fixed-seed run matches the per-taxi run to float rounding (the
    gather sums a row's gradients in another order)."""
    import jax

    def run(distinct):
        cfg = TrainConfig(env="taxi", alg=alg, scenario="amod-nyc-brooklyn", num_taxis=300, total_updates=2,
                          updates_per_chunk=1, num_envs=2, rollout_steps=12, hidden=(16,), **settings,
                          eval_episodes=1, distinct_observations=distinct, out_dir=str(tmp_path / str(distinct)),
                          progress=False)
        result = train(cfg, log=lambda *_: None)
        rows = [json.loads(l) for l in (tmp_path / str(distinct) / "metrics.jsonl").read_text().splitlines()]
        return result, rows

    (fast, fast_rows), (slow, slow_rows) = run(True), run(False)
    if alg == "sac_discrete":  # the replay keeps 2C + 1 distinct rows per transition, not every taxi
        kept, every = fast["runner"].extra.replay, slow["runner"].extra.replay
        assert kept.index.shape == every.reward.shape and every.index is None
        assert kept.obs.shape[1] < every.obs.shape[1]
    for a, b in zip(fast_rows, slow_rows):
        for k in ("order_response_rate", "revenue", "empty_moves"):  # the rollouts: same actions
            assert a[k] == b[k], k
        for k in losses:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5),
                 fast["runner"].params, slow["runner"].params)
    assert fast["test"]["order_response_rate"] == slow["test"]["order_response_rate"]
