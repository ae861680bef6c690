"""MADARL's attention policy: shapes, ablations, and the shared-token attention
against the per-query one it replaces."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmob.algos.madarl import ATTENTION, Attend, MadarlPolicy

N, C, D = 5, 9, 3
OBS = 7 * D + 3
STATE = C * D + 2


def test_shared_token_attention_equals_per_query_attention():
    key = jax.random.key(0)
    q, tokens = jax.random.normal(key, (2, N, OBS)), jax.random.normal(jax.random.key(1), (2, C, D))
    shared, single = Attend(8, shared=True), Attend(8)
    params = shared.init(key, q, tokens)
    got = shared.apply(params, q, tokens)
    want = single.apply(params, q, jnp.broadcast_to(tokens[:, None], (2, N, C, D)))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_attention_ignores_the_order_of_tokens():
    attend = Attend(8)
    q, tokens = jnp.ones((D,)), jax.random.normal(jax.random.key(2), (7, D))
    params = attend.init(jax.random.key(3), q, tokens)
    perm = jnp.asarray([0, 3, 1, 6, 2, 5, 4])
    np.testing.assert_allclose(np.asarray(attend.apply(params, q, tokens)),
                               np.asarray(attend.apply(params, q, tokens[perm])), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attention", ATTENTION)
def test_every_ablation_gives_logits_and_values(attention):
    policy = MadarlPolicy(N, 7, local_tokens=7, global_tokens=C, token_dim=D, hidden=(16,), attention=attention)
    params = policy.init(jax.random.key(0), OBS, STATE)
    assert ("local_attention" in params) == (attention in ("local", "both"))
    assert ("global_attention" in params) == (attention in ("global", "both"))
    obs, state = jax.random.normal(jax.random.key(1), (4, N, OBS)), jax.random.normal(jax.random.key(2), (4, STATE))
    apply = jax.jit(policy.apply)
    logits, values = apply(params, policy.groups(), obs, state)
    assert logits.shape == (4, N, 7) and values.shape == (4, N)
    assert np.all(np.isfinite(np.asarray(logits))) and np.all(np.isfinite(np.asarray(values)))
    # decentralised execution: the actor never reads the global state
    other, _ = apply(params, policy.groups(), obs, state + 5.0)
    np.testing.assert_array_equal(np.asarray(other), np.asarray(logits))
