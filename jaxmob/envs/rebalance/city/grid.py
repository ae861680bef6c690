"""A synthetic city generator on square and hex grids (the grid geometry is `jaxmob.core.geometry`).

Square cells are (col, row) with rows growing northwards, so the directions
N/S/E/W are exact compass directions on the projected plane. Hex cells use
pointy-top axial coordinates (q, r) with r growing southwards.
"""
from __future__ import annotations

import numpy as np

from ....core.geometry import hex_center_km, km_to_latlon, neighbor_table
from .core import City

def synthetic_city(
    grid: str = "square",
    cols: int = 6,
    rows: int = 6,
    *,
    seed: int = 0,
    cell_km: float = 1.0,
    step_minutes: int = 10,
    trips_per_day: float = 4000.0,
    docks_per_region: tuple[int, int] = (20, 60),
    fill: float = 0.5,
    speed_kmh: float = 12.0,
    name: str | None = None,
) -> City:
    """A deterministic synthetic city with commuting peaks.

    Regions near the centre are a business district: the morning peak (7-10h)
    sends trips from the outskirts into it, the evening peak (16-19h) back out.
    Destinations follow a gravity model (attractiveness / distance^2); travel
    time is Manhattan distance at `speed_kmh`. Docks are uniform in
    `docks_per_region`; each region starts `fill` full.
    """
    rng = np.random.default_rng(seed)
    if grid == "square":
        cc, rr = np.meshgrid(np.arange(cols), np.arange(rows), indexing="xy")
        cells = np.stack([cc.ravel(), rr.ravel()], axis=1)
        xy = cells * cell_km + cell_km / 2.0
    elif grid == "hex":
        qq, rr = np.meshgrid(np.arange(cols), np.arange(rows), indexing="xy")
        # offset rows so the map is roughly rectangular
        q = qq.ravel() - rr.ravel() // 2
        cells = np.stack([q, rr.ravel()], axis=1)
        xy = hex_center_km(cells, cell_km)
    else:
        raise ValueError(f"grid must be 'square' or 'hex', got {grid!r}")
    R = len(cells)
    nbr, mask = neighbor_table(cells, grid)
    centre = xy.mean(axis=0)
    dist_c = np.linalg.norm(xy - centre, axis=1)
    cbd = np.exp(-(dist_c / (0.35 * dist_c.max() + 1e-9)) ** 2)  # 1 at centre, ~0 at edge
    home = 1.0 - 0.7 * cbd
    T = 1440 // step_minutes
    hours = (np.arange(T) + 0.5) * step_minutes / 60.0
    bump = lambda mu, sd: np.exp(-0.5 * ((hours - mu) / sd) ** 2)
    base = 0.15 + 0.85 * np.clip(np.sin(np.pi * (hours - 5.0) / 19.0), 0, None)
    am, pm = bump(8.5, 1.0), bump(17.5, 1.2)
    shape = base[:, None] * (0.5 + 0.5 * rng.uniform(size=R))[None] + 1.5 * am[:, None] * home + 1.5 * pm[:, None] * cbd
    demand_rate = shape / shape.sum() * trips_per_day

    d_km = np.abs(xy[:, None, :] - xy[None, :, :]).sum(-1)
    gravity = 1.0 / (np.maximum(d_km, 0.5 * cell_km) ** 2)
    H = 24
    od = np.empty((H, R, R))
    for h in range(H):
        pull = cbd if 6 <= h < 12 else home if 15 <= h < 20 else np.full(R, 0.3)
        attract = 1.0 + 3.0 * pull
        w = gravity * attract[None, :]
        od[h] = w / w.sum(axis=1, keepdims=True)
    travel_steps = np.maximum(1, np.ceil(d_km / speed_kmh * 60.0 / step_minutes)).astype(np.int32)
    capacity = rng.integers(docks_per_region[0], docks_per_region[1] + 1, size=R)
    init = np.floor(capacity * fill).astype(np.int32)
    feats = np.stack([capacity, cbd, dist_c], axis=1)
    return City.create(
        name=name or f"synthetic-{grid}-{cols}x{rows}",
        centroid=km_to_latlon(xy - centre), xy_km=xy - centre, cell=cells, neighbors=nbr, neighbor_mask=mask,
        travel_steps=travel_steps, demand_rate=demand_rate, od_prob=od, init_inventory=init,
        capacity=capacity, features=feats, feature_names=("docks", "cbd", "dist_centre_km"),
        region_ids=tuple(f"{a},{b}" for a, b in cells.tolist()), grid=grid, grid_shape=(cols, rows),
        cell_km=cell_km, step_minutes=step_minutes,
    )
