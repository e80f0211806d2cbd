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

from lessons.checks import (
    check_generator,
    check_matches_model,
    check_memory,
    check_model,
    check_model_output,
    check_number,
    check_positive_int,
    check_tensor,
    check_time,
)
from lessons.class_labels import check_labels, null_labels


def drop_labels(
    labels: torch.Tensor, p: float, num_classes: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Label dropout: each label of labels (B,) becomes the null class num_classes with probability p."""
    p = check_number(p, "the label dropout probability p")
    if not 0 <= p <= 1:
        raise ValueError(f"the label dropout probability must be in [0, 1], got {p}.")
    check_positive_int(num_classes, "the number of classes num_classes")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a tensor (B,) of class labels, got {type(labels).__name__}.")
    check_labels(labels, num_classes, labels.shape[0] if labels.ndim == 1 else labels.numel())
    check_generator(generator)
    if p == 0:
        return labels
    drop = torch.rand(labels.shape, generator=generator, device=labels.device) < p
    return torch.where(
        drop, null_labels(labels.shape[0], num_classes, labels.device).to(labels.dtype), labels
    )


class ClassifierFreeGuidance:
    """A model-like callable guided(x=..., t=..., cond=labels) -> (B, ...), one batched call of the model."""

    def __init__(self, model, scale: float):
        check_model(model)
        scale = check_number(scale, "the guidance scale w")
        if scale < 0:
            raise ValueError(f"the guidance scale w must be >= 0 (0 means no guidance), got {scale}.")
        if not getattr(model, "num_classes", None):
            raise ValueError(
                "classifier-free guidance needs a class-conditional model (built with num_classes)."
            )
        self.model, self.scale = model, scale

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            raise ValueError(
                "classifier-free guidance needs class labels cond (B,); for unconditional "
                "samples call the model itself with cond=None."
            )
        check_tensor(x, "x")
        check_matches_model(x, self.model)
        check_time(t, batch=x.shape[0])
        check_labels(cond, self.model.num_classes, x.shape[0], x.device)
        if self.scale == 0:
            return check_model_output(self.model(x=x, t=t, cond=cond), x)
        null = null_labels(cond.shape[0], self.model.num_classes, cond.device).to(cond.dtype)
        twice = torch.cat([x, x])
        both = check_model_output(
            self.model(x=twice, t=torch.cat([t, t]), cond=torch.cat([cond, null])), twice
        )
        conditional, unconditional = both.chunk(2)
        return (1 + self.scale) * conditional - self.scale * unconditional


def _check_law(law, name: str) -> None:
    """A law here is an object with sample(n, generator=...) and log_prob(x), such as a GaussianMixture."""
    if isinstance(law, type) or not (
        callable(getattr(law, "sample", None)) and callable(getattr(law, "log_prob", None))
    ):
        what = (
            f"the class {law.__name__} itself (call it to make one)" if isinstance(law, type) else repr(law)
        )
        raise TypeError(
            f"{name} must be a law with sample(n, generator) and log_prob(x), such as a GaussianMixture; got {what}."
        )


def sample_tilted(
    conditional, marginal, class_prior: float, scale: float, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """n draws (n, D) of p(x | c)^(1+w) p(x)^(-w), proportional to p(x) p(c | x)^(1+w), w = scale.

    conditional and marginal are laws with sample(n, generator) and log_prob(x) (a GaussianMixture of class c and
    of all classes), class_prior = p(c). By rejection from p(x | c): accept a draw with probability
    p(c | x)^w, where p(c | x) = p(c) p(x | c) / p(x) <= 1, which leaves exactly the tilted law.
    """
    check_positive_int(n, "the number of points n")
    _check_law(conditional, "conditional")
    _check_law(marginal, "marginal")
    scale = check_number(scale, "the guidance scale w")
    if scale < 0:
        raise ValueError(f"the guidance scale w must be >= 0, got {scale}.")
    class_prior = check_number(class_prior, "the class prior p(c)")
    if not 0 < class_prior <= 1:
        raise ValueError(f"the class prior p(c) must be in (0, 1], got {class_prior}.")
    check_generator(generator)
    dims = (getattr(conditional, "dim", None), getattr(marginal, "dim", None))
    if None not in dims and dims[0] != dims[1]:
        raise ValueError(
            f"conditional and marginal must be laws of one dimension (p(x | c) and p(x) of the same x); "
            f"got conditional in {dims[0]}D and marginal in {dims[1]}D."
        )
    batch = max(n, 1000)
    dim = int(dims[0] or 1)
    parts = sum(int(getattr(law, "means", torch.zeros(1)).shape[0]) for law in (conditional, marginal))
    # a batch of draws, what log_prob holds per component, and the kept points
    check_memory(4 * dim * (3 * batch + 2 * n + 2 * parts * batch), f"sample_tilted with n = {n}")
    kept, count = [], 0
    for _ in range(1000):
        x = conditional.sample(batch, generator=generator)
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
