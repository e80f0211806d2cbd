"""Helpers shared by several test files: random weights, finite differences, ideal models, DDPM's alpha-bars."""

import numpy as np
import torch

INTERIOR = torch.linspace(0.03, 0.97, 41, dtype=torch.float64)  # times away from the ends, for finite differences


def randomized(model, seed=0):
    """Give every parameter random values (zero-initialized layers would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


def central_difference(fn, t, h=1e-6):
    return (fn(t + h) - fn(t - h)) / (2 * h)


def gaussian_eps_model(schedule, s=1.5):
    """The ideal eps for data ~ N(0, s^2 I) on schedule: E[noise | x_t] = sigma x / (alpha^2 s^2 + sigma^2)."""

    def model(x, t, cond=None):
        c = schedule(t)
        return (c.sigma / (c.alpha**2 * s**2 + c.sigma**2))[:, None] * x

    return model


def alpha_bars(T=1000, beta_start=1e-4, beta_end=0.02):
    """DDPM's linear betas (T,) and alpha-bars (T+1,) with alpha-bar_0 = 1, in NumPy."""
    betas = np.linspace(beta_start, beta_end, T)
    return betas, np.concatenate([[1.0], np.cumprod(1 - betas)])
