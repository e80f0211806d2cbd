"""One training loop for every lesson: AdamW, a progress bar when slow, seeds, loss history, a safe stop on NaN."""

import copy
import math
import random
import time
import warnings
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from lessons.checks import check_instance, check_memory, check_number, check_positive_int, check_seed, choose
from lessons.device import pick_device
from lessons.progress import Progress

LR_SCHEDULES = {  # multiplier of the learning rate at step n = 0 .. steps-1
    "constant": lambda n, steps: 1.0,
    "cosine": lambda n, steps: 0.5 * (1 + math.cos(math.pi * n / steps)),
}


LOSS_BYTES = 32  # a Python float in result.losses, with its slot in the list


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy (when present) and PyTorch so a run can be repeated."""
    check_seed(seed)
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
    if n == 0:
        raise ValueError("data holds no rows (N = 0); give at least one sample to draw batches from.")
    if any(x.shape[0] != n for x in tensors):
        raise ValueError(
            f"every tensor of data needs the same number of rows N, got {[x.shape[0] for x in tensors]}."
        )
    if generator is not None:
        check_instance(generator, torch.Generator, "generator", "torch.Generator().manual_seed(0)")
    row_bytes = 8 + sum(x[0].numel() * x.element_size() for x in tensors)  # + the int64 index
    check_memory(batch_size * row_bytes, f"a batch of {batch_size:,} rows")

    def next_batch():
        idx = torch.randint(0, n, (batch_size,), generator=generator)
        return tuple(x[idx] for x in tensors) if isinstance(data, tuple) else data[idx]

    return next_batch


def train(
    model,
    loss_fn,
    next_batch,
    steps: int,
    lr: float = 5e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device=None,
    progress: bool | None = None,
    grad_clip: float | None = 1.0,
    callback=None,
    callback_every: int = 100,
    lr_schedule: str = "cosine",
) -> TrainResult:
    """Train ``model`` in place for ``steps`` steps of AdamW on loss_fn(model, next_batch()).

    lr: AdamW's learning rate. The default, 5e-3, is set for the 2D flows (lessons.models.MLP() on batches
    of a few hundred points, with the cosine decay and the clipping below): on TorchCFM's 2D tutorial task
    (benchmarks/vs_peers.py) its 4,000-step run has W2@4 0.244 after 2,500 steps (mean of 3 seeds), where
    1e-3 had 0.265 after 6,000 (one seed).
    Larger networks (the U-Net, the DiT) pass their own, smaller rates.
    lr_schedule: 'cosine' (the default: step n uses lr * (1 + cos(pi (n-1) / steps)) / 2, falling from
    lr towards 0, so the last steps average out the noise of the gradient estimates), or 'constant'.

    next_batch() returns a tensor (or a tuple of tensors) that is moved to the device; loss_fn returns
    one number (a scalar tensor: reduce a per-sample loss with .mean()).
    grad_clip: the largest gradient norm (> 0) a step may use, or None for no clipping.
    callback(step, model, losses) runs every callback_every steps (a live plot, say).
    progress: a tqdm bar with the running loss (True), none (False), or one only once training runs long (None).
    A loss or gradient that is not finite stops training before the optimizer step, so the model keeps
    the weights of the last good step; the reason goes to a RuntimeWarning and result.stopped_early.
    """
    _check_train_arguments(model, loss_fn, next_batch, steps, lr, weight_decay, seed, grad_clip)
    choose(lr_schedule, LR_SCHEDULES, "learning-rate schedule")
    check_positive_int(callback_every, "callback_every")
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be a function callback(step, model, losses), got {type(callback).__name__}."
        )
    device = pick_device(device)
    check_memory(LOSS_BYTES * steps, f"recording the loss of each of {steps:,} training steps")
    seed_everything(seed)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    factor = LR_SCHEDULES[lr_schedule]
    result = TrainResult()
    start = time.perf_counter()
    with Progress(steps, "training", progress) as bar:
        for step in range(1, steps + 1):
            batch = _to_device(next_batch(), device)
            # BatchNorm-like statistics move in forward: kept to undo a step that goes wrong
            buffers = [b.detach().clone() for b in model.buffers()]
            loss = _check_loss(loss_fn(model, batch), step)
            value = loss.item()
            problem = None if math.isfinite(value) else f"the loss was {value} (not a finite number)"
            if problem is None:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if not math.isfinite(_grad_norm(params)):  # checked before clipping, which would hide it
                    problem = _bad_gradients(model)
            if problem is not None:  # no optimizer step was taken: the weights are still the last good step's
                with torch.no_grad():
                    for b, saved in zip(model.buffers(), buffers):
                        b.copy_(saved)
                kept = f"step {step - 1}, the last good one" if step > 1 else "the start (no step completed)"
                result.stopped_early = (
                    f"training stopped at step {step}: {problem}. The model keeps its weights from {kept}; "
                    "try a smaller learning rate"
                    + (", or clip the gradient with grad_clip=1.0." if grad_clip is None else ".")
                )
                warnings.warn(result.stopped_early, RuntimeWarning, stacklevel=2)
                break
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            for group in opt.param_groups:
                group["lr"] = lr * factor(step - 1, steps)
            opt.step()
            result.losses.append(value)
            result.steps_done = step
            bar.update(**({"loss": f"{sum(result.losses[-50:]) / 50:.4f}"} if step % 50 == 0 else {}))
            if callback is not None and (step % callback_every == 0 or step == steps):
                callback(step, model, result.losses)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result


def _check_train_arguments(model, loss_fn, next_batch, steps, lr, weight_decay, seed, grad_clip) -> None:
    """Refuse bad arguments to train in words, before any work is done."""
    check_instance(model, torch.nn.Module, "model", "MLP(dim=2)")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no trainable weights (no parameter with requires_grad=True).")
    for fn, name, form in (
        (loss_fn, "loss_fn", "loss_fn(model, batch)"),
        (next_batch, "next_batch", "next_batch()"),
    ):
        if not callable(fn):
            raise TypeError(f"{name} must be a function {form}, got {type(fn).__name__}.")
    check_positive_int(steps, "the number of training steps")
    check_number(lr, "the learning rate lr", low=0, low_open=True)
    check_number(weight_decay, "weight_decay", low=0)
    check_seed(seed)
    if grad_clip is not None:
        check_number(
            grad_clip, "grad_clip (the largest gradient norm; None for no clipping)", low=0, low_open=True
        )


def _to_device(batch, device):
    """A batch (tensor or tuple of tensors) moved to device."""
    parts = batch if isinstance(batch, tuple) else (batch,)
    if not parts or not all(isinstance(b, torch.Tensor) for b in parts):
        kinds = (
            ", ".join(type(b).__name__ for b in parts) if isinstance(batch, tuple) else type(batch).__name__
        )
        raise TypeError(f"next_batch() must return a tensor or a tuple of tensors, got {kinds}.")
    return tuple(b.to(device) for b in parts) if isinstance(batch, tuple) else batch.to(device)


def _check_loss(loss, step: int) -> torch.Tensor:
    """Check that loss_fn returned one number that depends on the model's weights."""
    if not isinstance(loss, torch.Tensor):
        raise TypeError(
            f"loss_fn must return a scalar torch tensor (so it can be differentiated), got {type(loss).__name__} "
            f"at step {step}."
        )
    if loss.numel() != 1:
        raise ValueError(
            f"loss_fn must return one number, got a tensor of shape {tuple(loss.shape)} at step {step}: "
            "reduce it with .mean() (a per-sample loss such as weighted_eps_loss gives one value per sample)."
        )
    if not loss.requires_grad:
        raise ValueError(
            f"the loss at step {step} does not depend on the model's weights (it has no gradient): compute it "
            "from the model's output, outside torch.no_grad()."
        )
    return loss


