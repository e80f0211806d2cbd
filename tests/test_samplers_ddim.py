"""DDIM: determinism, the right law with an exact denoiser, and eta = 1 against DDPM's posterior."""

import pytest
import torch
from model_helpers import gaussian_model

from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.schedules import CosineSchedule, LinearSchedule, VPSchedule


def test_eta_zero_is_deterministic_and_eta_one_is_not():
    sched = VPSchedule()
    model = gaussian_model(sched, torch.tensor([1.0, -1.0]), 0.5)
    noise, ts = torch.randn(64, 2), torch.linspace(0, 1, 11)
    torch.manual_seed(1)
    a = ddim(model, noise, sched, ts, eta=0.0)
    torch.manual_seed(2)
    b = ddim(model, noise, sched, ts, eta=0.0)
    assert torch.equal(a.xs, b.xs)
    torch.manual_seed(1)
    c = ddim(model, noise, sched, ts, eta=1.0)
    torch.manual_seed(2)
    d = ddim(model, noise, sched, ts, eta=1.0)
    assert not torch.allclose(c.final, d.final)
    seeded = [
        ddim(model, noise, sched, ts, eta=1.0, generator=torch.Generator().manual_seed(5)).final
        for _ in range(2)
    ]
    assert torch.equal(*seeded)


def test_trajectory_shape_and_nfe():
    sched = CosineSchedule()
    ts = torch.linspace(0.01, 1, 8)
    traj = ddim(gaussian_model(sched, 0.0, 1.0), torch.randn(5, 2), sched, ts)
    assert traj.xs.shape == (8, 5, 2) and traj.nfe == 7 and torch.equal(traj.ts, ts)


@pytest.mark.parametrize(
    "schedule, prediction, steps, eta, bias",
    [
        (VPSchedule(), "eps", 100, 0.0, 0.01),
        (CosineSchedule(), "data", 100, 0.0, 0.01),
        (LinearSchedule(), "velocity", 100, 0.0, 0.01),
        # the stochastic sampler's std is a few percent low at 100 steps (like DDPM's), ~1% at 400
        (VPSchedule(), "eps", 400, 1.0, 0.015),
    ],
)
def test_exact_denoiser_lands_on_the_right_gaussian(schedule, prediction, steps, eta, bias):
    n, mean, std = 10_000, torch.tensor([2.0, -1.0]), 0.5
    g = torch.Generator().manual_seed(0)
    model = gaussian_model(schedule, mean, std, prediction)
    x = ddim(
        model,
        torch.randn(n, 2, generator=g),
        schedule,
        torch.linspace(0, 1, steps + 1),
        eta=eta,
        prediction=prediction,
        generator=g,
    ).final
    # tolerance: 5 standard errors plus the discretisation bias of the given number of steps
    assert (x.mean(0) - mean).abs().max() < 5 * std / n**0.5 + bias
    assert (x.std(0) / std - 1).abs().max() < 5 / (2 * n) ** 0.5 + bias


def test_ddim_on_the_linear_schedule_is_flow_euler():
    """x_s = x_t + (s - t) u(x_t, t) for the OT path, whatever the network predicts."""
    sched = LinearSchedule()
    model = gaussian_model(sched, torch.tensor([1.0, 3.0]), 0.7, "velocity")
    ts = torch.tensor([0.0, 0.1, 0.35, 0.6, 1.0])
    x = torch.randn(32, 2)
    traj = ddim(model, x, sched, ts, prediction="velocity")
    for i in range(len(ts) - 1):
        u = model(x=x, t=torch.full((32,), ts[i].item()))
        x = x + (ts[i + 1] - ts[i]) * u
        assert torch.allclose(traj.xs[i + 1], x, atol=1e-5)


def _ddpm_posterior(abar_t, abar_s, x_t, data_hat):
    """q(x_s | x_t, data) of DDPM in alpha-bar form: mean and variance."""
    alpha_ts = abar_t / abar_s
    beta_ts = 1 - alpha_ts
    mean = abar_s**0.5 * beta_ts / (1 - abar_t) * data_hat + alpha_ts**0.5 * (1 - abar_s) / (1 - abar_t) * x_t
    return mean, (1 - abar_s) / (1 - abar_t) * beta_ts


