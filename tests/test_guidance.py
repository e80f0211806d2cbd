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


class _TinyConditional:
    """A class-conditional 'model' for checks: returns out(x), whatever the labels."""

    num_classes = 10

    def __init__(self, out=lambda x: torch.zeros_like(x)):
        self.out = out

    def __call__(self, x, t, cond=None):
        return self.out(x)


@pytest.mark.parametrize(
    "scale, error, match",
    [
        (float("inf"), ValueError, "the guidance scale w must be a finite number"),
        (float("nan"), ValueError, "the guidance scale w must be a finite number"),
        ("2", TypeError, "the guidance scale w must be a real number"),
    ],
)
def test_guidance_scale_must_be_a_finite_number(scale, error, match):
    with pytest.raises(error, match=match):
        ClassifierFreeGuidance(_TinyConditional(), scale)


def test_guided_model_refuses_bad_labels_inputs_and_outputs():
    guided, x, t = ClassifierFreeGuidance(_TinyConditional(), 1.0), torch.randn(3, 2), torch.rand(3)
    with pytest.raises(ValueError, match="reshape"):
        guided(x=x, t=t, cond=torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="label 11"):
        guided(x=x, t=t, cond=torch.tensor([0, 11, 2]))
    with pytest.raises(ValueError, match="never negative"):
        guided(x=x, t=t, cond=torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        guided(x=x, t=t, cond=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="one time per sample"):
        guided(x=x, t=torch.rand(2), cond=torch.tensor([0, 1, 2]))
    bad = ClassifierFreeGuidance(_TinyConditional(lambda x: x[:, :1]), 1.0)
    with pytest.raises(ValueError, match=r"returned shape \(6, 1\) for an input of shape \(6, 2\)"):
        bad(x=x, t=t, cond=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="class UNet itself"):
        ClassifierFreeGuidance(UNet, 1.0)
    model = randomized(UNet(unet_config("tiny", num_classes=10)))
    with pytest.raises(ValueError, match="dtype torch.float64 but the model's weights are torch.float32"):
        ClassifierFreeGuidance(model, 1.0)(
            x=torch.randn(2, 1, 28, 28, dtype=torch.float64), t=torch.rand(2), cond=torch.tensor([1, 2])
        )


def test_drop_labels_refuses_bad_labels_and_probabilities():
    labels = torch.tensor([0, 3, 9])
    with pytest.raises(ValueError, match="finite"):
        drop_labels(labels, float("nan"), 10)
    with pytest.raises(TypeError, match="labels must be a tensor"):
        drop_labels([0, 3, 9], 0.1, 10)
    with pytest.raises(ValueError, match="label 12"):
        drop_labels(torch.tensor([0, 12]), 0.1, 10)
    with pytest.raises(ValueError, match="reshape"):
        drop_labels(labels[:, None], 0.1, 10)
    with pytest.raises(ValueError, match="num_classes"):
        drop_labels(labels, 0.1, 0)
    with pytest.raises(TypeError, match="generator"):
        drop_labels(labels, 0.1, 10, generator=0)


def test_sample_tilted_refuses_bad_laws_and_numbers(monkeypatch):
    class_a = GaussianMixture([[-1.0, 0.0]], 0.6)
    both = GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], 0.6)
    for scale in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="guidance scale w must be a finite"):
            sample_tilted(class_a, both, 0.5, scale, 10)
    with pytest.raises(ValueError, match="class prior p"):
        sample_tilted(class_a, both, float("nan"), 1.0, 10)
    with pytest.raises(TypeError, match="conditional must be a law"):
        sample_tilted("class a", both, 0.5, 1.0, 10)
    with pytest.raises(TypeError, match="class GaussianMixture itself"):
        sample_tilted(class_a, GaussianMixture, 0.5, 1.0, 10)
    monkeypatch.setattr("lessons.checks.available_memory_bytes", lambda: 1000)
    with pytest.raises(ValueError, match="sample_tilted with n = 10 would need"):
        sample_tilted(class_a, both, 0.5, 1.0, 10)


def test_sample_tilted_needs_laws_of_one_dimension():
    with pytest.raises(ValueError, match="conditional in 2D and marginal in 3D"):
        sample_tilted(
            GaussianMixture([[0.0, 0.0]], 1.0), GaussianMixture([[0.0, 0.0, 0.0]], 1.0), 0.5, 1.0, 10
        )
