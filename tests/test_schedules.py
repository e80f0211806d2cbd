"""Schedules: end points, derivatives by finite differences, variance preservation, log-SNR, DDPM link."""

import math

import pytest
import torch
from model_helpers import INTERIOR, alpha_bars, central_difference, custom_scale

from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.paths import GaussianPath
from lessons.schedules import (
    CosineSchedule,
    LinearSchedule,
    RescaledSchedule,
    Schedule,
    ScheduleOutput,
    TruncatedSchedule,
    VESchedule,
    VPSchedule,
    log_snr_bisection,
    make_schedule,
)
from lessons.sde import SDECoefficients, SDESchedule, sde_coefficients

ALL = {
    "linear": LinearSchedule(),
    "linear_sigma_min": LinearSchedule(sigma_min=0.05),
    "cosine": CosineSchedule(),
    "cosine_offset": CosineSchedule(offset=0.008),
    "vp": VPSchedule(),
    "vp_small": VPSchedule(beta_min=0.5, beta_max=5.0),
    "ve": VESchedule(sigma_min=0.02, sigma_max=5.0),
}


def test_end_points_of_each_family():
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    for sched, sigma_min in ((LinearSchedule(), 0.0), (LinearSchedule(0.05), 0.05)):
        assert sched(zero).alpha.item() == 0.0 and sched(zero).sigma.item() == 1.0
        assert sched(one).alpha.item() == 1.0 and sched(one).sigma.item() == pytest.approx(
            sigma_min, abs=1e-15
        )
    cos = CosineSchedule()
    for dtype in (torch.float32, torch.float64):  # exact at both ends, as the linear and VP paths are
        assert cos(zero.to(dtype)).alpha.item() == 0.0 and cos(zero.to(dtype)).sigma.item() == 1.0
        assert cos(one.to(dtype)).alpha.item() == 1.0 and cos(one.to(dtype)).sigma.item() == 0.0
        assert cos.log_snr(one.to(dtype)).item() == math.inf
    vp = VPSchedule(beta_min=0.1, beta_max=20.0)
    # alpha(0) = exp(-0.5 int_0^1 beta(s) ds) = exp(-0.5 (beta_min + (beta_max - beta_min) / 2))
    assert vp(zero).alpha.item() == pytest.approx(math.exp(-0.5 * (0.1 + 19.9 / 2)), rel=1e-12)
    assert vp(zero).sigma.item() == pytest.approx(math.sqrt(1 - math.exp(-(0.1 + 19.9 / 2))), rel=1e-12)
    assert vp(one).alpha.item() == 1.0 and vp(one).sigma.item() == 0.0
    ve = VESchedule(sigma_min=0.02, sigma_max=5.0)
    assert ve(zero).alpha.item() == 1.0 and ve(one).alpha.item() == 1.0
    assert ve(zero).sigma.item() == pytest.approx(5.0) and ve(one).sigma.item() == pytest.approx(0.02)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(ALL))
def test_coefficients_in_range_on_the_closed_interval(name, dtype):
    """sigma >= 0 everywhere (float32 rounding included), so log-SNR is never NaN, even at t = 0 and 1."""
    t = torch.linspace(0, 1, 201, dtype=dtype)
    out = ALL[name](t)
    assert (out.sigma >= 0).all() and (out.alpha >= 0).all()
    assert all(torch.isfinite(v).all() for v in (out.alpha, out.sigma, out.d_alpha))
    lam = ALL[name].log_snr(t)
    assert not torch.isnan(lam).any() and (lam[1:] >= lam[:-1]).all()


@pytest.mark.parametrize("name", list(ALL))
def test_derivatives_match_finite_differences(name):
    sched = ALL[name]
    out = sched(INTERIOR)
    d_alpha = central_difference(lambda t: sched(t).alpha, INTERIOR)
    d_sigma = central_difference(lambda t: sched(t).sigma, INTERIOR)
    scale = 1 + out.d_sigma.abs()
    assert torch.allclose(out.d_alpha, d_alpha, rtol=1e-6, atol=1e-7)
    assert ((out.d_sigma - d_sigma).abs() / scale).max() < 1e-6


