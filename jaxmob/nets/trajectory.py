"""Variational LSTM trajectory encoder: an agent's recent behaviour as a Gaussian.

HAG-PS groups agents by how alike their trajectories are. An LSTM reads an
agent's last H steps (per-step features: observation, one-hot action, reward)
and outputs the mean and log-variance of a diagonal Gaussian q(z | trajectory);
the distance between two agents is the symmetrised KL between their Gaussians.

The encoder is trained as a sequence VAE whose decoder reconstructs the whole
H x F feature sequence, not just its mean, so z has to carry the *dynamics* of
the behaviour (when an agent moves bikes, how its stock evolves), which is what
distinguishes regions that need different policies. The decoder is an MLP on
[z, one-hot(t)] applied to every step t: it sees no past steps, so everything
it knows about the sequence must pass through z (an autoregressive decoder could
model the sequence by itself and let the posterior collapse), and it costs no
sequential steps, so only the encoder's H-step scan is latency-bound.
Reconstruction is a unit-variance Gaussian likelihood; the loss is the negative
ELBO divided by the number of reconstructed elements (H x F), so its size does
not depend on the window length or the feature count.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from .init import orthogonal

LOGVAR_BOUNDS = (-8.0, 8.0)  # keeps exp(logvar) finite in the KL terms


def gaussian_kl(mu_p, logvar_p, mu_q, logvar_q):
    """KL(N(mu_p, e^logvar_p) || N(mu_q, e^logvar_q)) of diagonal Gaussians, summed over the last axis."""
    var_ratio = jnp.exp(logvar_p - logvar_q)
    maha = (mu_p - mu_q) ** 2 * jnp.exp(-logvar_q)
    return 0.5 * jnp.sum(var_ratio + maha - 1.0 + logvar_q - logvar_p, axis=-1)


def symmetric_kl(mu_p, logvar_p, mu_q, logvar_q):
    """0.5 * (KL(p||q) + KL(q||p)): symmetric (a distance-like grouping score) and
    equal to the plain KL when the two variances agree."""
    return 0.5 * (gaussian_kl(mu_p, logvar_p, mu_q, logvar_q) + gaussian_kl(mu_q, logvar_q, mu_p, logvar_p))


def kl_to_standard_normal(mu, logvar):
    """KL(N(mu, e^logvar) || N(0, I)), summed over the last axis (the VAE's prior term)."""
    return 0.5 * jnp.sum(jnp.exp(logvar) + mu**2 - 1.0 - logvar, axis=-1)


class TrajectoryVAE(nn.Module):
    """LSTM encoder (sequence -> mean, log-variance of z) and per-step MLP decoder (z -> sequence).

    Inputs are `(..., H, F)`: any batch dimensions, then time, then features.
    """

    feature_dim: int
    hidden: int = 64
    latent_dim: int = 8

    def setup(self):
        # our orthogonal init: flax's default (QR via LAPACK) can hang XLA:CPU, see nets/init.py
        self.encoder_rnn = nn.RNN(nn.OptimizedLSTMCell(self.hidden, recurrent_kernel_init=orthogonal()), return_carry=True)
        self.to_stats = nn.Dense(2 * self.latent_dim)
        self.decoder_hidden = nn.Dense(self.hidden)
        self.to_features = nn.Dense(self.feature_dim)

    def encode(self, x):
        """(..., H, F) -> mean, log-variance (..., Z), read from the LSTM's final hidden state."""
        (_, h_last), _ = self.encoder_rnn(x)
        mu, logvar = jnp.split(self.to_stats(h_last), 2, axis=-1)
        return mu, jnp.clip(logvar, *LOGVAR_BOUNDS)

    def decode(self, z, steps: int):
        """(..., Z) -> reconstructed sequence (..., steps, F): an MLP on [z, one-hot(t)] per step."""
        zs = jnp.broadcast_to(z[..., None, :], z.shape[:-1] + (steps, z.shape[-1]))
        t = jnp.broadcast_to(jnp.eye(steps, dtype=z.dtype), z.shape[:-1] + (steps, steps))
        return self.to_features(nn.tanh(self.decoder_hidden(jnp.concatenate([zs, t], -1))))

    def __call__(self, x, key):
        """Reparameterised pass: returns (reconstruction, mu, logvar)."""
        mu, logvar = self.encode(x)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        return self.decode(z, x.shape[-2]), mu, logvar


def elbo_loss(vae: TrajectoryVAE, params, x, key, weight=None, kl_beta: float = 1.0, kl_capacity: float = 0.0):
    """Negative ELBO per reconstructed element, averaged over sequences.

    x: (N, H, F); weight: (N,) (0 drops a sequence, e.g. a padded agent).
    The prior term is kl_beta * |KL(q || N(0, I)) - kl_capacity| per sequence
    (capacity-constrained beta-VAE): kl_beta = 1, kl_capacity = 0 is the true
    ELBO. A capacity C with a large beta pins each posterior's information to
    about C nats, which fixes the scale of the KLs between agents (the
    grouping thresholds are in those units) instead of letting it grow as the
    encoder learns. Returns (loss, dict(recon=..., kl=...)), kl in nats per sequence.
    """
    recon, mu, logvar = vae.apply(params, x, key)
    elements = x.shape[-2] * x.shape[-1]
    rec = 0.5 * jnp.sum((recon - x) ** 2, axis=(-2, -1)) / elements
    kl = kl_to_standard_normal(mu, logvar)
    weight = jnp.ones(x.shape[:-2]) if weight is None else weight.astype(x.dtype)
    norm = jnp.maximum(weight.sum(), 1.0)
    mean = lambda v: (v * weight).sum() / norm
    return mean(rec) + kl_beta * mean(jnp.abs(kl - kl_capacity)) / elements, dict(recon=mean(rec), kl=mean(kl))
