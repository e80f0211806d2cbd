"""Networks of the course. Every model is called as model(x=..., t=..., cond=None) and owns its time embedding."""

import math

import torch
from torch import nn

from lessons.checks import check_positive_int, check_time, choose
from lessons.class_labels import labels_or_null

ACTIVATIONS = {"silu": nn.SiLU, "selu": nn.SELU, "gelu": nn.GELU, "relu": nn.ReLU}


class SinusoidalTimeEmbedding(nn.Module):
    """t (B,) in [0, 1] -> (B, dim): sin and cos of scale * t at geometrically spaced frequencies.

    The default scale 1000 lets a network vary quickly in t; a CNF trained by simulating a few
    fixed solver steps wants a smooth field in t (scale about 1), or it learns the solver's errors.
    """

    def __init__(self, dim: int = 32, max_period: float = 10_000.0, scale: float = 1000.0):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"the time scale must be positive, got {scale}.")
        self.scale = scale
        if dim % 2:
            raise ValueError(f"the time embedding size must be even (sin and cos pairs), got {dim}.")
        freqs = torch.exp(-math.log(max_period) * torch.arange(dim // 2) / (dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = self.scale * t[:, None] * self.freqs[None]  # (B, dim/2)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class MLP(nn.Module):
    """Time-conditioned MLP for points in D dimensions: (x (B, D), t (B,)) -> (B, D).

    The time embedding (plus a class embedding when num_classes is set) is concatenated to x.
    With num_classes, class index num_classes is the 'no class' token used for guidance.
    time_scale: the time embedding's scale (sin and cos of time_scale * t * frequencies).
    """

    def __init__(
        self, dim=2, hidden=128, depth=3, time_dim=32, activation="silu", num_classes=None, time_scale=1000.0
    ):
        super().__init__()
        check_positive_int(dim, "dim")
        check_positive_int(depth, "depth")
        act = ACTIVATIONS[choose(activation, ACTIVATIONS, "activation")]
        self.dim, self.num_classes = dim, num_classes
        self.time_embedding = SinusoidalTimeEmbedding(time_dim, scale=time_scale)
        self.class_embedding = nn.Embedding(num_classes + 1, time_dim) if num_classes else None
        layers, width = [], dim + time_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), act()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}.")
        emb = self.time_embedding(check_time(t, batch=x.shape[0]))
        if self.class_embedding is not None:
            emb = emb + self.class_embedding(labels_or_null(cond, self.num_classes, x.shape[0], x.device))
        elif cond is not None:
            raise ValueError("this model was built without classes (num_classes=None) but got cond.")
        return self.net(torch.cat([x, emb], dim=1))
