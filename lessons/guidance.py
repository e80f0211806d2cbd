"""Classifier-free guidance (Ho and Salimans 2022) for any class-conditional model of the course.

With the null class (cond = None) for the unconditional prediction:
  guided(x, t, c) = (1 + w) f(x, t, c) - w f(x, t, null) = f(x, t, c) + w (f(x, t, c) - f(x, t, null)),
for f a velocity, a noise or a data prediction alike (each is affine in the score). w = 0 is the
plain conditional model; w > 0 pushes samples towards what makes class c more likely.
"""

import torch

from lessons.checks import check_same_shape


class ClassifierFreeGuidance:
    """A model-like callable guided(x=..., t=..., cond=labels) -> (B, ...), one batched call of the model."""

    def __init__(self, model, scale: float):
        if not scale >= 0:
            raise ValueError(f"the guidance scale w must be >= 0 (0 means no guidance), got {scale}.")
        if not getattr(model, "num_classes", None):
            raise ValueError("classifier-free guidance needs a class-conditional model (built with num_classes).")
        self.model, self.scale = model, float(scale)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            raise ValueError("classifier-free guidance needs class labels cond (B,); for unconditional "
                             "samples call the model itself with cond=None.")
        if self.scale == 0:
            return self.model(x=x, t=t, cond=cond)
        null = torch.full_like(cond, self.model.num_classes)  # the 'no class' token
        both = self.model(x=torch.cat([x, x]), t=torch.cat([t, t]), cond=torch.cat([cond, null]))
        conditional, unconditional = both.chunk(2)
        check_same_shape(conditional, x, "the model output", "x")
        return (1 + self.scale) * conditional - self.scale * unconditional
