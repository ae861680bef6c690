"""In-graph min-cost transportation against the HiGHS LP."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmob.envs.amod.reference import rebalancing_lp, transport_lp
from jaxmob.solvers.transport import min_cost_transport

N = 9
solve = jax.jit(min_cost_transport)


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


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), costs=st.sampled_from(["ties", "zeros", "float"]))
def test_optimal_integral_and_feasible_against_highs(seed, costs):
    idle, desired, cost = instance(seed, costs)
    surplus, deficit = np.maximum(idle - desired, 0), np.maximum(desired - idle, 0)
    flow = np.asarray(solve(surplus, deficit, cost))
    assert (flow >= 0).all()
    assert (flow.sum(axis=1) <= surplus).all() and (flow.sum(axis=0) == deficit).all()
    assert (flow[surplus == 0] == 0).all() and (flow[:, deficit == 0] == 0).all()
    _, best = transport_lp(idle, desired, cost)
    np.testing.assert_allclose((flow * cost).sum(), best, rtol=1e-5, atol=1e-4)


def test_short_supply_ships_what_there_is():
    flow = np.asarray(solve(np.array([3, 0, 0]), np.array([0, 4, 4]), np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0.]])))
    assert flow.sum() == 3 and flow[0, 1] == 3


def test_one_compiled_program_for_every_instance():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(s, d, c):
        return min_cost_transport(s, d, c)

    for seed in range(4):
        idle, desired, cost = instance(seed, "float")
        f(jnp.maximum(idle - desired, 0), jnp.maximum(desired - idle, 0), jnp.asarray(cost, jnp.float32))
