"""`jaxmob train` then `jaxmob eval --run` for every trainable environment but bikes (those:
`test_eval_run.py`), through the real entry point (see `test_cli.py`).

The training runs are the fixed-seed runs recorded with the code before the layered refactor
(commit d1b3464; recorder `tests/data/fixed_seed_envs.py`), so the same runs also show that the
numbers did not move: training metrics, validation and test scores, argmax and sampled.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from test_cli import jaxmob

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
from fixed_seed_envs import RUNS, routing  # noqa: E402

FIXED = json.loads((DATA / "fixed_seed_envs.json").read_text())


def flags(values: dict) -> list:
    """`TrainConfig` values as `jaxmob train` flags."""
    out = []
    for k, v in values.items():
        out += [f"--{k.replace('_', '-')}", ",".join(map(str, v)) if isinstance(v, tuple) else str(v)]
    return out


@pytest.mark.parametrize("env", sorted(RUNS))
def test_train_then_eval_a_run_of_every_environment_and_the_numbers_did_not_move(env, tmp_path):
    run = tmp_path / f"{env}-run"
    proc = jaxmob("train", *flags(RUNS[env]), "--no-progress", "--out-dir", run, "--no-bound")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "report.json").exists() and "-- mean over" in proc.stdout

    want = FIXED[env]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) == len(want["train"])
    for got, exp in zip(rows, want["train"]):
        for k, v in exp.items():
            np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6, err_msg=f"{env}: {k}")
    summary = json.loads((run / "summary.json").read_text())
    headline = want["headline"]
    np.testing.assert_allclose(summary["final_eval"][headline], want["validation"], rtol=1e-5)
    np.testing.assert_allclose(summary["test"][headline], want["test"], rtol=1e-5)
    np.testing.assert_allclose(summary["test"]["sampled"]["mean"][headline]["mean"], want["test_sampled"], rtol=1e-5)

    if env != "parking":  # (parking's run is evaluated on a user's file below)
        named = ["--env", env] if env == "amod" else []  # without --env, it is read from the run
        proc = jaxmob("eval", "--run", run, "--no-bound", "--episodes", "2", *named)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "(argmax)" in proc.stdout and "(sampled, 2 episodes)" in proc.stdout and "-- mean over" in proc.stdout
    if env == "taxi":
        proc = jaxmob("eval", "--run", run, "--env", "amod")
        assert proc.returncode == 2 and "trained on env taxi, not amod" in proc.stderr
    if env == "parking":  # the days of a user's event file, its bad rows counted
        from jaxmob.envs.parking.events import COLUMNS
        from jaxmob.envs.parking.scenario import load

        marker = load("melbourne").bay_marker[0]
        rows = [",".join(COLUMNS)] + [
            f"1234,09/01/2017 {t},09/01/2017 {u},3600,{m},2P MTR M-SAT 7:30-18:30,CBD,123,COLLINS STREET,"
            f"SWANSTON STREET,RUSSELL STREET,1,False,True" for t, u, m in
            (("08:05:30 AM", "09:05:30 AM", marker), ("10:00:00 AM", "11:00:00 AM", "NOPE1"))]
        events = tmp_path / "events.csv"
        events.write_text("\n".join(rows) + "\n")
        proc = jaxmob("eval", "--env", "parking", "--run", run, "--events", events, "--no-bound", "--episodes", "2")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "-- day 2017-09-01" in proc.stdout and "street marker not a bay of the scenario" in proc.stdout
        assert "(argmax)" in proc.stdout and "(sampled, 2 episodes)" in proc.stdout


def test_routing_planners_give_the_same_episodes_as_before_the_refactor():
    got = routing()
    for policy, episodes in FIXED["routing"].items():  # (each episode's name was added since)
        assert [{k: v for k, v in e.items() if k != "episode"} for e in got[policy]] == episodes, policy
