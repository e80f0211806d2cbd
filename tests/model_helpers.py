"""Helpers shared by several test files: random weights, finite differences, ideal models, DDPM's alpha-bars."""

import numpy as np
import torch

from lessons.mixture import ExactMixtureModel, GaussianMixture

INTERIOR = torch.linspace(
    0.03, 0.97, 41, dtype=torch.float64
)  # times away from the ends, for finite differences


def randomized(model, seed=0):
    """Give every parameter random values (zero-initialized layers would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


def central_difference(fn, t, h=1e-6):
    return (fn(t + h) - fn(t - h)) / (2 * h)


def gaussian_model(schedule, mean=0.0, std=1.5, prediction="eps", dim=2):
    """The ideal model for data ~ N(mean, std^2 I) in dim dimensions: the one-component ExactMixtureModel.

    Its closed form, E[noise | x_t] = sigma (x - alpha mean) / (alpha^2 std^2 + sigma^2), is tested in test_mixture.
    """
    means = torch.as_tensor(mean, dtype=torch.float32).expand(dim)[None]  # (1, dim)
    return ExactMixtureModel(GaussianMixture(means, std), schedule, prediction)


def alpha_bars(T=1000, beta_start=1e-4, beta_end=0.02):
    """DDPM's linear betas (T,) and alpha-bars (T+1,) with alpha-bar_0 = 1, in NumPy."""
    betas = np.linspace(beta_start, beta_end, T)
    return betas, np.concatenate([[1.0], np.cumprod(1 - betas)])


def custom_scale(t):
    """A rescaling c(t) = 1 + t (1 - t) and its derivative dc/dt = 1 - 2 t, for RescaledSchedule tests."""
    return 1 + t * (1 - t), 1 - 2 * t


def two_clouds(n, seed=0):
    """(noise, data) point clouds (n, 2): N(0, I) and N(1, 9 I), for coupling and OT tests."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), 3 * torch.randn(n, 2, generator=g) + 1
