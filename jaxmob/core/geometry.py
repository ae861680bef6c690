"""Geometry shared by the environments: distances on the sphere, a local
projection for city-sized areas, and neighbour tables of square and hex grids.

Square cells are (col, row) with rows growing northwards, so N/S/E/W are exact
compass directions on the projected plane. Hex cells use pointy-top axial
coordinates (q, r) with r growing southwards.
"""
from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0088
EARTH_RADIUS_M = 1000.0 * EARTH_RADIUS_KM
SQUARE_DIRECTIONS = ("N", "S", "E", "W")
HEX_DIRECTIONS = ("NE", "E", "SE", "SW", "W", "NW")
SQUARE_OFFSETS = {"N": (0, 1), "S": (0, -1), "E": (1, 0), "W": (-1, 0)}
HEX_OFFSETS = {"NE": (1, -1), "E": (1, 0), "SE": (0, 1), "SW": (-1, 1), "W": (-1, 0), "NW": (0, -1)}


def haversine_m(lat1, lon1, lat2, lon2, radius_m: float = EARTH_RADIUS_M):
    """Great-circle distance in metres (broadcasts)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * radius_m * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def project_km(latlon: np.ndarray, origin: np.ndarray | None = None) -> np.ndarray:
    """Equirectangular projection around `origin` (default: the mean position) to
    (x east, y north) km: accurate to well under 1% over a city-sized area."""
    latlon = np.asarray(latlon, dtype=np.float64)
    if origin is None:
        origin = latlon.mean(axis=0)
    lat0 = np.deg2rad(origin[0])
    x = np.deg2rad(latlon[:, 1] - origin[1]) * EARTH_RADIUS_KM * np.cos(lat0)
    y = np.deg2rad(latlon[:, 0] - origin[0]) * EARTH_RADIUS_KM
    return np.stack([x, y], axis=1)


def km_to_latlon(xy_km: np.ndarray, origin=(40.75, -73.98)) -> np.ndarray:
    """Inverse of `project_km` (for cities laid out in km, such as synthetic ones)."""
    lat0 = np.deg2rad(origin[0])
    lat = origin[0] + np.rad2deg(xy_km[:, 1] / EARTH_RADIUS_KM)
    lon = origin[1] + np.rad2deg(xy_km[:, 0] / (EARTH_RADIUS_KM * np.cos(lat0)))
    return np.stack([lat, lon], axis=1)


def neighbor_table(cells: np.ndarray, grid: str = "square") -> tuple[np.ndarray, np.ndarray]:
    """Neighbour index and mask `(R, K)` for integer cells `(R, 2)`.

    A neighbour exists when the adjacent cell is itself a region (cells without
    stations are holes). Missing neighbours point at the region itself, masked.
    """
    directions, offsets = (SQUARE_DIRECTIONS, SQUARE_OFFSETS) if grid == "square" else (HEX_DIRECTIONS, HEX_OFFSETS)
    cells = np.asarray(cells, dtype=np.int64)
    index = {tuple(c): i for i, c in enumerate(cells.tolist())}
    R, K = len(cells), len(directions)
    nbr = np.tile(np.arange(R, dtype=np.int32)[:, None], (1, K))
    mask = np.zeros((R, K), dtype=bool)
    for i, (a, b) in enumerate(cells.tolist()):
        for k, d in enumerate(directions):
            da, db = offsets[d]
            j = index.get((a + da, b + db))
            if j is not None:
                nbr[i, k], mask[i, k] = j, True
    return nbr, mask


def hex_center_km(cells: np.ndarray, size_km: float) -> np.ndarray:
    """Centre (x east, y north) in km of pointy-top axial hex cells whose
    flat-to-flat width is `size_km` (so neighbouring centres are `size_km` apart)."""
    q, r = np.asarray(cells, dtype=np.float64).T
    x = size_km * (q + r / 2.0)
    y = -size_km * (np.sqrt(3.0) / 2.0) * r
    return np.stack([x, y], axis=1)
