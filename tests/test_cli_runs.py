"""`jaxmob train` then `jaxmob eval --run` for every trainable environment, through the real
entry point (see `test_cli.py`)."""
import pytest

from test_cli import COMMON, TINY, jaxmob


@pytest.mark.parametrize("env", sorted(set(TINY) - {"rebalance"}))
def test_train_then_eval_a_run_of_every_environment(env, tmp_path):
    run = tmp_path / f"{env}-run"
    proc = jaxmob("train", "--env", env, *TINY[env].split(), *COMMON.split(), "--out-dir", run, "--no-bound")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "checkpoint of update 1" in proc.stdout and (run / "report.json").exists()
    named = ["--env", env] if env in ("amod", "parking") else []  # without --env, it is read from the run
    proc = jaxmob("eval", "--run", run, "--no-bound", "--episodes", "2", *named)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(argmax)" in proc.stdout and "(sampled, 2 episodes)" in proc.stdout and "-- mean over" in proc.stdout
    if env == "taxi":
        proc = jaxmob("eval", "--run", run, "--env", "amod")
        assert proc.returncode == 2 and "trained on env taxi, not amod" in proc.stderr
