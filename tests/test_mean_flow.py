"""MeanFlow: the identity on a Gaussian's exact average velocity, the jvp against finite differences."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lessons.couplings import pair_batches
from lessons.flow_matching import cfm_loss
from lessons.mean_flow import (
    AverageVelocityMLP,
    mean_flow_batch_loss,
    mean_flow_jvp,
    mean_flow_loss,
    mean_flow_sample,
)
from lessons.models import MLP
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule
from lessons.solvers import solve_ode
from lessons.training import train

MEAN, STD = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.3  # the target N(MEAN, STD^2 I)


def sigma(t):
    """Std of the marginal at t on the linear path from N(0, I) to N(MEAN, STD^2 I), (B,)."""
    return torch.sqrt((1 - t) ** 2 + t**2 * STD**2)


def velocity(x, t):
    """The exact marginal field v(x, t) = m + (sigma' / sigma)(x - t m), (B, 2)."""
    d_sigma = (t * STD**2 - (1 - t)) / sigma(t)
    m = MEAN.to(x.dtype)
    return m + (d_sigma / sigma(t))[:, None] * (x - t[:, None] * m)


def flow_map(x, s, t):
    """X_t of the flow from x at time s: t m + (sigma_t / sigma_s)(x - s m), (B, 2)."""
    return t[:, None] * MEAN + (sigma(t) / sigma(s))[:, None] * (x - s[:, None] * MEAN)


class ExactAverageVelocity(nn.Module):
    """u*(x, s, t) = (X_t - x) / (t - s), and v(x, t) where s = t (its limit)."""

    def forward(self, x, s, t):
        gap = (t - s)[:, None]
        safe = torch.where(gap > 0, gap, torch.ones_like(gap))
        return torch.where(gap > 0, (flow_map(x, s, t) - x) / safe, velocity(x, t))


def intervals(n=256, seed=0, dtype=torch.float64):
    """x (n, 2) and times s < t (n,), seeded."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.rand(2, n, generator=g, dtype=dtype)
    return 2 * torch.randn(n, 2, generator=g, dtype=dtype), torch.minimum(a, b), torch.maximum(a, b)


def with_nan(x):
    """x with its first entry set to NaN."""
    x = x.clone()
    x.view(-1)[0] = float("nan")
    return x


def random_mlp(time_scale=1.0, seed=0, **kw):
    torch.manual_seed(seed)
    return AverageVelocityMLP(hidden=32, depth=2, time_dim=8, time_scale=time_scale, **kw).double()


def test_flow_map_is_the_flow_of_the_velocity():
    x = torch.randn(64, 2, dtype=torch.float64)
    field = lambda x, t, cond=None: velocity(x, t)  # noqa: E731
    end = solve_ode(field, x, steps=400, method="rk4", t_start=0.2, t_end=0.9).final
    s, t = torch.full((64,), 0.2, dtype=torch.float64), torch.full((64,), 0.9, dtype=torch.float64)
    assert torch.allclose(end, flow_map(x, s, t), atol=1e-10)


def test_exact_average_velocity_satisfies_the_identity():
    x, s, t = intervals()
    exact = ExactAverageVelocity()
    assert mean_flow_loss(exact, x, s, t, velocity(x, s)).item() < 1e-20
    # control: the instantaneous velocity at the start or at the end is not the average velocity
    start = lambda x, s, t: velocity(x, s)  # noqa: E731
    end = lambda x, s, t: velocity(x, t)  # noqa: E731
    assert mean_flow_loss(start, x, s, t, velocity(x, s)).item() > 1e-2
    assert mean_flow_loss(end, x, s, t, velocity(x, s)).item() > 1e-2
    # control: the identity of the other time convention, u = v - (t - s) d/ds u, does not hold
    u, du_ds = mean_flow_jvp(exact, x, s, t, velocity(x, s))
    assert F.mse_loss(u, velocity(x, s) - (t - s)[:, None] * du_ds).item() > 1e-2


def test_exact_average_velocity_samples_in_one_step():
    noise = torch.randn(4000, 2, dtype=torch.float64)
    for steps in (1, 3):  # the average velocity is exact over any interval, so any grid lands on X_1
        traj = mean_flow_sample(ExactAverageVelocity(), noise, steps=steps)
        assert traj.xs.shape == (steps + 1, 4000, 2) and traj.nfe == steps
        assert torch.equal(traj.ts, torch.linspace(0, 1, steps + 1, dtype=torch.float64))
        assert torch.equal(traj.xs[0], noise)
        assert torch.allclose(traj.final, MEAN + STD * noise, atol=1e-12)  # X_1 = m + (sigma_1 / sigma_0) x
    assert torch.allclose(traj.final.mean(0), MEAN, atol=0.03)
    assert torch.allclose(traj.final.std(0), torch.full((2,), STD, dtype=torch.float64), atol=0.02)


@pytest.mark.parametrize("time_scale", [1.0, 1000.0])
def test_jvp_matches_finite_differences_along_the_flow(time_scale):
    model = random_mlp(time_scale)
    x, s, t = intervals(32)
    s, t = 0.1 + 0.3 * s, 0.6 + 0.3 * t  # room for s +- h inside [0, t]
    v = torch.randn(32, 2, dtype=torch.float64)
    u, du_ds = mean_flow_jvp(model, x, s, t, v)
    h = 1e-7  # the O(h^2) error of central differences stays below 1e-7 even at the scale 1000
    ahead, behind = model(x=x + h * v, s=s + h, t=t), model(x=x - h * v, s=s - h, t=t)
    assert torch.allclose(u, model(x=x, s=s, t=t))
    assert torch.allclose(du_ds, (ahead - behind) / (2 * h), rtol=1e-6, atol=1e-6)
    # control: without the x-direction (the partial derivative in s alone) it does not match
    partial = (model(x=x, s=s + h, t=t) - model(x=x, s=s - h, t=t)) / (2 * h)
    assert not torch.allclose(du_ds, partial, rtol=1e-3, atol=1e-3)


def test_loss_gradient_flows_through_u_only():
    model = random_mlp()
    x, s, t = intervals(64)
    s, t = 0.1 + 0.3 * s, 0.6 + 0.3 * t  # room for s +- h inside [0, t]
    v = velocity(x, s)
    mean_flow_loss(model, x, s, t, v).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    assert all(g.abs().sum() > 0 for g in grads)
    # by hand: the target from finite differences along the flow, without autograd, then an ordinary forward
    h = 1e-6
    with torch.no_grad():
        du_ds = (model(x=x + h * v, s=s + h, t=t) - model(x=x - h * v, s=s - h, t=t)) / (2 * h)
    model.zero_grad()
    F.mse_loss(model(x=x, s=s, t=t), v + (t - s)[:, None] * du_ds).backward()
    assert all(torch.allclose(g, p.grad, rtol=1e-6, atol=1e-9) for g, p in zip(grads, model.parameters()))
    # control: letting the gradient through the target too gives another gradient
    model.zero_grad()
    u, du_ds = torch.func.jvp(lambda x, s: model(x=x, s=s, t=t), (x, s), (v, torch.ones_like(s)))
    F.mse_loss(u, v + (t - s)[:, None] * du_ds).backward()
    assert not all(torch.allclose(g, p.grad, rtol=1e-3) for g, p in zip(grads, model.parameters()))


def _times(batch, equal_fraction, seed):
    """The times mean_flow_batch_loss draws after torch.manual_seed(seed): two uniforms, then a coin."""
    torch.manual_seed(seed)
    a, b, coin = torch.rand(batch), torch.rand(batch), torch.rand(batch)
    t = torch.maximum(a, b).double()
    return torch.where(coin < equal_fraction, t, torch.minimum(a, b).double()), t


def test_equal_times_give_flow_matching():
    model = random_mlp()
    noise, data = (
        torch.randn(128, 2, dtype=torch.float64),
        MEAN + STD * torch.randn(128, 2, dtype=torch.float64),
    )
    torch.manual_seed(3)
    loss = mean_flow_batch_loss(equal_fraction=1.0)(model, (noise, data))
    s, t = _times(128, 1.0, 3)
    assert torch.equal(s, t)
    instantaneous = lambda x, t, cond=None: model(x=x, s=t, t=t)  # noqa: E731
    expected = cfm_loss(instantaneous, GaussianPath(LinearSchedule()), data, noise=noise, t=t)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    # control: intervals s < t give another loss
    torch.manual_seed(3)
    assert mean_flow_batch_loss(equal_fraction=0.0)(model, (noise, data)).item() != pytest.approx(loss.item())


def test_batch_loss_distils_the_teacher_on_the_linear_path():
    model = random_mlp()
    noise, data = (
        torch.randn(128, 2, dtype=torch.float64),
        MEAN + STD * torch.randn(128, 2, dtype=torch.float64),
    )
    teacher = lambda x, t: velocity(x, t)  # noqa: E731
    torch.manual_seed(5)
    loss = mean_flow_batch_loss(teacher, equal_fraction=0.5)(model, (noise, data))
    s, t = _times(128, 0.5, 5)
    assert 0 < int((s == t).sum()) < 128
    x_s = s[:, None] * data + (1 - s[:, None]) * noise
    assert loss.item() == pytest.approx(mean_flow_loss(model, x_s, s, t, velocity(x_s, s)).item(), rel=1e-12)
    # control: the conditional velocity (no teacher) is another target
    conditional = mean_flow_loss(model, x_s, s, t, data - noise).item()
    assert conditional != pytest.approx(loss.item(), rel=1e-3)
    torch.manual_seed(5)
    assert mean_flow_batch_loss(None, equal_fraction=0.5)(model, (noise, data)).item() == pytest.approx(
        conditional, rel=1e-12
    )


def test_one_step_student_learns_the_mean():
    data = MEAN.float() + STD * torch.randn(4096, 2)
    teacher = lambda x, t: velocity(x.double(), t.double()).float()  # noqa: E731
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))

    def one_step_mean(time_scale):
        student = AverageVelocityMLP(hidden=32, depth=2, time_dim=8, time_scale=time_scale)
        train(
            student,
            mean_flow_batch_loss(teacher),
            pair_batches(data, 256),
            steps=300,
            lr=3e-3,
            progress=False,
        )
        return mean_flow_sample(student, noise).final.mean(0).double()

    untrained = mean_flow_sample(AverageVelocityMLP(hidden=32, depth=2, time_dim=8), noise).final.mean(0)
    assert (untrained.double() - MEAN).norm() > 0.5  # control: the start is far from the target's mean
    assert (one_step_mean(1.0) - MEAN).norm() < 0.15
    # control for the default time_scale = 1: at MLP's 1000 the same training does not get there
    assert (one_step_mean(1000.0) - MEAN).norm() > 0.3


def test_average_velocity_mlp_shapes_and_equal_times():
    model = AverageVelocityMLP(dim=3, hidden=16, depth=1, time_dim=4)
    x, t = torch.randn(5, 3), torch.rand(5)
    assert model(x=x, s=0.5 * t, t=t).shape == (5, 3)
    assert model(x=x, s=t, t=t).shape == (5, 3)  # s = t is the instantaneous velocity


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m(x=torch.randn(4, 3), s=torch.zeros(4), t=torch.ones(4)), "shape"),
        (lambda m: m(x=[[0.0, 1.0]], s=torch.zeros(1), t=torch.ones(1)), "tensor"),
        (lambda m: m(x=torch.randn(4, 2), s=torch.zeros(3), t=torch.ones(4)), "s must be a tensor of shape"),
        (lambda m: m(x=torch.randn(4, 2), s=torch.zeros(4), t=torch.ones(3)), "4 samples"),
        (
            lambda m: m(x=torch.randn(4, 2), s=torch.full((4,), 0.8), t=torch.full((4,), 0.5)),
            "s = 0.8 with t = 0.5",
        ),
        (lambda m: m(x=torch.randn(4, 2), s=torch.zeros(4), t=torch.full((4,), 1.5)), r"\[0, 1\]"),
        (lambda m: m(x=torch.randn(4, 2), s=torch.full((4,), -0.1), t=torch.ones(4)), r"\[0, t\]"),
        (lambda m: m(x=torch.randn(4, 2).double(), s=torch.zeros(4), t=torch.ones(4)), "dtype"),
        (lambda m: m(x=torch.randn(4, 2), s=torch.zeros(4, dtype=torch.long), t=torch.ones(4)), "float"),
    ],
)
def test_average_velocity_mlp_refuses_bad_input(call, match):
    model = AverageVelocityMLP(hidden=16, depth=1, time_dim=4)
    with pytest.raises((ValueError, TypeError), match=match):
        call(model)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"dim": 0}, "dim"),
        ({"time_dim": 3}, "even"),
        ({"activation": "tanh"}, "one of"),
        ({"time_scale": 0}, "scale"),
    ],
)
def test_average_velocity_mlp_refuses_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        AverageVelocityMLP(**kw)


def test_losses_and_sampler_refuse_bad_input():
    model = AverageVelocityMLP(hidden=16, depth=1, time_dim=4)
    x, s, t = (v.float() for v in intervals(8))
    with pytest.raises(ValueError, match="velocity and x must have the same shape"):
        mean_flow_loss(model, x, s, t, torch.randn(8, 3))
    with pytest.raises(ValueError, match="s = .* with t = "):
        mean_flow_loss(model, x, t, s, torch.randn(8, 2))  # s and t swapped
    with pytest.raises(ValueError, match="velocity holds 1 NaN"):
        mean_flow_loss(model, x, s, t, with_nan(torch.randn(8, 2)))
    with pytest.raises(TypeError, match="class"):
        mean_flow_loss(AverageVelocityMLP, x, s, t, torch.randn(8, 2))
    for fraction in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="equal_fraction"):
            mean_flow_batch_loss(equal_fraction=fraction)
    with pytest.raises(TypeError, match="teacher"):
        mean_flow_batch_loss(teacher="mlp")
    with pytest.raises(TypeError, match="is the student"):
        mean_flow_batch_loss(teacher=model)
    with pytest.raises(TypeError, match=r"model\(x=..., s=..., t=...\)"):
        mean_flow_loss(MLP(hidden=8, depth=1), x, s, t, torch.randn(8, 2))  # the teacher given as the student
    with pytest.raises(TypeError, match="it takes no s"):
        mean_flow_sample(MLP(hidden=8, depth=1), torch.randn(8, 2))
    with pytest.raises(TypeError, match="path must be a GaussianPath"):
        mean_flow_batch_loss(path=LinearSchedule())
    with pytest.raises(ValueError, match="noise, data"):
        mean_flow_batch_loss()(model, torch.randn(8, 2))
    with pytest.raises(ValueError, match="the teacher returned shape"):
        mean_flow_batch_loss(lambda x, t: x[:, :1])(model, (torch.randn(8, 2), torch.randn(8, 2)))
    with pytest.raises(ValueError, match="teacher's input x_s has dtype"):
        mean_flow_batch_loss(MLP(hidden=8, depth=1).double())(model, (torch.randn(8, 2), torch.randn(8, 2)))
    for steps in (0, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            mean_flow_sample(model, torch.randn(8, 2), steps=steps)
    with pytest.raises(ValueError, match="memory"):
        mean_flow_sample(model, torch.randn(8, 2), steps=10**12)
    with pytest.raises(ValueError, match="noise holds 1 NaN"):
        mean_flow_sample(model, with_nan(torch.randn(8, 2)))
