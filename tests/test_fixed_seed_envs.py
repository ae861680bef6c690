"""The numbers did not move: fixed-seed runs of one algorithm per environment reproduce
those recorded with the code before the layered refactor (commit d1b3464, issue 24).

`tests/data/fixed_seed_envs.py` is the recorder (it runs on both versions); the
rebalance env's own fixed-seed check (three algorithms) is in `test_env_plugin.py`.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
from fixed_seed_envs import RUNS, routing, run  # noqa: E402

FIXED = json.loads((DATA / "fixed_seed_envs.json").read_text())


@pytest.mark.parametrize("env", sorted(RUNS))
def test_training_numbers_are_those_before_the_refactor(env):
    got, want = run(RUNS[env]), FIXED[env]
    assert len(got["train"]) == len(want["train"])
    for g, w in zip(got["train"], want["train"]):
        for k, v in w.items():
            np.testing.assert_allclose(g[k], v, rtol=1e-5, atol=1e-6, err_msg=f"{env}: {k}")
    for k in ("validation", "test", "test_sampled", "param_abs"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, err_msg=f"{env}: {k}")


def test_routing_planners_give_the_same_episodes():
    got = routing()
    for policy, episodes in FIXED["routing"].items():
        assert got[policy] == episodes, policy
