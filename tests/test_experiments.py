"""The experiment scripts run from a clean checkout (small settings)."""
import importlib.util
import json
from pathlib import Path

import jax
import pytest

REPO = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_greedy_lookahead_sweep_reproduces_the_default_greedy(tmp_path):
    """The 6-step row is the default greedy baseline, evaluated the same way as in every report."""
    from jaxmob.algos.heuristics import greedy, rollout
    from jaxmob.city import load
    from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv

    out = tmp_path / "greedy.json"
    _script("greedy_lookahead").main(["--windows", "2,6", "--out", str(out)])
    rows = {r["lookahead_steps"]: r for r in json.loads(out.read_text())["rows"]}
    scenario = load("manhattan-citibike")
    env = RebalanceEnv(RebalanceConfig(mode="replay"))
    ratios = [float(rollout(greedy, env, env.make_params(scenario.city, days=[scenario.day(d)]),
                            jax.random.PRNGKey(0))["service_ratio"]) for d in scenario.test_days]
    assert rows[6]["service_ratio"] == pytest.approx(sum(ratios) / len(ratios), abs=1e-6)
    assert rows[2]["service_ratio"] != rows[6]["service_ratio"]