def test_linear_coefficients_by_hand():
    t = torch.tensor([0.1, 0.5, 0.8], dtype=torch.float64)
    out = LinearSchedule(sigma_min=0.1)(t)
    assert torch.allclose(out.alpha, t)
    assert torch.allclose(out.sigma, 1 - 0.9 * t)
    assert torch.allclose(out.d_alpha, torch.ones(3, dtype=torch.float64))
    assert torch.allclose(out.d_sigma, torch.full((3,), -0.9, dtype=torch.float64))


@pytest.mark.parametrize("name", ["cosine", "vp", "vp_small"])
def test_variance_preserving(name):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    out = ALL[name](t)
    assert torch.allclose(out.alpha**2 + out.sigma**2, torch.ones_like(t), atol=1e-12)


@pytest.mark.parametrize("name", list(ALL))
def test_log_snr_increasing_and_equal_to_definition(name):
    sched = ALL[name]
    out = sched(INTERIOR)
    lam = sched.log_snr(INTERIOR)
    assert torch.allclose(lam, 2 * torch.log(out.alpha / out.sigma), atol=1e-10)
    assert (lam[1:] > lam[:-1]).all()


def test_make_schedule_by_name_and_unknown_name():
    assert isinstance(make_schedule("linear", sigma_min=0.1), LinearSchedule)
    assert make_schedule("linear", sigma_min=0.1).sigma_min == 0.1
    assert isinstance(make_schedule("cosine"), CosineSchedule)
    assert isinstance(make_schedule("vp", beta_min=0.2, beta_max=10.0), VPSchedule)
    assert isinstance(make_schedule("ve"), VESchedule)
    with pytest.raises(ValueError, match="unknown schedule 'ot'"):
        make_schedule("ot")


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: LinearSchedule(sigma_min=1.0), r"sigma_min .* must lie in \[0, 1\)"),
        (lambda: LinearSchedule(sigma_min=-0.1), r"sigma_min .* must lie in \[0, 1\)"),
        (lambda: LinearSchedule(sigma_min=math.nan), "sigma_min .* must be a finite number"),
        (lambda: LinearSchedule(sigma_min=math.inf), "sigma_min .* must be a finite number"),
        (lambda: CosineSchedule(offset=math.nan), "offset s .* must be a finite number"),
        (lambda: CosineSchedule(offset=1.0), r"offset s .* must lie in \[0, 1\)"),
        (lambda: VPSchedule(beta_min=0.0), r"beta_min .* must lie in \(0, 1e\+06\]"),
        (lambda: VPSchedule(beta_min=-1.0), "beta_min"),
        (lambda: VPSchedule(beta_min=math.nan), "beta_min .* must be a finite number"),
        (lambda: VPSchedule(beta_max=math.inf), "beta_max .* must be a finite number"),
        (lambda: VPSchedule(beta_max=1e9), r"beta_max .* must lie in \(0, 1e\+06\]"),
        (lambda: VPSchedule(beta_min=2.0, beta_max=1.0), "beta_max must be >= beta_min"),
        (lambda: VESchedule(sigma_min=1.0, sigma_max=1.0), "sigma_max must be larger than sigma_min"),
        (lambda: VESchedule(sigma_min=0.0), "sigma_min .* must lie in"),
        (lambda: VESchedule(sigma_min=-0.5), "sigma_min .* must lie in"),
        (lambda: VESchedule(sigma_max=math.inf), "sigma_max .* must be a finite number"),
        (lambda: VESchedule(sigma_max=1e20), "sigma_max .* must lie in"),
    ],
)
def test_bad_parameters_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: LinearSchedule(sigma_min="0.1"), "sigma_min .* must be a real number"),
        (lambda: CosineSchedule(offset=torch.zeros(3)), "offset s .* must be a real number"),
        (lambda: VPSchedule(beta_max=None), "beta_max .* must be a real number"),
        (
            lambda: RescaledSchedule(CosineSchedule),
            r"the class CosineSchedule itself: call it, CosineSchedule\(\)",
        ),
        (lambda: TruncatedSchedule(LinearSchedule), r"call it, LinearSchedule\(\)"),
        (
            lambda: RescaledSchedule("linear"),
            r"not the name 'linear'; make one with make_schedule\('linear'\)",
        ),
        (lambda: RescaledSchedule("ot"), "base must be a Schedule object .* not the string 'ot'"),
        (lambda: TruncatedSchedule(3), "base must be a Schedule object .* got int"),
        (lambda: RescaledSchedule(GaussianPath(LinearSchedule())), "pass its schedule, e.g. path.schedule"),
        (lambda: RescaledSchedule(LinearSchedule(), scale=2.0), "scale must be None or a function"),
    ],
)
def test_wrong_kinds_of_object_raise_type_errors(build, match):
    with pytest.raises(TypeError, match=match):
        build()


