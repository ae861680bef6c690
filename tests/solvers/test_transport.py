"""In-graph rebalancing flow (the AMoD benchmark's LP, relays allowed) against HiGHS."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmob.envs.amod.reference import rebalancing_lp
from jaxmob.solvers.transport import rebalancing_flow

N = 9
relay = jax.jit(rebalancing_flow)


def instance(seed, costs):
    rng = np.random.default_rng(seed)
    idle = rng.integers(0, 25, N)
    share = rng.dirichlet(np.ones(N) * rng.uniform(0.2, 3))
    desired = np.floor(share * idle.sum()).astype(int)
    if costs == "ties":
        cost = rng.integers(1, 3, (N, N)).astype(float)
    elif costs == "zeros":
        cost = rng.integers(0, 2, (N, N)).astype(float)  # zero-cost cycles in the residual graph
    else:
        cost = rng.uniform(0.5, 20, (N, N))
    np.fill_diagonal(cost, 0.0)
    return idle, desired, cost


def test_short_supply_ships_what_there_is():
    flow = np.asarray(relay(np.array([3, 0, 0]), np.array([0, 4, 4]), np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0.]])))
    assert flow.sum() == 3 and flow[0, 1] == 3


def test_one_compiled_program_for_every_instance():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(idle, desired, cost):
        return rebalancing_flow(idle, desired, cost)

    for seed in range(4):
        idle, desired, cost = instance(seed, "float")
        f(jnp.asarray(idle), jnp.asarray(desired), jnp.asarray(cost, jnp.float32))


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), costs=st.sampled_from(["ties", "zeros", "float", "integer"]),
       target=st.sampled_from(["equal", "shares"]))
def test_the_benchmark_rebalancing_problem_with_relays_against_highs(seed, costs, target):
    """The benchmark's own LP over every ordered pair (a short region may send while being
    refilled); costs that break the triangle inequality make relays pay."""
    idle, desired, cost = instance(seed, costs if costs != "integer" else "ties")
    if costs == "integer":  # int32 costs take the solver's integer path (no rounding tolerance)
        cost = np.random.default_rng(seed).integers(1, 9, (N, N)).astype(np.int32)
        np.fill_diagonal(cost, 0)
    if target == "equal":
        desired = np.full(N, idle.sum() // N)
    flow = np.asarray(relay(idle, desired, cost))
    out, inflow = flow.sum(axis=1), flow.sum(axis=0)
    assert (flow >= 0).all() and (np.diag(flow) == 0).all()
    assert (out <= idle).all() and (inflow - out >= desired - idle).all()
    _, best = rebalancing_lp(idle, desired, cost)
    np.testing.assert_allclose((flow * cost).sum(), best, rtol=1e-5, atol=1e-4)


def test_a_relay_beats_the_direct_move_where_the_triangle_inequality_fails():
    """Region 0 has 1 spare vehicle, region 2 wants 1; 0 -> 2 takes 5 steps but 0 -> 1 and
    1 -> 2 one each: region 1 sends its own vehicle to 2 and gets 0's (cost 2, not 5)."""
    cost = np.array([[0, 1, 5], [5, 0, 1], [5, 5, 0]], float)
    flow = np.asarray(relay(np.array([2, 1, 0]), np.array([1, 1, 1]), cost))
    assert flow.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    empty = np.asarray(relay(np.array([2, 0, 0]), np.array([1, 0, 1]), cost))  # region 1 has nothing to relay
    assert empty.tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]