@pytest.mark.parametrize("t, s", [(0.3, 0.32), (0.2, 0.6), (0.5, 0.9)])
def test_eta_one_step_draws_from_the_ddpm_posterior(t, s):
    sched = VPSchedule()
    mean_data, std = torch.tensor([1.0, -2.0]), 0.3
    model = gaussian_model(sched, mean_data, std)
    n = 40_000
    x_t = torch.tensor([[0.4, -0.2]], dtype=torch.float64).repeat(n, 1)
    out = ddim(
        model,
        x_t,
        sched,
        torch.tensor([t, s], dtype=torch.float64),
        eta=1.0,
        generator=torch.Generator().manual_seed(0),
    ).final
    c_t = sched(torch.tensor([t], dtype=torch.float64))
    c_s = sched(torch.tensor([s], dtype=torch.float64))
    noise_hat = model(x_t[:1], torch.tensor([t], dtype=torch.float64))
    data_hat = (x_t[:1] - c_t.sigma * noise_hat) / c_t.alpha
    mean, var = _ddpm_posterior(c_t.alpha.item() ** 2, c_s.alpha.item() ** 2, x_t[0], data_hat[0])
    assert (out.mean(0) - mean).abs().max() < 5 * (var / n) ** 0.5
    assert (out.var(0) / var - 1).abs().max() < 5 * (2 / n) ** 0.5
    # eta = 0.5 draws with a quarter of the posterior variance
    half = ddim(
        model,
        x_t,
        sched,
        torch.tensor([t, s], dtype=torch.float64),
        eta=0.5,
        generator=torch.Generator().manual_seed(1),
    ).final
    assert (half.var(0) / (0.25 * var) - 1).abs().max() < 5 * (2 / n) ** 0.5


def test_eta_one_on_ddpm_grid_is_ddpm_ancestral_sampling():
    """On DDPM's own grid, DDIM(eta=1) and DDPM's posterior-variance sampler are the same update.

    Both draw one standard normal per step except the last, so a shared seed gives the same samples.
    """
    ddpm = DDPM(num_steps=40, beta_start=1e-3, beta_end=0.3)
    sched = DiscreteVPSchedule(ddpm)
    model = gaussian_model(sched, torch.tensor([1.0, -1.0]), 0.5)
    noise = torch.randn(256, 2, dtype=torch.float64)
    ts = 1 - torch.arange(40, -1, -1, dtype=torch.float64) / 40
    via_ddim = ddim(model, noise, sched, ts, eta=1.0, generator=torch.Generator().manual_seed(3))
    via_ddpm = ddpm.sample(model, noise, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(via_ddim.xs, via_ddpm.xs, atol=1e-6)


@pytest.mark.parametrize(
    "ts, eta, match",
    [
        (torch.tensor([0.5]), 0.0, "at least two"),
        (torch.tensor([0.0, 0.5, 0.5, 1.0]), 0.0, "increasing"),
        (torch.tensor([1.0, 0.5, 0.0]), 0.0, "increasing"),
        (torch.tensor([0.0, 1.5]), 0.0, r"\[0, 1\]"),
        (torch.zeros(2, 2), 0.0, "shape"),
        (torch.tensor([0.0, 1.0]), -0.5, "eta"),
    ],
)
def test_bad_grids_raise(ts, eta, match):
    sched = VPSchedule()
    with pytest.raises(ValueError, match=match):
        ddim(gaussian_model(sched, 0.0, 1.0), torch.randn(3, 2), sched, ts, eta=eta)


def test_unknown_prediction_raises():
    sched = VPSchedule()
    with pytest.raises(ValueError, match="prediction type"):
        ddim(
            gaussian_model(sched, 0.0, 1.0),
            torch.randn(3, 2),
            sched,
            torch.linspace(0, 1, 3),
            prediction="x0",
        )
