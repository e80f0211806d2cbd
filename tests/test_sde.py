"""Score SDEs: coefficients against closed forms and the schedule's moments, score, PF-ODE field, Euler-Maruyama."""

import math

import pytest
import torch

from lessons.data2d import target_density
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.schedules import (
    CosineSchedule,
    LinearSchedule,
    VESchedule,
    VPSchedule,
)
from lessons.sde import SDECoefficients, SDESchedule, probability_flow, reverse_sde, score, sde_coefficients
from lessons.solvers import solve_ode

T_INNER = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)


def test_vp_coefficients_are_beta_over_two_and_beta():
    vp = VPSchedule(beta_min=0.1, beta_max=20.0)
    k = sde_coefficients(vp, T_INNER)
    beta = 0.1 + (20.0 - 0.1) * (1 - T_INNER)  # Song et al.'s beta at diffusion time 1 - t
    assert torch.allclose(k.f, beta / 2, rtol=1e-10)
    assert torch.allclose(k.g**2, beta, rtol=1e-8)


def test_ve_coefficients_are_zero_drift_and_song_diffusion():
    ve = VESchedule(sigma_min=0.01, sigma_max=20.0)
    k = sde_coefficients(ve, T_INNER)
    sigma = 20.0 * (0.01 / 20.0) ** T_INNER
    assert torch.all(k.f == 0)
    assert torch.allclose(k.g, sigma * math.sqrt(2 * math.log(20.0 / 0.01)), rtol=1e-10)


def test_ddpm_discrete_schedule_diffusion_is_T_times_beta():
    ddpm = DDPM(num_steps=1000)
    k_steps = torch.tensor([10, 200, 500, 900])
    mid = 1 - (k_steps.double() - 0.5) / 1000  # middle of the segment between steps k - 1 and k
    g2 = sde_coefficients(DiscreteVPSchedule(ddpm), mid).g ** 2
    expected = -1000 * torch.log1p(-ddpm.betas[k_steps - 1])  # = T beta_k to first order
    assert torch.allclose(g2, expected, rtol=1e-8)


@pytest.mark.parametrize(
    "schedule", [CosineSchedule(), LinearSchedule(sigma_min=0.01), VPSchedule(), VESchedule()]
)
def test_coefficients_reproduce_the_schedule_moments_by_finite_differences(schedule):
    """Noising a point c: mean alpha_t c and variance sigma_t^2 obey d log alpha = f dt, d sigma^2 = (2 f sigma^2 - g^2) dt."""
    h = 1e-6
    k = sde_coefficients(schedule, T_INNER)

    def alpha(t):
        return schedule(t).alpha

    def var(t):
        return schedule(t).sigma ** 2

    d_log_alpha = (torch.log(alpha(T_INNER + h)) - torch.log(alpha(T_INNER - h))) / (2 * h)
    d_var = (var(T_INNER + h) - var(T_INNER - h)) / (2 * h)
    assert torch.allclose(k.f, d_log_alpha, rtol=1e-5, atol=1e-7)
    assert torch.allclose(2 * k.f * var(T_INNER) - k.g**2, d_var, rtol=1e-5, atol=1e-6)


def test_noising_sde_simulated_backwards_in_time_gives_the_marginal():
    """Euler-Maruyama of dx = f x dt + g dW from data at t = 0.98 down to t = 0.2 lands on N(alpha c, sigma^2)."""
    schedule, c = CosineSchedule(), torch.tensor([1.5, -0.5])
    g = torch.Generator().manual_seed(1)
    ts = torch.linspace(0.98, 0.2, 201)
    start = schedule(ts[:1])
    x = start.alpha * c + start.sigma * torch.randn(10_000, 2, generator=g)
    for t, s in zip(ts[:-1], ts[1:]):
        k = sde_coefficients(schedule, t.reshape(1))
        x = x + (s - t) * k.f * x + k.g * (t - s).sqrt() * torch.randn(x.shape, generator=g)
    end = schedule(ts[-1:])
    assert torch.allclose(x.mean(0), end.alpha * c, atol=0.04)  # 4 standard errors
    assert torch.allclose(x.var(0), end.sigma**2 * torch.ones(2), rtol=0.06)


