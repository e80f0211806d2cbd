"""lessons.exercises_03: each check passes lesson 03's solution and names the slip of a typical wrong answer."""

import math

import pytest
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons.exercises import review, solution


def _probe_sum(field, x, t, probes, draw):
    x = x.detach().requires_grad_(True)
    v = field(x=x, t=t)
    total = 0
    for _ in range(probes):
        eps = draw(x)
        total = total + (torch.autograd.grad(v, x, eps, retain_graph=True)[0] * eps).sum(1)
    return total.detach()


def rademacher(x):
    return torch.randint(0, 2, x.shape).to(x.dtype) * 2 - 1


def hutchinson_summed(field, x, t, probes):
    return _probe_sum(field, x, t, probes, rademacher)


def hutchinson_one_probe_always(field, x, t, probes):
    return _probe_sum(field, x, t, 1, rademacher)


def hutchinson_uniform(field, x, t, probes):
    return _probe_sum(field, x, t, probes, lambda x: torch.rand(x.shape, dtype=x.dtype)) / probes


def hutchinson_gaussian(field, x, t, probes):  # right too: Gaussian probes are unbiased
    return _probe_sum(field, x, t, probes, lambda x: torch.randn(x.shape, dtype=x.dtype)) / probes


def variance_with_j(jac):
    return 2 * ((jac**2).sum() - (torch.diagonal(jac) ** 2).sum())


def variance_gaussian(jac):
    return 2 * (((jac + jac.T) / 2) ** 2).sum()


def density_plus_trace(x, A, b):
    return solution("affine_log_density")(x, A, b) + 2 * torch.trace(A)


def density_at_x(x, A, b):
    return -0.5 * (x**2).sum(1) - math.log(2 * math.pi) - torch.trace(A)


WRONG = [
    ("hutchinson_divergence", hutchinson_summed, "the probes summed, not averaged", "divide by P"),
    ("hutchinson_divergence", hutchinson_uniform, "uniform probes in [0, 1) (torch.rand)", "mean 0"),
    ("hutchinson_divergence", hutchinson_one_probe_always, None, "variance fell 1.0"),
    ("rademacher_variance", variance_with_j, "J in place of its symmetric part S", "only S matters"),
    (
        "rademacher_variance",
        variance_gaussian,
        "the Gaussian probes' variance 2 ||S||^2",
        "subtract sum S_ii^2",
    ),
    ("affine_log_density", density_plus_trace, "+ tr A where - tr A belongs", "log N(noise) - tr A"),
    ("affine_log_density", density_at_x, "log N evaluated at x itself", "psi_1^{-1}(x)"),
]


def test_gaussian_probes_pass_too():
    assert review("hutchinson_divergence", hutchinson_gaussian).passed


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_an_estimator_that_is_not_random_is_told_so():
    def exact_not_random(field, x, t, probes):
        from lessons.divergence import divergence_exact

        return divergence_exact(field, x, t)

    text = review("hutchinson_divergence", exact_not_random).text
    assert "do not vary" in text and "random probes" in text
