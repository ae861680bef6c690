"""What `jaxmob render` needs from an environment: one recorded episode and how to draw it.

An environment's `Task.film` runs one evaluation episode as a single compiled rollout that
records, per step, the few arrays its picture needs (`record_episode`), and returns a `Film`:
the records, already on the host, and `draw(fig) -> show(t)`, which lays out the scenario's
map once and returns the function that puts step t on it. The generic side (`jaxmob.render`)
picks the steps, animates and writes the file, so no environment writes files and no frame
steps the simulator from Python. The helpers below are the pieces several maps share.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Film:
    """One episode's frames: `steps` recorded steps, `draw(fig)` lays out the map and returns
    `show(t)` (t in 0 .. steps - 1) drawing step t; `title` names the env, scenario, day and policy;
    `records` the recorded arrays (leading axis: step); `fps` the pace that suits its steps (a few
    long decisions play slower than a day of minutes)."""

    title: str
    steps: int
    draw: Callable
    records: dict
    fps: float = 8.0


def chosen(policies: dict, policy) -> tuple:
    """(label, policy) of `policy`: a name among the env's `policies` (None: the first), or a
    learned policy (a callable)."""
    if callable(policy):
        return "learned policy", policy
    name = next(iter(policies)) if policy is None else policy
    if name not in policies:
        raise ValueError(f"unknown policy {policy!r}; this env's policies: {', '.join(policies)}")
    return name, policies[name]


def record_episode(policy, env, params, key, record: Callable) -> dict:
    """`record(state, action, info)` of every step of one episode of `policy`, stacked over the
    steps by one compiled `lax.scan` (`rollout.run_episode`), as NumPy arrays."""
    import jax

    from .rollout import run_episode

    run = jax.jit(lambda p, k: run_episode(policy, env, p, k, record=record)[1])
    return jax.tree.map(np.asarray, jax.device_get(run(params, key)))


def running_ratio(numerator, denominator) -> np.ndarray:
    """Cumulative numerator / cumulative denominator per step (1 before anything is asked)."""
    num, den = np.cumsum(np.asarray(numerator, float)), np.cumsum(np.asarray(denominator, float))
    return np.where(den > 0, num / np.maximum(den, 1e-12), 1.0)


def clock(minute_of_day: float, seconds: bool = False) -> str:
    """'HH:MM' (or 'HH:MM:SS') of a minute of the day (wrapping at midnight)."""
    s = int(round(60 * minute_of_day)) % (24 * 3600)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}" + (f":{s % 60:02d}" if seconds else "")


def flow_arrows(ax, xy: np.ndarray, src: np.ndarray, dst: np.ndarray, *, vmax: float, cmap: str = "Oranges",
                shrink: float = 0.8):
    """Arrows over the candidate moves `src[i] -> dst[i]` between points `xy`, drawn only where a
    step moves something; returns `update(amount)` (amount per candidate), coloured by amount."""
    src, dst = np.asarray(src), np.asarray(dst)
    start = xy[src] + (1 - shrink) / 2 * (xy[dst] - xy[src])
    delta = shrink * (xy[dst] - xy[src])
    arrows = ax.quiver(start[:, 0], start[:, 1], np.zeros(len(src)), np.zeros(len(src)), np.zeros(len(src)),
                       angles="xy", scale_units="xy", scale=1, cmap=cmap, clim=(0, max(vmax, 1e-9)),
                       width=0.006, minlength=0, minshaft=0, headwidth=4, headlength=4, zorder=4)

    def update(amount) -> None:
        amount = np.asarray(amount, float)
        off = amount <= 0  # masked arrows are not drawn at all
        arrows.set_UVC(np.ma.array(delta[:, 0], mask=off), np.ma.array(delta[:, 1], mask=off),
                       np.ma.array(0.35 * vmax + amount, mask=off))

    return update


def cell_patches(xy: np.ndarray, size_km: float, hexagonal: bool, **kw):
    """A `PatchCollection` of grid cells centred at `xy` (km): pointy-top hexagons `size_km` flat
    to flat, or squares of side `size_km`; colour them with `set_array`."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import RegularPolygon, Rectangle

    s = size_km
    if hexagonal:
        patches = [RegularPolygon((x, y), 6, radius=s / np.sqrt(3), orientation=0.0) for x, y in xy]
    else:
        patches = [Rectangle((x - s / 2, y - s / 2), s, s) for x, y in xy]
    return PatchCollection(patches, edgecolor="white", linewidth=0.4, **kw)


def frame_axes(ax, xy: np.ndarray, pad: float, unit: str = "km") -> None:
    """Fit the axes to points `xy` with a margin, equal aspect, labelled east and north."""
    ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
    ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{unit} east")
    ax.set_ylabel(f"{unit} north")


def classical_mds(distance: np.ndarray) -> np.ndarray:
    """(n, 2) positions whose distances best match a symmetric `distance` matrix (Torgerson's
    classical scaling): a layout for regions known only by their travel times."""
    d = np.asarray(distance, float)
    d = 0.5 * (d + d.T)
    n = len(d)
    centre = np.eye(n) - np.ones((n, n)) / n
    b = -0.5 * centre @ (d ** 2) @ centre
    values, vectors = np.linalg.eigh(b)
    top = np.argsort(values)[::-1][:2]
    return vectors[:, top] * np.sqrt(np.maximum(values[top], 0.0))


def marker_legend(ax, labels: dict, **kw) -> None:
    """A legend of marker styles ({label: dict of `Line2D` marker settings}) for scatters whose
    sizes change from frame to frame (their own handles may be empty at the first frame)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="none", **style) for style in labels.values()]
    ax.legend(handles, list(labels), loc="upper left", fontsize=7, **kw)
