"""Image metrics for MNIST: a small digit classifier, the Frechet distance in its feature space, diversity, bits/dim.

Frechet distance between Gaussians fitted to two feature sets (the idea of FID, with our own classifier):
  FD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^(1/2) S_b S_a^(1/2))^(1/2)),
which is the squared 2-Wasserstein distance between N(mu_a, S_a) and N(mu_b, S_b).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from lessons.checkpoints import checkpoint_path, load_model, save_checkpoint
from lessons.checks import (
    check_finite,
    check_instance,
    check_matches_model,
    check_number,
    check_points,
    check_positive_int,
    check_seed,
)
from lessons.metrics import _check_samples, mean_pairwise_distance
from lessons.mnist import MNIST, mnist_batches
from lessons.training import train

FEATURE_DIM = 32


class DigitClassifier(nn.Module):
    """CNN for (B, 1, 28, 28) digits in [-1, 1] -> logits (B, 10); ``features`` is its (B, 32) last hidden layer."""

    def __init__(self, width: int = 16, feature_dim: int = FEATURE_DIM):
        super().__init__()
        check_positive_int(width, "width (the channels of the first convolution)")
        check_positive_int(feature_dim, "feature_dim")
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * w * 49, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, 10)
        self.width, self.feature_dim = width, feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        _check_digits(x, "x")
        check_matches_model(x, self)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _check_digits(images, name: str = "images") -> torch.Tensor:
    """Check that images is a float tensor of digits (B, 1, 28, 28)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch tensor of digits (B, 1, 28, 28), got {type(images).__name__}."
        )
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(
            f"the classifier reads digits of shape (B, 1, 28, 28), got {name} of shape {tuple(images.shape)}."
        )
    if not torch.is_floating_point(images):
        raise ValueError(
            f"{name} must be a float tensor of pixels in [-1, 1], got dtype {images.dtype}; "
            "bytes 0..255 convert with lessons.mnist.to_unit."
        )
    return images


def _shift(images: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """Random translations by up to max_shift pixels (zero-padded with the background value -1)."""
    padded = F.pad(images, [max_shift] * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,)).tolist()
    return padded[:, :, dy : dy + 28, dx : dx + 28]


def train_classifier(
    data: MNIST,
    steps: int = 800,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    device=None,
    progress: bool = True,
):
    """Train a DigitClassifier with cross-entropy on shifted digits; return (model, TrainResult)."""
    check_instance(data, MNIST, "data", "load_mnist('train')")
    check_seed(seed)
    torch.manual_seed(seed)
    model = DigitClassifier()

    def loss_fn(model, batch):
        images, labels = batch
        return F.cross_entropy(model(_shift(images)), labels)

    result = train(
        model,
        loss_fn,
        mnist_batches(data, batch_size, with_labels=True, seed=seed),
        steps,
        lr=lr,
        seed=seed,
        device=device,
        progress=progress,
    )
    return model.cpu().eval(), result


def save_classifier(path, model: DigitClassifier, settings: dict) -> str:
    """Write the classifier's weights and settings (checksummed); return the checksum."""
    check_instance(model, DigitClassifier, "model", "DigitClassifier()")
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict such as {{'steps': 800}}, got {type(settings).__name__}.")
    return save_checkpoint(
        path, model.state_dict(), {**settings, "width": model.width, "feature_dim": model.feature_dim}
    )


def load_classifier(path=None) -> DigitClassifier:
    """The project's MNIST classifier (checkpoints/mnist/classifier.pt by default), checksum verified."""
    path = path or checkpoint_path("mnist", "classifier.pt")
    return load_model(path, _build_classifier)[0]


def _build_classifier(settings: dict) -> DigitClassifier:
    if not all(key in settings for key in ("width", "feature_dim")):
        raise ValueError(
            "this checkpoint holds no classifier settings (width, feature_dim): it was not written by "
            "save_classifier (remake it with scripts/train_mnist_classifier.py)."
        )
    return DigitClassifier(settings["width"], settings["feature_dim"])


@torch.no_grad()
def classify(classifier: DigitClassifier, images: torch.Tensor, batch_size: int = 500):
    """(features (B, feature_dim), predicted labels (B,)) for images (B, 1, 28, 28), in batches."""
    check_instance(classifier, DigitClassifier, "classifier", "load_classifier()")
    _check_digits(images)
    if images.shape[0] == 0:
        raise ValueError("images holds no digits (a batch of 0); give at least one.")
    check_finite(images, "images")
    check_positive_int(batch_size, "batch_size")
    feats = torch.cat([classifier.features(chunk.float().cpu()) for chunk in images.split(batch_size)])
    return feats, classifier.head(feats).argmax(1)


def accuracy(classifier: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images the classifier labels as ``labels`` (B,)."""
    _check_labels(labels, images.shape[0] if isinstance(images, torch.Tensor) and images.ndim else None)
    if labels.numel() and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"labels must be digits 0..9, got values from {int(labels.min())} to {int(labels.max())}."
        )
    return float((classify(classifier, images)[1] == labels.cpu()).float().mean())


def _check_labels(labels, batch: int | None) -> torch.Tensor:
    """Check that labels is a (batch,) tensor of whole numbers, one per sample."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch tensor of whole numbers (B,), got {type(labels).__name__}.")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be whole numbers, got dtype {labels.dtype}; convert them with labels.long()."
        )
    if labels.ndim != 1 or (batch is not None and labels.shape[0] != batch):
        hint = "; flatten them with labels.flatten()" if labels.numel() == batch else ""
        raise ValueError(
            f"labels must have shape ({batch if batch is not None else 'B'},), one per sample, "
            f"got {tuple(labels.shape)}{hint}."
        )
    return labels


