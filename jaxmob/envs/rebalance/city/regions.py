"""Stations to regions: project to a metric plane, grid into square cells, clip.

The grid is axis-aligned on the local equirectangular plane (km east, km north),
so the relocation directions N/S/E/W are compass directions, not Manhattan's
street grid (which is rotated about 29 degrees). A region is a cell with at
least one station; cells without stations are holes with no neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path as _PolyPath

from .core import project_km
from .grid import neighbor_table

# Manhattan island shoreline, (lat, lon), drawn for this project from public map
# coordinates at roughly 200-500 m precision and kept a little off-shore so that
# waterfront stations fall inside. Excludes Roosevelt and Governors islands;
# the Hudson separates it from Jersey City, the East River from Brooklyn/Queens.
MANHATTAN = np.array([
    (40.6995, -74.0205), (40.7090, -74.0215), (40.7200, -74.0150), (40.7330, -74.0135),
    (40.7450, -74.0120), (40.7560, -74.0070), (40.7680, -73.9990), (40.7800, -73.9910),
    (40.7950, -73.9800), (40.8100, -73.9680), (40.8300, -73.9540), (40.8500, -73.9460),
    (40.8700, -73.9320), (40.8790, -73.9260), (40.8760, -73.9090), (40.8680, -73.9100),
    (40.8500, -73.9290), (40.8350, -73.9330), (40.8180, -73.9320), (40.8040, -73.9270),
    (40.7960, -73.9270), (40.7870, -73.9370), (40.7740, -73.9410), (40.7620, -73.9540),
    (40.7510, -73.9650), (40.7420, -73.9700), (40.7300, -73.9705), (40.7200, -73.9715),
    (40.7110, -73.9755), (40.7080, -73.9900), (40.7060, -73.9980), (40.7020, -74.0070),
])

BOROUGHS = {"manhattan": MANHATTAN}


def in_polygon(latlon: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of points (lat, lon) inside a (lat, lon) polygon."""
    return _PolyPath(np.asarray(polygon)[:, ::-1]).contains_points(np.asarray(latlon)[:, ::-1])


@dataclass(frozen=True)
class RegionGrid:
    """Stations assigned to square cells.

    station_region maps station id -> region index for every kept station;
    stations outside the clip polygon are absent (trips touching them leave
    the scenario area)."""

    cells: np.ndarray  # (R, 2) int: (col, row)
    centroid: np.ndarray  # (R, 2) lat, lon of the cell centre
    xy_km: np.ndarray  # (R, 2) cell centre on the projected plane
    station_region: dict  # station id (str) -> region index
    stations_per_region: np.ndarray  # (R,) int
    neighbors: np.ndarray  # (R, 4)
    neighbor_mask: np.ndarray  # (R, 4)
    origin: tuple  # (lat, lon) of the projection origin
    cell_km: float
    grid_shape: tuple  # (cols, rows) of the bounding grid

    @property
    def num_regions(self) -> int:
        return len(self.cells)

    @property
    def region_ids(self) -> tuple:
        return tuple(f"c{c}r{r}" for c, r in self.cells.tolist())


def grid_stations(stations, *, cell_km: float = 1.0, clip: str | np.ndarray | None = None) -> RegionGrid:
    """Grid stations (DataFrame indexed by station id with lat, lon) into square cells.

    The grid origin is the south-west corner of the kept stations' bounding box,
    rounded down to 0.001 degree so that the grid does not shift when a few
    stations change. Regions are ordered by (row, col).
    """
    if cell_km <= 0:
        raise ValueError(f"cell_km must be positive, got {cell_km}")
    latlon = stations[["lat", "lon"]].to_numpy(dtype=np.float64)
    ids = stations.index.astype(str).to_numpy()
    bad = ~np.isfinite(latlon).all(axis=1) | (latlon == 0).any(axis=1)
    if bad.any():
        raise ValueError(f"{bad.sum()} stations have NaN or zero coordinates (e.g. {ids[bad][0]!r}); drop them first")
    if clip is not None:
        poly = BOROUGHS[clip] if isinstance(clip, str) else clip
        inside = in_polygon(latlon, poly)
        latlon, ids = latlon[inside], ids[inside]
    if len(ids) == 0:
        raise ValueError("no stations left to grid (empty table or clip polygon excludes all)")
    origin = (np.floor(latlon[:, 0].min() * 1000) / 1000, np.floor(latlon[:, 1].min() * 1000) / 1000)
    xy = project_km(latlon, np.array(origin))
    cell_of_station = np.floor(xy / cell_km).astype(np.int64)
    cells, inverse, counts = np.unique(cell_of_station[:, ::-1], axis=0, return_inverse=True, return_counts=True)
    cells = cells[:, ::-1]  # back to (col, row), ordered by row then col
    cell_xy = (cells + 0.5) * cell_km
    from .grid import km_to_latlon

    centroid = km_to_latlon(cell_xy, origin=origin)
    nbr, mask = neighbor_table(cells, "square")
    return RegionGrid(
        cells=cells.astype(np.int32), centroid=centroid, xy_km=cell_xy,
        station_region=dict(zip(ids.tolist(), inverse.ravel().tolist())),
        stations_per_region=counts.astype(np.int32), neighbors=nbr, neighbor_mask=mask,
        origin=origin, cell_km=float(cell_km),
        grid_shape=(int(cells[:, 0].max()) + 1, int(cells[:, 1].max()) + 1),
    )
