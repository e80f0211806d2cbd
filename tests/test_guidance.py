"""Classifier-free guidance (lessons.guidance) and the guidance explorer (widgets.guidance)."""

import pytest
import torch
from model_helpers import randomized

from lessons.guidance import ClassifierFreeGuidance, drop_labels, sample_tilted
from lessons.mixture import GaussianMixture
from lessons.unet import UNet, unet_config
from widgets.guidance import GuidanceExplorer, precompute_guided_samples


def test_classifier_free_guidance_formula():
    model = randomized(UNet(unet_config("tiny", num_classes=10)))
    x, t, c = torch.randn(3, 1, 28, 28), torch.rand(3), torch.tensor([1, 5, 7])
    cond, uncond = model(x=x, t=t, cond=c), model(x=x, t=t)
    guided = ClassifierFreeGuidance(model, 2.0)(x=x, t=t, cond=c)
    assert torch.allclose(guided, 3.0 * cond - 2.0 * uncond, atol=1e-5)
    assert torch.allclose(ClassifierFreeGuidance(model, 0.0)(x=x, t=t, cond=c), cond)
    with pytest.raises(ValueError, match=">= 0"):
        ClassifierFreeGuidance(model, -1.0)
    with pytest.raises(ValueError, match="class-conditional"):
        ClassifierFreeGuidance(UNet(unet_config("tiny")), 1.0)
    with pytest.raises(ValueError, match="labels"):
        ClassifierFreeGuidance(model, 1.0)(x=x, t=t)


def test_drop_labels_replaces_a_fraction_p_by_the_null_class():
    labels = torch.arange(10).repeat(1000)  # (10000,)
    dropped = drop_labels(labels, 0.3, 10, torch.Generator().manual_seed(0))
    gone = dropped == 10
    assert (
        abs(gone.float().mean().item() - 0.3) < 4 * (0.3 * 0.7 / 10_000) ** 0.5
    )  # 4 binomial standard errors
    assert torch.equal(dropped[~gone], labels[~gone])  # the others are kept as they were
    keep = (
        torch.rand(labels.shape, generator=torch.Generator().manual_seed(0)) >= 0.3
    )  # the same uniform draws
    assert torch.equal(~gone, keep)
    assert drop_labels(labels, 0.0, 10) is labels and (drop_labels(labels, 1.0, 10) == 10).all()
    with pytest.raises(ValueError, match="dropout probability"):
        drop_labels(labels, 1.5, 10)


def test_explorer_updates_on_class_and_scale():
    model = randomized(UNet(unet_config("tiny", num_classes=10)))
    samples = precompute_guided_samples(model, scales=[0.0, 2.0], per_class=2, nfe=1)
    assert len(samples) == 20 and samples[(3, 2.0)].shape == (2, 1, 28, 28)
    assert not torch.allclose(samples[(3, 0.0)], samples[(3, 2.0)])  # same noise, different guidance
    explorer = GuidanceExplorer(samples)
    first = explorer.image.value
    assert first[:4] == b"\x89PNG"
    explorer.scale.value = 2.0
    assert explorer.image.value != first and explorer.message.layout.display == "none"
    explorer.digit.value = 5
    assert explorer.updates >= 2
    explorer.samples = {}  # a missing entry becomes a message, never a traceback
    explorer.digit.value = 6
    assert explorer.message.layout.display == "block" and "no samples" in explorer.message.value
    with pytest.raises(ValueError, match="precomputed"):
        GuidanceExplorer({})


def test_sample_tilted_matches_the_tilted_density_on_a_grid():
    class_a = GaussianMixture([[-1.0, 0.0], [0.5, 1.5]], 0.6)
    both = GaussianMixture([[-1.0, 0.0], [0.5, 1.5], [1.0, 0.0], [-0.5, -1.5]], 0.6)
    g = torch.linspace(-5, 5, 401)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    for w in (0.0, 2.0):
        # the tilted density (1 + w) log p(x | c) - w log p(x), normalised on the grid
        dens = torch.softmax((1 + w) * class_a.log_prob(grid) - w * both.log_prob(grid), 0)
        mean, second = (dens[:, None] * grid).sum(0), (dens[:, None] * grid**2).sum(0)
        x = sample_tilted(class_a, both, 0.5, w, 20_000, torch.Generator().manual_seed(0))
        se = ((second - mean**2) / x.shape[0]).sqrt()
        assert x.shape == (20_000, 2) and ((x.mean(0) - mean).abs() < 4 * se).all()
        assert ((x**2).mean(0) - second).abs().max() < 0.05
    far = GaussianMixture([[9.0, 0.0]], 0.3)
    with pytest.raises(ValueError, match="the class prior"):
        sample_tilted(class_a, both, 0.0, 1.0, 10)
    with pytest.raises(ValueError, match=">= 0"):
        sample_tilted(class_a, both, 0.5, -1.0, 10)
    assert sample_tilted(far, GaussianMixture([[9.0, 0.0], [-9.0, 0.0]], 0.3), 0.5, 1.0, 5).shape == (5, 2)
