"""The one record every sampler and solver returns, so widgets and metrics read paths alike."""

from dataclasses import dataclass

import torch


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
