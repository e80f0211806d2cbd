"""Langevin, annealed Langevin and predictor-corrector against closed forms (Gaussian targets) and hand-made steps."""

import math

import pytest
import torch

from lessons.data2d import target_density
from lessons.langevin import annealed_langevin, langevin, predictor_corrector, snr_step_size
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.schedules import LinearSchedule, VPSchedule
from lessons.sde import reverse_sde, score

MEAN, STD = torch.tensor([1.0, -2.0]), 0.5
GAUSSIAN = GaussianMixture([[1.0, -2.0]], [STD])


def gaussian_score(x):
    return -(x - MEAN) / STD**2


@pytest.mark.parametrize("h", [0.02, 0.1])
def test_ula_on_a_gaussian_settles_at_its_biased_variance(h):
    """x' = x + h score + sqrt(2h) z on N(m, s^2): stationary variance s^2 / (1 - h / (2 s^2)), mean m."""
    n = 20_000
    traj = langevin(gaussian_score, torch.zeros(n, 2), h, 400, generator=torch.Generator().manual_seed(0))
    var = STD**2 / (1 - h / (2 * STD**2))
    se_var = var * math.sqrt(2 / n)
    assert torch.allclose(traj.final.mean(0), MEAN, atol=4 * math.sqrt(var / n))
    assert (traj.final.var(0) - var).abs().max() < 4 * se_var
    assert traj.nfe == 400 and traj.xs.shape == (401, n, 2)


def test_langevin_is_the_hand_written_recursion():
    x = torch.randn(64, 2)
    traj = langevin(gaussian_score, x, 0.05, 3, generator=torch.Generator().manual_seed(1), keep_path=False)
    g, y = torch.Generator().manual_seed(1), x
    for _ in range(3):
        y = y + 0.05 * gaussian_score(y) + math.sqrt(0.1) * torch.randn(y.shape, generator=g)
    assert torch.allclose(traj.final, y, atol=1e-5) and traj.xs.shape == (2, 64, 2)


def test_snr_step_size_is_songs_rule():
    s, z = torch.full((10, 2), 3.0), torch.full((10, 2), 4.0)
    assert snr_step_size(s, z, 0.1) == pytest.approx(2 * (0.1 * 4 / 3) ** 2)
    with pytest.raises(ValueError, match="score is 0"):
        snr_step_size(torch.zeros(10, 2), z, 0.1)


def test_annealed_langevin_ends_in_the_noised_gaussian():
    vp, n = VPSchedule(), 8000
    model = ExactMixtureModel(GAUSSIAN, vp)
    ts = torch.linspace(0.0, 0.9, 11)  # 100 steps a level: about 5 relaxation times, so no lag behind p_t
    start = torch.randn(
        n, 2, generator=torch.Generator().manual_seed(1)
    )  # about p_0: the rule needs spread chains
    traj = annealed_langevin(model, start, vp, ts, 100, 0.16, generator=torch.Generator().manual_seed(2))
    c = vp(ts[-1:])
    var = (c.alpha**2 * STD**2 + c.sigma**2).item()
    assert torch.allclose(traj.final.mean(0), c.alpha * MEAN, atol=4 * math.sqrt(var / n))
    # the signal-to-noise rule leaves a relative variance bias of about snr^2 = 2.6 %
    assert torch.allclose(traj.final.var(0), torch.full((2,), var), rtol=0.06)
    assert traj.nfe == 100 * 10 and traj.xs.shape == (11, n, 2)


def test_predictor_corrector_is_a_corrector_then_the_reverse_sde_step():
    mixture, vp = target_density("mixture"), VPSchedule()
    model, x = ExactMixtureModel(mixture, vp), torch.randn(128, 2)
    ts = torch.tensor([0.3, 0.35])
    pc = predictor_corrector(
        model, x, vp, ts, corrector_steps=2, snr=0.1, generator=torch.Generator().manual_seed(3)
    )
    g, y = torch.Generator().manual_seed(3), x
    for _ in range(2):
        s = score(model, vp, y, torch.full((128,), 0.3))
        z = torch.randn(y.shape, generator=g)
        h = 2 * (0.1 * z.norm(dim=1).mean() / s.norm(dim=1).mean()) ** 2
        y = y + h * s + (2 * h).sqrt() * z
    y = reverse_sde(model, y, vp, ts, generator=g).final
    assert torch.allclose(pc.final, y, atol=1e-5) and pc.nfe == 3


def test_predictor_corrector_reaches_the_gaussian_target():
    vp, n = VPSchedule(), 8000
    model = ExactMixtureModel(GAUSSIAN, vp)
    ts = torch.linspace(0.0, 0.99, 101)
    traj = predictor_corrector(model, torch.randn(n, 2), vp, ts, generator=torch.Generator().manual_seed(4))
    c = vp(ts[-1:])
    var = (c.alpha**2 * STD**2 + c.sigma**2).item()
    assert torch.allclose(traj.final.mean(0), c.alpha * MEAN, atol=4 * math.sqrt(var / n) + 0.01)
    assert torch.allclose(traj.final.var(0), torch.full((2,), var), rtol=0.1)


def test_bad_inputs_are_refused_in_words():
    vp = VPSchedule()
    model, x = ExactMixtureModel(GAUSSIAN, vp), torch.zeros(4, 2)
    with pytest.raises(ValueError, match="sigma = 0"):
        annealed_langevin(model, x, vp, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="snr"):
        predictor_corrector(model, x, vp, torch.tensor([0.2, 0.5]), snr=0.0)
    with pytest.raises(TypeError, match="score_fn"):
        langevin("score", x, 0.1, 10)
    with pytest.raises(TypeError, match="schedule"):
        annealed_langevin(model, x, LinearSchedule, torch.tensor([0.2, 0.5]))
