"""Flow matching: the CFM loss by hand, and the flow of the exact marginal field to the target."""

import math

import pytest
import torch
import torch.nn.functional as F

from lessons.data2d import sample_target, target_density
from lessons.flow_matching import (
    cfm_batch_loss,
    cfm_loss,
    conditional_velocity,
    empirical_marginal_velocity,
    fm_loss,
    sample_times,
)
from lessons.mixture import ExactMixtureModel
from lessons.models import MLP
from lessons.optimal_transport import w2
from lessons.paths import GaussianPath
from lessons.schedules import CosineSchedule, LinearSchedule, VESchedule, VPSchedule
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


@pytest.mark.parametrize(
    "prediction, target",
    [
        ("eps", lambda data, noise, t: noise),
        ("data", lambda data, noise, t: data),
        ("velocity", lambda data, noise, t: data - noise),
        ("v", lambda data, noise, t: t * noise - (1 - t) * data),  # alpha noise - sigma data
        ("score", lambda data, noise, t: -noise / (1 - t)),
    ],
)
def test_cfm_loss_with_another_prediction_regresses_on_that_kind_by_hand(prediction, target):
    """On the straight path x_t = t data + (1 - t) noise, each kind's target written out, same x_t and t."""
    torch.manual_seed(0)
    model = MLP(dim=2, hidden=16, depth=2, time_dim=8)
    data, noise, t = torch.randn(32, 2) * 3, torch.randn(32, 2), torch.rand(32) * 0.99
    x_t = t[:, None] * data + (1 - t[:, None]) * noise
    expected = ((model(x=x_t, t=t) - target(data, noise, t[:, None])) ** 2).mean()
    loss = cfm_loss(model, GaussianPath(LinearSchedule()), data, noise=noise, t=t, prediction=prediction)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_an_eps_network_read_as_a_velocity_errs_by_the_eps_mse_factor():
    """The same error seen by two losses: velocity MSE = eps MSE times 1 / t^2 on the straight path, per sample."""
    from lessons.conversions import convert
    from lessons.weighting import eps_mse_factor

    torch.manual_seed(1)
    eps_net = MLP(dim=2, hidden=16, depth=2, time_dim=8)
    path = GaussianPath(LinearSchedule())
    data, noise, t = torch.randn(1, 2), torch.randn(1, 2), torch.tensor([0.3])

    def as_velocity(x, t, cond=None):
        return convert(eps_net(x=x, t=t), "eps", "velocity", x, path.schedule(t))

    eps_loss = cfm_loss(eps_net, path, data, noise=noise, t=t, prediction="eps")
    velocity_loss = cfm_loss(as_velocity, path, data, noise=noise, t=t)
    factor = eps_mse_factor("velocity", path.schedule(t)).item()
    assert factor == pytest.approx(1 / 0.3**2, rel=1e-5)
    assert velocity_loss.item() == pytest.approx(factor * eps_loss.item(), rel=1e-4)


def test_cfm_loss_refuses_an_unknown_prediction_in_words():
    model, data = MLP(hidden=8, depth=1), torch.randn(4, 2)
    with pytest.raises(
        ValueError,
        match=r"unknown prediction \(what the model outputs\) 'noise'; choose one of: data, eps, score, v, velocity",
    ):
        cfm_loss(model, GaussianPath(LinearSchedule()), data, prediction="noise")


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


PATHS = {
    "ot": GaussianPath(LinearSchedule()),
    "ot_sigma_min": GaussianPath(LinearSchedule(sigma_min=0.05)),
    "cosine": GaussianPath(CosineSchedule()),
    "vp": GaussianPath(VPSchedule()),
    "ve": GaussianPath(VESchedule(sigma_min=0.01, sigma_max=10.0)),
}


