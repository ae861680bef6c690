"""Request-level routing: the street graph, the step against NumPy, conservation, demand files, fleet bounds."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmob.core.errors import LoaderError
from jaxmob.envs.routing import env as E
from jaxmob.envs.routing.demand import demand_from_csv, hotspot_demand
from jaxmob.envs.routing.graph import bundled_graph, read_osm
from jaxmob.envs.routing.policies import ARRIVAL_SLOTS, ia, ia_ra
from jaxmob.envs.routing.reference import reference_step
from jaxmob.envs.routing.theory import fleet_thresholds, wasserstein1

GRAPH = bundled_graph()
DEMAND = hotspot_demand(GRAPH)
PARAMS = E.params_from(GRAPH, DEMAND)
jit_step = jax.jit(E.step)


def random_state(rng, m=6, q=8, hot=4):
    """Taxis and requests crowded on `hot` intersections, so pick-ups compete."""
    nodes = rng.choice(GRAPH.num_nodes, hot, replace=False)
    carrying = rng.random(m) < 0.4
    live = rng.random(q) < 0.6
    return E.RoutingState(
        node=jnp.asarray(rng.choice(nodes, m), jnp.int32), carrying=jnp.asarray(carrying),
        dest=jnp.asarray(rng.choice(nodes, m), jnp.int32), assigned=jnp.asarray(np.where(rng.random(m) < 0.5, rng.integers(0, q, m), -1), jnp.int32),
        present=jnp.asarray(rng.random(m) < 0.9), req_pick=jnp.asarray(rng.choice(nodes, q), jnp.int32),
        req_drop=jnp.asarray(rng.choice(nodes, q), jnp.int32), req_time=jnp.asarray(rng.integers(0, 3, q), jnp.int32),
        req_live=jnp.asarray(live), t=jnp.int32(3), arrived=jnp.int32(int(live.sum() + carrying.sum() + 5)),
        turned_away=jnp.int32(0), delivered=jnp.int32(5), wait=jnp.int32(0)), nodes


def as_numpy(tree) -> dict:
    return {k: np.asarray(v) for k, v in vars(jax.device_get(tree)).items()}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_step_matches_the_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    state, nodes = random_state(rng)
    m = state.node.shape[0]
    targets = jnp.asarray(np.where(rng.random(m) < 0.5, rng.choice(nodes, m), rng.integers(0, GRAPH.num_nodes, m)), jnp.int32)
    assigned = jnp.asarray(np.where(rng.random(m) < 0.5, rng.integers(0, 8, m), -1), jnp.int32)
    arrivals = E.Arrivals(count=jnp.int32(rng.integers(0, 9)), pick=jnp.asarray(rng.choice(nodes, 6), jnp.int32),
                          drop=jnp.asarray(rng.choice(nodes, 6), jnp.int32))
    new, cost = jit_step(state, targets, assigned, arrivals, PARAMS)
    want, want_cost = reference_step(as_numpy(state), np.asarray(targets), np.asarray(assigned), as_numpy(arrivals), GRAPH.next_hop)
    assert int(cost) == want_cost
    for k, v in as_numpy(new).items():
        np.testing.assert_array_equal(v, want[k], err_msg=k)


CONSERVATION_PARAMS = PARAMS.replace(rate=jnp.float32(1.5))  # a small queue overflows: turned-away requests are counted


def _random_targets(s, params):
    return jax.random.randint(jax.random.key(s.t), s.node.shape, 0, GRAPH.num_nodes), jnp.full(s.node.shape, -1)


@functools.cache
def episode(policy: str):
    """jit(key, state -> (trace of states, costs)): 60 steps of `policy`, compiled once per policy."""
    decide = {"ia": ia, "ia_ra": ia_ra, "random": _random_targets}[policy]

    def go(s, key):
        t, a = decide(s, CONSERVATION_PARAMS)
        new, cost = E.step(s, t, a, E.sample_arrivals(key, CONSERVATION_PARAMS, ARRIVAL_SLOTS), CONSERVATION_PARAMS)
        return new, (new, cost)

    return jax.jit(lambda k, state: jax.lax.scan(go, state, jax.random.split(k, 60))[1])


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["ia", "ia_ra", "random"]))
def test_taxis_and_requests_are_conserved(seed, policy):
    """Every arrived request is waiting, riding or delivered; taxis only move along edges."""
    rng = np.random.default_rng(seed)
    state = E.initial_state(rng.integers(0, GRAPH.num_nodes, 8), queue=6, fleet=7)
    trace, costs = episode(policy)(jax.random.key(seed), state)
    trace = jax.device_get(trace)
    assert np.all([bool(E.conserved(jax.tree.map(lambda x: x[i], trace))) for i in range(60)])
    nodes = np.concatenate([np.asarray(state.node)[None], trace.node])
    nb = GRAPH.neighbours
    assert all(nodes[i + 1, j] in nb[nodes[i, j]] for i in range(60) for j in range(8))
    assert np.all(nodes[:, 7] == nodes[0, 7])  # the padding taxi never moves
    entering = np.diff(np.concatenate([[0], trace.arrived]))
    np.testing.assert_array_equal(costs, trace.req_live.sum(1) - entering)  # the cost is who waited through the step
    assert int(trace.wait[-1]) == int(costs.sum())
    assert int(trace.turned_away[-1]) > 0


def test_the_bundled_graph_is_strongly_connected_with_consistent_paths():
    n = GRAPH.num_nodes
    assert n > 1000 and GRAPH.num_edges > 1800
    assert np.all(GRAPH.hops >= 0) and np.all(GRAPH.hops[~np.eye(n, dtype=bool)] >= 1)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, 500), rng.integers(0, n, 500)
    hop = GRAPH.next_hop[i, j]
    off = i != j
    np.testing.assert_array_equal(GRAPH.hops[hop[off], j[off]], GRAPH.hops[i[off], j[off]] - 1)
    assert np.all(np.isin(hop, GRAPH.neighbours[i]) | ~off)
    edge = set(zip(GRAPH.src.tolist(), GRAPH.dst.tolist()))
    assert all((a, b) in edge for a, b in zip(i[off], hop[off]))
    assert "OpenStreetMap contributors" in GRAPH.source


def test_the_bundled_graph_is_rebuilt_from_the_osm_file(shared_data):
    """The bundled graph is what `read_osm` makes of the shared file (and that file's stats agree)."""
    built = read_osm(shared_data / "sf-streets" / "SanFranciscoFiltered.osm", name="sf_north")
    for f in ("lat", "lon", "osm_id", "src", "dst", "metres"):
        np.testing.assert_array_equal(getattr(built, f), getattr(GRAPH, f), err_msg=f)
    assert "1284 intersections" in built.source  # the stats file counts 1,289 before pruning


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("<?xml version='1.0'?>\n<osm version='0.6'>\n<node id='1' lat='37.8' lon='-122.4'/>\n<way id='5'>", "not a readable OSM"),
    ("time,lat\n1,2\n", "not a readable OSM"),
    ("<?xml version='1.0'?>\n<osm version='0.6'>\n<node id='1' lat='37.8' lon='-122.4'/>\n<way id='5'><nd ref='1'/><nd ref='2'/>"
     "<tag k='highway' v='primary'/></way>\n</osm>\n", "no <node> element"),
    ("<?xml version='1.0'?>\n<osm version='0.6'>\n<node id='1' lat='37.8' lon='-122.4'/>\n</osm>\n", "no ways of the road classes"),
    ("<?xml version='1.0'?>\n<osm version='0.6'>\n<node id='1' lat='999' lon='-122.4'/>\n</osm>\n", "invalid location"),
])
def test_bad_osm_files_are_named(tmp_path, text, message):
    path = tmp_path / "map.osm"
    path.write_text(text)
    with pytest.raises(LoaderError, match=message):
        read_osm(path)


