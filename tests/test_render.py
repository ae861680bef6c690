"""`jaxmob render`: every environment's episode recorded by one compiled rollout and drawn,
the records checked against the env's own episode metrics, and the shared drawing helpers."""
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from jaxmob.core.film import chosen, classical_mds, clock, running_ratio
from jaxmob.render import film_of, frame_steps, write_animation

REPO = Path(__file__).resolve().parents[1]
ENVS = ("rebalance", "taxi", "amod", "parking", "routing")


@pytest.mark.parametrize("env", ENVS)
def test_each_env_renders_frames_of_its_default_scenario(env, tmp_path):
    film = film_of(env)
    assert film.steps > 1 and all(len(v) == film.steps for v in film.records.values())
    written = write_animation(film, tmp_path / "episode.gif", frames=3, still=tmp_path / "frame.png", still_step=1)
    with Image.open(written["animation"]) as gif:
        assert gif.n_frames == 3 and gif.size[0] > 300
        frames = []
        for i in range(3):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")))
    assert not np.array_equal(frames[0], frames[-1])  # the clock moves, at least
    with Image.open(written["still"]) as png:
        assert png.size == gif.size


def test_records_match_the_episode_metrics():
    """The recorded steps add up to what the env's own metrics say of the same episode."""
    from jaxmob.api import build
    from jaxmob.core.rollout import rollout
    from jaxmob.envs.rebalance.baselines import greedy
    from jaxmob.envs.taxi.baselines import demand_gap

    for env, policy, rule, headline in (("rebalance", greedy, "greedy", "service_ratio"),
                                        ("taxi", demand_gap, "greedy", "order_response_rate")):
        built = build(env)
        day = next(iter(built.test))
        metrics = jax.device_get(rollout(policy, built.eval_env, built.test[day], jax.random.key(0)))
        rec = film_of(env, policy=rule).records
        if env == "rebalance":
            assert rec["served"].sum() == metrics["served"] and rec["demand"].sum() == metrics["demand"]
            assert rec["moved"].sum() == metrics["rebalanced"]
        else:
            assert rec["served"].sum() / rec["orders"].sum() == pytest.approx(float(metrics[headline]), rel=1e-6)
            assert rec["served"].sum() == metrics["served"] and rec["moves"].sum() > 0


def test_frames_are_spread_over_the_episode():
    assert frame_steps(5, None).tolist() == [0, 1, 2, 3, 4]
    assert frame_steps(100, 3).tolist() == [0, 50, 99]
    assert frame_steps(3, 10).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="frames"):
        frame_steps(10, 0)


def test_classical_scaling_recovers_a_plane_layout():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(9, 2))
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    xy = classical_mds(d)
    assert np.allclose(np.linalg.norm(xy[:, None] - xy[None], axis=-1), d, atol=1e-8)


def test_helpers():
    assert clock(19 * 60 + 0.25, seconds=True) == "19:00:15" and clock(24 * 60 + 5) == "00:05"
    assert running_ratio([1, 0, 2], [0, 2, 2]).tolist() == [1.0, 0.5, 0.75]
    assert chosen({"a": 1, "b": 2}, None) == ("a", 1)
    with pytest.raises(ValueError, match="policies: a, b"):
        chosen({"a": 1, "b": 2}, "c")


def test_bad_requests_get_one_line(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "jaxmob", "render", *a], capture_output=True, text=True,
                                    timeout=300, cwd=REPO)  # noqa: E731
    bad = run("--env", "rebalance", "--out", str(tmp_path / "x.avi"))
    assert bad.returncode == 2 and "write a .gif or an .mp4" in bad.stderr
    bad = run("--env", "amod", "--policy", "nope", "--out", str(tmp_path / "x.gif"))
    assert bad.returncode == 2 and "this env's policies: equal_distribution, no_rebalancing" in bad.stderr
    bad = run("--env", "parking", "--day", "nope", "--out", str(tmp_path / "x.gif"))
    assert bad.returncode == 2 and "no evaluation episode 'nope'; test: test-0" in bad.stderr, bad.stderr
