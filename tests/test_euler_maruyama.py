"""Euler-Maruyama, Brownian motion and the OU process against closed forms and Monte Carlo (4 standard errors)."""

import math

import pytest
import torch

from lessons.euler_maruyama import (
    brownian_motion,
    euler_maruyama,
    ou_moments,
    ou_process,
    ou_stationary_variance,
)


def test_one_step_is_the_euler_maruyama_formula():
    x = torch.randn(50, 3)
    traj = euler_maruyama(
        lambda x: -2 * x + 1, x, 0.1, 1, diffusion=0.7, generator=torch.Generator().manual_seed(4)
    )
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(traj.final, x + 0.1 * (-2 * x + 1) + 0.7 * math.sqrt(0.1) * z, atol=1e-6)
    assert traj.nfe == 1 and traj.xs.shape == (2, 50, 3)
    assert torch.allclose(traj.ts, torch.tensor([0.0, 0.1]))


def test_brownian_motion_has_variance_sigma_squared_s_and_covariance_min():
    n, sigma = 20_000, 1.5
    traj = brownian_motion(
        torch.zeros(n, 1), 2.0, 40, sigma=sigma, generator=torch.Generator().manual_seed(0)
    )
    end, mid = traj.final[:, 0], traj.xs[20, :, 0]  # s = 2 and s = 1
    se = sigma**2 * 2.0 * math.sqrt(2 / n)
    assert abs(end.var().item() - sigma**2 * 2.0) < 4 * se
    # Cov(W_1, W_2) = min(1, 2) sigma^2 = sigma^2; its standard error from the product's spread
    prod = mid * end
    assert abs(prod.mean().item() - sigma**2) < 4 * prod.std().item() / math.sqrt(n)
    assert torch.allclose(traj.ts[-1], torch.tensor(2.0))


def test_ou_from_a_point_follows_its_exact_moments():
    n, theta, sigma, s = 20_000, 2.0, 0.8, 0.5
    start = torch.full((n, 1), 3.0)
    traj = ou_process(
        start, theta, sigma, s, 500, generator=torch.Generator().manual_seed(1), keep_path=False
    )
    mean, var = ou_moments(start[:1], theta, sigma, s)
    x = traj.final[:, 0]
    assert abs(x.mean().item() - mean.item()) < 4 * math.sqrt(var / n) + 0.01  # + the O(h) step error
    assert abs(x.var().item() - var) < 4 * var * math.sqrt(2 / n) + 0.005
    assert traj.xs.shape == (2, n, 1) and traj.nfe == 500


def test_the_chain_reaches_its_own_stationary_variance():
    """With a coarse step h the chain x' = (1 - theta h) x + sigma sqrt(h) z settles at sigma^2 / (theta (2 - theta h))."""
    n, theta, sigma, h = 20_000, 1.0, 1.0, 0.5
    traj = ou_process(torch.zeros(n, 1), theta, sigma, 40 * h, 40, generator=torch.Generator().manual_seed(2))
    v = traj.final.var().item()
    chain, exact = ou_stationary_variance(theta, sigma, h), ou_stationary_variance(theta, sigma)
    assert chain == pytest.approx(2 / 3) and exact == pytest.approx(0.5)
    assert abs(v - chain) < 4 * chain * math.sqrt(2 / n)
    assert abs(v - exact) > 4 * exact * math.sqrt(2 / n)  # the step's bias is visible at this h


def test_ou_moments_tend_to_the_stationary_law():
    mean, var = ou_moments(torch.tensor([[5.0]]), 1.0, 2.0, 50.0)
    assert abs(mean.item()) < 1e-12 and var == pytest.approx(ou_stationary_variance(1.0, 2.0))


def test_bad_inputs_are_refused_in_words():
    x = torch.zeros(4, 1)
    with pytest.raises(ValueError, match="step size"):
        euler_maruyama(lambda x: x, x, 0.0, 3)
    with pytest.raises(TypeError, match="drift"):
        euler_maruyama("drift", x, 0.1, 3)
    with pytest.raises(ValueError, match="drift returned shape"):
        euler_maruyama(lambda x: x[:, :0], x, 0.1, 3)
    with pytest.raises(ValueError, match="theta"):
        ou_process(x, -1.0, 1.0, 1.0, 10)
    with pytest.raises(ValueError, match="diverges"):
        ou_stationary_variance(1.0, 1.0, step_size=2.5)
    with pytest.raises(ValueError, match="NaN or inf at step"):
        ou_process(x + 1, 1.0, 1.0, 500.0, 100)  # h = 5: every step multiplies x by -4
    with pytest.raises(TypeError, match="keep_path"):
        brownian_motion(x, 1.0, 10, keep_path="no")
