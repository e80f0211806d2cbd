"""MeanFlow (Geng et al. 2025): learn the average velocity of a flow, so one network call crosses [s, t].

u(x, s, t) = (X_t - x) / (t - s), X_t the flow of dx/dt = v(x, t) from x at time s (s <= t, noise at 0,
data at 1); u(x, t, t) = v(x, t), and one step is x_t = x_s + (t - s) u(x_s, s, t). Since X_t does not move
when x_s slides along the flow, d/ds [(t - s) u(x_s, s, t)] = -v, which is the MeanFlow identity
    u(x_s, s, t) = v(x_s, s) + (t - s) d/ds u(x_s, s, t),   d/ds u = v . grad_x u + du/ds (t fixed).
The loss regresses u on the stopped right-hand side; d/ds u comes from one forward-mode pass (a jvp).
"""

import torch
import torch.nn.functional as F
from torch import nn

from lessons.checks import (
    check_callable,
    check_finite,
    check_instance,
    check_matches_model,
    check_memory,
    check_model,
    check_model_output,
    check_number,
    check_point_set,
    check_positive_int,
    check_same_shape,
    check_start,
    check_tensor,
)
from lessons.flow_matching import sample_times
from lessons.models import SinusoidalTimeEmbedding, _check_input, _check_points, _mlp_layers
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule
from lessons.solvers import trajectory_bytes, walk_grid
from lessons.tensors import expand_like, time_like
from lessons.trajectory import Trajectory

AVERAGE_MODEL = "an average-velocity model called as model(x=..., s=..., t=...), such as AverageVelocityMLP"


def _check_interval(s: torch.Tensor, t: torch.Tensor) -> None:
    """s (B,) a float tensor like the (checked) times t (B,), with 0 <= s <= t: one interval per sample."""
    if not isinstance(s, torch.Tensor) or s.shape != t.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(
            f"s must be a tensor of shape {tuple(t.shape)} like t: one start time per sample; got {got}."
        )
    if not torch.is_floating_point(s) or s.device != t.device:
        raise ValueError(f"s must be a float tensor on {t.device} like t, got {s.dtype} on {s.device}.")
    bad = ~((s >= 0) & (s <= t))  # written so that NaN fails too
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"each start time s must lie in [0, t] (0 <= s <= t <= 1, time runs from noise to data); "
            f"got s = {s[i].item():.4g} with t = {t[i].item():.4g} at sample {i}."
        )


def _call_average(model, x, s, t) -> torch.Tensor:
    """model(x=x, s=s, t=t), with a velocity model v(x, t) given by mistake refused in words."""
    try:
        return model(x=x, s=s, t=t)
    except TypeError as err:
        if "unexpected keyword argument 's'" not in str(err):
            raise
        raise TypeError(
            f"the model is called as model(x=..., s=..., t=...), an average velocity u(x, s, t) such as "
            f"AverageVelocityMLP, but it takes no s ({err}); a velocity model v(x, t) is the teacher."
        ) from err


