"""lessons.exercises_07: each check passes lesson 07's solution and names the slip of a typical wrong answer."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons import exercises_07
from lessons.checkpoints import checkpoint_path
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.exercise_checks import _seeded
from lessons.exercises import EXERCISES, review, solution
from lessons.image_metrics import bits_per_dim, dequantize, frechet_distance
from lessons.image_training import generate, load_image_model

# scipy warns that S_a S_b is singular on the ReLU features with dead units (as in the lesson): the root is fine
pytestmark = pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """review and solution find this lesson's checks even before lessons.exercises lists the module."""
    for name, check in exercises_07.CHECKS.items():
        monkeypatch.setitem(EXERCISES, name, (exercises_07.LESSON, check))


# --- clipped_ddim_step ------------------------------------------------------------------------------------------


def _step(x, eps, a_t, s_t, a_s, s_s, low=-1.0, keep_eps=False):
    data_hat = ((x - s_t * eps) / a_t).clamp(low, 1)
    return a_s * data_hat + s_s * (eps if keep_eps else (x - a_t * data_hat) / s_t)


def step_unclipped(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return alpha_s * (x - sigma_t * eps_hat) / alpha_t + sigma_s * eps_hat


def step_keeps_eps(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return _step(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s, keep_eps=True)


def step_clips_the_state(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return step_unclipped(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s).clamp(-1, 1)


def step_clips_to_unit(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return _step(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s, low=0.0)


def step_to_the_data_guess(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return ((x - sigma_t * eps_hat) / alpha_t).clamp(-1, 1)  # right on the last step only: the general hint


def step_flattened(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return solution("clipped_ddim_step")(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s).flatten(1)


def step_in_float32(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return solution("clipped_ddim_step")(x.float(), eps_hat.float(), alpha_t, sigma_t, alpha_s, sigma_s)


# --- feature_frechet_distance -----------------------------------------------------------------------------------


def _fd(a, b, cov=np.cov, cross=True, squared=True, product_of_roots=False):
    a, b = a.numpy(), b.numpy()
    sa, sb = cov(a), cov(b)
    gap = ((a.mean(0) - b.mean(0)) ** 2).sum()
    if product_of_roots:
        middle = np.trace(scipy.linalg.sqrtm(sa) @ scipy.linalg.sqrtm(sb)).real
    else:
        middle = np.trace(scipy.linalg.sqrtm(sa @ sb)).real
    return (gap if squared else gap**0.5) + np.trace(sa) + np.trace(sb) - 2 * middle * cross


def fd_by_scipy(features_a, features_b):  # the lesson's formula by hand: another right way
    return _fd(features_a, features_b, cov=lambda f: np.cov(f.T))


def fd_rows_as_variables(features_a, features_b):
    return _fd(features_a, features_b)  # np.cov(f): each row a variable


def fd_biased(features_a, features_b):
    return _fd(features_a, features_b, cov=lambda f: np.cov(f.T, bias=True))


def fd_product_of_roots(features_a, features_b):
    return _fd(features_a, features_b, cov=lambda f: np.cov(f.T), product_of_roots=True)


def fd_mean_not_squared(features_a, features_b):
    return _fd(features_a, features_b, cov=lambda f: np.cov(f.T), squared=False)


def fd_no_cross_term(features_a, features_b):
    return _fd(features_a, features_b, cov=lambda f: np.cov(f.T), cross=False)


def fd_diagonal(features_a, features_b):  # coordinates treated as independent: no slip the check names
    gap = ((features_a.mean(0) - features_b.mean(0)) ** 2).sum()
    return float(gap + ((features_a.std(0) - features_b.std(0)) ** 2).sum())


# --- dequantized_bits_per_dim -----------------------------------------------------------------------------------


def _bpd(log_density, pixels, x=None, bin_width=2 / 256, bits=True):
    x = 2 * dequantize(pixels) - 1 if x is None else x
    nats = -(log_density(x) + 784 * math.log(bin_width)) / 784
    return nats / math.log(2) if bits else nats


def bpd_bin_of_unit_width(log_density, pixels):
    return _bpd(log_density, pixels, bin_width=1 / 256)


def bpd_without_the_bin(log_density, pixels):
    return _bpd(log_density, pixels, bin_width=1.0)


def bpd_in_nats(log_density, pixels):
    return _bpd(log_density, pixels, bits=False)


def bpd_at_the_levels(log_density, pixels):
    return _bpd(log_density, pixels, x=2 * pixels - 1)


def bpd_in_the_unit_interval(log_density, pixels):
    return _bpd(log_density, pixels, x=dequantize(pixels))


def bpd_per_image(log_density, pixels):  # bits per image: no slip the check names
    return 784 * _bpd(log_density, pixels)


def bpd_not_a_number(log_density, pixels):
    return torch.full((pixels.shape[0],), math.nan)


def bpd_of_the_batch(log_density, pixels):
    return _bpd(log_density, pixels).mean()


def bpd_with_noise_by_hand(log_density, pixels):  # another right way: the uniform noise drawn by hand
    levels = torch.round(pixels * 255)
    return _bpd(log_density, pixels, x=2 * (levels + torch.rand_like(levels)) / 256 - 1)


WRONG = [
    (
        "clipped_ddim_step",
        step_unclipped,
        "the data guess left unclipped (plain DDIM)",
        "alpha_t about 0.006",
    ),
    (
        "clipped_ddim_step",
        step_keeps_eps,
        "eps_hat kept for the noise after clipping",
        "must agree with the clipped data guess",
    ),
    (
        "clipped_ddim_step",
        step_clips_the_state,
        "the new state x_s clipped, not the data guess",
        "not the state",
    ),
    (
        "clipped_ddim_step",
        step_clips_to_unit,
        "the data guess clipped to [0, 1], not [-1, 1]",
        "k / 127.5 - 1",
    ),
    ("clipped_ddim_step", step_to_the_data_guess, None, ("right on step 4", "x_s = alpha_s data_hat")),
    ("clipped_ddim_step", step_flattened, None, "should have shape (16, 1, 28, 28)"),
    (
        "feature_frechet_distance",
        fd_rows_as_variables,
        "torch.cov(features) (each row a variable) where torch.cov(features.T) belongs",
        "pass features.T",
    ),
    ("feature_frechet_distance", fd_biased, "covariances divided by N, not N - 1", "unbiased covariance"),
    (
        "feature_frechet_distance",
        fd_product_of_roots,
        "tr(S_a^(1/2) S_b^(1/2)) where tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)) belongs",
        "do not commute",
    ),
    ("feature_frechet_distance", fd_mean_not_squared, "the mean term not squared", "enters squared"),
    ("feature_frechet_distance", fd_no_cross_term, "the cross term -2 tr(...) left out", "at distance 0"),
    ("feature_frechet_distance", fd_diagonal, None, "(S_a S_b)^(1/2))"),
    (
        "dequantized_bits_per_dim",
        bpd_bin_of_unit_width,
        "the bin width 1/256 where 2/256 belongs",
        "1 bit/dim off",
    ),
    (
        "dequantized_bits_per_dim",
        bpd_without_the_bin,
        "the bin term D log(2/256) left out",
        "a density is not a probability",
    ),
    ("dequantized_bits_per_dim", bpd_in_nats, "nats, not bits (no division by log 2)", "divide by D log 2"),
    (
        "dequantized_bits_per_dim",
        bpd_at_the_levels,
        "no dequantization (the density at the levels k / 255 themselves)",
        "add uniform noise",
    ),
    (
        "dequantized_bits_per_dim",
        bpd_in_the_unit_interval,
        "the dequantized pixels left in [0, 1], not mapped to [-1, 1]",
        "the models' coordinates",
    ),
    ("dequantized_bits_per_dim", bpd_per_image, None, "bpd = -(log_density(x) + D log(2 / 256))"),
    ("dequantized_bits_per_dim", bpd_of_the_batch, None, "should have shape (12,)"),
    ("dequantized_bits_per_dim", bpd_not_a_number, None, "inf standard errors away"),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_every_named_slip_has_a_wrong_answer_here():
    named = {(name, slip) for name, _, slip, _ in WRONG if slip}
    one, features = torch.ones(1, 2, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    levels, mean = torch.zeros(1, 1, 28, 28, dtype=torch.float64), torch.zeros(1, 28, 28, dtype=torch.float64)
    tables = {
        "clipped_ddim_step": exercises_07._clipped_steps(one, one, 0.5, 0.5, 0.5, 0.5),
        "feature_frechet_distance": exercises_07._frechet_slips(features, features),
        "dequantized_bits_per_dim": exercises_07._bpd_slips(levels, mean, 1.0, one, one),
    }
    assert named == {(name, slip) for name, table in tables.items() for slip in table}


@pytest.mark.parametrize("name", sorted(exercises_07.CHECKS))
def test_the_solution_passes_twice_in_the_same_words_and_a_stub_is_not_done_yet(name):
    first = review(name, solution(name))
    assert first.passed, first.text
    assert review(name, solution(name)).text == first.text  # seeded: the same inputs, the same words

    def stub(*args):
        raise NotImplementedError("hint: the lesson's section")

    feedback = review(name, stub)
    assert feedback.status == "not done yet" and "hint: the lesson's section" in feedback.text


@pytest.mark.parametrize(
    "name, answer",
    [
        ("clipped_ddim_step", step_in_float32),
        ("feature_frechet_distance", fd_by_scipy),
        ("dequantized_bits_per_dim", bpd_with_noise_by_hand),
    ],
)
def test_another_right_way_passes(name, answer):
    assert review(name, answer).passed, review(name, answer).text


def test_the_clipped_step_in_a_loop_is_the_lessons_clipped_sampler():
    """Four solution steps from noise, with the network's eps, give generate(..., clip=True)'s digits in [-1, 1];
    without clipping (the first slip) the same loop is generate's unclipped DDIM, which is far from them."""
    model = load_image_model(checkpoint_path("mnist", "ddpm_small.pt"))[0]
    schedule, labels = DiscreteVPSchedule(DDPM()), torch.arange(8)
    noise = torch.randn(8, 1, 28, 28, generator=_seeded(0))
    finals = {}
    for clip, step in ((True, solution("clipped_ddim_step")), (False, step_unclipped)):
        library = generate(model, "ddpm", noise, nfe=4, cond=labels, clip=clip)
        c, x = schedule(library.ts.double()), noise.double()
        for i in range(4):
            with torch.no_grad():
                eps = model(x=x.float(), t=library.ts[i].expand(8), cond=labels).double()
            x = step(x, eps, *(float(v[k]) for k in (i, i + 1) for v in (c.alpha, c.sigma)))
        assert torch.allclose(x.float(), library.final, atol=1e-4)
        finals[clip] = x
    assert finals[True].abs().max() <= 1 + 1e-12
    assert (finals[True] - finals[False]).abs().max() > 0.1  # the control: clipping changes the digits


def test_the_frechet_reference_is_scipys_and_a_shifted_copy_is_at_its_squared_shift():
    """The check's reference against the lesson's by-hand formula (scipy.linalg.sqrtm of S_a S_b) on each of its
    cases, and the closed form of equal covariances: a cloud and its shifted copy are |shift|^2 apart."""
    sets = exercises_07._feature_sets(_seeded(71))
    for a, b in sets.values():
        want = frechet_distance(a, b)
        assert abs(fd_by_scipy(a, b) - want) <= 1e-9 * want
        assert abs(solution("feature_frechet_distance")(a, b) - want) <= 1e-9 * want
    a, b = sets["one cloud and its shifted copy, 100 rows in 8D"]
    shift = (b - a)[0]
    assert torch.allclose(b - a, shift.expand_as(a))
    assert math.isclose(solution("feature_frechet_distance")(a, b), (shift**2).sum().item(), rel_tol=1e-9)


def test_the_closed_form_bits_per_dim_is_the_monte_carlo_mean_and_spread():
    """_expected_bpd's mean and spread against 400 dequantization draws through lessons.image_metrics.bits_per_dim;
    the solution on one draw is bits_per_dim on the same draw; a uniform density on [-1, 1]^784 scores 8 exactly."""
    gen = _seeded(1)
    levels = torch.where(
        torch.rand(4, 1, 28, 28, generator=gen) < 0.3, torch.randint(0, 256, (4, 1, 28, 28), generator=gen), 0
    ).double()
    mean = 0.8 * torch.tanh(torch.randn(1, 28, 28, generator=gen, dtype=torch.float64))
    density, pixels = exercises_07._gaussian_density(mean, 0.3), (levels / 255).float()
    want, sd = exercises_07._expected_bpd(levels, mean, 0.3, -1.0, 2 / 256)
    draws = torch.stack(
        [
            bits_per_dim(density(2 * dequantize(pixels, generator=_seeded(10 + s)) - 1), 784, data_range=2.0)
            for s in range(400)
        ]
    )
    assert ((draws.mean(0) - want).abs() / (sd / 20)).max() < 4.5
    assert ((draws.std(0) / sd - 1).abs() < 0.15).all()  # the spread's standard error is about 1/sqrt(800)
    torch.manual_seed(2)
    mine = solution("dequantized_bits_per_dim")(density, pixels)
    torch.manual_seed(2)
    same = bits_per_dim(density(2 * dequantize(pixels) - 1), 784, data_range=2.0)
    assert torch.allclose(mine, same, rtol=0, atol=1e-12)
    uniform = solution("dequantized_bits_per_dim")(lambda x: torch.full((4,), -784 * math.log(2.0)), pixels)
    assert torch.allclose(uniform.double(), torch.full((4,), 8.0, dtype=torch.float64), rtol=0, atol=1e-6)
