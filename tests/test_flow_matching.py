"""Flow matching: the CFM loss by hand, the exact marginal field by Monte Carlo, and its flow to the target."""

import math

import pytest
import torch

from lessons.data2d import sample_target, target_density
from lessons.flow_matching import cfm_loss, marginal_velocity, sample_times
from lessons.optimal_transport import w2
from lessons.models import MLP
from lessons.paths import GaussianPath
from lessons.schedules import CosineSchedule, LinearSchedule, VPSchedule
from lessons.solvers import solve_ode


def test_sample_times_range_and_shape():
    torch.manual_seed(0)
    t = sample_times(10_000)
    assert t.shape == (10_000,) and t.min() >= 0 and t.max() < 1
    assert t.mean().item() == pytest.approx(0.5, abs=0.02)
    assert sample_times(1000, t_max=0.9).max() < 0.9


@pytest.mark.parametrize("schedule, coefficients", [
    (LinearSchedule(), lambda t: (t, 1 - t, torch.ones_like(t), -torch.ones_like(t))),
    (CosineSchedule(), lambda t: (torch.sin(math.pi * t / 2), torch.cos(math.pi * t / 2),
                                  math.pi / 2 * torch.cos(math.pi * t / 2), -math.pi / 2 * torch.sin(math.pi * t / 2))),
])
def test_cfm_loss_by_hand(schedule, coefficients):
    torch.manual_seed(0)
    model = MLP(dim=2, hidden=16, depth=2, time_dim=8)
    data, noise = torch.randn(32, 2) * 3, torch.randn(32, 2)
    t = torch.rand(32)
    a, s, da, ds = (v[:, None] for v in coefficients(t))
    x_t = a * data + s * noise
    target = da * data + ds * noise
    expected = ((model(x=x_t, t=t) - target) ** 2).mean()
    loss = cfm_loss(model, GaussianPath(schedule), data, noise=noise, t=t)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()  # differentiable with respect to the model
    assert all(p.grad is not None for p in model.parameters())


def test_cfm_loss_draws_noise_and_time_when_not_given():
    model = MLP(dim=2, hidden=16, depth=2, time_dim=8)
    data = torch.randn(64, 2)
    path = GaussianPath(LinearSchedule())
    torch.manual_seed(3)
    first = cfm_loss(model, path, data)
    torch.manual_seed(3)
    assert cfm_loss(model, path, data).item() == first.item()
    assert cfm_loss(model, path, data).item() != first.item()


def _snis_marginal_velocity(path, data, x, t):
    """Self-normalised importance sampling of E[u_t(x | data, noise) | x_t = x] over samples data (N, D).

    Returns the estimate (D,) and its standard error (D,).
    """
    c = path.schedule(torch.tensor([t], dtype=torch.float64))
    alpha, sigma, d_alpha, d_sigma = (v.item() for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma))
    log_w = -((x[None] - alpha * data) ** 2).sum(1) / (2 * sigma**2)  # N(x; alpha data_i, sigma^2 I)
    w = torch.softmax(log_w, 0)
    noise = (x[None] - alpha * data) / sigma  # the noise that puts data_i at x
    u = d_alpha * data + d_sigma * noise  # (N, D)
    estimate = w @ u
    se = ((w[:, None] ** 2) * (u - estimate) ** 2).sum(0).sqrt()
    assert 1 / (w**2).sum() > 200  # effective sample size: enough for the standard error to mean something
    return estimate, se


@pytest.mark.parametrize("schedule", [LinearSchedule(), CosineSchedule(), VPSchedule()], ids=repr)
@pytest.mark.parametrize("t", [0.3, 0.6, 0.85])
def test_marginal_velocity_against_monte_carlo(schedule, t):
    mixture = target_density("8gaussians")
    path = GaussianPath(schedule)
    g = torch.Generator().manual_seed(0)
    data = mixture.sample(200_000, generator=g).double()
    # typical points of p_t: x_t = alpha data + sigma noise for a few fresh data points
    times = torch.full((4,), t, dtype=torch.float64)
    xs = path.sample(torch.randn(4, 2, generator=g, dtype=torch.float64),
                     mixture.sample(4, generator=g).double(), times).x_t
    exact = marginal_velocity(mixture, path, xs, times)
    for i, x in enumerate(xs):
        estimate, se = _snis_marginal_velocity(path, data, x, t)
        assert ((exact[i] - estimate).abs() < 5 * se + 1e-4).all(), (x, exact[i], estimate, se)


def test_exact_marginal_flow_reproduces_the_mixture():
    """rk4 on the exact field from N(0, I) lands on 8 gaussians: W2 to data about the data-vs-data W2."""
    mixture = target_density("8gaussians")
    path = GaussianPath(LinearSchedule(sigma_min=1e-3))  # sigma(1) > 0: the field is defined at t = 1

    def field(x, t):
        return marginal_velocity(mixture, path, x, t)

    n, generated, baseline = 1000, [], []
    for seed in range(3):  # W2 between 1000-point sets fluctuates; average three independent draws
        noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
        samples = solve_ode(field, noise, steps=20, method="rk4").final
        reference = sample_target("8gaussians", n, seed=100 + seed)
        generated.append(w2(samples, reference))
        baseline.append(w2(sample_target("8gaussians", n, seed=200 + seed), reference))
        if seed == 0:
            far = w2(noise, reference)
    mean_gen, mean_base = sum(generated) / 3, sum(baseline) / 3
    assert mean_gen < 1.25 * mean_base, (generated, baseline)
    assert far > 5 * mean_base  # the test can tell noise from data


def test_marginal_velocity_checks_its_input():
    mixture = target_density("8gaussians")
    path = GaussianPath(LinearSchedule())
    with pytest.raises(ValueError, match="one time per sample"):
        marginal_velocity(mixture, path, torch.zeros(3, 2), torch.full((2,), 0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        marginal_velocity(mixture, path, torch.zeros(3, 2), torch.full((3,), 1.5))
    with pytest.raises(ValueError, match="2 columns"):
        marginal_velocity(mixture, path, torch.zeros(3, 3), torch.full((3,), 0.5))
