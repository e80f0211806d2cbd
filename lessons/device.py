"""Device choice: CUDA when there is a GPU, Apple's MPS on a Mac, else the CPU."""

import torch

DEVICES = ("cuda", "mps", "cpu")


def _parse_device(device) -> torch.device:
    """A device name ('cpu', 'cuda', 'cuda:1', 'mps') or torch.device, checked by name only; return a torch.device."""
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device.strip()
    else:
        raise TypeError(
            f"device must be a name (choose one of: {', '.join(DEVICES)}) or a torch.device, "
            f"got {type(device).__name__} {device!r}."
        )
    kind, colon, index = name.partition(":")
    if kind not in DEVICES or (colon and not index.isdigit()) or (colon and kind != "cuda"):
        raise ValueError(
            f"unknown device {device!r}; choose one of: {', '.join(DEVICES)} "
            "(or 'cuda:1' for the second GPU)."
        )
    return torch.device(name)


def pick_device(prefer=None) -> torch.device:
    """Return the requested device (a name or torch.device, checked to exist here), or the best one when None."""
    if prefer is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = _parse_device(prefer)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} was requested but PyTorch sees no CUDA GPU here; use 'cpu' "
                "(or device=None to pick the best one available)."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device {str(device)!r} was requested but this machine has {count} CUDA GPU(s), "
                f"numbered 0 to {count - 1}."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            "device 'mps' was requested but this machine has no Apple GPU; use 'cpu' "
            "(or device=None to pick the best one available)."
        )
    return device


def describe_device(device) -> str:
    """One line naming the device (a torch.device or name), e.g. 'cpu (2 threads)' or 'cuda: NVIDIA H100'."""
    if device is None:
        raise TypeError("describe_device needs a device, e.g. describe_device(pick_device()) or 'cpu'.")
    device = pick_device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
