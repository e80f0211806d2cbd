"""Solutions of lesson 07's checked exercises, one function per exercise (lessons.exercises checks them)."""

import math

import torch

from lessons.image_metrics import dequantize


def clipped_ddim_step(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    """One DDIM step x_t -> x_s (B, ...) with the data guess clipped to [-1, 1]; the four numbers are floats."""
    data_hat = ((x - sigma_t * eps_hat) / alpha_t).clamp(-1, 1)  # Ho et al.'s clipping
    eps = (x - alpha_t * data_hat) / sigma_t  # the noise guess that goes with the clipped data guess
    return alpha_s * data_hat + sigma_s * eps


def feature_frechet_distance(features_a, features_b):
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussians fitted to features (N, D), (M, D); a float."""
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = torch.cov(features_a.T), torch.cov(features_b.T)  # (D, D), unbiased
    # S_a S_b is similar to S_a^(1/2) S_b S_a^(1/2), which is symmetric and >= 0: its eigenvalues are real, >= 0
    roots = torch.linalg.eigvals(cov_a @ cov_b).real.clamp_min(0).sqrt()
    return float(((mu_a - mu_b) ** 2).sum() + cov_a.trace() + cov_b.trace() - 2 * roots.sum())


def dequantized_bits_per_dim(log_density, pixels):
    """Bits per dimension (B,) of pixels k / 255 (B, 1, 28, 28) under log_density, a density on [-1, 1]^D."""
    x = 2 * dequantize(pixels) - 1  # (k + u) / 256 in [0, 1), then the models' coordinates [-1, 1)
    dims = pixels[0].numel()
    # each level fills a bin 2 / 256 wide: log P(levels) >= log p(x) + D log(2 / 256), in nats
    return -(log_density(x) + dims * math.log(2 / 256)) / (dims * math.log(2))
