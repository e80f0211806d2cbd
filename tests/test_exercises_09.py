"""lessons.exercises_09: each check passes lesson 09's solution and names the slips of wrong answers."""

import math

import pytest
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons import exercises, exercises_09
from lessons.autoencoder import gaussian_kl
from lessons.dit import DiTBlock
from lessons.exercises import review, solution
from lessons.weighting import logit_normal_times


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """review and solution find lesson 09's exercises (as they will once LESSON_CHECKS lists exercises_09)."""
    for name, checker in exercises_09.CHECKS.items():
        monkeypatch.setitem(exercises.EXERCISES, name, (exercises_09.LESSON, checker))


# --- beta_vae_loss ------------------------------------------------------------------------------------------


def _vae(model, images, eps, beta, std=lambda lv: torch.exp(0.5 * lv), sample=True, pixels="sum", on_kl=True):
    mean, logvar = model.encode(images)
    z = mean + std(logvar) * eps if sample else mean
    err = (model.decode(z) - images).square().flatten(1)
    reconstruction = err.sum(1) if pixels == "sum" else err.mean(1)
    kl = gaussian_kl(mean, logvar)
    return (reconstruction + beta * kl).mean() if on_kl else (beta * reconstruction + kl).mean()


def vae_std_is_variance(model, images, eps, beta):
    return _vae(model, images, eps, beta, std=torch.exp)


def vae_decodes_the_mean(model, images, eps, beta):
    return _vae(model, images, eps, beta, sample=False)


def vae_mean_over_pixels(model, images, eps, beta):
    return _vae(model, images, eps, beta, pixels="mean")


def vae_beta_on_reconstruction(model, images, eps, beta):
    return _vae(model, images, eps, beta, on_kl=False)


def vae_kl_with_sigma(model, images, eps, beta):
    mean, logvar = model.encode(images)
    std = torch.exp(0.5 * logvar)
    reconstruction = (model.decode(mean + std * eps) - images).square().flatten(1).sum(1)
    kl = 0.5 * (mean.square() + std - 1 - logvar).flatten(1).sum(1)  # the lesson's control for C35
    return (reconstruction + beta * kl).mean()


def vae_own_draws(model, images, eps, beta):
    recon, mean, logvar = model(images)  # the model's own eps, not the check's: no slip it knows
    return ((recon - images).square().flatten(1).sum(1) + beta * gaussian_kl(mean, logvar)).mean()


def vae_as_number(model, images, eps, beta):
    return solution("beta_vae_loss")(model, images, eps, beta).item()


# --- logit_normal_pdf ---------------------------------------------------------------------------------------


def _pdf(t, mean, std, logit=None, jacobian=None, norm=None, divisor=None):
    logit = torch.log(t / (1 - t)) if logit is None else logit
    jacobian = 1 / (t * (1 - t)) if jacobian is None else jacobian
    norm = std * math.sqrt(2 * math.pi) if norm is None else norm
    divisor = 2 * std**2 if divisor is None else divisor
    return torch.exp(-((logit - mean) ** 2) / divisor) / norm * jacobian


def pdf_no_jacobian(t, mean, std):
    return _pdf(t, mean, std, jacobian=1.0)


def pdf_jacobian_inverted(t, mean, std):
    return _pdf(t, mean, std, jacobian=t * (1 - t))


def pdf_no_one_over_s(t, mean, std):
    return _pdf(t, mean, std, norm=math.sqrt(2 * math.pi))


def pdf_s_in_exponent(t, mean, std):
    return _pdf(t, mean, std, divisor=2 * std)


def pdf_logit_mirrored(t, mean, std):
    return _pdf(t, mean, std, logit=torch.log((1 - t) / t))


def pdf_normal_at_t(t, mean, std):
    return torch.exp(-((t - mean) ** 2) / (2 * std**2)) / (std * math.sqrt(2 * math.pi))  # no slip it knows


def pdf_one_number(t, mean, std):
    return solution("logit_normal_pdf")(t, mean, std).mean()


# --- adaln_zero_block ---------------------------------------------------------------------------------------


