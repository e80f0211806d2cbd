"""The flow SDE family against closed forms on a Gaussian target (score and velocity by hand), and the ODE at g = 0."""

import math

import pytest
import torch

from lessons.flow_sde import flow_sde, flow_sde_drift
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.schedules import LinearSchedule
from lessons.solvers import solve_ode

MEAN, STD = torch.tensor([1.0, -2.0]), 0.5
GAUSSIAN = GaussianMixture([[1.0, -2.0]], [STD])
LINEAR = LinearSchedule()


def by_hand(x, t):
    """On x_t = t data + (1 - t) noise with data ~ N(m, s^2 I): (velocity, score), each (B, 2), in closed form."""
    t = t[:, None]
    v, dv = t**2 * STD**2 + (1 - t) ** 2, 2 * t * STD**2 - 2 * (1 - t)
    centred = x - t * MEAN
    return MEAN + dv / (2 * v) * centred, -centred / v


@pytest.mark.parametrize("prediction", ["velocity", "eps", "data"])
def test_drift_is_velocity_plus_half_g_squared_score(prediction):
    model = ExactMixtureModel(GAUSSIAN, LINEAR, prediction)
    x, t = 2 * torch.randn(64, 2), 0.05 + 0.9 * torch.rand(64)
    u, s = by_hand(x, t)
    g = 1.5 * (1 - t[:, None])  # noise_level * sigma_t
    field = flow_sde_drift(model, LINEAR, 1.5, prediction)
    assert torch.allclose(field(x=x, t=t), u + 0.5 * g**2 * s, atol=1e-4)


def test_noise_level_zero_is_the_euler_ode_solver():
    model = ExactMixtureModel(GAUSSIAN, LINEAR, "velocity")
    noise = torch.randn(100, 2)
    sde = flow_sde(model, noise, LINEAR, torch.linspace(0, 1, 21), noise_level=0.0)
    ode = solve_ode(model, noise, steps=20, method="euler")
    assert torch.allclose(sde.xs, ode.xs, atol=1e-6) and sde.nfe == 20


def test_one_step_is_euler_maruyama_with_g_sigma():
    model = ExactMixtureModel(GAUSSIAN, LINEAR, "velocity")
    x, ts = torch.randn(50, 2), torch.tensor([0.2, 0.25])
    traj = flow_sde(model, x, LINEAR, ts, 2.0, generator=torch.Generator().manual_seed(3))
    u, s = by_hand(x, torch.full((50,), 0.2))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    g = 2.0 * 0.8
    assert torch.allclose(traj.final, x + 0.05 * (u + 0.5 * g**2 * s) + g * math.sqrt(0.05) * z, atol=1e-5)


@pytest.mark.parametrize("noise_level", [0.5, 2.0])
def test_every_noise_level_keeps_the_gaussian_marginals(noise_level):
    """From N(0, I) at t = 0 the SDE reaches N(t m, v_t) at t = 0.5 and the data law N(m, s^2) at t = 1."""
    n, model = 20_000, ExactMixtureModel(GAUSSIAN, LINEAR, "velocity")
    traj = flow_sde(
        model,
        torch.randn(n, 2),
        LINEAR,
        torch.linspace(0, 1, 201),
        noise_level,
        generator=torch.Generator().manual_seed(4),
    )
    for i, t in ((100, 0.5), (200, 1.0)):
        var = t**2 * STD**2 + (1 - t) ** 2
        x = traj.xs[i]
        assert torch.allclose(x.mean(0), t * MEAN, atol=4 * math.sqrt(var / n) + 0.01)
        assert torch.allclose(x.var(0), torch.full((2,), var), rtol=4 * math.sqrt(2 / n) + 0.02)


def test_bad_inputs_are_refused_in_words():
    model = ExactMixtureModel(GAUSSIAN, LINEAR, "velocity")
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="noise level"):
        flow_sde(model, x, LINEAR, torch.linspace(0, 1, 3), noise_level=-1.0)
    with pytest.raises(ValueError, match="sigma = 0"):
        flow_sde_drift(model, LINEAR, 1.0)(x=x, t=torch.ones(4))
    with pytest.raises(TypeError, match="schedule"):
        flow_sde(model, x, "linear", torch.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="increasing"):
        flow_sde(model, x, LINEAR, torch.tensor([0.5, 0.1]))
    with pytest.raises(ValueError, match="alpha"):  # an eps prediction says nothing at pure noise
        flow_sde(
            ExactMixtureModel(GAUSSIAN, LINEAR, "eps"), x, LINEAR, torch.linspace(0, 1, 3), prediction="eps"
        )
