"""Our LAPACK-free orthogonal initialiser."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmob.algos.hagps import HagpsPolicy
from jaxmob.algos.policies import SharingPolicy
from jaxmob.nets.init import orthogonal, polar_factor


@pytest.mark.parametrize("shape", [(64, 64), (21, 64), (64, 9), (3, 200)])
def test_orthonormal_rows_or_columns(shape):
    w = np.asarray(orthogonal(2.0)(jax.random.PRNGKey(0), shape))
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(len(gram)), atol=1e-5)


def test_polar_factor_matches_svd():
    a = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
    u, _, vt = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(np.asarray(polar_factor(jnp.asarray(a))), u @ vt, atol=1e-5)


@pytest.mark.parametrize("alg", ["no_share", "hagps"])
def test_stacked_policy_init_uses_no_lapack(alg):
    """Batched LAPACK QR inside one XLA:CPU program can deadlock the thread pool;
    grouped policies (stacked, vmapped inits) must compile without it."""
    policy = (HagpsPolicy(num_agents=6, num_actions=5, hidden=(16,)) if alg == "hagps"
              else SharingPolicy(alg, num_agents=6, num_actions=5, hidden=(16,)))
    hlo = jax.jit(lambda k: policy.init(k, 7, 11)).lower(jax.random.PRNGKey(0)).as_text()
    assert "lapack" not in hlo.lower() and "geqrf" not in hlo.lower()