def _grad_norm(params) -> float:
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def _bad_gradients(model) -> str:
    """Which weights got a NaN or infinite gradient, in words."""
    bad = [
        name
        for name, p in model.named_parameters()
        if p.grad is not None and not bool(torch.isfinite(p.grad).all())
    ]
    if not bad:  # each entry finite, but their squares overflow the norm
        return "the loss was finite but its gradient was too large (its norm overflowed to inf)"
    names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    return f"the loss was finite but its gradient was not (NaN or inf in the gradient of {names})"


class EMA:
    """Exponential moving average of a model's weights: avg <- d avg + (1 - d) weights, d = min(decay, (1+n)/(10+n))."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        check_instance(model, torch.nn.Module, "model", "MLP(dim=2)")
        check_number(decay, "the EMA decay", low=0, high=1, high_open=True)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        shapes = [p.shape for p in self.model.parameters()]
        if not isinstance(model, torch.nn.Module) or [p.shape for p in model.parameters()] != shapes:
            raise ValueError("EMA.update needs the model the average was made from (the same weight shapes).")
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, p in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(p.detach(), 1 - d)
        for avg, b in zip(self.model.buffers(), model.buffers()):
            avg.copy_(b)


def train_with_ema(
    model,
    loss_fn,
    next_batch,
    steps: int,
    ema_decay: float = 0.999,
    callback=None,
    callback_every: int = 100,
    **settings,
):
    """train(model, ...) keeping an exponential moving average of its weights; return (EMA copy, TrainResult).

    callback(step, ema_model, losses) runs every callback_every steps and after the last; settings go to train.
    """
    check_number(ema_decay, "ema_decay", low=0, high=1, high_open=True)
    check_positive_int(callback_every, "callback_every")
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be a function callback(step, ema_model, losses), got {type(callback).__name__}."
        )
    ema = EMA(model, ema_decay)

    def each_step(step, model, losses):
        ema.update(model)
        if callback is not None and (step % callback_every == 0 or step == steps):
            callback(step, ema.model, losses)

    result = train(model, loss_fn, next_batch, steps, callback=each_step, callback_every=1, **settings)
    return ema.model, result


def step_flops(model: torch.nn.Module, loss_fn, batch) -> int:
    """FLOPs of one training step's loss and backward pass on batch (torch.utils.flop_counter), the optimizer left out.

    Counts the matrix products and convolutions (what dominates a network's cost); the gradients are
    cleared afterwards, so the model is as it was.
    """
    check_instance(model, torch.nn.Module, "model", "MLP(dim=2)")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function loss_fn(model, batch), got {type(loss_fn).__name__}.")
    with FlopCounterMode(display=False) as counter:
        _check_loss(loss_fn(model, batch), 1).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())
