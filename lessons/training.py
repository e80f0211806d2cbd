"""One training loop for every lesson: AdamW, a tqdm bar, seeds, loss history, a safe stop on NaN."""

import copy
import math
import random
import time
import warnings
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from lessons.checks import check_positive_int, choose
from lessons.device import pick_device

LR_SCHEDULES = {  # multiplier of the learning rate at step n = 0 .. steps-1
    "constant": lambda n, steps: 1.0,
    "cosine": lambda n, steps: 0.5 * (1 + math.cos(math.pi * n / steps)),
}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy (when present) and PyTorch so a run can be repeated."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # numpy is optional here
        pass


@dataclass
class TrainResult:
    """What a training run did: loss per step, wall time, steps done, and why it stopped early (or None)."""

    losses: list = field(default_factory=list)
    seconds: float = 0.0
    steps_done: int = 0
    stopped_early: str | None = None


def random_batches(data, batch_size: int, generator: torch.Generator | None = None):
    """A next_batch() for train: batch_size random rows (with replacement) of data (N, ...), each call anew.

    data may be a tuple of tensors with the same N (e.g. images and labels): each call then returns
    the same rows of every tensor. generator: a seeded torch.Generator makes the batches repeatable;
    None draws from torch's global generator (which train seeds).
    """
    check_positive_int(batch_size, "the batch size")
    tensors = data if isinstance(data, tuple) else (data,)
    if not tensors or not all(isinstance(x, torch.Tensor) and x.ndim >= 1 for x in tensors):
        raise ValueError("data must be a tensor of shape (N, ...) or a tuple of such tensors.")
    n = tensors[0].shape[0]
    if n == 0 or any(x.shape[0] != n for x in tensors):
        raise ValueError(
            f"every tensor needs the same number N >= 1 of rows, got {[x.shape[0] for x in tensors]}."
        )

    def next_batch():
        idx = torch.randint(0, n, (batch_size,), generator=generator)
        return tuple(x[idx] for x in tensors) if isinstance(data, tuple) else data[idx]

    return next_batch


def train(
    model,
    loss_fn,
    next_batch,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device=None,
    progress: bool = True,
    grad_clip: float | None = 1.0,
    callback=None,
    callback_every: int = 100,
    snapshot_every: int = 50,
    lr_schedule: str = "cosine",
) -> TrainResult:
    """Train ``model`` in place for ``steps`` steps of AdamW on loss_fn(model, next_batch()).

    lr_schedule: 'cosine' (the default: step n uses lr * (1 + cos(pi (n-1) / steps)) / 2, falling from
    lr towards 0, so the last steps average out the noise of the gradient estimates), or 'constant'.

    next_batch() returns a tensor (or a tuple of tensors) that is moved to the device.
    callback(step, model, losses) runs every callback_every steps (a live plot, say).
    A loss or gradient that is not finite stops training and restores the last good weights.
    """
    check_positive_int(steps, "the number of training steps")
    if not lr > 0:
        raise ValueError(f"the learning rate must be positive, got {lr}.")
    choose(lr_schedule, LR_SCHEDULES, "learning-rate schedule")
    seed_everything(seed)
    device = torch.device(device) if device is not None else pick_device()
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    factor = LR_SCHEDULES[lr_schedule]
    result, good_state, good_step = TrainResult(), copy.deepcopy(model.state_dict()), 0
    start = time.perf_counter()
    bar = tqdm(range(1, steps + 1), disable=not progress, desc="training", mininterval=0.5)
    for step in bar:
        batch = next_batch()
        batch = tuple(b.to(device) for b in batch) if isinstance(batch, tuple) else batch.to(device)
        loss = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = _grad_norm(model)
        if not (math.isfinite(loss.item()) and math.isfinite(grad_norm)):
            model.load_state_dict(good_state)
            result.stopped_early = (
                f"training stopped at step {step}: the loss or its gradient became {loss.item()}. "
                f"The weights from step {good_step}, the last good ones, were restored; "
                "try a smaller learning rate."
            )
            warnings.warn(result.stopped_early, RuntimeWarning, stacklevel=2)
            break
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        for group in opt.param_groups:
            group["lr"] = lr * factor(step - 1, steps)
        opt.step()
        result.losses.append(loss.item())
        result.steps_done = step
        if step % snapshot_every == 0:
            good_state, good_step = copy.deepcopy(model.state_dict()), step
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(result.losses[-50:]) / 50:.4f}")
        if callback is not None and (step % callback_every == 0 or step == steps):
            callback(step, model, result.losses)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result


def _grad_norm(model) -> float:
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


class EMA:
    """Exponential moving average of a model's weights: avg <- d avg + (1 - d) weights, d = min(decay, (1+n)/(10+n))."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        if not 0 <= decay < 1:
            raise ValueError(f"the EMA decay must be in [0, 1), got {decay}.")
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, p in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(p.detach(), 1 - d)
        for avg, b in zip(self.model.buffers(), model.buffers()):
            avg.copy_(b)
