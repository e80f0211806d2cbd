"""Classifier-free guidance (Ho and Salimans 2022) for any class-conditional model: training and sampling.

Training: label dropout replaces each label by the null class with probability p (drop_labels), so
one network learns both the conditional f(x, t, c) and the unconditional f(x, t, null) model.
Sampling, with the null class (cond = None) for the unconditional prediction:
  guided(x, t, c) = (1 + w) f(x, t, c) - w f(x, t, null) = f(x, t, c) + w (f(x, t, c) - f(x, t, null)),
for f a velocity, a noise or a data prediction alike (each is affine in the score). w = 0 is the
plain conditional model; w > 0 pushes samples towards what makes class c more likely.

The guided score at each t is the score of the tilted noised marginal p_t(x) p_t(c | x)^(1+w), but those
tilted marginals are not the noising of one law, so guided samples do not follow the tilted data law
p(x) p(c | x)^(1+w) (Chidambaram et al. 2024); sample_tilted draws that law exactly, for comparison.
"""

import math

import torch

from lessons.checks import check_positive_int, check_same_shape
from lessons.class_labels import null_labels


def drop_labels(
    labels: torch.Tensor, p: float, num_classes: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Label dropout: each label of labels (B,) becomes the null class num_classes with probability p."""
    if not 0 <= p <= 1:
        raise ValueError(f"the label dropout probability must be in [0, 1], got {p}.")
    if p == 0:
        return labels
    drop = torch.rand(labels.shape, generator=generator, device=labels.device) < p
    return torch.where(
        drop, null_labels(labels.shape[0], num_classes, labels.device).to(labels.dtype), labels
    )


class ClassifierFreeGuidance:
    """A model-like callable guided(x=..., t=..., cond=labels) -> (B, ...), one batched call of the model."""

    def __init__(self, model, scale: float):
        if not scale >= 0:
            raise ValueError(f"the guidance scale w must be >= 0 (0 means no guidance), got {scale}.")
        if not getattr(model, "num_classes", None):
            raise ValueError(
                "classifier-free guidance needs a class-conditional model (built with num_classes)."
            )
        self.model, self.scale = model, float(scale)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            raise ValueError(
                "classifier-free guidance needs class labels cond (B,); for unconditional "
                "samples call the model itself with cond=None."
            )
        if self.scale == 0:
            return self.model(x=x, t=t, cond=cond)
        null = null_labels(cond.shape[0], self.model.num_classes, cond.device).to(cond.dtype)
        both = self.model(x=torch.cat([x, x]), t=torch.cat([t, t]), cond=torch.cat([cond, null]))
        conditional, unconditional = both.chunk(2)
        check_same_shape(conditional, x, "the model output", "x")
        return (1 + self.scale) * conditional - self.scale * unconditional


def sample_tilted(
    conditional, marginal, class_prior: float, scale: float, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """n draws (n, D) of p(x | c)^(1+w) p(x)^(-w), proportional to p(x) p(c | x)^(1+w), w = scale.

    conditional and marginal are laws with sample(n, generator) and log_prob(x) (a GaussianMixture of class c and
    of all classes), class_prior = p(c). By rejection from p(x | c): accept a draw with probability
    p(c | x)^w, where p(c | x) = p(c) p(x | c) / p(x) <= 1, which leaves exactly the tilted law.
    """
    check_positive_int(n, "the number of points n")
    if not scale >= 0:
        raise ValueError(f"the guidance scale w must be >= 0, got {scale}.")
    if not 0 < class_prior <= 1:
        raise ValueError(f"the class prior p(c) must be in (0, 1], got {class_prior}.")
    kept, count = [], 0
    for _ in range(1000):
        x = conditional.sample(max(n, 1000), generator=generator)
        log_pc = (math.log(class_prior) + conditional.log_prob(x) - marginal.log_prob(x)).clamp(max=0.0)
        accept = torch.rand(x.shape[0], generator=generator).log() < scale * log_pc
        kept.append(x[accept])
        count += int(accept.sum())
        if count >= n:
            return torch.cat(kept)[:n]
    raise ValueError(
        f"rejection kept only {count} of the {n} points asked for: p(c | x)^w is tiny almost everywhere "
        "(is conditional a part of marginal, with class_prior its weight?)."
    )
