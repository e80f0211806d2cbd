"""lessons.exercises_02b: each check passes lesson 02b's solution and names the slip of a typical wrong answer."""

import importlib.util
import math

import pytest
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons import exercises_02b
from lessons.data2d import target_density
from lessons.exercises import SOLUTIONS_DIR
from lessons.langevin import annealed_langevin
from lessons.mixture import ExactMixtureModel
from lessons.schedules import VESchedule, VPSchedule


def _solutions():
    spec = importlib.util.spec_from_file_location(
        "solutions_02b", SOLUTIONS_DIR / f"{exercises_02b.LESSON}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOLUTIONS = _solutions()


# --- score_from_velocity ------------------------------------------------------------------------------------


def _noise(u, x, alpha, sigma, d_alpha, d_sigma):
    return (alpha * u - d_alpha * x) / (alpha * d_sigma - d_alpha * sigma)


def score_linear_formula(u, x, alpha, sigma, d_alpha, d_sigma):
    t = alpha  # the linear path's time, used on every path
    return -(x - t * u) / (1 - t)


def score_linear_formula_with_sigma(u, x, alpha, sigma, d_alpha, d_sigma):
    return -(x - alpha * u) / sigma


def score_sign_flipped(u, x, alpha, sigma, d_alpha, d_sigma):
    return _noise(u, x, alpha, sigma, d_alpha, d_sigma) / sigma


def score_sigma_squared(u, x, alpha, sigma, d_alpha, d_sigma):
    return -_noise(u, x, alpha, sigma, d_alpha, d_sigma) / sigma**2


def score_eps_itself(u, x, alpha, sigma, d_alpha, d_sigma):
    return -_noise(u, x, alpha, sigma, d_alpha, d_sigma)


def score_of_the_data(u, x, alpha, sigma, d_alpha, d_sigma):
    return x + u  # no slip it knows: the general hint


def score_one_column(u, x, alpha, sigma, d_alpha, d_sigma):
    return SOLUTIONS.score_from_velocity(u, x, alpha, sigma, d_alpha, d_sigma)[:, :1]


# --- snr_langevin_step --------------------------------------------------------------------------------------


def _step(x, s, z, snr, ratio_of=None, noise_factor=2.0, drift_factor=1.0):
    ratio = z.norm(dim=1).mean() / s.norm(dim=1).mean() if ratio_of is None else ratio_of(s, z)
    h = 2 * (snr * ratio) ** 2
    return x + drift_factor * h * s + torch.sqrt(noise_factor * h) * z


def step_per_chain(x, score_value, z, snr):
    return _step(
        x, score_value, z, snr, lambda s, z: z.norm(dim=1, keepdim=True) / s.norm(dim=1, keepdim=True)
    )


def step_sqrt_h(x, score_value, z, snr):
    return _step(x, score_value, z, snr, noise_factor=1.0)


def step_without_two(x, score_value, z, snr):
    ratio = z.norm(dim=1).mean() / score_value.norm(dim=1).mean()
    h = (snr * ratio) ** 2
    return x + h * score_value + math.sqrt(2 * h) * z


def step_ratio_inverted(x, score_value, z, snr):
    return _step(x, score_value, z, snr, lambda s, z: s.norm(dim=1).mean() / z.norm(dim=1).mean())


def step_mean_squares(x, score_value, z, snr):
    return _step(x, score_value, z, snr, lambda s, z: ((z**2).sum(1).mean() / (s**2).sum(1).mean()).sqrt())


def step_fixed_h(x, score_value, z, snr):
    return x + 0.01 * score_value + math.sqrt(0.02) * z  # no slip it knows: the general hint


# --- mala_log_acceptance ------------------------------------------------------------------------------------


def _log_ratio(x, x_new, log_p, score_fn, h, q_back=True, q_forward=True, var=None, back_at=None):
    var = 2 * h if var is None else var

    def log_q(to, start, score_start):
        return -((to - start - h * score_start) ** 2).sum(1) / (2 * var)

    back = log_q(x, x_new, score_fn(x_new if back_at is None else back_at)) if q_back else 0
    forward = log_q(x_new, x, score_fn(x)) if q_forward else 0
    return log_p(x_new) - log_p(x) + back - forward


def mala_random_walk(x, x_new, log_p, score_fn, h):
    return _log_ratio(x, x_new, log_p, score_fn, h, q_back=False, q_forward=False)


def mala_swapped(x, x_new, log_p, score_fn, h):
    return 2 * (log_p(x_new) - log_p(x)) - _log_ratio(x, x_new, log_p, score_fn, h)


def mala_variance_h(x, x_new, log_p, score_fn, h):
    return _log_ratio(x, x_new, log_p, score_fn, h, var=h)


def mala_score_at_x(x, x_new, log_p, score_fn, h):
    return _log_ratio(x, x_new, log_p, score_fn, h, back_at=x)


def mala_clamped(x, x_new, log_p, score_fn, h):
    return _log_ratio(x, x_new, log_p, score_fn, h).clamp(max=0.0)


def mala_probability(x, x_new, log_p, score_fn, h):
    return _log_ratio(x, x_new, log_p, score_fn, h).clamp(max=0.0).exp()  # no slip it knows: the general hint


def mala_mean(x, x_new, log_p, score_fn, h):
    return _log_ratio(x, x_new, log_p, score_fn, h).mean()


WRONG = [
    (
        "score_from_velocity",
        score_linear_formula,
        exercises_02b.LINEAR_ALPHA,
        "holds on the linear path only",
    ),
    (
        "score_from_velocity",
        score_linear_formula_with_sigma,
        exercises_02b.LINEAR_SIGMA,
        "holds on the linear path only",
    ),
    (
        "score_from_velocity",
        score_sign_flipped,
        "+E[noise | x] / sigma, the sign flipped",
        "against the noise",
    ),
    ("score_from_velocity", score_sigma_squared, "E[noise | x] divided by sigma^2", "one sigma is left"),
    (
        "score_from_velocity",
        score_eps_itself,
        "-E[noise | x] without the division by sigma",
        "the eps-prediction",
    ),
    (
        "score_from_velocity",
        score_of_the_data,
        None,
        "(alpha u - d_alpha x) / (alpha d_sigma - d_alpha sigma)",
    ),
    ("score_from_velocity", score_one_column, None, "has shape (200, 1); it should have shape (200, 2)"),
    (
        "snr_langevin_step",
        step_per_chain,
        "h from each chain's own norms, not the batch's mean norms",
        "one step size h for every chain",
    ),
    ("snr_langevin_step", step_sqrt_h, "sqrt(h) z where sqrt(2 h) z belongs", "standard deviation sqrt(2 h)"),
    ("snr_langevin_step", step_without_two, "h without the factor 2", "the 2 makes the drift"),
    (
        "snr_langevin_step",
        step_ratio_inverted,
        "mean ||score|| / mean ||z||, the ratio inverted",
        "the score's norm goes in the denominator",
    ),
    (
        "snr_langevin_step",
        step_mean_squares,
        "the mean squared norms where the squared mean norms belong",
        "then square their ratio",
    ),
    ("snr_langevin_step", step_fixed_h, None, "norms per chain averaged over the batch"),
    (
        "mala_log_acceptance",
        mala_random_walk,
        "the proposal terms left out (random-walk Metropolis)",
        "is not symmetric",
    ),
    ("mala_log_acceptance", mala_swapped, "q(x' | x) and q(x | x') swapped", "goes in the numerator"),
    (
        "mala_log_acceptance",
        mala_variance_h,
        "the proposal's variance h where 2 h belongs",
        "adds sqrt(2 h) z",
    ),
    ("mala_log_acceptance", mala_score_at_x, "both proposals centred with the score at x", "starts at x'"),
    (
        "mala_log_acceptance",
        mala_clamped,
        "min(0, log r): the log of the acceptance probability",
        "return log r itself",
    ),
    ("mala_log_acceptance", mala_probability, None, "q(b | a) = N(b; a + h score(a), 2 h I)"),
    ("mala_log_acceptance", mala_mean, None, "has shape (); it should have shape (200,)"),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_the_checks_slip_tables_agree_with_the_tests_wrong_answers():
    """Each slip the check computes itself is what the test's own wrong answer returns (two independent writings)."""
    g = torch.Generator().manual_seed(0)
    x, s, z = (torch.randn(50, 2, generator=g, dtype=torch.float64) for _ in range(3))
    table = exercises_02b._langevin_steps(x, s, z, 0.2)
    for answer, slip in (
        (step_per_chain, "h from each chain's own norms, not the batch's mean norms"),
        (step_sqrt_h, "sqrt(h) z where sqrt(2 h) z belongs"),
        (step_without_two, "h without the factor 2"),
        (step_ratio_inverted, "mean ||score|| / mean ||z||, the ratio inverted"),
        (step_mean_squares, "the mean squared norms where the squared mean norms belong"),
    ):
        assert torch.allclose(answer(x, s, z, 0.2), table[slip], rtol=0, atol=1e-12), slip
    assert torch.allclose(SOLUTIONS.snr_langevin_step(x, s, z, 0.2), table[None], rtol=0, atol=1e-12)


def test_the_score_from_velocity_is_the_gradient_of_log_p_t_on_ve_too():
    """On the VE path too (alpha = 1, d_alpha = 0: not among the check's cases), against central differences of
    log p_t: an independent reference for the closed-form score the check uses."""
    mixture, schedule = target_density("mixture"), VESchedule()
    g = torch.Generator().manual_seed(1)
    t = 0.2 + 0.6 * torch.rand(40, generator=g, dtype=torch.float64)
    c = schedule(t)
    x = mixture.sample_noised(40, c.alpha, c.sigma, generator=g, dtype=torch.float64)
    u = ExactMixtureModel(mixture, schedule, prediction="velocity")(x=x, t=t)
    got = SOLUTIONS.score_from_velocity(u, x, *(v[:, None] for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma)))
    eps, fd = 1e-5, torch.zeros_like(x)
    for d in range(x.shape[1]):
        step = torch.zeros_like(x)
        step[:, d] = eps
        fd[:, d] = (
            mixture.log_prob(x + step, c.alpha, c.sigma) - mixture.log_prob(x - step, c.alpha, c.sigma)
        ) / (2 * eps)
    assert torch.allclose(got, fd, rtol=1e-5, atol=1e-6)


def test_the_score_from_velocity_on_the_linear_path_is_the_lessons_formula():
    g = torch.Generator().manual_seed(2)
    x, u = torch.randn(2, 30, 2, generator=g, dtype=torch.float64)
    t = (0.05 + 0.9 * torch.rand(30, generator=g, dtype=torch.float64))[:, None]
    ones = torch.ones_like(t)
    got = SOLUTIONS.score_from_velocity(u, x, t, 1 - t, ones, -ones)
    assert torch.allclose(got, -(x - t * u) / (1 - t), rtol=0, atol=1e-12)


def test_the_langevin_step_in_the_lessons_loop_is_lessons_annealed_langevin():
    """The check's own sampler with the solution's step is the library's, step for step (the sampler case's ground)."""
    vp = VPSchedule()
    model = ExactMixtureModel(target_density("8gaussians"), vp, prediction="score")
    start = torch.randn(100, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ts = torch.linspace(0, 0.5, 4, dtype=torch.float64)
    mine = exercises_02b._annealed(
        SOLUTIONS.snr_langevin_step, model, start, ts, 3, 0.16, torch.Generator().manual_seed(4)
    )
    lib = annealed_langevin(
        model, start, vp, ts, 3, 0.16, "score", generator=torch.Generator().manual_seed(4)
    )
    assert torch.allclose(mine, lib.final, rtol=0, atol=1e-12)


def test_mala_with_the_solution_has_no_step_size_bias_where_langevin_has():
    """Behaviour: on N(0, s^2) with a large step, ULA's variance is s^2 / (1 - h / (2 s^2)) (the lesson's formula) and
    MALA built on the solution's log ratio keeps s^2, each within 4 standard errors."""
    var, h, n, steps = 1.0, 0.8, 20_000, 150
    gen = torch.Generator().manual_seed(5)

    def log_p(x):
        return -(x**2).sum(1) / (2 * var)

    def score_fn(x):
        return -x / var

    x_ula = x_mala = torch.randn(n, 1, generator=gen, dtype=torch.float64) * math.sqrt(var)
    for _ in range(steps):
        x_ula = (
            x_ula
            + h * score_fn(x_ula)
            + math.sqrt(2 * h) * torch.randn(x_ula.shape, generator=gen, dtype=x_ula.dtype)
        )
        proposal = (
            x_mala
            + h * score_fn(x_mala)
            + math.sqrt(2 * h) * torch.randn(x_mala.shape, generator=gen, dtype=x_mala.dtype)
        )
        log_r = SOLUTIONS.mala_log_acceptance(x_mala, proposal, log_p, score_fn, h)
        accept = torch.rand(n, generator=gen, dtype=torch.float64).log() < log_r
        x_mala = torch.where(accept[:, None], proposal, x_mala)
    ula_var = var / (1 - h / (2 * var))
    for chain, want in ((x_ula, ula_var), (x_mala, var)):
        v = chain.var().item()
        assert abs(v - want) < 4 * v * math.sqrt(2 / n), (v, want)
    assert abs(ula_var - var) > 10 * var * math.sqrt(2 / n)  # the bias is far beyond the test's resolution