def test_parameters_given_as_whole_numbers_give_the_same_schedule():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.equal(VPSchedule(1, 10)(t).alpha, VPSchedule(1.0, 10.0)(t).alpha)
    assert torch.equal(VESchedule(1, 10)(t).sigma, VESchedule(1.0, 10.0)(t).sigma)


def test_make_schedule_refuses_objects_and_unknown_parameters():
    with pytest.raises(ValueError, match="choose one of: cosine, linear, ve, vp"):
        make_schedule("ot")
    with pytest.raises(TypeError, match="already a schedule"):
        make_schedule(CosineSchedule())
    with pytest.raises(TypeError, match="must be a string"):
        make_schedule(CosineSchedule)
    with pytest.raises(ValueError, match="no parameter 'beta'; its parameters are: sigma_min"):
        make_schedule("linear", beta=0.1)
    with pytest.raises(ValueError, match="beta_max"):
        make_schedule("vp", beta_max=math.inf)


def test_schedule_output_and_base_class_refuse_misuse():
    one = torch.ones(3)
    with pytest.raises(TypeError, match="ScheduleOutput.sigma must be a torch tensor"):
        ScheduleOutput(one, 1.0, one, one)
    with pytest.raises(ValueError, match="share one shape"):
        ScheduleOutput(one, one, torch.ones(2), one)
    with pytest.raises(TypeError, match="base class"):
        Schedule()(torch.full((2,), 0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        VPSchedule().beta(torch.tensor([1.5]))


def test_rescaled_schedule_checks_what_scale_returns():
    t = torch.full((3,), 0.5)
    with pytest.raises(ValueError, match="positive, finite c"):
        RescaledSchedule(LinearSchedule(), lambda t: (-1 + 0 * t, 0 * t))(t)
    with pytest.raises(ValueError, match="positive, finite c"):
        RescaledSchedule(LinearSchedule(), lambda t: (1 + 0 * t, math.nan + 0 * t))(t)
    with pytest.raises(ValueError, match="a pair"):
        RescaledSchedule(LinearSchedule(), lambda t: 1 + 0 * t)(t)
    with pytest.raises(ValueError, match="shape"):
        RescaledSchedule(LinearSchedule(), lambda t: (torch.ones(3, 1), torch.zeros(3, 1)))(t)
    constant = RescaledSchedule(LinearSchedule(), lambda t: (2.0, 0.0))(t)  # plain numbers broadcast
    assert torch.equal(constant.alpha, 2 * t)


def test_log_snr_is_exactly_infinite_at_the_ends_never_nan():
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert LinearSchedule().log_snr(ends).tolist() == [-math.inf, math.inf]
    assert CosineSchedule().log_snr(ends.float()).tolist() == [-math.inf, math.inf]


@pytest.mark.parametrize(
    "bad_t, match",
    [
        (torch.tensor([1.5]), r"\[0, 1\]"),
        (torch.tensor([-0.1]), r"\[0, 1\]"),
        (torch.tensor([math.nan]), r"\[0, 1\]"),
        (torch.zeros(2, 2), r"shape \(B,\)"),
        (torch.tensor([0, 1]), "float tensor"),
        (0.5, "torch tensor"),
    ],
)
def test_schedule_checks_t(bad_t, match):
    with pytest.raises(ValueError, match=match):
        CosineSchedule()(bad_t)


def test_expand_like_broadcasts_over_a_state():
    out = CosineSchedule()(torch.tensor([0.2, 0.7])).expand_like(torch.zeros(2, 3, 4))
    assert out.alpha.shape == (2, 1, 1) and out.d_sigma.shape == (2, 1, 1)


def test_vp_schedule_approximates_ddpm_alpha_bars():
    """Continuous VP(0.1, 20) and DDPM's 1000 linear betas give the same alphas at t = 1 - k / T."""
    abar = torch.from_numpy(alpha_bars()[1])
    t = 1 - torch.arange(1001, dtype=torch.float64) / 1000
    vp = VPSchedule(beta_min=0.1, beta_max=20.0)(t)
    assert (vp.alpha - abar.sqrt()).abs().max() < 1e-2
    assert (vp.sigma - (1 - abar).sqrt()).abs().max() < 1e-2
    assert torch.allclose(DDPM().alpha_bars, abar, rtol=1e-10)


def test_discrete_vp_schedule_exact_on_the_grid():
    ddpm = DDPM(num_steps=50, beta_start=2e-3, beta_end=0.3)
    abar = torch.from_numpy(alpha_bars(50, 2e-3, 0.3)[1])
    sched = DiscreteVPSchedule(ddpm)
    out = sched(1 - torch.arange(51, dtype=torch.float64) / 50)
    assert torch.allclose(out.alpha**2, abar, rtol=1e-12, atol=1e-15)
    assert torch.allclose(out.sigma**2, 1 - abar, rtol=1e-12, atol=1e-15)


def test_discrete_vp_schedule_derivatives_between_grid_points():
    ddpm = DDPM(num_steps=50, beta_start=2e-3, beta_end=0.3)
    sched = DiscreteVPSchedule(ddpm)
    # midpoints of grid cells (away from the kinks of the piecewise-linear log alpha-bar), t < 1
    t = 1 - (torch.arange(49, 0, -1, dtype=torch.float64) + 0.5) / 50  # increasing
    out = sched(t)
    h = 1e-7  # much smaller than the cell width 1 / 50
    assert torch.allclose(out.d_alpha, central_difference(lambda s: sched(s).alpha, t, h), rtol=1e-6)
    assert torch.allclose(out.d_sigma, central_difference(lambda s: sched(s).sigma, t, h), rtol=1e-6)
    assert torch.allclose(out.alpha**2 + out.sigma**2, torch.ones_like(t), atol=1e-12)
    lam = sched.log_snr(t)
    assert (lam[1:] > lam[:-1]).all()


_VP = VPSchedule()
INVERTIBLE = {
    **ALL,
    "vp_constant_beta": VPSchedule(beta_min=1.0, beta_max=1.0),
    "rescaled": RescaledSchedule(CosineSchedule(), lambda t: (1 + t * (1 - t), 1 - 2 * t)),
    "truncated_cosine": TruncatedSchedule(CosineSchedule(), 0.1, 0.8),
    "truncated_vp": TruncatedSchedule(VPSchedule(), 0.0, 0.9),
    "ddpm": DiscreteVPSchedule(DDPM(num_steps=50, beta_start=2e-3, beta_end=0.3)),
    "sde_vp": SDESchedule(lambda t: SDECoefficients(f=0.5 * _VP.beta(t), g=_VP.beta(t).sqrt()), points=2001),
    "sde_ve": SDESchedule(lambda t: sde_coefficients(VESchedule(), t), sigma_end=0.01, points=2001),
}


@pytest.mark.parametrize("name", list(INVERTIBLE))
def test_time_at_log_snr_inverts_log_snr_and_agrees_with_bisection(name):
    sched = INVERTIBLE[name]
    t = torch.linspace(0.01, 0.99, 197, dtype=torch.float64)
    lam = sched.log_snr(t)
    assert (sched.time_at_log_snr(lam) - t).abs().max() < 1e-10
    assert (sched.time_at_log_snr(lam) - log_snr_bisection(sched, lam)).abs().max() < 1e-10
    lam32 = lam.float()
    assert sched.time_at_log_snr(lam32).dtype == torch.float32
    assert torch.allclose(sched.time_at_log_snr(lam32), log_snr_bisection(sched, lam32), atol=1e-6)


@pytest.mark.parametrize("name", list(INVERTIBLE))
def test_time_at_log_snr_ends(name):
    """Targets below the range give t = 0, above it t = 1, as bisection does (infinities included)."""
    sched = INVERTIBLE[name]
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    low, high = sched.log_snr(ends).tolist()
    lam = torch.tensor(
        [-math.inf, min(low, 0.0) - 50.0, max(high, 0.0) + 50.0, math.inf], dtype=torch.float64
    )
    assert sched.time_at_log_snr(lam).tolist() == [0.0, 0.0, 1.0, 1.0]
    assert torch.allclose(
        log_snr_bisection(sched, lam), torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    )


def test_sde_schedule_inverts_to_its_first_time():
    sched = SDESchedule(lambda t: sde_coefficients(CosineSchedule(), t), t_min=0.01, points=2001)
    t = torch.linspace(0.01, 1.0, 100, dtype=torch.float64)
    assert (sched.time_at_log_snr(sched.log_snr(t)) - t).abs().max() < 1e-10
    assert sched.time_at_log_snr(torch.tensor([-math.inf, -50.0], dtype=torch.float64)).tolist() == [
        0.01,
        0.01,
    ]


def test_a_schedule_without_closed_form_inverts_by_bisection():
    class Quadratic(Schedule):  # alpha = t^2, sigma = 1 - t: the base class has only bisection for it
        def _coefficients(self, t):
            return ScheduleOutput(t**2, 1 - t, 2 * t, -torch.ones_like(t))

    sched, t = Quadratic(), torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    assert (sched.time_at_log_snr(sched.log_snr(t)) - t).abs().max() < 1e-12
    assert sched.time_at_log_snr(torch.tensor([-math.inf, math.inf])).tolist() == [0.0, 1.0]


def test_cosine_offset_is_nichol_and_dhariwal_alpha_bar():
    """abar(t_d) = f(t_d) / f(0), f = cos^2((t_d + s) / (1 + s) pi / 2), diffusion time t_d = 1 - t (their eq. 17)."""
    s, t = 0.008, torch.linspace(0, 1, 101, dtype=torch.float64)

    def f(td):
        return torch.cos((td + s) / (1 + s) * math.pi / 2) ** 2

    abar = f(1 - t) / f(torch.zeros(1, dtype=torch.float64))
    out = CosineSchedule(offset=s)(t)
    assert torch.allclose(out.alpha**2, abar, atol=1e-14)
    assert torch.allclose(out.alpha**2 + out.sigma**2, torch.ones_like(t), atol=1e-14)
    plain = CosineSchedule()(t)
    assert (
        torch.allclose(plain.alpha, torch.sin(math.pi * t / 2))
        and (out.alpha - plain.alpha).abs().max() > 1e-3
    )
    with pytest.raises(ValueError, match="offset"):
        CosineSchedule(offset=-0.1)


@pytest.mark.parametrize(
    "sched",
    [
        RescaledSchedule(LinearSchedule()),
        RescaledSchedule(CosineSchedule(), custom_scale),
        RescaledSchedule(LinearSchedule(), custom_scale),
        TruncatedSchedule(CosineSchedule(), 0.1, 0.8),
        TruncatedSchedule(VPSchedule(), 0.0, 0.9),
    ],
    ids=repr,
)
def test_derivatives_match_finite_differences_rescaled(sched):
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
    for sched in (RescaledSchedule(base), RescaledSchedule(base, custom_scale)):
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
    with pytest.raises(ValueError, match="iters must be at most 200"):
        log_snr_bisection(LinearSchedule(), torch.zeros(2), iters=10**9)
    with pytest.raises(ValueError, match="1 NaN value"):
        CosineSchedule().time_at_log_snr(torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="NaN"):
        log_snr_bisection(LinearSchedule(), torch.tensor([math.nan]))
    with pytest.raises(ValueError, match="float tensor"):
        LinearSchedule().time_at_log_snr(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="log_snr must be a torch tensor"):
        LinearSchedule().time_at_log_snr([0.0])
    with pytest.raises(TypeError, match="call it, VPSchedule"):
        log_snr_bisection(VPSchedule, torch.zeros(2))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: TruncatedSchedule(LinearSchedule(), 0.5, 0.5), "t_start must be smaller than t_end"),
        (lambda: TruncatedSchedule(LinearSchedule(), -0.1, 1.0), r"t_start must lie in \[0, 1\]"),
        (lambda: TruncatedSchedule(LinearSchedule(), 0.0, math.nan), "t_end must be a finite number"),
        (lambda: TruncatedSchedule(LinearSchedule(), 0.0, 1.5), r"t_end must lie in \[0, 1\]"),
    ],
)
def test_bad_parameters_raise_rescaled(build, match):
    with pytest.raises(ValueError, match=match):
        build()