def test_exact_eps_is_the_posterior_mean_residual_and_gives_the_mixture_score():
    mixture, schedule = target_density("mixture"), VPSchedule()
    model = ExactMixtureModel(mixture, schedule)
    x, t = torch.randn(64, 2) * 2, torch.rand(64) * 0.95
    c = schedule(t)
    data_hat = mixture.posterior_mean(x, c.alpha, c.sigma)
    eps = model(x=x, t=t)
    assert torch.allclose(eps, (x - c.alpha[:, None] * data_hat) / c.sigma[:, None], atol=1e-4)
    assert torch.allclose(score(model, schedule, x, t), mixture.score(x, c.alpha, c.sigma), atol=1e-4)
    # the same score by finite differences of the noised log-density
    h, e = 1e-3, torch.eye(2)
    fd = torch.stack(
        [
            (
                mixture.log_prob(x + h * e[i], c.alpha, c.sigma)
                - mixture.log_prob(x - h * e[i], c.alpha, c.sigma)
            )
            / (2 * h)
            for i in range(2)
        ],
        1,
    )
    assert torch.allclose(score(model, schedule, x, t), fd, atol=2e-2)


@pytest.mark.parametrize("schedule", [CosineSchedule(), VPSchedule(), VESchedule(sigma_max=15.0)])
def test_probability_flow_field_is_the_marginal_velocity(schedule):
    """f x + g^2 score / 2 equals d_alpha E[data | x] + d_sigma E[noise | x] (flow matching's marginal field)."""
    mixture = target_density("8gaussians")
    field = probability_flow(ExactMixtureModel(mixture, schedule), schedule)
    x, t = torch.randn(128, 2) * 4, 0.05 + 0.9 * torch.rand(128)
    expected = ExactMixtureModel(mixture, schedule, "velocity")(x=x, t=t)
    assert torch.allclose(field(x=x, t=t), expected, rtol=1e-4, atol=1e-3)


def test_one_euler_maruyama_step_matches_the_vp_formula():
    """x_next = x + dt (beta x / 2 + beta score) + sqrt(beta dt) z, with Song's beta and the mixture's exact score."""
    mixture, vp = target_density("mixture"), VPSchedule()
    x, ts = torch.randn(256, 2), torch.tensor([0.3, 0.32])
    traj = reverse_sde(ExactMixtureModel(mixture, vp), x, vp, ts, generator=torch.Generator().manual_seed(5))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    beta, c = 0.1 + 19.9 * 0.7, vp(ts[:1])
    expected = (
        x + 0.02 * (beta / 2 * x + beta * mixture.score(x, c.alpha, c.sigma)) + math.sqrt(beta * 0.02) * z
    )
    assert torch.allclose(traj.final, expected, atol=1e-4)
    assert traj.nfe == 1 and traj.xs.shape == (2, 256, 2)


def test_reverse_sde_and_probability_flow_ode_both_give_the_gaussian_marginals():
    """Gaussian data N(m, s^2 I): both generators started at the exact p_0 reach N(alpha m, alpha^2 s^2 + sigma^2)."""
    data_law = GaussianMixture([[1.0, -2.0]], [0.5])
    schedule, g = VPSchedule(), torch.Generator().manual_seed(3)
    model = ExactMixtureModel(data_law, schedule)
    ts = torch.linspace(0.3, 0.9, 151)
    c0 = schedule(ts[:1])
    start = data_law.sample_noised(4000, c0.alpha, c0.sigma, generator=g)  # the exact p_t at ts[0]
    sde = reverse_sde(model, start, schedule, ts, generator=g)
    ode = solve_ode(probability_flow(model, schedule), start, ts=ts[::3].contiguous(), method="heun")
    for traj, idx in ((sde, [75, 150]), (ode, [25, 50])):
        for i in idx:
            c = schedule(traj.ts[i : i + 1])
            mean, var = c.alpha * data_law.means[0], c.alpha**2 * 0.25 + c.sigma**2
            assert torch.allclose(traj.xs[i].mean(0), mean, atol=0.06)  # about 4 standard errors
            assert torch.allclose(traj.xs[i].var(0), var.expand(2), rtol=0.1)


