"""Class labels of class-conditional models: whole numbers 0..num_classes - 1, and num_classes, the null class.

A conditional model embeds num_classes + 1 labels; the last one means "no class" and gives the
unconditional prediction that classifier-free guidance needs (lessons.guidance).
"""

import torch


def null_labels(batch: int, num_classes: int, device=None) -> torch.Tensor:
    """The null class ('no class', index num_classes) for every sample, (batch,) int64."""
    return torch.full((batch,), num_classes, dtype=torch.long, device=device)


def check_labels(cond, num_classes: int, batch: int) -> torch.Tensor:
    """Check that cond is (batch,) whole-number labels in 0..num_classes (num_classes = no class); return it."""
    whole = isinstance(cond, torch.Tensor) and not (
        cond.is_floating_point() or cond.is_complex() or cond.dtype == torch.bool
    )
    if not whole or cond.shape != (batch,) or (cond.numel() and (cond.min() < 0 or cond.max() > num_classes)):
        got = (
            f"shape {tuple(cond.shape)} and dtype {cond.dtype}"
            if isinstance(cond, torch.Tensor)
            else type(cond).__name__
        )
        raise ValueError(
            f"cond must be class labels, one per sample: shape ({batch},), whole numbers in "
            f"0..{num_classes} ({num_classes} means 'no class'); got {got}."
        )
    return cond


def labels_or_null(cond, num_classes: int, batch: int, device=None) -> torch.Tensor:
    """The labels a conditional model embeds, (batch,): cond checked, or the null class when cond is None."""
    return null_labels(batch, num_classes, device) if cond is None else check_labels(cond, num_classes, batch)
