"""Bike-city figures: maps of demand, net flow or any per-region value, and
HAG-PS group assignments drawn on the map (`jaxmob show`, the run report)."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt  # headless machines fall back to Agg; notebooks keep inline
import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.colors import TwoSlopeNorm

from ...core.film import cell_patches
from .city.core import City


def daily_departures(city: City) -> np.ndarray:
    """Expected departures per day and region."""
    return np.asarray(city.demand_rate, dtype=np.float64).sum(0)


def daily_arrivals(city: City) -> np.ndarray:
    """Expected arrivals per day and region: departures routed by the OD probabilities."""
    rate = np.asarray(city.demand_rate, dtype=np.float64)
    od = np.asarray(city.od_prob, dtype=np.float64)
    bucket = np.arange(city.steps_per_day) // city.od_bucket_steps
    return np.einsum("tr,trd->d", rate, od[bucket])


def _cells(city: City, values: np.ndarray, **kw) -> PatchCollection:
    mask = np.asarray(city.region_mask)
    pc = cell_patches(np.asarray(city.xy_km)[mask], city.cell_km, city.grid == "hex", **kw)
    pc.set_array(np.asarray(values)[mask])
    return pc


def region_map(ax, city: City, values, *, title: str, label: str, cmap="viridis", diverging=False):
    """Colour each region by `values` on the projected plane, with a colour bar as legend."""
    values = np.asarray(values, dtype=np.float64)
    norm = None
    if diverging:
        lim = max(np.abs(values).max(), 1e-9)
        norm = TwoSlopeNorm(vmin=-lim, vcenter=0.0, vmax=lim)
    pc = _cells(city, values, cmap=cmap, norm=norm)
    ax.add_collection(pc)
    xy = np.asarray(city.xy_km)[np.asarray(city.region_mask)]
    pad = city.cell_km
    ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
    ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("km east")
    ax.set_ylabel("km north")
    ax.set_title(title)
    plt.colorbar(pc, ax=ax, label=label, shrink=0.8)


def plot_city(city: City, path: Path) -> Path:
    """PNG with two maps: daily demand and net flow (departures minus arrivals)."""
    dep, arr = daily_departures(city), daily_arrivals(city)
    xy = np.asarray(city.xy_km)
    aspect = (np.ptp(xy[:, 1]) + 2) / (np.ptp(xy[:, 0]) + 2)
    fig, axes = plt.subplots(1, 2, figsize=(11, max(4.0, min(11.0, 5.5 * aspect))), constrained_layout=True)
    region_map(axes[0], city, dep, title="Daily demand", label="departures per day", cmap="viridis")
    region_map(axes[1], city, dep - arr, title="Net flow (departures - arrivals)", label="bikes per day",
               cmap="coolwarm", diverging=True)
    fig.suptitle(f"{city.name}: {int(np.sum(city.region_mask))} regions, {dep.sum():,.0f} trips/day, "
                 f"fleet {city.fleet_size:,}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_group_evolution(city: City, snapshots: list[dict], rows: list[dict], path: Path) -> Path:
    """HAG-PS groups: the local-group assignment on the city map at the first,
    middle and last logged update (hatched edges mark global groups), and the
    group counts over training."""
    picks = [snapshots[0], snapshots[len(snapshots) // 2], snapshots[-1]] if len(snapshots) >= 3 else snapshots
    fig, axes = plt.subplots(1, len(picks) + 1, figsize=(4.2 * (len(picks) + 1), 4.6), constrained_layout=True)
    cmap = plt.get_cmap("tab10")
    for ax, snap in zip(axes, picks):
        local = np.asarray(snap["local"])
        pc = _cells(city, local.astype(float), cmap=cmap, norm=matplotlib.colors.Normalize(0, 9))
        pc.set_edgecolor([("black" if g % 2 else "white") for g in np.asarray(snap["global"])[np.asarray(city.region_mask)]])
        ax.add_collection(pc)
        xy = np.asarray(city.xy_km)[np.asarray(city.region_mask)]
        ax.set_xlim(xy[:, 0].min() - city.cell_km, xy[:, 0].max() + city.cell_km)
        ax.set_ylim(xy[:, 1].min() - city.cell_km, xy[:, 1].max() + city.cell_km)
        ax.set_aspect("equal")
        ax.set_title(f"update {snap['update']}: {len(set(local.tolist()))} local, "
                     f"{len(set(np.asarray(snap['global']).tolist()))} global groups")
        ax.set_xlabel("km east")
    ax = axes[-1]
    x = [r["update"] for r in rows]
    for key, label in (("local_groups", "local groups"), ("global_groups", "global groups")):
        if rows and key in rows[0]:
            ax.step(x, [r[key] for r in rows], where="post", label=label)
    if rows and "regroup_period" in rows[0]:
        ax.plot(x, [r["regroup_period"] for r in rows], ":", label="regroup period (updates)")
    ax.set_xlabel("update")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.suptitle(f"HAG-PS groups on {city.name} (colour: local group)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
