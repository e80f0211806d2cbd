"""Denoising score matching: the score form by hand, the eps-MSE identity, and the minimiser (the exact score)."""

import math

import pytest
import torch

from lessons.data2d import target_density
from lessons.mixture import ExactMixtureModel
from lessons.schedules import VPSchedule
from lessons.score_matching import dsm_batch_loss, dsm_loss

VP = VPSchedule()
MIXTURE = target_density("8gaussians")


def draw(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        MIXTURE.sample(n, generator=g),
        torch.randn(n, 2, generator=g),
        0.05 + 0.9 * torch.rand(n, generator=g),
    )


def test_unweighted_loss_is_the_score_form_and_weighted_is_the_eps_mse():
    data, noise, t = draw(256)
    model = ExactMixtureModel(MIXTURE, VP, "eps")
    c = VP(t)
    x_t = c.alpha[:, None] * data + c.sigma[:, None] * noise
    eps_hat = model(x=x_t, t=t)
    score_form = ((-eps_hat / c.sigma[:, None] + noise / c.sigma[:, None]) ** 2).mean(1)
    plain = dsm_loss(model, VP, data, weighted=False, t=t, noise=noise)
    assert torch.allclose(plain, score_form, rtol=1e-4)
    weighted = dsm_loss(model, VP, data, t=t, noise=noise)
    assert torch.allclose(weighted, ((eps_hat - noise) ** 2).mean(1), rtol=1e-5)


@pytest.mark.parametrize("prediction", ["score", "data", "velocity", "v"])
def test_every_prediction_kind_of_one_model_gives_one_loss(prediction):
    data, noise, t = draw(128, seed=1)
    ref = dsm_loss(ExactMixtureModel(MIXTURE, VP, "eps"), VP, data, t=t, noise=noise)
    other = dsm_loss(ExactMixtureModel(MIXTURE, VP, prediction), VP, data, prediction, t=t, noise=noise)
    assert torch.allclose(other, ref, rtol=1e-3, atol=1e-5)


def test_the_exact_score_minimises_the_loss():
    """For s = a * score*, d/da E[DSM] at a = 1 is 2 E[score* . (score* + noise / sigma)] = 0 (Tweedie), by Monte Carlo."""
    data, noise, _ = draw(50_000, seed=2)
    t = torch.full((50_000,), 0.6)
    exact = ExactMixtureModel(MIXTURE, VP, "score")
    c = VP(t)
    x_t = c.alpha[:, None] * data + c.sigma[:, None] * noise
    s = exact(x=x_t, t=t)
    terms = 2 * (s * (s + noise / c.sigma[:, None])).sum(1)
    assert abs(terms.mean().item()) < 4 * terms.std().item() / math.sqrt(len(terms))
    losses = [
        dsm_loss(lambda x, t, cond=None, a=a: a * exact(x=x, t=t), VP, data, "score", False, t, noise).mean()
        for a in (0.8, 1.0, 1.2)
    ]
    assert losses[1] < losses[0] and losses[1] < losses[2]


def test_batch_loss_is_the_mean_and_trains():
    loss_fn = dsm_batch_loss(VP)
    model = ExactMixtureModel(MIXTURE, VP, "eps")
    torch.manual_seed(5)
    value = loss_fn(model, MIXTURE.sample(512))
    assert value.ndim == 0 and 0.0 < value.item() < 1.0


def test_bad_inputs_are_refused_in_words():
    model = ExactMixtureModel(MIXTURE, VP, "eps")
    data = MIXTURE.sample(4)
    with pytest.raises(ValueError, match="sigma"):
        dsm_loss(model, VP, data, t=torch.ones(4))
    with pytest.raises(TypeError, match="weighted"):
        dsm_loss(model, VP, data, weighted="yes")
    with pytest.raises(ValueError, match="t_min"):
        dsm_batch_loss(VP, t_min=0.9, t_max=0.5)
    with pytest.raises(ValueError, match="prediction"):
        dsm_loss(model, VP, data, prediction="noise")
