"""Random numbers spent carefully: on CPU threefry hashing dominates a city step,
so environments draw raw words once (`random_words`) and turn them into uniforms
and Poisson counts themselves."""
from __future__ import annotations

import jax
import jax.numpy as jnp

THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
THREEFRY_PARITY = 0x1BD11BDA


def threefry2x32(key_words: jax.Array, x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 block cipher (20 rounds; Salmon et al., SC'11) on uint32 lanes.

    Written out round by round so XLA fuses the whole hash into one elementwise
    loop: JAX's own CPU lowering loops over the rounds and streams every
    intermediate through memory, several times slower for large batches.
    """
    k0, k1 = key_words[0], key_words[1]
    schedule = (k0, k1, k0 ^ k1 ^ jnp.uint32(THREEFRY_PARITY))
    x0, x1 = x0 + schedule[0], x1 + schedule[1]
    for block in range(5):
        for rotation in THREEFRY_ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(rotation)) | (x1 >> jnp.uint32(32 - rotation))
            x1 = x1 ^ x0
        x0 = x0 + schedule[(block + 1) % 3]
        x1 = x1 + schedule[(block + 2) % 3] + jnp.uint32(block + 1)
    return x0, x1


def random_words(key: jax.Array, n: int) -> jax.Array:
    """`n` uniform uint32 words from `key`, one Threefry block per two words.

    For Threefry keys (JAX's default) the words equal `jax.random.bits(key, (n,))`
    with `jax_threefry_partitionable=False` (counters 0..n-1, zero-padded to an
    even length, first half paired with second half in a block): half the
    hashing of the partitionable layout and no rolled CPU loop. Other key kinds
    fall back to `jax.random.bits`.
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32":
            return jax.random.bits(key, (n,), jnp.uint32)
        key_words = jax.random.key_data(key)
    else:  # a raw uint32[2] key of the default implementation
        key_words = key
    half = (n + 1) // 2
    counters = jnp.concatenate([jnp.arange(n, dtype=jnp.uint32), jnp.zeros(2 * half - n, jnp.uint32)])
    x0, x1 = threefry2x32(key_words.astype(jnp.uint32), counters[:half], counters[half:])
    return jnp.concatenate([x0, x1])[:n]


# Regions whose expected demand in one step exceeds this are sampled with a
# rounded normal quantile instead of exact inversion (float32 exp(-lam) and the
# inversion loop length both degrade beyond it). No bundled scenario comes near.
POISSON_EXACT_MAX_RATE = 64.0
# A pmf below this past the mean ends the inversion search (float32 rounding
# can leave the running CDF just under a uniform close to 1).
POISSON_TAIL_PMF = 1e-8


def poisson_by_inversion(u: jax.Array, lam: jax.Array, unroll: int = 4) -> jax.Array:
    """Poisson(lam) counts from one uniform each, by sequential CDF inversion.

    One draw per count (the cheapest possible), exact for lam <=
    `POISSON_EXACT_MAX_RATE`; above it a rounded normal quantile. The count is
    the number of terms k whose CDF F(k) is still <= u, so all lanes walk the
    terms in lockstep with a scalar k and no per-lane branching; the loop ends
    when every lane's CDF passed its uniform (about max(lam) + 5 sqrt(max(lam))
    terms), `unroll` terms per round.
    """
    lam = lam.astype(jnp.float32)
    exact = lam <= POISSON_EXACT_MAX_RATE
    lam_x = jnp.where(exact, lam, 0.0)

    def below(k, pmf, cdf):
        """The lane has not found its count at term k: F(k) <= u and the pmf is not negligible."""
        tail = (k > lam_x) & (pmf < POISSON_TAIL_PMF)
        return (cdf <= u) & ~tail & exact

    def searching(carry):
        k, pmf, cdf, _ = carry
        return jnp.any(below(k, pmf, cdf))

    def next_terms(carry):
        k, pmf, cdf, count = carry
        for _ in range(unroll):
            count = count + below(k, pmf, cdf).astype(jnp.int32)
            k = k + 1.0
            pmf = pmf * lam_x / k
            cdf = cdf + pmf
        return k, pmf, cdf, count

    p0 = jnp.exp(-lam_x)
    init = (jnp.zeros((), jnp.float32), p0, p0, jnp.zeros(u.shape, jnp.int32))
    k = jax.lax.while_loop(searching, next_terms, init)[3]
    z = jax.scipy.special.ndtri(jnp.clip(u, 1e-7, 1.0 - 1e-7))
    approx = jnp.maximum(jnp.floor(lam + jnp.sqrt(lam) * z + 0.5), 0.0).astype(jnp.int32)
    return jnp.where(exact, k, approx)


def uniform_from_bits(bits: jax.Array) -> jax.Array:
    """float32 uniforms in [0, 1) from uint32 words (top 24 bits, exact)."""
    return (bits >> 8).astype(jnp.float32) * jnp.float32(2.0 ** -24)
