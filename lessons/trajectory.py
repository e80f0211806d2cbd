"""The one record every sampler and solver returns, so widgets and metrics read paths alike, and NFE counting."""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Trajectory:
    """A path from noise (ts[0]) to data (ts[-1]).

    ts: (steps+1,) times; xs: (steps+1, B, ...) states; nfe: network evaluations used.
    """

    ts: torch.Tensor
    xs: torch.Tensor
    nfe: int

    @property
    def final(self) -> torch.Tensor:
        """The last state, (B, ...): the samples."""
        return self.xs[-1]

    @property
    def steps(self) -> int:
        """Number of steps taken (len(ts) - 1)."""
        return self.ts.shape[0] - 1


class CountingModel(nn.Module):
    """Wraps a model or field and counts its evaluations (NFE) in ``calls``; called as model(x=..., t=..., ...).

    An nn.Module, so a wrapped network keeps its parameters (for training and the adjoint method).
    Set ``calls = 0`` to start a new count.
    """

    def __init__(self, model):
        super().__init__()
        if not callable(model):
            raise ValueError(
                f"CountingModel wraps a model called as model(x=..., t=...), got {type(model).__name__}."
            )
        self.model, self.calls = model, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        self.calls += 1
        return self.model(x=x, t=t, **kwargs)