def _block(x, mods, attention, mlp, norm, modulate=None, gated=True, residual=True, parallel=False):
    s1, c1, g1, s2, c2, g2 = (m[:, None] for m in mods)
    modulate = modulate or (lambda h, shift, scale: h * (1 + scale) + shift)
    out = attention(modulate(norm(x), s1, c1))
    h = (x if residual else 0) + (g1 * out if gated else out)
    out = mlp(modulate(norm(x if parallel else h), s2, c2))
    return (h if residual else 0) + (g2 * out if gated else out)


def block_scale_without_one(x, mods, attention, mlp, norm):
    return _block(x, mods, attention, mlp, norm, modulate=lambda h, shift, scale: h * scale + shift)


def block_shift_scale_swapped(x, mods, attention, mlp, norm):
    return _block(x, mods, attention, mlp, norm, modulate=lambda h, shift, scale: h * (1 + shift) + scale)


def block_no_gates(x, mods, attention, mlp, norm):
    return _block(x, mods, attention, mlp, norm, gated=False)


def block_parallel(x, mods, attention, mlp, norm):
    return _block(x, mods, attention, mlp, norm, parallel=True)


def block_no_residual(x, mods, attention, mlp, norm):
    return _block(x, mods, attention, mlp, norm, residual=False)


def block_gates_swapped(x, mods, attention, mlp, norm):
    s1, c1, g1, s2, c2, g2 = mods
    return _block(x, (s1, c1, g2, s2, c2, g1), attention, mlp, norm)  # no slip it knows: the general hint


def block_without_batch_axis(x, mods, attention, mlp, norm):
    return solution("adaln_zero_block")(x, mods, attention, mlp, norm)[0]


