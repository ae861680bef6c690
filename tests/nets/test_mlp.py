"""apply_shared_input is the MLP on the concatenated input, computed without the broadcast."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmob.nets.mlp import MLP, apply_shared_input


@pytest.mark.parametrize("hidden,S,E,lead", [((16, 8), 11, 3, (4,)), ((5,), 7, 0, (2, 3)), ((), 6, 2, ())])
def test_apply_shared_input_matches_the_concatenated_mlp(hidden, S, E, lead):
    R = 5
    mlp = MLP(hidden, 2)
    params = mlp.init(jax.random.PRNGKey(0), jnp.zeros((S + E,)))
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    shared = jax.random.normal(k1, lead + (S,))
    per_agent = jax.random.normal(k2, lead + (R, E))
    concat = jnp.concatenate([jnp.broadcast_to(shared[..., None, :], lead + (R, S)), per_agent], -1)
    np.testing.assert_allclose(np.asarray(apply_shared_input(mlp, params, shared, per_agent)),
                               np.asarray(mlp.apply(params, concat)), rtol=1e-5, atol=1e-5)