class ExactField(torch.nn.Module):
    """The mixture's exact marginal field plus a learnable affine error A x + b, called like every model."""

    def __init__(self, mixture, path, matrix=((0.0, 0.0), (0.0, 0.0)), offset=(0.0, 0.0)):
        super().__init__()
        self.exact = ExactMixtureModel(mixture, path.schedule, "velocity")
        self.matrix = torch.nn.Parameter(torch.tensor(matrix))
        self.offset = torch.nn.Parameter(torch.tensor(offset))

    def forward(self, x, t, cond=None):
        return self.exact(x=x, t=t) + x @ self.matrix.T + self.offset


@pytest.mark.parametrize("name", PATHS)
def test_conditional_velocity_is_the_time_derivative_of_the_flow_map(name):
    path, h = PATHS[name], 1e-6
    data, noise = torch.randn(50, 2, dtype=torch.float64), torch.randn(50, 2, dtype=torch.float64)
    t = torch.linspace(0.05, 0.9, 50, dtype=torch.float64)

    def flow_map(s):  # psi_s(noise) = alpha(s) data + sigma(s) noise, alpha and sigma only
        c = path.schedule(s)
        return c.alpha[:, None] * data + c.sigma[:, None] * noise

    finite_diff = (flow_map(t + h) - flow_map(t - h)) / (2 * h)
    u = conditional_velocity(path, flow_map(t), data, t)
    torch.testing.assert_close(u, finite_diff, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(u, path.sample(noise, data, t).velocity)


def test_conditional_velocity_matches_lipman_closed_forms():
    x, data = torch.randn(40, 2, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64)
    t = torch.rand(40, dtype=torch.float64) * 0.9
    s_min = 0.05  # OT, Lipman eq. (21) in t = 0 noise convention
    ot = (data - (1 - s_min) * x) / (1 - (1 - s_min) * t[:, None])
    torch.testing.assert_close(conditional_velocity(PATHS["ot_sigma_min"], x, data, t), ot)
    c = VPSchedule()(t)  # VP: d_alpha (data - alpha x) / (1 - alpha^2), Lipman eq. (19)
    vp = c.d_alpha[:, None] * (data - c.alpha[:, None] * x) / (1 - c.alpha[:, None] ** 2)
    torch.testing.assert_close(conditional_velocity(PATHS["vp"], x, data, t), vp)
    ve = math.log(0.01 / 10.0) * (x - data)  # VE: (d sigma / sigma) (x - data), a constant log-rate
    torch.testing.assert_close(conditional_velocity(PATHS["ve"], x, data, t), ve)


def test_empirical_marginal_velocity_of_one_point_is_its_conditional_field():
    path, data = PATHS["ot"], torch.randn(1, 2, dtype=torch.float64)
    x, t = torch.randn(10, 2, dtype=torch.float64), torch.rand(10, dtype=torch.float64) * 0.9
    torch.testing.assert_close(
        empirical_marginal_velocity(path, data, x, t), conditional_velocity(path, x, data, t)
    )


def test_empirical_marginal_velocity_converges_to_the_exact_field():
    mixture, path = target_density("mixture"), PATHS["ot"]
    t = torch.full((64,), 0.6, dtype=torch.float64)
    x = path.sample(torch.randn(64, 2, dtype=torch.float64), mixture.sample(64).double(), t).x_t
    exact = ExactMixtureModel(mixture, path.schedule, "velocity")(x=x, t=t)
    one, two = (empirical_marginal_velocity(path, mixture.sample(50_000).double(), x, t) for _ in range(2))
    # the two independent estimates disagree by about sqrt(2) times each one's error: that sets the scale
    mc_scale = ((one - two) ** 2).sum(1).mean() / 2
    error = ((one - exact) ** 2).sum(1).mean()
    assert error < 4 * mc_scale and error < 1e-3 * (exact**2).sum(1).mean()
    other = ExactMixtureModel(target_density("8gaussians"), path.schedule, "velocity")(
        x=x, t=t
    )  # another target: far
    assert ((one - other) ** 2).sum(1).mean() > 100 * error


def test_fm_loss_is_the_mse_to_the_marginal_field():
    mixture, path = target_density("mixture"), PATHS["ot"]
    data, noise, t = mixture.sample(256), torch.randn(256, 2), torch.rand(256) * 0.95
    model = MLP(hidden=16, depth=2)
    x_t = t[:, None] * data + (1 - t[:, None]) * noise
    expected = (
        (model(x=x_t, t=t) - ExactMixtureModel(mixture, path.schedule, "velocity")(x=x_t, t=t)) ** 2
    ).mean()
    torch.testing.assert_close(fm_loss(model, path, mixture, data, noise, t), expected)
    exact = ExactField(mixture, path)
    assert fm_loss(exact, path, mixture, data, noise, t) < 1e-10
    shifted = ExactField(mixture, path, offset=(0.3, -0.4))  # constant error 0.25 per coordinate squared
    torch.testing.assert_close(fm_loss(shifted, path, mixture, data, noise, t), torch.tensor(0.125))


def test_cfm_and_fm_losses_differ_by_a_constant_and_share_gradients():
    mixture, path = target_density("mixture"), PATHS["ot"]
    n = 50_000
    data, noise, t = mixture.sample(n), torch.randn(n, 2), torch.rand(n) * 0.95
    x_t = path.sample(noise, data, t).x_t
    # per-sample CFM-minus-FM gradient noise, (u(x) - u(x | data)) times (x, 1): it sets the tolerance
    residual = (
        ExactMixtureModel(mixture, path.schedule, "velocity")(x=x_t, t=t)
        - path.sample(noise, data, t).velocity
    )
    features = torch.cat([x_t, torch.ones(n, 1)], 1)  # (n, 3)
    per_sample = residual[:, :, None] * features[:, None, :]  # (n, 2, 3): d/d[A | b]
    std_error = per_sample.std(0) / math.sqrt(n)
    gaps, fm_changes = [], []
    for matrix, offset in [(((0.0, 0.0), (0.0, 0.0)), (0.0, 0.0)), (((0.5, -1.0), (0.2, 0.3)), (1.0, -2.0))]:
        model = ExactField(mixture, path, matrix, offset)
        cfm, fm = cfm_loss(model, path, data, noise, t), fm_loss(model, path, mixture, data, noise, t)
        gaps.append((cfm - fm).item())
        fm_changes.append(fm.item())
        g_cfm = torch.cat(
            [g.reshape(2, -1) for g in torch.autograd.grad(cfm, [model.matrix, model.offset])], 1
        )
        g_fm = torch.cat([g.reshape(2, -1) for g in torch.autograd.grad(fm, [model.matrix, model.offset])], 1)
        # the FM gradient, independently: mean of (A x + b) (x, 1)^T (the loss is a mean over 2 coordinates)
        error = x_t @ model.matrix.detach().T + model.offset.detach()
        torch.testing.assert_close(
            g_fm, (error[:, :, None] * features[:, None, :]).mean(0), rtol=1e-3, atol=1e-4
        )
        assert ((g_cfm - g_fm).abs() < 4 * std_error).all()  # equal up to sampling noise
    # the gap E || u(x | data) - u(x) ||^2 does not depend on the model, while the losses do
    assert abs(gaps[1] - gaps[0]) < 0.01 * abs(fm_changes[1] - fm_changes[0]) and gaps[0] > 0.3
    # a wrong target, the conditional field of a data point not paired with x_t, has another gradient
    model = ExactField(mixture, path)
    wrong = F.mse_loss(model(x=x_t, t=t), path.sample(noise, data.roll(1, 0), t).velocity)
    g_wrong = torch.autograd.grad(wrong, model.matrix)[0].reshape(-1)
    assert (g_wrong.abs() > 20 * std_error[:, :2].reshape(-1)).any()


def test_bad_inputs_raise_value_errors():
    path, mixture = PATHS["ot"], target_density("mixture")
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="sigma"):
        conditional_velocity(path, x, torch.randn(4, 2), torch.ones(4))
    with pytest.raises(ValueError, match="one row per point"):
        conditional_velocity(path, x, torch.randn(3, 2), torch.rand(4))
    with pytest.raises(ValueError, match="columns"):
        empirical_marginal_velocity(path, torch.randn(100, 3), x, torch.rand(4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fm_loss(MLP(hidden=8, depth=1), path, mixture, x, t=torch.full((4,), 1.5))
    with pytest.raises(ValueError, match="one time per sample"):
        fm_loss(MLP(hidden=8, depth=1), path, mixture, x, t=torch.rand(3))


@pytest.mark.parametrize("name", ["vp", "cosine_offset"])
def test_cfm_loss_refuses_the_end_where_its_target_diverges(name):
    path = PATHS.get(name, GaussianPath(CosineSchedule(offset=0.008)))
    model, data, noise = MLP(hidden=8, depth=1), torch.randn(4, 2), torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"undefined at t = 1 on GaussianPath.* d sigma / dt is unbounded"):
        cfm_loss(model, path, data, noise=noise, t=torch.tensor([0.2, 0.5, 1.0, 0.1]))
    assert torch.isfinite(cfm_loss(model, path, data, noise=noise, t=torch.zeros(4)))  # the noise end is fine
    with pytest.raises(ValueError, match=r"Keep t below 1, e.g. t = sample_times\(B, t_max=0.999\)"):
        cfm_loss(model, path, data, noise=noise, t=torch.ones(4))


@pytest.mark.parametrize("name", PATHS)
def test_fm_loss_handles_both_ends_or_refuses_them_in_words(name):
    """Finite at t = 0 and t = 1 where d sigma / dt is bounded; refused at t = 1 on VP, like cfm_loss."""
    path, mixture = PATHS[name], target_density("mixture")
    model, data, noise = MLP(hidden=8, depth=1), mixture.sample(16), torch.randn(16, 2)
    assert torch.isfinite(fm_loss(model, path, mixture, data, noise, torch.zeros(16)))
    if name == "vp":
        with pytest.raises(ValueError, match=r"the FM loss .* undefined at t = 1 .* unbounded"):
            fm_loss(model, path, mixture, data, noise, torch.ones(16))
    else:
        assert torch.isfinite(fm_loss(model, path, mixture, data, noise, torch.ones(16)))


def test_cfm_loss_on_straight_and_cosine_paths_is_defined_at_t_equal_1():
    model, data, noise = MLP(hidden=8, depth=1), torch.randn(4, 2), torch.randn(4, 2)
    t = torch.ones(4)
    loss = cfm_loss(model, PATHS["ot"], data, noise=noise, t=t)
    torch.testing.assert_close(loss, ((model(x=data, t=t) - (data - noise)) ** 2).mean())
    assert torch.isfinite(cfm_loss(model, PATHS["cosine"], data, noise=noise, t=t))


def test_losses_refuse_models_whose_output_is_not_shaped_like_x():
    path, mixture = PATHS["ot"], target_density("mixture")
    data = mixture.sample(8)

    def squashed(x, t, cond=None):  # (B, 1) for (B, 2): mse_loss would broadcast it silently
        return x.sum(1, keepdim=True)

    with pytest.raises(ValueError, match=r"the model returned shape \(8, 1\) for an input of shape \(8, 2\)"):
        cfm_loss(squashed, path, data)
    with pytest.raises(ValueError, match=r"the model returned shape \(8, 1\)"):
        fm_loss(squashed, path, mixture, data)
    with pytest.raises(TypeError, match="must return a tensor"):
        cfm_loss(lambda x, t, cond=None: 0.0, path, data)


def test_losses_refuse_float64_data_for_a_float32_model_in_words():
    path, mixture, model = PATHS["ot"], target_density("mixture"), MLP(hidden=8, depth=1)
    data = mixture.sample(8).double()
    with pytest.raises(
        ValueError, match=r"data has dtype torch.float64 but the model's weights are torch.float32"
    ):
        cfm_loss(model, path, data)
    with pytest.raises(ValueError, match=r"noise has dtype torch.float64 .* noise.to\(torch.float32\)"):
        cfm_loss(model, path, data.float(), noise=torch.randn(8, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"data has dtype torch.float64"):
        fm_loss(model, path, mixture, data)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m, p, d: cfm_loss(m, LinearSchedule(), d), TypeError, "path must be a GaussianPath"),
        (lambda m, p, d: cfm_loss(m, GaussianPath, d), TypeError, "class GaussianPath itself"),
        (lambda m, p, d: cfm_loss(MLP, p, d), TypeError, "class MLP itself"),
        (lambda m, p, d: cfm_loss(m, p, d, noise=d[:3]), ValueError, "same shape"),
        (lambda m, p, d: cfm_loss(m, p, d * float("nan")), ValueError, "data holds 16 NaN"),
        (lambda m, p, d: cfm_loss(m, p, d, noise=d * float("inf")), ValueError, "noise holds"),
        (lambda m, p, d: cfm_loss(m, p, d[:0]), ValueError, "at least 1 sample"),
        (lambda m, p, d: cfm_loss(m, p, d.long()), ValueError, "float"),
        (lambda m, p, d: cfm_loss(m, p, d, t=torch.full((5,), 0.5)), ValueError, "one time per sample"),
        (lambda m, p, d: fm_loss(m, p, "8gaussians", d), TypeError, "mixture must be a GaussianMixture"),
        (lambda m, p, d: fm_loss(m, p, target_density("mixture"), d[:, :1]), ValueError, "2 columns"),
        (lambda m, p, d: cfm_batch_loss(p, t_max=float("nan")), ValueError, "t_max must be a finite"),
        (lambda m, p, d: cfm_batch_loss(p, t_max=1.5), ValueError, r"t_max must lie in \(0, 1\]"),
        (lambda m, p, d: cfm_batch_loss(VPSchedule()), TypeError, "path must be a GaussianPath"),
        (lambda m, p, d: sample_times(0), ValueError, "batch size"),
        (lambda m, p, d: sample_times(4, t_max=0.0), ValueError, "t_max"),
    ],
)
def test_losses_and_times_refuse_bad_input(call, error, match):
    model, path, data = MLP(hidden=8, depth=1), PATHS["ot"], torch.randn(8, 2)
    with pytest.raises(error, match=match):
        call(model, path, data)


