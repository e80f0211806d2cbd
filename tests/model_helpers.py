"""Helpers shared by the image-model tests."""

import torch


def randomized(model, seed=0):
    """Give every parameter random values (zero-initialized layers would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()