WRONG = [
    (
        "beta_vae_loss",
        vae_std_is_variance,
        "exp(logvar) as the std, where exp(logvar / 2) belongs",
        "sigma = exp(logvar / 2)",
    ),
    (
        "beta_vae_loss",
        vae_decodes_the_mean,
        "z = mean: decoded from the mean, not a posterior sample",
        "expectation is over q(z | x)",
    ),
    ("beta_vae_loss", vae_mean_over_pixels, "a mean over the pixels, not a sum", "a sum over its pixels"),
    (
        "beta_vae_loss",
        vae_beta_on_reconstruction,
        "beta on the reconstruction, not on the KL",
        "beta weighs the KL term",
    ),
    ("beta_vae_loss", vae_kl_with_sigma, "sigma where sigma^2 belongs in the KL", "sigma^2 = exp(logvar)"),
    ("beta_vae_loss", vae_own_draws, None, "z = mean + exp(logvar / 2) eps; the loss is the batch mean"),
    ("beta_vae_loss", vae_as_number, None, "without a graph"),
    (
        "logit_normal_pdf",
        pdf_no_jacobian,
        "the Jacobian 1 / (t (1 - t)) left out",
        "a density changes with the variable",
    ),
    (
        "logit_normal_pdf",
        pdf_jacobian_inverted,
        "t (1 - t) multiplying where it divides",
        "not dt/dl = t (1 - t)",
    ),
    ("logit_normal_pdf", pdf_no_one_over_s, "the factor 1 / s left out", "does not integrate to 1"),
    ("logit_normal_pdf", pdf_s_in_exponent, "s where s^2 belongs in the exponent", "the variance s^2"),
    (
        "logit_normal_pdf",
        pdf_logit_mirrored,
        "log((1 - t) / t) where log(t / (1 - t)) belongs",
        "the law of 1 - t, mirrored",
    ),
    ("logit_normal_pdf", pdf_normal_at_t, None, "l = log(t / (1 - t)); pi(t) ="),
    ("logit_normal_pdf", pdf_one_number, None, "has shape (); it should have shape (250,)"),
    ("adaln_zero_block", block_scale_without_one, "scale where 1 + scale belongs", "multiplies by 1 + scale"),
    (
        "adaln_zero_block",
        block_shift_scale_swapped,
        "shift and scale swapped",
        "(shift, scale, gate) for each",
    ),
    ("adaln_zero_block", block_no_gates, "the gates left out", "makes a fresh block the identity"),
    (
        "adaln_zero_block",
        block_parallel,
        "both parts read the block's input (parallel branches)",
        "after the attention part has been added",
    ),
    ("adaln_zero_block", block_no_residual, "the residual left out", "adds to the tokens it reads"),
    ("adaln_zero_block", block_gates_swapped, None, "indexed [:, None] to broadcast over the tokens"),
    ("adaln_zero_block", block_without_batch_axis, None, "it should have shape (4, 9, 16)"),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_the_library_kl_and_a_hand_written_block_pass_too():
    """Other right answers: the KL by lessons.autoencoder.gaussian_kl, a block written with unsqueeze."""
    assert review("beta_vae_loss", lambda model, images, eps, beta: _vae(model, images, eps, beta)).passed

    def unsqueezed(x, mods, attention, mlp, norm):
        s1, c1, g1, s2, c2, g2 = (m.unsqueeze(1) for m in mods)
        x = x + g1 * attention(torch.addcmul(s1, norm(x), 1 + c1))
        return x + g2 * mlp(torch.addcmul(s2, norm(x), 1 + c2))

    assert review("adaln_zero_block", unsqueezed).passed


def test_the_checks_eps_are_the_draws_of_autoencoder_loss():
    """The check hands the learner the eps that autoencoder_loss draws from the same seed: a slip-free loss is
    exact, and the loss with other draws is not (control)."""
    from lessons.autoencoder import KLAutoencoder, autoencoder_config, autoencoder_loss

    torch.manual_seed(0)
    model = KLAutoencoder(autoencoder_config("tiny"))
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    eps = torch.randn(8, 4, 7, 7, generator=torch.Generator().manual_seed(2))
    want = autoencoder_loss(model, images, 0.1, generator=torch.Generator().manual_seed(2))[0]
    assert solution("beta_vae_loss")(model, images, eps, 0.1).item() == pytest.approx(want.item(), rel=1e-6)
    other = autoencoder_loss(model, images, 0.1, generator=torch.Generator().manual_seed(3))[0]
    assert abs(other.item() - want.item()) > 1e-4 * want.item()


def test_the_logit_normal_density_is_the_derivative_of_its_distribution_function():
    """Independent of the change of variables as coded: P(T <= t) = Phi((logit t - m) / s), differentiated by
    central differences; the density integrates to 1; and the fraction of logit_normal_times in [0.25, 0.75]
    matches the CDF within four standard errors."""
    pdf = solution("logit_normal_pdf")
    t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    for mean, std in ((0.0, 1.0), (0.5, 0.7), (-1.0, 1.6)):

        def cdf(u, mean=mean, std=std):
            return 0.5 * (1 + torch.erf((torch.log(u / (1 - u)) - mean) / (std * math.sqrt(2))))

        h = 1e-6
        assert torch.allclose(pdf(t, mean, std), (cdf(t + h) - cdf(t - h)) / (2 * h), rtol=1e-6, atol=1e-8)
        grid = torch.linspace(1e-9, 1 - 1e-9, 400_001, dtype=torch.float64)
        assert torch.trapezoid(pdf(grid, mean, std), grid).item() == pytest.approx(1.0, abs=1e-4)
    n = 100_000
    draws = logit_normal_times(n, 0.5, 0.7, generator=torch.Generator().manual_seed(4))
    inside = ((draws >= 0.25) & (draws <= 0.75)).double().mean().item()
    ends = torch.tensor([0.25, 0.75], dtype=torch.float64)
    p = 0.5 * (1 + torch.erf((torch.log(ends / (1 - ends)) - 0.5) / (0.7 * math.sqrt(2))))
    p_inside = (p[1] - p[0]).item()
    assert abs(inside - p_inside) < 4 * math.sqrt(p_inside * (1 - p_inside) / n)


def test_the_solution_block_is_the_identity_when_fresh_and_not_once_modulated():
    """adaLN-zero (C37) through the solution: zero mods give back x exactly; nonzero gates do not."""
    torch.manual_seed(0)
    block = DiTBlock(16, heads=2).double()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    zero = tuple(torch.zeros(2, 16, dtype=torch.float64) for _ in range(6))
    out = solution("adaln_zero_block")(x, zero, lambda h: block.proj(h), block.mlp, block.norm1)
    assert torch.equal(out, x)
    gates = tuple(torch.full((2, 16), 0.5, dtype=torch.float64) for _ in range(6))  # control
    out = solution("adaln_zero_block")(x, gates, lambda h: block.proj(h), block.mlp, block.norm1)
    assert (out - x).abs().max() > 1e-3