def test_reverse_sde_is_reproducible_from_a_seed_and_counts_evaluations():
    mixture, vp = target_density("8gaussians"), VPSchedule()
    calls = []

    def model(x, t, cond=None):
        calls.append(1)
        return ExactMixtureModel(mixture, vp)(x=x, t=t)

    noise, ts = torch.randn(32, 2), torch.linspace(0, 1, 11)
    a = reverse_sde(model, noise, vp, ts, generator=torch.Generator().manual_seed(0))
    b = reverse_sde(model, noise, vp, ts, generator=torch.Generator().manual_seed(0))
    c = reverse_sde(model, noise, vp, ts, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.xs, b.xs) and not torch.allclose(a.final, c.final)
    assert a.nfe == 10 and len(calls) == 30 and torch.isfinite(a.final).all()


def test_bad_inputs_raise_value_errors():
    mixture, vp = target_density("8gaussians"), VPSchedule()
    model, x = ExactMixtureModel(mixture, vp), torch.randn(4, 2)
    with pytest.raises(ValueError, match="sigma = 0"):
        score(model, vp, x, torch.ones(4))
    with pytest.raises(ValueError, match="increasing"):
        reverse_sde(model, x, vp, torch.tensor([0.5, 0.2]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reverse_sde(model, x, vp, torch.tensor([0.0, 1.5]))
    with pytest.raises(ValueError, match="one time per sample"):
        probability_flow(model, vp)(x=x, t=torch.zeros(3))
    with pytest.raises(ValueError, match="cond=None"):
        model(x=x, t=torch.zeros(4), cond=torch.zeros(4))
    with pytest.raises(ValueError, match="2 columns"):
        model(x=torch.randn(4, 3), t=torch.zeros(4))


def test_vp_diffusion_coefficient_is_continuous_at_the_data_end():
    """sigma = 0 at t = 1, so sigma d_sigma is 0 * inf there: g(1) must be its limit sqrt(beta_min), not 0."""
    vp = VPSchedule(beta_min=0.1, beta_max=20.0)
    t = torch.tensor([1 - 1e-6, 1.0], dtype=torch.float64)
    g = sde_coefficients(vp, t).g
    assert g[1].item() == pytest.approx(0.1**0.5, rel=1e-12)
    assert g[0].item() == pytest.approx(g[1].item(), rel=1e-4)  # continuous
    ddpm = DDPM()
    g_discrete = sde_coefficients(DiscreteVPSchedule(ddpm), torch.tensor([1.0], dtype=torch.float64)).g
    assert g_discrete.item() > 0  # DDPM's discrete VP has sigma = 0 at t = 1 too
    linear = sde_coefficients(LinearSchedule(), torch.tensor([1.0], dtype=torch.float64)).g
    assert linear.item() == 0.0  # not VP: sigma d_sigma = 0 * (-1) is exact


def test_sde_schedule_recovers_vp_from_its_betas():
    vp = VPSchedule(beta_min=0.1, beta_max=20.0)
    sched = SDESchedule(lambda t: SDECoefficients(f=0.5 * vp.beta(t), g=vp.beta(t).sqrt()))
    t = torch.linspace(0, 0.99, 100, dtype=torch.float64)
    got, want = sched(t), vp(t)
    for name in ("alpha", "sigma", "d_alpha"):
        assert torch.allclose(getattr(got, name), getattr(want, name), rtol=1e-5, atol=1e-7), name
    # d sigma = f sigma - g^2 / (2 sigma) subtracts two terms of size ~5 near t = 0: compare at that scale
    assert ((got.d_sigma - want.d_sigma).abs() / (1 + (0.5 * vp.beta(t) * want.sigma).abs())).max() < 1e-6


def test_sde_schedule_recovers_ve_with_its_end_sigma():
    ve = VESchedule(sigma_min=0.02, sigma_max=5.0)
    sched = SDESchedule(lambda t: sde_coefficients(ve, t), sigma_end=0.02)
    t = torch.linspace(0, 1, 50, dtype=torch.float64)
    assert torch.allclose(sched(t).alpha, torch.ones_like(t))
    assert torch.allclose(sched(t).sigma, ve(t).sigma, rtol=1e-6)


def test_sde_schedule_round_trip_of_cosine():
    cos = CosineSchedule()
    sched = SDESchedule(lambda t: sde_coefficients(cos, t), t_min=1e-3)
    t = torch.linspace(0.05, 1, 60, dtype=torch.float64)
    assert torch.allclose(sched(t).alpha, cos(t).alpha, atol=1e-6)
    assert torch.allclose(sched(t).sigma, cos(t).sigma, atol=1e-6)


def test_sde_schedule_bad_input():
    cos = CosineSchedule()
    sched = SDESchedule(lambda t: sde_coefficients(cos, t), t_min=0.1, points=101)
    with pytest.raises(ValueError, match="tabulated"):
        sched(torch.tensor([0.05]))
    with pytest.raises(TypeError, match="function"):
        SDESchedule(3.0)
    with pytest.raises(ValueError, match="t_min"):
        SDESchedule(lambda t: sde_coefficients(cos, t), t_min=1.0)


def test_sde_coefficients_refuse_the_pure_noise_end_in_words():
    t = torch.tensor([0.0, 0.5])
    for schedule in (CosineSchedule(), LinearSchedule()):  # alpha(0) = 0: f = d log alpha / dt is infinite
        with pytest.raises(ValueError, match=r"alpha\(t\) = 0 \(pure noise\), here at t = 0"):
            sde_coefficients(schedule, t)
    with pytest.raises(TypeError, match=r"class VPSchedule itself"):
        sde_coefficients(VPSchedule, t)
    with pytest.raises(TypeError, match="not the string 'vp'"):
        sde_coefficients("vp", t)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sde_coefficients(VPSchedule(), torch.tensor([float("nan")]))
    assert torch.isfinite(sde_coefficients(VESchedule(), torch.tensor([0.0, 1.0])).g).all()


def test_reverse_sde_refuses_bad_input_before_calling_the_model():
    calls = []

    def model(x, t, cond=None):
        calls.append(1)
        return torch.zeros_like(x)

    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"alpha\(t\) = 0"):
        reverse_sde(model, x, CosineSchedule(), torch.linspace(0, 1, 5))  # a step starts at pure noise
    with pytest.raises(ValueError, match="prediction type"):
        reverse_sde(model, x, VPSchedule(), torch.linspace(0, 1, 5), prediction="x0")
    with pytest.raises(TypeError, match="not the string"):
        reverse_sde(model, x, "vp", torch.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="noise holds"):
        reverse_sde(model, torch.full((2, 2), float("nan")), VPSchedule(), torch.linspace(0, 1, 5))
    with pytest.raises(TypeError, match="generator"):
        reverse_sde(model, x, VPSchedule(), torch.linspace(0, 1, 5), generator="seed")
    assert calls == []
    with pytest.raises(ValueError, match=r"returned shape \(4, 1\)"):
        reverse_sde(lambda x, t, cond=None: x[:, :1], x, VPSchedule(), torch.linspace(0, 1, 5))


def test_reverse_sde_names_the_step_where_the_model_returns_nan():
    def model(x, t, cond=None):
        return torch.full_like(x, float("inf")) if t[0] > 0.3 else torch.zeros_like(x)

    with pytest.raises(ValueError, match=r"reverse_sde produced NaN or inf at step 3 \(t = 0\.4\)"):
        reverse_sde(model, torch.randn(4, 2), VPSchedule(), torch.linspace(0, 0.8, 5))


def test_probability_flow_and_score_refuse_singular_ends_and_bad_objects():
    mixture = target_density("8gaussians")
    cos = CosineSchedule()
    model, x = ExactMixtureModel(mixture, cos), torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"alpha\(t\) = 0"):
        probability_flow(model, cos)(x=x, t=torch.zeros(4))
    with pytest.raises(ValueError, match="sigma = 0"):
        probability_flow(model, cos)(x=x, t=torch.ones(4))
    with pytest.raises(ValueError, match="prediction type"):
        probability_flow(model, cos, prediction="noise")  # refused when built, not at the first ODE step
    with pytest.raises(TypeError, match="class CosineSchedule itself"):
        probability_flow(model, CosineSchedule)
    with pytest.raises(ValueError, match=r"returned shape \(4, 1\)"):
        score(lambda x, t, cond=None: x[:, :1], cos, x, torch.full((4,), 0.5))
    with pytest.raises(TypeError, match="must be a torch tensor"):
        score(model, cos, x.tolist(), torch.full((4,), 0.5))


