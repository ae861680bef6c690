"""`jaxmob.make`: the README's snippet runs for every env id; ids, options and splits fail by name."""
import re
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxmob

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_snippet() -> str:
    text = README.read_text()
    m = re.search(r"<!-- snippet: make -->\n```python\n(.*?)```", text, re.S)
    assert m, "the README lost its make snippet"
    return m.group(1)


@pytest.mark.parametrize("env_id, options", [("rebalance-v1", ""), ("taxi-v1", ""), ("amod-v1", ""),
                                             ("parking-v1", ", episode_minutes=120")])
def test_the_readme_rollout_runs_for_every_env(env_id, options, capsys):
    code = readme_snippet()
    if env_id != "rebalance-v1":  # the README's own code for rebalance, the same code with each other id
        code = code.replace('"rebalance-v1", scenario="manhattan-106"', f'"{env_id}"{options}')
        assert env_id in code
    exec(compile(code, str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("return ") and "nan" not in printed


def test_ids_are_versioned_and_every_trainable_env_has_one():
    ids = jaxmob.env_ids()  # (a test elsewhere may have registered a plug-in env of its own)
    assert {"amod-v1", "parking-v1", "rebalance-v1", "taxi-v1"} <= set(ids) and "routing-v1" not in ids
    env, params = jaxmob.make("taxi")  # a bare name is the current version
    assert type(env).__name__ == "TaxiEnv"
    with pytest.raises(ValueError, match="this jaxmob has rebalance-v1"):
        jaxmob.make("rebalance-v2")
    with pytest.raises(ValueError, match="unknown environment id 'bikes-v1'; choose from amod-v1"):
        jaxmob.make("bikes-v1")
    with pytest.raises(ValueError, match="online planners"):
        jaxmob.make("routing-v1")


def test_options_and_splits():
    with pytest.raises(TypeError, match="rebalance has no option.* warp; its options: "):
        jaxmob.make("rebalance-v1", warp=2)
    with pytest.raises(ValueError, match="horizon"):
        jaxmob.make("rebalance-v1", horizon=-1)
    with pytest.raises(ValueError, match="split"):
        jaxmob.make("rebalance-v1", split="tomorrow")
    env, days = jaxmob.make("rebalance-v1", split="test")
    from jaxmob.core.registry import get

    assert list(days) == list(get("rebalance").load("manhattan-106").test_days)  # the scenario's test days
    first = next(iter(days.values()))
    obs, state = jax.jit(env.reset)(jax.random.key(0), first)
    assert obs.shape[0] == env.action_spec(first).shape[0]


@pytest.mark.parametrize("num_values", [None, 5])
def test_a_spec_samples_within_its_range(num_values):
    from jaxmob.core.env import Spec

    spec = Spec((1000,), np.int32 if num_values else np.float32, num_values)
    x = np.asarray(spec.sample(jax.random.key(1)))
    assert x.shape == (1000,) and x.dtype == spec.dtype
    if num_values:
        assert set(np.unique(x)) == set(range(5))
    else:
        assert -1 <= x.min() < -0.9 and 0.9 < x.max() <= 1
