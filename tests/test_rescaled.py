"""Rescaled and truncated schedules, log-SNR inversion, the change of schedule of a model, SDE -> schedule."""

import math

import pytest
import torch
from model_helpers import INTERIOR, central_difference, gaussian_model

from lessons.conversions import change_schedule
from lessons.ddim import ddim
from lessons.schedules import (
    CosineSchedule,
    LinearSchedule,
    RescaledSchedule,
    TruncatedSchedule,
    VESchedule,
    VPSchedule,
    log_snr_bisection,
)
from lessons.sde import SDECoefficients, SDESchedule, sde_coefficients


def _custom_scale(t):  # c = 1 + t (1 - t), dc/dt = 1 - 2 t
    return 1 + t * (1 - t), 1 - 2 * t


@pytest.mark.parametrize(
    "sched",
    [
        RescaledSchedule(LinearSchedule()),
        RescaledSchedule(CosineSchedule(), _custom_scale),
        RescaledSchedule(LinearSchedule(), _custom_scale),
        TruncatedSchedule(CosineSchedule(), 0.1, 0.8),
        TruncatedSchedule(VPSchedule(), 0.0, 0.9),
    ],
    ids=repr,
)
def test_derivatives_match_finite_differences(sched):
    out = sched(INTERIOR)
    assert torch.allclose(
        out.d_alpha, central_difference(lambda t: sched(t).alpha, INTERIOR), rtol=1e-6, atol=1e-7
    )
    assert torch.allclose(
        out.d_sigma, central_difference(lambda t: sched(t).sigma, INTERIOR), rtol=1e-6, atol=1e-7
    )


def test_variance_preserving_rescale_of_linear_by_hand():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    out = RescaledSchedule(LinearSchedule())(t)
    norm = torch.sqrt(t**2 + (1 - t) ** 2)
    assert torch.allclose(out.alpha, t / norm) and torch.allclose(out.sigma, (1 - t) / norm)
    assert torch.allclose(out.alpha**2 + out.sigma**2, torch.ones_like(t), atol=1e-14)
    assert out.alpha[0] == 0 and out.sigma[0] == 1 and out.alpha[-1] == 1 and out.sigma[-1] == 0


@pytest.mark.parametrize("base", [LinearSchedule(), CosineSchedule()], ids=repr)
def test_rescaling_keeps_the_log_snr(base):
    for sched in (RescaledSchedule(base), RescaledSchedule(base, _custom_scale)):
        assert torch.allclose(sched.log_snr(INTERIOR), base.log_snr(INTERIOR), atol=1e-12)


def test_truncated_schedule_is_the_base_on_a_sub_interval():
    base, sched = CosineSchedule(), TruncatedSchedule(CosineSchedule(), 0.2, 0.7)
    assert torch.allclose(sched(INTERIOR).alpha, base(0.2 + 0.5 * INTERIOR).alpha)
    assert torch.allclose(
        sched.log_snr(torch.tensor([0.0, 1.0], dtype=torch.float64)),
        base.log_snr(torch.tensor([0.2, 0.7], dtype=torch.float64)),
    )


def test_time_at_log_snr_against_closed_forms():
    lam = torch.linspace(-12, 12, 25, dtype=torch.float64)
    for invert in (log_snr_bisection, lambda s, lam: s.time_at_log_snr(lam)):
        assert torch.allclose(invert(LinearSchedule(), lam), torch.sigmoid(lam / 2), atol=1e-12)
        assert torch.allclose(
            invert(CosineSchedule(), lam), 2 / math.pi * torch.atan(torch.exp(lam / 2)), atol=1e-12
        )
        ends = invert(LinearSchedule(), torch.tensor([-math.inf, math.inf], dtype=torch.float64))
        assert ends.tolist() == [0.0, 1.0]
        vp = VPSchedule()  # log-SNR of VP starts near -10 at t = 0: a lower target gives t = 0
        assert invert(vp, torch.tensor([-30.0], dtype=torch.float64)).item() < 1e-12


def test_time_at_log_snr_bad_input():
    with pytest.raises(ValueError, match="shape"):
        LinearSchedule().time_at_log_snr(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="shape"):
        log_snr_bisection(LinearSchedule(), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="bisection"):
        log_snr_bisection(LinearSchedule(), torch.zeros(2), iters=0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: RescaledSchedule("linear"),
        lambda: TruncatedSchedule(LinearSchedule(), 0.5, 0.5),
        lambda: TruncatedSchedule(LinearSchedule(), -0.1, 1.0),
        lambda: TruncatedSchedule(3),
    ],
)
def test_bad_parameters_raise(build):
    with pytest.raises(ValueError):
        build()


@pytest.mark.parametrize("output", ["eps", "data", "velocity"])
def test_change_schedule_turns_the_ideal_model_of_one_schedule_into_the_other(output):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64) * 2
    t = torch.rand(64, generator=g, dtype=torch.float64) * 0.98 + 0.01
    source, target = CosineSchedule(), RescaledSchedule(LinearSchedule(), _custom_scale)
    changed = change_schedule(gaussian_model(source), source, target, "eps", output)
    c = target(t)
    eps = gaussian_model(target)(x=x, t=t)  # the ideal model written directly for target
    data = (x - c.sigma[:, None] * eps) / c.alpha[:, None]
    expected = {"eps": eps, "data": data, "velocity": c.d_alpha[:, None] * data + c.d_sigma[:, None] * eps}[
        output
    ]
    assert torch.allclose(changed(x=x, t=t), expected, atol=1e-9)


def test_change_schedule_of_a_pure_rescaling_keeps_the_time():
    """On RescaledSchedule(base, c), the base's network is evaluated at (x / c(t), t): the log-SNR is unchanged."""
    seen = []

    def velocity_model(x, t, cond=None):
        seen.append((x, t))
        return torch.sin(x) * t[:, None]

    base, scaled = LinearSchedule(), RescaledSchedule(LinearSchedule(), _custom_scale)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 16, dtype=torch.float64)
    changed = change_schedule(velocity_model, base, scaled, prediction="velocity", output="velocity")(
        x=x, t=t
    )
    c, dc = _custom_scale(t)
    assert torch.allclose(seen[0][1], t, atol=1e-12)
    assert torch.allclose(seen[0][0], x / c[:, None], atol=1e-12)
    # x' = c x_base, so dx'/dt = c u + dc x_base
    expected = c[:, None] * velocity_model(x / c[:, None], t) + dc[:, None] * x / c[:, None]
    assert torch.allclose(changed, expected, atol=1e-10)


def test_ddim_is_invariant_to_rescaling():
    """DDIM's final samples do not depend on the scale of (alpha, sigma); its path scales by c(t)."""
    noise = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ts = torch.linspace(0.02, 1, 9, dtype=torch.float64)
    base, rescaled = CosineSchedule(), RescaledSchedule(CosineSchedule(), _custom_scale)
    a = ddim(gaussian_model(base), noise, base, ts)
    b = ddim(gaussian_model(rescaled), noise * _custom_scale(ts[:1])[0], rescaled, ts)
    assert torch.allclose(b.xs, a.xs * _custom_scale(ts)[0][:, None, None], atol=1e-10)


def test_change_schedule_bad_kind():
    with pytest.raises(ValueError, match="prediction type"):
        change_schedule(gaussian_model(LinearSchedule()), LinearSchedule(), CosineSchedule(), "noise")


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
    with pytest.raises(ValueError, match="function"):
        SDESchedule(3.0)
    with pytest.raises(ValueError, match="t_min"):
        SDESchedule(lambda t: sde_coefficients(cos, t), t_min=1.0)
