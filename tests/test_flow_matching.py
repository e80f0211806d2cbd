"""Flow matching: the CFM loss by hand, and the flow of the exact marginal field to the target."""

import math

import pytest
import torch

from lessons.data2d import sample_target, target_density
from lessons.flow_matching import cfm_batch_loss, cfm_loss, sample_times
from lessons.mixture import ExactMixtureModel
from lessons.models import MLP
from lessons.optimal_transport import w2
from lessons.paths import GaussianPath
from lessons.schedules import CosineSchedule, LinearSchedule
from lessons.solvers import solve_ode


def test_sample_times_range_and_shape():
    torch.manual_seed(0)
    t = sample_times(10_000)
    assert t.shape == (10_000,) and t.min() >= 0 and t.max() < 1
    assert t.mean().item() == pytest.approx(0.5, abs=0.02)
    assert sample_times(1000, t_max=0.9).max() < 0.9


@pytest.mark.parametrize(
    "schedule, coefficients",
    [
        (LinearSchedule(), lambda t: (t, 1 - t, torch.ones_like(t), -torch.ones_like(t))),
        (
            CosineSchedule(),
            lambda t: (
                torch.sin(math.pi * t / 2),
                torch.cos(math.pi * t / 2),
                math.pi / 2 * torch.cos(math.pi * t / 2),
                -math.pi / 2 * torch.sin(math.pi * t / 2),
            ),
        ),
    ],
)
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


def test_cfm_batch_loss_is_the_ot_loss_on_the_pair_with_times_below_t_max():
    torch.manual_seed(0)
    model = MLP(dim=2, hidden=16, depth=2, time_dim=8)
    noise, data = torch.randn(32, 2), torch.randn(32, 2) * 3
    torch.manual_seed(5)
    loss = cfm_batch_loss(GaussianPath(LinearSchedule()), t_max=0.5)(model, (noise, data))
    torch.manual_seed(5)
    t = 0.5 * torch.rand(32)  # the times the loss draws
    x_t = t[:, None] * data + (1 - t[:, None]) * noise
    expected = ((model(x=x_t, t=t) - (data - noise)) ** 2).mean()  # straight path: u = data - noise
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="noise, data"):
        cfm_batch_loss(GaussianPath(LinearSchedule()))(model, data)
    with pytest.raises(ValueError, match="t_max"):
        cfm_batch_loss(GaussianPath(LinearSchedule()), t_max=0.0)


def test_exact_marginal_flow_reproduces_the_mixture():
    """rk4 on the exact field from N(0, I) lands on 8 gaussians: W2 to data about the data-vs-data W2."""
    mixture = target_density("8gaussians")
    field = ExactMixtureModel(mixture, LinearSchedule(sigma_min=1e-3), "velocity")
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
