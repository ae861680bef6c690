"""A city's street network as a directed graph of intersections.

`read_osm` reads an OpenStreetMap XML extract with pyosmium (libosmium's
parser), keeps the drivable ways of the chosen road classes, and cuts them at
intersections: a vertex is a way end or a node shared by several ways (or
visited twice by one), an edge the stretch of way between two vertices, its
length the sum of the great-circle lengths of its pieces. One-way rules are
OSM's: `oneway=yes|true|1` forward, `-1|reverse` backward, roundabouts and
motorways one-way unless tagged `oneway=no`. Only the largest strongly
connected component is kept, so every intersection can reach every other.

`StreetGraph` carries the vertices and edges (what is bundled) and derives the
all-pairs shortest paths on load (scipy.sparse.csgraph): distances in edges
(the simulator moves a taxi one edge a step) and in metres, and the next hop
of a shortest path in edges, ties broken by metres.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

from ...core.errors import LoaderError
from ...core.geometry import haversine_m

BUNDLED_DIR = Path(__file__).with_name("scenarios")
# road levels 1-5 of the map's stats file: motorway, trunk, primary, secondary, tertiary (and links)
DEFAULT_ROAD_CLASSES = ("motorway", "trunk", "primary", "secondary", "tertiary")
OSM_CREDIT = "© OpenStreetMap contributors, Open Database Licence (ODbL) 1.0"


@dataclass(frozen=True, eq=False)
class StreetGraph:
    """Intersections (`lat`, `lon`, `osm_id`) and directed road segments
    (`src` -> `dst`, `metres`); strongly connected by construction."""

    name: str
    source: str
    lat: np.ndarray  # (N,) float64
    lon: np.ndarray
    osm_id: np.ndarray  # (N,) int64
    src: np.ndarray  # (E,) int32
    dst: np.ndarray
    metres: np.ndarray  # (E,) float64
    bounds: tuple = field(default=())  # (min_lat, min_lon, max_lat, max_lon) of the extract

    @property
    def num_nodes(self) -> int:
        return len(self.lat)

    @property
    def num_edges(self) -> int:
        return len(self.src)

    def _matrix(self, weights) -> csr_matrix:
        n = self.num_nodes
        return csr_matrix((weights, (self.src, self.dst)), shape=(n, n))

    @cached_property
    def hops(self) -> np.ndarray:
        """(N, N) int32 shortest-path distance in edges (row: from)."""
        d = shortest_path(self._matrix(np.ones(self.num_edges)), method="D", unweighted=True)
        return d.astype(np.int32)

    @cached_property
    def dist_m(self) -> np.ndarray:
        """(N, N) float32 shortest-path distance in metres."""
        return shortest_path(self._matrix(self.metres), method="D").astype(np.float32)

    @cached_property
    def next_hop(self) -> np.ndarray:
        """(N, N) int32: the vertex after `i` on a fewest-edges path from i to j (j itself
        when i == j). Among the out-neighbours k of i with hops[k, j] == hops[i, j] - 1 the
        one with the shortest metres[i, k] + dist_m[k, j] is taken."""
        n, hops, dm = self.num_nodes, self.hops, self.dist_m
        best = np.arange(n, dtype=np.int32)[None, :].repeat(n, 0)
        score = np.full((n, n), np.inf)
        for s, d, m in zip(self.src, self.dst, self.metres):
            ok = (hops[d] == hops[s] - 1) & (m + dm[d] < score[s])
            best[s, ok] = d
            score[s, ok] = m + dm[d][ok]
        return best

    @cached_property
    def neighbours(self) -> np.ndarray:
        """(N, K) int32 padded out-neighbours, column 0 the vertex itself (staying), pads
        repeat the vertex (K - 1 = the largest out-degree)."""
        n = self.num_nodes
        out = [[i] for i in range(n)]
        for s, d in zip(self.src, self.dst):
            if d not in out[s]:
                out[s].append(int(d))
        k = max(len(o) for o in out)
        return np.array([o + [o[0]] * (k - len(o)) for o in out], np.int32)

    def nearest_node(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        """(index of the nearest intersection, its distance in metres) for each point."""
        from scipy.spatial import cKDTree

        lat, lon = np.atleast_1d(lat).astype(float), np.atleast_1d(lon).astype(float)
        # candidates by a k-d tree on a local flat projection (memory linear in the points, so a
        # file of 10^5-10^6 requests snaps in seconds), the winner by great-circle distance
        scale = np.cos(np.radians(self.lat.mean()))
        k = min(8, self.num_nodes)
        tree = cKDTree(np.stack([self.lat, self.lon * scale], 1))
        _, cand = tree.query(np.stack([lat, lon * scale], 1), k=k)
        cand = cand.reshape(len(lat), k)
        d = haversine_m(lat[:, None], lon[:, None], self.lat[cand], self.lon[cand])
        best = np.argmin(d, axis=1)
        rows = np.arange(len(lat))
        return cand[rows, best].astype(np.int32), d[rows, best]

    def __str__(self) -> str:
        return (f"{self.name}: {self.num_nodes} intersections, {self.num_edges} road segments "
                f"(median {np.median(self.metres):.0f} m), diameter {self.hops.max()} edges; {self.source}")

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, name=self.name, source=self.source, lat=self.lat, lon=self.lon,
                            osm_id=self.osm_id, src=self.src, dst=self.dst, metres=self.metres,
                            bounds=np.asarray(self.bounds, float))
        return path


def load_graph(path: Path) -> StreetGraph:
    """A graph written by `StreetGraph.save`."""
    with np.load(path) as z:
        return StreetGraph(name=str(z["name"]), source=str(z["source"]), lat=z["lat"], lon=z["lon"],
                           osm_id=z["osm_id"], src=z["src"].astype(np.int32), dst=z["dst"].astype(np.int32),
                           metres=z["metres"], bounds=tuple(float(b) for b in z["bounds"]))


@cache
def bundled_graph(name: str = "sf_north") -> StreetGraph:
    path = BUNDLED_DIR / f"{name}.npz"
    if not path.is_file():
        known = sorted(p.stem for p in BUNDLED_DIR.glob("*.npz"))
        raise ValueError(f"unknown street graph {name!r}; bundled: {', '.join(known)}")
    return load_graph(path)


def _oneway(tags, highway: str) -> int:
    """+1 forward only, -1 backward only, 0 both ways."""
    value = (tags.get("oneway") or "").lower()
    if value in ("yes", "true", "1"):
        return 1
    if value in ("-1", "reverse"):
        return -1
    if value == "no":
        return 0
    if tags.get("junction") == "roundabout" or highway in ("motorway", "motorway_link"):
        return 1
    return 0


def _read_elements(path: Path, classes: set):
    import osmium

    nodes: dict = {}
    ways: list = []
    bounds: list = []

    class Reader(osmium.SimpleHandler):
        def node(self, n):
            if n.location.valid():
                nodes[n.id] = (n.location.lat, n.location.lon)

        def way(self, w):
            highway = w.tags.get("highway")
            if highway is None or highway.removesuffix("_link") not in classes:
                return
            ways.append(([r.ref for r in w.nodes], _oneway(w.tags, highway)))

    try:
        reader = osmium.io.Reader(str(path))
        box = reader.header().box()
        if box.valid():
            bounds[:] = [box.bottom_left.lat, box.bottom_left.lon, box.top_right.lat, box.top_right.lon]
        reader.close()
        Reader().apply_file(str(path))
    except osmium.InvalidLocationError as e:  # a coordinate out of range or not a number
        raise LoaderError(f"{path}: a node has an invalid location ({e})") from None
    except RuntimeError as e:
        raise LoaderError(f"{path}: not a readable OSM XML file ({e})") from None
    return nodes, ways, tuple(bounds)


def read_osm(path, name: str | None = None, road_classes=DEFAULT_ROAD_CLASSES) -> StreetGraph:
    """The largest strongly connected street graph of an OSM XML file (see module doc).
    LoaderError names the problem for a missing, empty, truncated or non-OSM file."""
    path = Path(path)
    if not path.is_file():
        raise LoaderError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise LoaderError(f"{path}: empty file")
    nodes, ways, bounds = _read_elements(path, set(road_classes))
    if not nodes:
        raise LoaderError(f"{path}: no OSM <node> elements (is it an OSM XML extract?)")
    if not ways:
        raise LoaderError(f"{path}: no ways of the road classes {', '.join(road_classes)}")
    missing = {r for refs, _ in ways for r in refs if r not in nodes}
    if missing:
        raise LoaderError(f"{path}: {len(missing)} way node(s) have no <node> element "
                          f"(e.g. {sorted(missing)[:3]}); is the extract truncated?")
    uses: dict = {}
    for refs, _ in ways:
        for r in refs:
            uses[r] = uses.get(r, 0) + 1
        for r in (refs[0], refs[-1]):
            uses[r] = uses.get(r, 0) + 1
    vertex_ids = sorted(r for r, c in uses.items() if c >= 2)
    index = {r: i for i, r in enumerate(vertex_ids)}
    lat = np.array([nodes[r][0] for r in vertex_ids])
    lon = np.array([nodes[r][1] for r in vertex_ids])
    edges: dict = {}
    for refs, oneway in ways:
        start, length = refs[0], 0.0
        for a, b in zip(refs[:-1], refs[1:]):
            length += float(haversine_m(nodes[a][0], nodes[a][1], nodes[b][0], nodes[b][1]))
            if b in index and b != start:
                pairs = [(index[start], index[b])] if oneway >= 0 else []
                pairs += [(index[b], index[start])] if oneway <= 0 else []
                for key in pairs:  # parallel segments: the shorter one
                    edges[key] = min(edges.get(key, np.inf), length)
                start, length = b, 0.0
            elif b in index:
                start, length = b, 0.0
    src, dst = (np.array(x, np.int64) for x in zip(*edges)) if edges else (np.zeros(0, np.int64),) * 2
    metres = np.array(list(edges.values()))
    n = len(vertex_ids)
    _, label = connected_components(csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n)), connection="strong")
    keep = label == np.bincount(label).argmax()
    new = np.cumsum(keep) - 1
    inside = keep[src] & keep[dst]
    return StreetGraph(name=name or path.stem, source=f"{path.name}: road classes {', '.join(road_classes)} "
                       f"(and links), largest strongly connected component of {n} intersections; {OSM_CREDIT}",
                       lat=lat[keep], lon=lon[keep], osm_id=np.array(vertex_ids, np.int64)[keep],
                       src=new[src[inside]].astype(np.int32), dst=new[dst[inside]].astype(np.int32),
                       metres=metres[inside], bounds=bounds)


RAW_FILE = ("sf-streets", "SanFranciscoFiltered.osm")


def write_bundled(data_dir: Path, out_dir: Path = BUNDLED_DIR) -> Path:
    """Rebuild the bundled San Francisco graph from the raw OSM extract in `data_dir`."""
    graph = read_osm(Path(data_dir).joinpath(*RAW_FILE), name="sf_north")
    return graph.save(Path(out_dir) / "sf_north.npz")
