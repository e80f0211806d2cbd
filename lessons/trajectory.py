"""The one record every sampler and solver returns, so widgets and metrics read paths alike, and NFE counting."""

from dataclasses import dataclass

import torch
from torch import nn

from lessons.checks import check_model, check_nonnegative_int


def _call_field(field, x: torch.Tensor, t: torch.Tensor, **cond):
    """field(x=x, t=t, **cond) (cond: nothing or cond=...), with two obscure failures of Python and torch in words."""
    try:
        return field(x=x, t=t, **cond)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        raise TypeError(
            f"the field is called as field(x=..., t=..., cond=...), like every model of the course, but it does not "
            f"take those arguments ({err}); pass a model, or a function def field(x, t, cond=None)."
        ) from err
    except RuntimeError as err:
        text = str(err)
        if "dtype" not in text and "scalar type" not in text:
            raise
        raise ValueError(
            f"the field could not compute on a state of dtype {x.dtype} ({text}); the network inside it "
            f"probably has other weights: convert the state (e.g. x.float()) or the network (e.g. net.double())."
        ) from err


@dataclass
class Trajectory:
    """A path from noise (ts[0]) to data (ts[-1]).

    ts: (steps+1,) times; xs: (steps+1, B, ...) states; nfe: network evaluations used.
    """

    ts: torch.Tensor
    xs: torch.Tensor
    nfe: int

    def __post_init__(self):
        if not isinstance(self.ts, torch.Tensor) or self.ts.ndim != 1 or self.ts.shape[0] == 0:
            got = tuple(self.ts.shape) if isinstance(self.ts, torch.Tensor) else type(self.ts).__name__
            raise ValueError(
                f"a Trajectory's ts must be a tensor of shape (steps+1,): one time per state; got {got}."
            )
        if not isinstance(self.xs, torch.Tensor) or self.xs.ndim < 2:
            got = tuple(self.xs.shape) if isinstance(self.xs, torch.Tensor) else type(self.xs).__name__
            raise ValueError(f"a Trajectory's xs must be a tensor of shape (steps+1, B, ...); got {got}.")
        if self.xs.shape[0] != self.ts.shape[0]:
            raise ValueError(
                f"a Trajectory needs one state per time: ts has {self.ts.shape[0]} times but xs holds "
                f"{self.xs.shape[0]} states (xs must be (len(ts), B, ...))."
            )
        check_nonnegative_int(self.nfe, "nfe (the number of network evaluations)")

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
        check_model(model, "the model CountingModel wraps")
        self.model, self.calls = model, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        self.calls += 1
        return self.model(x=x, t=t, **kwargs)