def test_request_files_snap_and_count_drops(tmp_path):
    n1, n2 = 10, 500
    lat, lon = GRAPH.lat, GRAPH.lon
    rows = ["time,pickup_lat,pickup_lon,dropoff_lat,dropoff_lon"]
    rows += [f"{60 * k},{lat[n1] + 1e-5},{lon[n1]},{lat[n2]},{lon[n2] - 1e-5}" for k in range(8)]
    rows += ["1000,nan,-122.4,37.79,-122.41", "x,37.79,-122.41,37.79,-122.41",  # unreadable
             "1100,37.70,-122.41,37.79,-122.41",  # pick-up south of the map
             "1200,37.79,-122.41,37.8099,-122.3943"]  # drop-off inside the bounds but far from any street
    path = tmp_path / "requests.csv"
    path.write_text("\n".join(rows) + "\n")
    d = demand_from_csv(path, GRAPH, step_seconds=15.0, max_snap_m=150.0)
    assert d.pickup[n1] == 1.0 and d.dropoff[n2] == 1.0
    assert d.dropped == {"unreadable time or coordinate": 2, "pickup outside the map": 1, "dropoff over 150 m from a street": 1}
    assert d.rate == pytest.approx(8 * 15.0 / (7 * 60 + 15.0))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LoaderError, match="empty file"):
        demand_from_csv(tmp_path / "empty.csv", GRAPH)
    (tmp_path / "cols.csv").write_text("time,lat,lon\n1,2,3\n")
    with pytest.raises(LoaderError, match="missing column"):
        demand_from_csv(tmp_path / "cols.csv", GRAPH)


