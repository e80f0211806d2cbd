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
from lessons.checks import check_points, check_positive_int
from lessons.metrics import mean_pairwise_distance
from lessons.mnist import MNIST, mnist_batches
from lessons.training import train

FEATURE_DIM = 32


class DigitClassifier(nn.Module):
    """CNN for (B, 1, 28, 28) digits in [-1, 1] -> logits (B, 10); ``features`` is its (B, 32) last hidden layer."""

    def __init__(self, width: int = 16, feature_dim: int = FEATURE_DIM):
        super().__init__()
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
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"the classifier reads digits of shape (B, 1, 28, 28), got {tuple(x.shape)}.")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


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
    return save_checkpoint(
        path, model.state_dict(), {**settings, "width": model.width, "feature_dim": model.feature_dim}
    )


def load_classifier(path=None) -> DigitClassifier:
    """The project's MNIST classifier (checkpoints/mnist/classifier.pt by default), checksum verified."""
    path = path or checkpoint_path("mnist", "classifier.pt")
    return load_model(path, lambda settings: DigitClassifier(settings["width"], settings["feature_dim"]))[0]


@torch.no_grad()
def classify(classifier: DigitClassifier, images: torch.Tensor, batch_size: int = 500):
    """(features (B, feature_dim), predicted labels (B,)) for images (B, 1, 28, 28), in batches."""
    feats = torch.cat([classifier.features(chunk.float().cpu()) for chunk in images.split(batch_size)])
    return feats, classifier.head(feats).argmax(1)


def accuracy(classifier: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images the classifier labels as ``labels`` (B,)."""
    return float((classify(classifier, images)[1] == labels.cpu()).float().mean())


def frechet_gaussian(mu_a, cov_a, mu_b, cov_b) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^(1/2) S_b S_a^(1/2))^(1/2)) for means (D,) and covariances (D, D)."""
    mu_a, cov_a, mu_b, cov_b = (v.double() for v in (mu_a, cov_a, mu_b, cov_b))
    evals, evecs = torch.linalg.eigh(cov_a)
    root_a = evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T  # S_a^(1/2)
    middle = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()  # tr (.)^(1/2)
    return float(((mu_a - mu_b) ** 2).sum() + cov_a.trace() + cov_b.trace() - 2 * middle)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted (mean, unbiased covariance) to two feature sets (N, D) and (M, D)."""
    check_points(features_a, "features_a")
    check_points(features_b, "features_b", features_a.shape[1])
    if min(features_a.shape[0], features_b.shape[0]) < 2:
        raise ValueError("each feature set needs at least two rows to estimate a covariance.")
    a, b = features_a.double(), features_b.double()
    return frechet_gaussian(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))


def class_diversity(x: torch.Tensor, labels: torch.Tensor) -> float:
    """Within-class diversity: mean over classes of mean_pairwise_distance of that class's rows of x (B, ...)."""
    if labels.shape != x.shape[:1]:
        raise ValueError(
            f"labels must have shape ({x.shape[0]},), one per sample, got {tuple(labels.shape)}."
        )
    groups = [x[labels == c] for c in labels.unique() if (labels == c).sum() >= 2]
    if not groups:
        raise ValueError("class_diversity needs at least two samples of some class.")
    return sum(mean_pairwise_distance(g) for g in groups) / len(groups)


def dequantize(
    pixels: torch.Tensor, scale: int = 256, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform dequantization: pixels k / (scale - 1) in [0, 1] (as torchvision gives them) -> (k + u) / scale, u ~ U[0, 1)."""
    check_positive_int(scale, "the number of pixel levels scale")
    if pixels.min() < 0 or pixels.max() > 1:
        raise ValueError("pixels must lie in [0, 1] (k / (scale - 1) for integer levels k).")
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
    if not data_range > 0:
        raise ValueError(f"data_range (the width of the pixel interval) must be positive, got {data_range}.")
    return -(log_prob + num_dims * math.log(data_range / scale)) / (num_dims * math.log(2))
