"""`jaxmob render`: one evaluation episode as an animation on the scenario's own map.

The environment records the episode in one compiled rollout and says how to draw a step
(`Task.film`, `jaxmob.core.film`); this module chooses the policy (one of the env's own rules,
or a trained run's checkpoint, argmax or sampled), picks the frames and writes the file: a GIF
(Pillow, always there) or an MP4 (where matplotlib finds ffmpeg), and a PNG of one frame.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

FIGSIZE = (8.0, 6.4)
DPI = 80


def film_of(env: str | None = None, *, scenario: str | None = None, day: str | None = None, policy: str | None = None,
            run=None, checkpoint: str = "best", sample: bool = False, seed: int = 0):
    """The `Film` of one evaluation episode (`day`, default the first test one) of `env` on
    `scenario` (default its bundled default) under one of the env's own policies (`policy`, default
    its first), or under the checkpoint of training run folder `run` (its own env and scenario)."""
    from .core.registry import get

    if run is not None:
        from .report import load_run
        from .train import learned_policy

        if policy is not None:
            raise ValueError("give a run or a policy, not both")
        config, parts, runner, _ = load_run(run, checkpoint, env)
        if scenario is not None and scenario != config.scenario:
            raise ValueError(f"{run} was trained on scenario {config.scenario}, not {scenario}")
        task, built = config.task, parts["built"]
        policy = learned_policy(parts["policy"], runner.params, runner.groups, sample=sample)
    elif env is None:
        raise ValueError("name an environment (--env) or a training run (--run)")
    else:
        from .api import config_for

        task = get(env)
        config = config_for(env, scenario) if task.film is not None and task.build is not None else None
        built = None if config is None else task.build(config, task.load(config.scenario))
    if task.film is None:
        raise ValueError(f"env {task.name} draws no episodes")
    return task.film(built, config, day, policy, seed, scenario)  # (an env of planners: built=None, config=None)


def frame_steps(steps: int, frames: int | None) -> np.ndarray:
    """The recorded steps drawn: all of them, or `frames` spread evenly from the first to the last."""
    if frames is None or frames >= steps:
        return np.arange(steps)
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    return np.unique(np.linspace(0, steps - 1, frames).round().astype(int))


def check_output(out) -> Path:
    """`out` if this machine can write it (a .gif, or an .mp4 where matplotlib finds ffmpeg)."""
    from matplotlib import animation

    out = Path(out)
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise ValueError(f"{out}: write a .gif or an .mp4")
    if out.suffix.lower() == ".mp4" and not animation.writers.is_available("ffmpeg"):
        raise ValueError(f"{out}: MP4 needs ffmpeg, which matplotlib does not find here; write a .gif instead")
    return out


def write_animation(film, out, *, frames: int | None = 120, fps: float | None = None, still: str | None = None,
                    still_step: int | None = None) -> dict:
    """Write `film` to `out` (.gif, or .mp4 where ffmpeg is available), drawing `frames` of its
    steps (default at most 120, spread over the episode) at `fps` (default the film's); with
    `still`, also a PNG of step `still_step` (default the middle of the episode). Returns what
    was written."""
    import matplotlib.pyplot as plt
    from matplotlib import animation

    out = check_output(out)
    fps = film.fps if fps is None else fps
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    steps = frame_steps(film.steps, frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    try:
        show = film.draw(fig)
        show(int(steps[-1]))
        fig.canvas.draw()  # the layout once (the last step's labels are the widest), then fixed:
        fig.set_layout_engine("none")  # each frame is drawn once, by the writer
        writer = animation.PillowWriter(fps=fps) if out.suffix.lower() == ".gif" else animation.FFMpegWriter(fps=fps)
        with writer.saving(fig, out, DPI):
            for t in steps:
                show(int(t))
                writer.grab_frame()
        written = {"animation": str(out), "frames": len(steps), "steps": film.steps}
        if still is not None:
            t = film.steps // 2 if still_step is None else int(still_step)
            if not 0 <= t < film.steps:
                raise ValueError(f"still step {t} is outside the episode's 0..{film.steps - 1}")
            show(t)
            Path(still).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(still, dpi=DPI)
            written["still"] = str(still)
    finally:
        plt.close(fig)
    return written
