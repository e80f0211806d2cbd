"""Networks of the course. Every model is called as model(x=..., t=..., cond=None) and owns its time embedding."""

import math

import torch
from torch import nn

from lessons.checks import check_matches_model, check_number, check_positive_int, check_time, choose
from lessons.class_labels import labels_or_null

ACTIVATIONS = {"silu": nn.SiLU, "selu": nn.SELU, "gelu": nn.GELU, "relu": nn.ReLU}


def _check_num_classes(num_classes) -> None:
    """Check that num_classes is None (no classes) or a positive whole number."""
    if num_classes is not None:
        check_positive_int(num_classes, "num_classes (None for a model without classes)")


def _check_input(x: torch.Tensor, t: torch.Tensor, model: nn.Module) -> None:
    """Check a model's input: x a float tensor of the model's dtype and device, t (B,) in [0, 1] beside it."""
    if not torch.is_floating_point(x):
        raise ValueError(f"x must be a float tensor, got dtype {x.dtype}; convert it with x.float().")
    check_matches_model(x, model)
    check_time(t, batch=x.shape[0])
    if t.device != x.device:
        raise ValueError(f"t is on {t.device} but x is on {x.device}; move t, e.g. t.to(x.device).")


def _check_points(x: torch.Tensor, t: torch.Tensor, model: nn.Module) -> None:
    """The input of a network of points: x a tensor (B, model.dim), then _check_input's checks of x and t."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch tensor of shape (B, {model.dim}), got {type(x).__name__}.")
    if x.ndim != 2 or x.shape[1] != model.dim:
        raise ValueError(f"x must have shape (B, {model.dim}), got {tuple(x.shape)}.")
    _check_input(x, t, model)


def _mlp_layers(width: int, hidden: int, depth: int, activation: str, out: int) -> nn.Sequential:
    """depth layers of (Linear to hidden units, activation) from width inputs, then a Linear to out outputs."""
    act = ACTIVATIONS[choose(activation, ACTIVATIONS, "activation")]
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, out))


class SinusoidalTimeEmbedding(nn.Module):
    """t (B,) in [0, 1] -> (B, dim): sin and cos of scale * t at geometrically spaced frequencies.

    The default scale 1000 lets a network vary quickly in t; a CNF trained by simulating a few
    fixed solver steps wants a smooth field in t (scale about 1), or it learns the solver's errors.
    """

    def __init__(self, dim: int = 32, max_period: float = 10_000.0, scale: float = 1000.0):
        super().__init__()
        check_positive_int(dim, "the time embedding size dim")
        if dim % 2:
            raise ValueError(f"the time embedding size must be even (sin and cos pairs), got {dim}.")
        check_number(
            max_period, "max_period (the longest period of the time embedding)", low=0, low_open=True
        )
        check_number(scale, "the time scale", low=0, low_open=True)
        self.scale = scale
        freqs = torch.exp(-math.log(max_period) * torch.arange(dim // 2) / (dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor) or t.ndim != 1:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"t must be a tensor of shape (B,): one time per sample; got {got}.")
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
        check_positive_int(hidden, "hidden (the width of each hidden layer)")
        check_positive_int(depth, "depth")
        check_positive_int(time_dim, "time_dim (the size of the time embedding)")
        _check_num_classes(num_classes)
        self.net = _mlp_layers(dim + time_dim, hidden, depth, activation, dim)
        self.dim, self.num_classes = dim, num_classes
        self.time_embedding = SinusoidalTimeEmbedding(time_dim, scale=time_scale)
        self.class_embedding = nn.Embedding(num_classes + 1, time_dim) if num_classes else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        _check_points(x, t, self)
        emb = self.time_embedding(t).to(x.dtype)  # float64 times for a float32 model: the model's precision
        if self.class_embedding is not None:
            emb = emb + self.class_embedding(labels_or_null(cond, self.num_classes, x.shape[0], x.device))
        elif cond is not None:
            raise ValueError("this model was built without classes (num_classes=None) but got cond.")
        return self.net(torch.cat([x, emb], dim=1))
