"""Routing planners: rollout's cost improvement, the two-phase sectors, the command line."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmob.core.sharding import cpu_devices_env
from jaxmob.envs.routing import env as E
from jaxmob.envs.routing.demand import hotspot_demand
from jaxmob.envs.routing.graph import bundled_graph
from jaxmob.envs.routing.policies import base_cost, future_keys, ia_ra, rollout_targets
from jaxmob.envs.routing.two_phase import partition, rebalance_between_sectors, sectors_for, two_phase_targets

GRAPH = bundled_graph()
DEMAND = hotspot_demand(GRAPH)
PARAMS = E.params_from(GRAPH, DEMAND)
H, S = 6, 3


def busy_state(seed, m=6, q=10):
    """Taxis and waiting requests drawn from the demand model."""
    rng = np.random.default_rng(seed)
    live = rng.random(q) < 0.7
    return E.initial_state(rng.choice(GRAPH.num_nodes, m, p=DEMAND.dropoff), q).replace(
        req_pick=jnp.asarray(rng.choice(GRAPH.num_nodes, q, p=DEMAND.pickup), jnp.int32),
        req_drop=jnp.asarray(rng.choice(GRAPH.num_nodes, q, p=DEMAND.dropoff), jnp.int32),
        req_live=jnp.asarray(live), arrived=jnp.int32(int(live.sum())),
        carrying=jnp.asarray(rng.random(m) < 0.3), dest=jnp.asarray(rng.choice(GRAPH.num_nodes, m), jnp.int32))


@jax.jit
def rollout_and_base_q(key, state):
    """The rollout's joint move and the base policy's, each scored on the rollout's own sampled futures."""
    t, a = rollout_targets(key, state, PARAMS, H, S)
    bt, ba = ia_ra(state, PARAMS)
    score = lambda t, a: jnp.mean(jax.vmap(lambda ks: base_cost(state, t, a, ks, PARAMS))(future_keys(key, S, H)))
    return t, score(t, a), score(bt, ba)


@pytest.mark.parametrize("seed", range(4))
def test_rollout_never_trails_its_base_policy_on_its_own_futures(seed):
    """One-at-a-time rollout with common random numbers: each taxi's choice can only lower the joint
    Q-factor, so the final joint move scores no worse than the base policy's."""
    state = busy_state(seed)
    t, q_roll, q_base = rollout_and_base_q(jax.random.key(seed), state)
    assert float(q_roll) <= float(q_base) + 1e-4
    nodes = np.asarray(state.node)
    hop = GRAPH.next_hop[nodes, np.asarray(t)]
    assert all(h in GRAPH.neighbours[n] for n, h in zip(nodes, hop))


