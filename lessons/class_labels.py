"""Class labels of class-conditional models: whole numbers 0..num_classes - 1, and num_classes, the null class.

A conditional model embeds num_classes + 1 labels; the last one means "no class" and gives the
unconditional prediction that classifier-free guidance needs (lessons.guidance).
"""

import torch

from lessons.checks import check_memory, check_nonnegative_int, check_positive_int


def _device(device, name: str = "device") -> torch.device | None:
    """device as a torch.device (None stays None); a learner's 'gpu' gets the names torch knows."""
    if device is None or isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"{name} must be a device name such as 'cpu' or 'cuda', got {type(device).__name__}.")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"unknown {name} {device!r}; use 'cpu', 'cuda' (an NVIDIA GPU, or 'cuda:1' for the second) or 'mps'."
        ) from None


def null_labels(batch: int, num_classes: int, device=None) -> torch.Tensor:
    """The null class ('no class', index num_classes) for every sample, (batch,) int64."""
    check_nonnegative_int(batch, "the batch size")
    check_positive_int(num_classes, "the number of classes num_classes")
    if batch > 2**20:  # models call this on every forward: read the free memory only when it could matter
        check_memory(8 * batch, f"{batch} null labels")
    return torch.full((batch,), num_classes, dtype=torch.long, device=_device(device))


def check_labels(cond, num_classes: int, batch: int, device=None) -> torch.Tensor:
    """Check that cond is (batch,) whole-number labels in 0..num_classes (num_classes = no class); return it.

    With device, cond must also live there (the model's embedding table does).
    """
    check_positive_int(num_classes, "the number of classes num_classes")
    check_nonnegative_int(batch, "the batch size")
    expected = (
        f"class labels, one per sample: shape ({batch},), whole numbers in 0..{num_classes - 1} "
        f"(or {num_classes}, the null label 'no class')"
    )
    if not isinstance(cond, torch.Tensor):
        raise TypeError(
            f"cond must be {expected}, as a torch tensor; got {type(cond).__name__}. "
            "Make one with torch.tensor(labels)."
        )
    if cond.is_floating_point() or cond.is_complex() or cond.dtype == torch.bool:
        raise ValueError(
            f"cond must be {expected}; got dtype {cond.dtype}. Convert it with cond.long() "
            "(after rounding, if the labels came out as floats)."
        )
    if cond.shape != (batch,):
        hint = " (drop the extra dimension with cond.reshape(-1))" if cond.numel() == batch else ""
        raise ValueError(f"cond must be {expected}; got shape {tuple(cond.shape)}{hint}.")
    if cond.numel():
        low, high = int(cond.min()), int(cond.max())
        if low < 0:
            raise ValueError(f"cond must be {expected}; got the label {low}: labels are never negative.")
        if high > num_classes:
            raise ValueError(
                f"cond must be {expected}; got the label {high}, but this model knows only {num_classes} classes."
            )
    where = _device(device)
    if where is not None and (
        cond.device.type != where.type or (where.index is not None and cond.device.index != where.index)
    ):
        raise ValueError(
            f"cond is on {cond.device} but the model is on {where}; move it with cond.to('{where}')."
        )
    return cond


def labels_or_null(cond, num_classes: int, batch: int, device=None) -> torch.Tensor:
    """The labels a conditional model embeds, (batch,): cond checked, or the null class when cond is None."""
    if cond is None:
        return null_labels(batch, num_classes, device)
    return check_labels(cond, num_classes, batch, device)
