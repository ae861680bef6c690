"""`--logger tensorboard`: event files TensorBoard's own reader loads, holding the JSONL values."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

from jaxmob.config import ConfigError  # noqa: E402
from jaxmob.train import train  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_train import corridor_scenario, tiny  # noqa: E402


def scalars(folder: Path) -> dict:
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_tensorboard_holds_the_jsonl_values(tmp_path):
    config = tiny(tmp_path, logger="tensorboard")
    train(config, scenario=corridor_scenario(), log=lambda *_: None)
    run = Path(config.run_dir)
    tb = scalars(run / "tb")
    rows = jsonl(run / "metrics.jsonl")
    assert [r["update"] for r in rows] == [1, 2, 3, 4]
    names = [k for k in rows[0] if k != "update"]
    assert "service_ratio" in names and len(names) > 5
    for name in names:
        assert tb[f"train/{name}"] == pytest.approx({r["update"]: r[name] for r in rows}, rel=1e-6, abs=1e-6)
    evals = jsonl(run / "eval.jsonl")
    assert tb["validation/service_ratio"] == pytest.approx({e["update"]: e["service_ratio"] for e in evals}, rel=1e-6)
    summary = json.loads((run / "summary.json").read_text())
    assert tb["hparam/test_service_ratio"] == pytest.approx({0: summary["test"]["service_ratio"]}, rel=1e-6)
    # the run's identity ignores where it logs: the same run logged to JSONL only is the same run
    assert json.loads((run / "config.json").read_text()).get("logger") is None


def test_a_sweep_writes_one_tensorboard_run_per_member(tmp_path):
    from jaxmob.sweep import run_sweep

    config = tiny(tmp_path, logger="tensorboard", total_updates=2, updates_per_chunk=1, scenario="synthetic-square",
                  horizon=144, rollout_steps=24)
    out = run_sweep(config, seeds=2, grid={"lr": [1e-3, 3e-3]}, out_dir=str(tmp_path / "sweep"), progress=False)
    members = sorted(p.name for p in (Path(out["out_dir"]) / "tb").iterdir())
    assert members == ["lr=0.001-s0", "lr=0.001-s1", "lr=0.003-s0", "lr=0.003-s1"]
    curve = scalars(Path(out["out_dir"]) / "tb" / members[0])["train/service_ratio"]
    np.testing.assert_allclose([curve[1], curve[2]], out["curves"]["service_ratio"][0], rtol=1e-6)


def test_an_unknown_logger_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="logger: must be jsonl or tensorboard"):
        tiny(tmp_path, logger="wandb").validate(known_scenario=False)


def test_a_resumed_log_drops_the_events_past_its_checkpoint(tmp_path):
    """A run killed after update 6 and resumed from its checkpoint at update 4 rewrites 5 and 6."""
    from jaxmob.tensorboard import TensorBoardLog

    first = TensorBoardLog(tmp_path, {"seed": 0})
    for u in range(1, 7):
        first.training(u, {"reward": float(u)})
    first.writer.close()  # (what a killed run had written; an unclosed writer may still hold events)
    resumed = TensorBoardLog(tmp_path, {"seed": 0}, resume_from=4)
    for u in (5, 6):
        resumed.training(u, {"reward": 10.0 * u})
    resumed.close()
    assert scalars(tmp_path)["train/reward"] == {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 50.0, 6: 60.0}
