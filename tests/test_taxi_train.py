"""The taxi env through the one trainer: `--env taxi` config, CLI and a short run."""
import json

import numpy as np
import pytest

from jaxmob.config import ConfigError, TrainConfig
from jaxmob.train import train


def test_taxi_options_and_defaults_come_from_its_plugin():
    cfg = TrainConfig(env="taxi")
    assert cfg.scenario == "nyc-hex-synthetic" and cfg.num_taxis == 8000 and cfg.num_envs == 2
    with pytest.raises(ConfigError, match="num_taxis"):
        TrainConfig(env="taxi", num_taxis=0).validate()
    with pytest.raises(ConfigError, match="madarl attends|attention"):
        TrainConfig(env="taxi", attention="sideways").validate()


def test_cli_offers_the_chosen_environments_options():
    from jaxmob.cli import build_parser

    help_text = build_parser("taxi")._subparsers._group_actions[0].choices["train"].format_help()
    assert "--num-taxis" in help_text and "--train-mode" not in help_text
    assert "--train-mode" in build_parser("rebalance")._subparsers._group_actions[0].choices["train"].format_help()


def test_madarl_trains_on_the_taxi_env_and_reports_test_episodes(tmp_path):
    from jaxmob.report import training_report

    cfg = TrainConfig(env="taxi", alg="madarl", num_taxis=300, total_updates=2, updates_per_chunk=1, rollout_steps=24,
                      horizon=48, out_dir=str(tmp_path / "run"), progress=False, eval_episodes=2)
    result = train(cfg, log=lambda *_: None)
    assert result["headline"] == "order_response_rate" and set(result["test_days"]) == {"test-2000", "test-2001", "test-2002"}
    test = result["test"]
    assert 0 < test["order_response_rate"] <= 1 and test["orders"] > 0
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["order_response_rate"]) for r in rows)
    report = training_report(result, bound=False)
    assert "greedy (demand gap)" in report and "ORR" in report