def test_partition_and_phase_one():
    sector_of = partition(GRAPH, DEMAND.pickup, 4)
    assert sector_of.shape == (GRAPH.num_nodes,) and set(np.unique(sector_of)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(sector_of, partition(GRAPH, DEMAND.pickup, 4))  # deterministic
    sectors = sectors_for(GRAPH, DEMAND.pickup, fleet=12, cap=4)
    assert sectors.centre.shape == (3,) and float(jnp.sum(sectors.share)) == pytest.approx(1.0, abs=1e-5)
    # every taxi in sector 0, no requests: phase one sends the surplus to the other sectors' centres
    nodes = np.flatnonzero(np.asarray(sectors.sector_of) == 0)[:12]
    state = E.initial_state(nodes, 8)
    _, assigned = ia_ra(state, PARAMS)
    moved, target = jax.jit(rebalance_between_sectors, static_argnums=(4, 5))(state, PARAMS, sectors, assigned, 4, 10)
    moved, target = np.asarray(moved), np.asarray(target)
    share = np.asarray(sectors.share)
    desired = np.minimum(np.floor(12 * share / share.sum() + 0.5), 4)
    assert moved.sum() == min(12 - desired[0], desired[1:].sum())  # surplus and deficits, matched
    assert set(target[moved]) <= set(np.asarray(sectors.centre)[1:].tolist())


def test_two_phase_moves_taxis_along_edges_and_leaves_carrying_ones_alone():
    state = busy_state(7, m=10, q=12)
    sectors = sectors_for(GRAPH, DEMAND.pickup, fleet=10, cap=4)
    t, _ = jax.jit(lambda k, s: two_phase_targets(k, s, PARAMS, sectors, 4, 8, H, S))(jax.random.key(0), state)
    new, _ = E.step(state, t, jnp.full(10, -1), E.Arrivals(jnp.int32(0), jnp.zeros(6, jnp.int32), jnp.zeros(6, jnp.int32)), PARAMS)
    old_nodes, new_nodes = np.asarray(state.node), np.asarray(new.node)
    assert all(b in GRAPH.neighbours[a] for a, b in zip(old_nodes, new_nodes))
    carrying = np.asarray(state.carrying)
    np.testing.assert_array_equal(new_nodes[carrying], GRAPH.next_hop[old_nodes, np.asarray(state.dest)][carrying])


def test_two_phase_sectors_split_over_devices_as_on_one(tmp_path):
    """With a mesh the sector rollouts run under shard_map, padded to the device count, same answer."""
    code = """
import jax, jax.numpy as jnp, numpy as np, sys
sys.path.insert(0, 'tests/envs')
from test_routing_policies import busy_state, PARAMS, GRAPH, DEMAND, H, S
from jaxmob.envs.routing.two_phase import sectors_for, two_phase_targets
from jaxmob.core.sharding import batch_mesh
state = busy_state(3, m=9, q=12)
sectors = sectors_for(GRAPH, DEMAND.pickup, fleet=9, cap=3)
one = jax.jit(lambda k, s: two_phase_targets(k, s, PARAMS, sectors, 3, 8, H, S))(jax.random.key(1), state)
two = jax.jit(lambda k, s: two_phase_targets(k, s, PARAMS, sectors, 3, 8, H, S, mesh=batch_mesh(2)))(jax.random.key(1), state)
assert jax.device_count() == 2
np.testing.assert_array_equal(np.asarray(one[0]), np.asarray(two[0]))
print('same')
"""
    env = cpu_devices_env(2)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "same" in out.stdout


def test_the_command_line_runs_the_planners_and_writes_results(tmp_path, capsys):
    from jaxmob.cli import build_parser, main

    rc = main(["eval", "--env", "routing", "--policy", "two_phase", "--fleet", "5", "--steps", "10", "--chunk", "5",
               "--seeds", "1", "--horizon", "3", "--samples", "2", "--cap", "3", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "two-phase rollout" in printed and "IA-RA" in printed and "sufficient m >=" in printed
    result = json.loads((tmp_path / "results.json").read_text())
    assert [r["policy"] for r in result["rows"]] == ["ia", "ia_ra", "two_phase"]
    assert all(len(r["curves"][0]) == 10 for r in result["rows"])
    assert (tmp_path / "outstanding.png").stat().st_size > 0
    from jaxmob.envs.routing import real_demand  # the default replays the real test days

    assert result["episodes"] == list(real_demand.TEST_DAYS) and "Cabspotting" in result["demand"]
    rc = main(["eval", "--env", "routing", "--scenario", "sf_north", "--policy", "rollout_phase_one", "--fleet", "5",
               "--steps", "10", "--chunk", "5", "--seeds", "1", "--horizon", "3", "--samples", "2", "--cap", "3",
               "--out", str(tmp_path / "model"), "--no-progress"])
    result = json.loads((tmp_path / "model" / "results.json").read_text())
    assert rc == 0 and result["episodes"] == ["seed 2000"] and "hotspot model" in result["demand"]
    assert result["rows"][-1]["label"] == "phase one + full-map rollout"
    # `make train ENV=routing ALG=two_phase` reaches the same planner run
    args = build_parser("routing").parse_args(["train", "--env", "routing", "--alg", "rollout", "--scenario", "sf_north"])
    eval_args = build_parser("routing").parse_args(["eval", "--env", "routing", "--policy", "rollout"])
    assert args.func is eval_args.func and args.policy == "rollout"


def test_impossible_settings_are_refused(capsys):
    from jaxmob.cli import main

    assert main(["eval", "--env", "routing", "--fleet", "0", "--no-progress"]) == 2
    assert "fleet: must be a positive integer" in capsys.readouterr().err
    assert main(["eval", "--env", "routing", "--steps", "15", "--chunk", "10", "--no-progress"]) == 2
    assert main(["eval", "--env", "routing", "--scenario", "nowhere", "--no-progress"]) == 2
    assert "unknown street graph" in capsys.readouterr().err
    assert main(["eval", "--env", "routing", "--scenario", "sf_north", "--scale", "0.5", "--no-progress"]) == 2
    assert "--scale go with sf_cabspotting" in capsys.readouterr().err
    assert main(["eval", "--env", "routing", "--start-hour", "23.9", "--no-progress"]) == 2
    assert "within one day" in capsys.readouterr().err
    assert main(["eval", "--env", "routing", "--requests", "x.csv", "--no-progress"]) == 2
    assert "its own requests" in capsys.readouterr().err