def frechet_gaussian(mu_a, cov_a, mu_b, cov_b) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^(1/2) S_b S_a^(1/2))^(1/2)) for means (D,) and covariances (D, D)."""
    for value, name in ((mu_a, "mu_a"), (cov_a, "cov_a"), (mu_b, "mu_b"), (cov_b, "cov_b")):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(value).__name__}.")
        check_finite(value, name)
    d = mu_a.shape[0] if mu_a.ndim == 1 else None
    if d is None or d == 0 or mu_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise ValueError(
            "frechet_gaussian needs means of shape (D,) and covariances of shape (D, D), with D >= 1, got "
            f"{tuple(mu_a.shape)}, {tuple(cov_a.shape)}, {tuple(mu_b.shape)} and {tuple(cov_b.shape)}."
        )
    mu_a, cov_a, mu_b, cov_b = (v.double() for v in (mu_a, cov_a, mu_b, cov_b))
    for cov, name in ((cov_a, "cov_a"), (cov_b, "cov_b")):
        if (cov - cov.T).abs().max() > 1e-6 * cov.abs().max():
            raise ValueError(f"{name} must be a covariance: a symmetric matrix, equal to its transpose.")
    evals, evecs = torch.linalg.eigh(cov_a)
    root_a = evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T  # S_a^(1/2)
    middle = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()  # tr (.)^(1/2)
    return float(((mu_a - mu_b) ** 2).sum() + cov_a.trace() + cov_b.trace() - 2 * middle)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted (mean, unbiased covariance) to two feature sets (N, D) and (M, D)."""
    check_points(features_a, "features_a")
    check_points(features_b, "features_b", features_a.shape[1])
    if min(features_a.shape[0], features_b.shape[0]) < 2:
        raise ValueError(
            f"each feature set needs at least two rows to estimate a covariance, "
            f"got {features_a.shape[0]} and {features_b.shape[0]}."
        )
    _check_samples(features_a, "features_a")
    _check_samples(features_b, "features_b")
    a, b = features_a.double(), features_b.double()
    return frechet_gaussian(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))


def class_diversity(x: torch.Tensor, labels: torch.Tensor) -> float:
    """Within-class diversity: mean over classes of mean_pairwise_distance of that class's rows of x (B, ...)."""
    _check_samples(x, "x")
    _check_labels(labels, x.shape[0])
    groups = [x[labels == c] for c in labels.unique() if (labels == c).sum() >= 2]
    if not groups:
        raise ValueError("class_diversity needs at least two samples of some class.")
    return sum(mean_pairwise_distance(g) for g in groups) / len(groups)


def dequantize(
    pixels: torch.Tensor, scale: int = 256, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform dequantization: pixels k / (scale - 1) in [0, 1] (as torchvision gives them) -> (k + u) / scale, u ~ U[0, 1)."""
    check_positive_int(scale, "the number of pixel levels scale")
    if scale < 2:
        raise ValueError(f"scale (the number of pixel levels) must be at least 2, got {scale}.")
    if not isinstance(pixels, torch.Tensor) or not torch.is_floating_point(pixels):
        got = f"dtype {pixels.dtype}" if isinstance(pixels, torch.Tensor) else type(pixels).__name__
        raise ValueError(
            f"pixels must be a float tensor of values in [0, 1], got {got}; e.g. pixels.float() / 255."
        )
    if generator is not None:
        check_instance(generator, torch.Generator, "generator", "torch.Generator().manual_seed(0)")
    if pixels.numel() == 0:
        raise ValueError("pixels is empty (no values to dequantize); give at least one pixel.")
    check_finite(pixels, "pixels")
    if pixels.min() < 0 or pixels.max() > 1:
        raise ValueError(
            f"pixels must lie in [0, 1] (k / (scale - 1) for integer levels k), got values in "
            f"[{pixels.min().item():.4g}, {pixels.max().item():.4g}]."
        )
    levels = torch.round(pixels * (scale - 1))
    u = torch.rand(pixels.shape, generator=generator, dtype=pixels.dtype).to(pixels.device)
    return (levels + u) / scale


def bits_per_dim(
    log_prob: torch.Tensor, num_dims: int, scale: int = 256, data_range: float = 1.0
) -> torch.Tensor:
    """Bits per dimension of discrete data from a density on dequantized data, (B,).

    With uniform dequantization each of the ``scale`` levels of a pixel fills a bin of width
    data_range / scale in the model's coordinates (data_range = 1 for pixels in [0, 1], 2 for
    [-1, 1]), and log P(levels) >= log p(dequantized) + D log(data_range / scale) (Jensen), so
    bpd = -(log p + D log(data_range / scale)) / (D log 2), an upper bound on the discrete model's bpd.
    """
    check_positive_int(num_dims, "the number of dimensions")
    check_positive_int(scale, "the number of pixel levels scale")
    check_number(data_range, "data_range (the width of the pixel interval)", low=0, low_open=True)
    if not isinstance(log_prob, torch.Tensor) or not torch.is_floating_point(log_prob):
        got = f"dtype {log_prob.dtype}" if isinstance(log_prob, torch.Tensor) else type(log_prob).__name__
        raise ValueError(f"log_prob must be a float tensor of log-densities (B,), got {got}.")
    check_finite(log_prob, "log_prob")
    return -(log_prob + num_dims * math.log(data_range / scale)) / (num_dims * math.log(2))