def test_sde_schedule_refuses_what_is_not_an_sde_in_words():
    vp = VPSchedule()
    with pytest.raises(TypeError, match="you passed the schedule"):
        SDESchedule(vp)  # a schedule is callable too, but returns alpha and sigma
    with pytest.raises(TypeError, match="it returned tuple"):
        SDESchedule(lambda t: (t, t), points=11)
    with pytest.raises(ValueError, match="one f and one g per time"):
        SDESchedule(lambda t: SDECoefficients(f=t[:1], g=t[:1]), points=11)
    with pytest.raises(ValueError, match="t_min=1e-3"):
        SDESchedule(lambda t: SDECoefficients(f=1 / t, g=t), points=11)  # f infinite at t = 0
    with pytest.raises(ValueError, match="a little after 0"):
        SDESchedule(lambda t: sde_coefficients(CosineSchedule(), t), points=11)
    for kwargs, match in (
        ({"sigma_end": -1.0}, "sigma_end"),
        ({"sigma_end": float("nan")}, "sigma_end"),
        ({"t_min": float("nan")}, "t_min"),
        ({"points": 1}, "at least 2"),
        ({"points": "11"}, "grid points"),
    ):
        with pytest.raises(ValueError, match=match):
            SDESchedule(lambda t: sde_coefficients(vp, t), **kwargs)
    with pytest.raises(TypeError, match="SDECoefficients.f must be a tensor"):
        SDECoefficients(f=1.0, g=torch.ones(2))
    with pytest.raises(ValueError, match="one shape"):
        SDECoefficients(f=torch.ones(3), g=torch.ones(2))


def test_sde_schedule_and_reverse_sde_check_memory(monkeypatch):
    monkeypatch.setattr("lessons.checks.available_memory_bytes", lambda: 50_000)
    vp = VPSchedule()
    with pytest.raises(ValueError, match="tabulated on 20001 points would need"):
        SDESchedule(lambda t: sde_coefficients(vp, t))
    with pytest.raises(ValueError, match="recording the 201 states of reverse_sde"):
        reverse_sde(lambda x, t, cond=None: x, torch.randn(100, 2), vp, torch.linspace(0, 0.9, 201))


def test_reverse_sde_names_its_grid():
    with pytest.raises(ValueError, match=r"ts must lie in \[0, 1\]"):
        reverse_sde(lambda x, t, cond=None: x, torch.randn(3, 2), VPSchedule(), torch.tensor([0.2, 1.2]))