def test_marginal_fields_refuse_empty_and_non_finite_points():
    path, x, t = PATHS["ot"], torch.randn(4, 2), torch.rand(4)
    with pytest.raises(ValueError, match="data must hold at least 1 sample"):
        empirical_marginal_velocity(path, torch.zeros(0, 2), x, t)
    with pytest.raises(ValueError, match="x holds 1 NaN"):
        empirical_marginal_velocity(
            path, torch.randn(10, 2), torch.tensor([[0.0, float("nan")]] * 1 + [[0.0, 0.0]] * 3), t
        )
    with pytest.raises(ValueError, match="data holds"):
        conditional_velocity(path, x, torch.full((4, 2), float("inf")), t)
    with pytest.raises(TypeError, match="path must be a GaussianPath"):
        conditional_velocity(LinearSchedule(), x, x, t)
    with pytest.raises(ValueError, match="sigma"):  # the data end, guarded as before
        empirical_marginal_velocity(path, torch.randn(10, 2), x, torch.ones(4))


def test_sample_times_refuses_unknown_devices_and_impossible_sizes():
    with pytest.raises(ValueError, match="unknown device 'gpu'; choose one of"):
        sample_times(4, device="gpu")
    with pytest.raises(ValueError, match="1000000000000 times would need about"):
        sample_times(10**12)
    assert sample_times(3, device="cpu").shape == (3,)


def test_cfm_batch_loss_refuses_batches_that_are_not_tensors():
    loss_fn, model = cfm_batch_loss(PATHS["ot"]), MLP(hidden=8, depth=1)
    with pytest.raises(TypeError, match="data must be a torch tensor"):
        loss_fn(model, (torch.randn(4, 2), [[0.0, 1.0]] * 4))
    with pytest.raises(ValueError, match="noise and data must have the same shape"):
        loss_fn(model, (torch.randn(3, 2), torch.randn(4, 2)))
