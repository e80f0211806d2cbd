"""Classifier-free guidance (Ho and Salimans 2022) for any class-conditional model: training and sampling.

Training: label dropout replaces each label by the null class with probability p (drop_labels), so
one network learns both the conditional f(x, t, c) and the unconditional f(x, t, null) model.
Sampling, with the null class (cond = None) for the unconditional prediction:
  guided(x, t, c) = (1 + w) f(x, t, c) - w f(x, t, null) = f(x, t, c) + w (f(x, t, c) - f(x, t, null)),
for f a velocity, a noise or a data prediction alike (each is affine in the score). w = 0 is the
plain conditional model; w > 0 pushes samples towards what makes class c more likely.
"""

import torch

from lessons.checks import check_same_shape
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
