"""Continuous normalizing flows: the exact log-likelihood of any velocity model v(x, t), by simulation.

Instantaneous change of variables (Chen et al. 2018): along dx/dt = v(x, t),
d log p_t(x_t) / dt = -div v(x_t, t). Solving the augmented ODE for (x, delta) with
d delta / dt = div v from data at t = 1 (delta = 0) back to noise at t = 0 gives
    log p_1(data) = log p_0(noise) - int_0^1 div v(x_t, t) dt = log p_0(noise) + delta(0).
Works for every model of the course (t = 0 noise, t = 1 data), trained by maximum likelihood or not.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from lessons.checks import check_positive_int, choose
from lessons.divergence import draw_probes, velocity_and_divergence
from lessons.training import TrainResult, train

FIXED_STEP = {"euler": "euler", "midpoint": "midpoint", "heun": "heun2", "rk4": "rk4"}  # ours -> torchdiffeq
METHODS = tuple(FIXED_STEP) + ("dopri5",)


@dataclass
class LikelihoodResult:
    """log p_1(data) (B,), the augmented-ODE evaluations used (nfe), and the noise the data maps to (B, ...)."""

    log_prob: torch.Tensor
    nfe: int
    noise: torch.Tensor


def standard_normal_log_prob(noise: torch.Tensor) -> torch.Tensor:
    """log N(noise; 0, I) = -|noise|^2 / 2 - (D / 2) log(2 pi), (B,), D = all non-batch dimensions."""
    flat = noise.flatten(1)
    return -0.5 * (flat**2).sum(1) - 0.5 * flat.shape[1] * math.log(2 * math.pi)


class _AugmentedField(nn.Module):
    """d/dt (x, delta) = (v(x, t), div v(x, t)) for torchdiffeq; counts its evaluations in nfe."""

    def __init__(self, field, cond=None, probe_vectors=None):
        super().__init__()
        self.field, self.cond, self.probe_vectors, self.nfe = field, cond, probe_vectors, 0

    def velocity(self, x, t):
        return self.field(x=x, t=t) if self.cond is None else self.field(x=x, t=t, cond=self.cond)

    def forward(self, t, state):
        x = state[0]
        self.nfe += 1
        # the solver's t is a scalar; round-off can leave [0, 1] by ~1e-16, hence the clamp
        t_vec = t.clamp(0, 1).to(x.dtype).expand(x.shape[0])
        return velocity_and_divergence(self.velocity, x, t_vec, self.probe_vectors)


def log_likelihood(field, data: torch.Tensor, method: str = "dopri5", steps: int | None = None,
                   exact: bool = True, probes: int = 1, rtol: float = 1e-5, atol: float = 1e-5,
                   cond=None, prior=None, adjoint: bool = False, probe_noise: str = "rademacher",
                   generator: torch.Generator | None = None) -> LikelihoodResult:
    """log p_1(data) = log p_0(noise) - int_0^1 div v dt, (B,), by solving the augmented ODE from t = 1 to 0.

    field(x=, t=) (plus cond= when cond is given) is the velocity; data (B, ...).
    method: 'dopri5' (adaptive, rtol/atol; leave steps None) or a fixed-step 'euler', 'midpoint',
    'heun', 'rk4' with ``steps`` uniform steps. exact: trace by D backward passes, else Hutchinson
    with ``probes`` probes of ``probe_noise`` drawn once and kept for the whole solve (unbiased).
    prior: log p_0 as a function of noise (or an object with .log_prob), default standard normal.
    adjoint: gradients by torchdiffeq's adjoint method (memory constant in the number of steps)
    instead of backpropagation through the solver's operations; the field must be an nn.Module.
    Under torch.no_grad() nothing is kept for backward.
    """
    from torchdiffeq import odeint, odeint_adjoint

    if not isinstance(data, torch.Tensor) or data.ndim < 2 or not torch.is_floating_point(data):
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"data must be a float tensor of shape (B, ...): one row per sample; got {shape}.")
    choose(method, METHODS, "ODE solver")
    if method in FIXED_STEP:
        if steps is None:
            raise ValueError(f"the fixed-step method {method!r} needs a number of steps, e.g. steps=20.")
        ts = torch.linspace(1.0, 0.0, check_positive_int(steps, "the number of steps") + 1)
    else:
        if steps is not None:
            raise ValueError("dopri5 chooses its own steps from rtol and atol; leave steps=None.")
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}.")
        ts = torch.tensor([1.0, 0.0])
    if adjoint and not isinstance(field, nn.Module):
        raise ValueError("the adjoint method differentiates the parameters of an nn.Module; pass the model itself.")
    check_positive_int(probes, "the number of probes")
    eps = None if exact else draw_probes(data.shape, probes, probe_noise, generator, data.dtype, data.device)
    func = _AugmentedField(field, cond, eps)
    state = (data, torch.zeros(data.shape[0], dtype=data.dtype, device=data.device))
    solve = odeint_adjoint if adjoint else odeint
    xs, deltas = solve(func, state, ts.to(data), method=FIXED_STEP.get(method, method), rtol=rtol, atol=atol)
    noise = xs[-1]
    log_p0 = _prior_log_prob(prior, noise)
    return LikelihoodResult(log_prob=log_p0 + deltas[-1], nfe=func.nfe, noise=noise)


def _prior_log_prob(prior, noise):
    if prior is None:
        return standard_normal_log_prob(noise)
    log_p = prior.log_prob(noise) if hasattr(prior, "log_prob") else prior(noise)
    if log_p.shape != noise.shape[:1]:
        raise ValueError(f"the prior must return one log-density per sample, shape ({noise.shape[0]},), "
                         f"got {tuple(log_p.shape)}.")
    return log_p


def train_max_likelihood(model, next_batch, steps: int, method: str = "rk4", solver_steps: int | None = 8,
                         exact: bool = True, probes: int = 1, adjoint: bool = False, rtol: float = 1e-5,
                         atol: float = 1e-5, prior=None, **train_kwargs) -> TrainResult:
    """Train a CNF by maximum likelihood: minimise -mean log p_1(data) with lessons.training.train.

    Every step simulates the augmented ODE (log_likelihood) and backpropagates through it (or uses
    the adjoint), which is what makes this slow. next_batch() returns data (B, ...) or (data, cond).
    train_kwargs go to lessons.training.train (lr, seed, device, progress, callback, ...).
    Returns its TrainResult: losses are the NLL in nats per sample, seconds the wall time.
    """
    if method == "dopri5":
        solver_steps = None

    def loss_fn(model, batch):
        data, cond = batch if isinstance(batch, tuple) else (batch, None)
        result = log_likelihood(model, data, method=method, steps=solver_steps, exact=exact, probes=probes,
                                rtol=rtol, atol=atol, cond=cond, prior=prior, adjoint=adjoint)
        return -result.log_prob.mean()

    return train(model, loss_fn, next_batch, steps, **train_kwargs)
