"""Device choice: CUDA when there is a GPU, Apple's MPS on a Mac, else the CPU."""

import torch

DEVICES = ("cuda", "mps", "cpu")


def pick_device(prefer: str | None = None) -> torch.device:
    """Return the requested device, or the best available one when prefer is None."""
    if prefer is not None:
        if prefer not in DEVICES:
            raise ValueError(f"unknown device {prefer!r}; choose one of: {', '.join(DEVICES)}.")
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but PyTorch sees no CUDA GPU here.")
        if prefer == "mps" and not torch.backends.mps.is_available():
            raise ValueError("device 'mps' was requested but this machine has no Apple GPU.")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """One line naming the device, e.g. 'cpu (2 threads)' or 'cuda: NVIDIA H100'."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