class AverageVelocityMLP(nn.Module):
    """Average-velocity MLP u(x, s, t): (x (B, dim), s (B,), t (B,)) -> (B, dim), for 0 <= s <= t <= 1.

    Embeddings of s and of the interval length t - s (lessons.models.SinusoidalTimeEmbedding) are
    concatenated to x, then an MLP as lessons.models.MLP; time_scale is the embedding's scale. The default 1
    keeps u smooth in s: the loss's target holds d/ds u, which grows with the scale; at MLP's 1000 the
    training feeds on its own derivative and its loss grows instead of falling (tests/test_mean_flow.py).
    """

    def __init__(self, dim=2, hidden=128, depth=3, time_dim=32, activation="silu", time_scale=1.0):
        super().__init__()
        check_positive_int(dim, "dim")
        check_positive_int(hidden, "hidden (the width of each hidden layer)")
        check_positive_int(depth, "depth")
        check_positive_int(time_dim, "time_dim (the size of the time embedding)")
        self.net = _mlp_layers(dim + 2 * time_dim, hidden, depth, activation, dim)
        self.dim = dim
        self.time_embedding = SinusoidalTimeEmbedding(time_dim, scale=time_scale)

    def forward(self, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _check_points(x, t, self)
        _check_interval(s, t)
        emb = torch.cat([self.time_embedding(s), self.time_embedding(t - s)], dim=1).to(x.dtype)
        return self.net(torch.cat([x, emb], dim=1))


def _check_loss_input(model, x, s, t, velocity) -> None:
    """x (B, D) finite in the model's dtype, times s <= t (B,), velocity (B, D) finite."""
    check_callable(model, "model", AVERAGE_MODEL)
    check_point_set(x, "x")
    check_matches_model(x, model)
    check_finite(check_tensor(velocity, "velocity"), "velocity")
    check_same_shape(velocity, x, "velocity", "x")
    _check_input(x, t, None)
    _check_interval(s, t)


def mean_flow_jvp(model, x, s, t, velocity) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, d/ds u), each (B, D): u = model(x, s, t) and its derivative along the flow dx/ds = velocity.

    d/ds u = velocity . grad_x u + du/ds at fixed t: one forward-mode pass (torch.func.jvp) with tangents
    (velocity, 1, 0) for (x, s, t). u keeps its graph to the model's weights (backward through it works).
    """
    _check_loss_input(model, x, s, t, velocity)
    u, du_ds = torch.func.jvp(
        lambda x, s, t: _call_average(model, x, s, t),
        (x, s, t),
        (velocity, torch.ones_like(s), torch.zeros_like(t)),
    )
    return check_model_output(u, x), du_ds


def mean_flow_loss(model, x, s, t, velocity) -> torch.Tensor:
    """MSE (over batch and coordinates) of model(x, s, t) against the stopped v + (t - s) d/ds u; a scalar.

    x (B, D): points at times s (B,); t (B,) with s <= t; velocity (B, D) = v(x, s). Gradients reach the
    weights through u only: the target is detached.
    """
    u, du_ds = mean_flow_jvp(model, x, s, t, velocity)
    target = velocity + expand_like(t - s, x).to(x.dtype) * du_ds  # (B, D)
    return F.mse_loss(u, target.detach())


def mean_flow_batch_loss(teacher=None, path: GaussianPath | None = None, equal_fraction: float = 0.5):
    """loss_fn(model, batch) for lessons.training.train: mean_flow_loss on batches (noise, data), each (B, D).

    Per row: s, t = the min and max of two uniform times (torch's global generator, seeded by train), and
    s = t with probability equal_fraction (plain flow matching there). x_s on path (None: the linear path,
    x_s = s data + (1 - s) noise); v = teacher(x=x_s, t=s) without gradient when a teacher is given
    (distillation: the marginal velocity), else the conditional velocity (data - noise on the linear path).
    """
    if teacher is not None:
        check_model(teacher, "teacher (a velocity model called as teacher(x=..., t=...), or None)")
        if isinstance(teacher, AverageVelocityMLP):
            raise TypeError(
                "teacher must be a velocity model v(x, t), such as a trained lessons.models.MLP; "
                "an AverageVelocityMLP u(x, s, t) is the student (the model that train fits)."
            )
    path = GaussianPath(LinearSchedule()) if path is None else path
    check_instance(path, GaussianPath, "path", "GaussianPath(LinearSchedule()), or None for the linear path")
    equal_fraction = check_number(
        equal_fraction, "equal_fraction (the share of rows with s = t)", low=0, high=1
    )

    def loss_fn(model, batch):
        if not (isinstance(batch, tuple) and len(batch) == 2):
            raise ValueError(
                "mean_flow_batch_loss expects batches (noise, data), e.g. from "
                "lessons.couplings.pair_batches."
            )
        noise, data = batch
        check_point_set(data, "data")
        check_point_set(noise, "noise", data.shape[1])
        check_same_shape(noise, data, "noise", "data")
        a, b = sample_times(data.shape[0], data.device), sample_times(data.shape[0], data.device)
        equal = sample_times(data.shape[0], data.device) < equal_fraction
        t = torch.maximum(a, b).to(data.dtype)
        s = torch.where(equal, t, torch.minimum(a, b).to(data.dtype))
        ps = path.sample(noise, data, s)
        velocity = ps.velocity
        if teacher is not None:
            check_matches_model(ps.x_t, teacher, "the teacher's input x_s")
            with torch.no_grad():
                velocity = check_model_output(teacher(x=ps.x_t, t=s), ps.x_t, "the teacher")
        return mean_flow_loss(model, ps.x_t, s, t, velocity)

    return loss_fn


@torch.no_grad()
def mean_flow_sample(model, noise: torch.Tensor, steps: int = 1) -> Trajectory:
    """From noise (B, D) at t = 0 to t = 1 in `steps` equal steps, x <- x + (t' - t) model(x, t, t').

    Returns a Trajectory: ts (steps+1,), xs (steps+1, B, D), nfe = steps.
    """
    check_callable(model, "model", AVERAGE_MODEL)
    check_start(model, noise)
    check_point_set(noise, "noise")
    check_positive_int(steps, "steps (the number of sampling steps)")
    check_memory(trajectory_bytes(steps, noise), f"recording the {steps + 1} states of MeanFlow sampling")
    ts = torch.linspace(0, 1, steps + 1, dtype=noise.dtype, device=noise.device)

    def advance(x, t, t_next):
        u = _call_average(model, x, time_like(t, x), time_like(t_next, x))
        return x + (t_next - t) * check_model_output(u, x)

    return walk_grid(advance, noise, ts, what="MeanFlow sampling")