def test_request_times_are_seconds_whatever_their_form(tmp_path):
    """Date-time strings and unix seconds give the same span and rate (pandas 3 keeps microseconds
    where pandas 2 kept nanoseconds); a stray time is counted, not stretched over; bytes that are
    not text name the file."""
    n1, n2 = 10, 500
    start = pd.Timestamp("2008-05-17 03:00:53")
    rates = {}
    for form in ("datetime", "unix"):
        rows = ["time,pickup_lat,pickup_lon,dropoff_lat,dropoff_lon"]
        for k in range(40):
            t = start + pd.Timedelta(minutes=3 * k)
            stamp = str(t) if form == "datetime" else str(int(t.timestamp()))
            rows.append(f"{stamp},{GRAPH.lat[n1]},{GRAPH.lon[n1]},{GRAPH.lat[n2]},{GRAPH.lon[n2]}")
        rows.append(f"{'1938-05-17 03:00:53' if form == 'datetime' else -1e12},{GRAPH.lat[n1]},{GRAPH.lon[n1]},"
                    f"{GRAPH.lat[n2]},{GRAPH.lon[n2]}")  # a stray row
        path = tmp_path / f"{form}.csv"
        path.write_text("\n".join(rows) + "\n")
        d = demand_from_csv(path, GRAPH, step_seconds=15.0)
        assert d.dropped == {"time far outside the file's span": 1}
        assert "1.95 h" in d.source  # 39 gaps of 3 minutes, and a step
        rates[form] = d.rate
    assert rates["datetime"] == pytest.approx(rates["unix"]) == pytest.approx(40 * 15.0 / (39 * 180 + 15.0))
    (tmp_path / "bytes.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(LoaderError, match="bytes.csv: not a (text|readable) CSV"):
        demand_from_csv(tmp_path / "bytes.csv", GRAPH)


def test_wasserstein_matches_the_transport_lp():
    from scipy.optimize import linprog

    rng = np.random.default_rng(3)
    cost = rng.integers(0, 9, (7, 7)).astype(float)
    a, b = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(7))
    eq = np.vstack([np.kron(np.eye(7), np.ones(7)), np.kron(np.ones(7), np.eye(7))])
    lp = linprog(cost.ravel(), A_eq=eq, b_eq=np.concatenate([a, b]), method="highs")
    assert wasserstein1(a, b, cost) == pytest.approx(lp.fun, abs=1e-9)


def test_fleet_thresholds_are_ordered_and_scale_with_the_rate():
    th = fleet_thresholds(GRAPH.hops, DEMAND.pickup, DEMAND.dropoff, DEMAND.rate)
    assert 0 < th.wasserstein <= th.start_to_pickup  # the optimal coupling is no dearer than the independent one
    assert th.d_min <= th.d_max
    assert th.necessary_fleet <= th.sufficient_fleet
    assert th.sufficient_fleet >= DEMAND.rate * th.d_max > th.sufficient_fleet - 1
    double = fleet_thresholds(GRAPH.hops, DEMAND.pickup, DEMAND.dropoff, 2 * DEMAND.rate)
    assert double.d_max == pytest.approx(th.d_max) and double.sufficient_fleet >= 2 * th.sufficient_fleet - 1


def test_ia_ra_is_an_optimal_assignment_and_ia_keeps_its_commitments():
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(5)
    for _ in range(5):
        state, _ = random_state(rng, m=7, q=9, hot=30)
        free = np.asarray(state.present & ~state.carrying)
        live = np.asarray(state.req_live)
        cost = GRAPH.hops[np.asarray(state.node)][:, np.asarray(state.req_pick)].astype(float)
        r, c = linear_sum_assignment(cost[free][:, live])
        targets, assigned = jax.jit(ia_ra)(state, PARAMS)
        a = np.asarray(assigned)
        assert np.sum(a >= 0) == min(free.sum(), live.sum())
        assert cost[np.flatnonzero(a >= 0), a[a >= 0]].sum() == cost[free][:, live][r, c].sum()
        np.testing.assert_array_equal(np.asarray(targets)[a >= 0], np.asarray(state.req_pick)[a[a >= 0]])
        kept_state = state.replace(assigned=jnp.where(state.present & ~state.carrying & state.req_live[jnp.maximum(state.assigned, 0)]
                                                      & (state.assigned >= 0), state.assigned, -1))
        _, a_ia = jax.jit(ia)(kept_state, PARAMS)
        k = np.asarray(kept_state.assigned)
        np.testing.assert_array_equal(np.asarray(a_ia)[k >= 0], k[k >= 0])


def test_the_step_compiles_once_per_shape():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(state, key):
        t, a = ia_ra(state, PARAMS)
        return E.step(state, t, a, E.sample_arrivals(key, PARAMS, ARRIVAL_SLOTS), PARAMS)

    chex.clear_trace_counter()
    state = E.initial_state(np.arange(5), queue=8)
    for seed in range(3):
        state, _ = run(state, jax.random.key(seed))
