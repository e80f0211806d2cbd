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
from lessons.solvers import NFE_PER_STEP, ODE_METHODS, step
from lessons.training import TrainResult, train
from lessons.trajectory import CountingModel

# the fixed-step methods of lessons.solvers that torchdiffeq's adjoint runs, under torchdiffeq's name for
# the same method ('rk4' there is Kutta's 3/8 rule; classical RK4 has no torchdiffeq counterpart)
ADJOINT_FIXED_STEP = {"euler": "euler", "midpoint": "midpoint", "heun": "heun2", "rk4_38": "rk4"}


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
    """d/dt (x, delta) = (v(x, t), div v(x, t)), x (B, ...), delta (B,); self.field.calls counts its evaluations."""

    def __init__(self, field, shape, cond=None, probe_vectors=None):
        super().__init__()
        self.field, self.shape = CountingModel(field), shape  # shape: one sample's, x.shape[1:]
        self.cond, self.probe_vectors = cond, probe_vectors

    def augmented(self, x, t):
        """(v, div v), (B, ...) and (B,), at x (B, ...) and t (B,)."""
        # round-off in the time grid can leave [0, 1] by ~1e-16, hence the clamp
        return velocity_and_divergence(self.field, x, t.clamp(0, 1), self.probe_vectors, cond=self.cond)

    def forward(self, t, state):
        """torchdiffeq's call: a scalar t and the state (x, delta)."""
        x = state[0]
        return self.augmented(x, t.to(x.dtype).expand(x.shape[0]))

    def packed(self, x, t, cond=None):
        """lessons.solvers' call, field(x=, t=, cond=), on one state (B, D + 1): x flattened, then delta."""
        v, div = self.augmented(x[:, :-1].reshape((-1, *self.shape)), t)
        return torch.cat([v.flatten(1), div[:, None]], 1)


def log_likelihood(
    field,
    data: torch.Tensor,
    method: str = "dopri5",
    steps: int | None = None,
    exact: bool = True,
    probes: int = 1,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    cond=None,
    prior=None,
    adjoint: bool = False,
    probe_noise: str = "rademacher",
    generator: torch.Generator | None = None,
) -> LikelihoodResult:
    """log p_1(data) = log p_0(noise) - int_0^1 div v dt, (B,), by solving the augmented ODE from t = 1 to 0.

    field(x=, t=, cond=) is the velocity; data (B, ...).
    method: 'dopri5' (adaptive, rtol/atol; leave steps None) or a fixed-step method of lessons.solvers
    ('euler', 'midpoint', 'heun', 'rk4', 'rk4_38') with ``steps`` uniform steps of lessons.solvers.step
    (torchdiffeq's same method under the adjoint). exact: trace by D backward passes, else Hutchinson
    with ``probes`` probes of ``probe_noise`` drawn once and kept for the whole solve (unbiased).
    prior: log p_0 as a function of noise (or an object with .log_prob), default standard normal.
    adjoint: gradients by torchdiffeq's adjoint method (memory constant in the number of steps)
    instead of backpropagation through the solver's operations; the field must be an nn.Module, and a
    fixed-step method one that torchdiffeq has (not the classical 'rk4': use 'rk4_38').
    Under torch.no_grad() nothing is kept for backward.
    """
    from torchdiffeq import odeint, odeint_adjoint

    if not isinstance(data, torch.Tensor) or data.ndim < 2 or not torch.is_floating_point(data):
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"data must be a float tensor of shape (B, ...): one row per sample; got {shape}.")
    choose(method, ODE_METHODS, "ODE solver")
    fixed = method in NFE_PER_STEP
    if fixed:
        if steps is None:
            raise ValueError(f"the fixed-step method {method!r} needs a number of steps, e.g. steps=20.")
        ts = torch.linspace(1.0, 0.0, check_positive_int(steps, "the number of steps") + 1, dtype=data.dtype)
    else:
        if steps is not None:
            raise ValueError("dopri5 chooses its own steps from rtol and atol; leave steps=None.")
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}.")
        ts = torch.tensor([1.0, 0.0])
    if adjoint and not isinstance(field, nn.Module):
        raise ValueError(
            "the adjoint method differentiates the parameters of an nn.Module; pass the model itself."
        )
    if adjoint and fixed and method not in ADJOINT_FIXED_STEP:
        raise ValueError(
            f"torchdiffeq's adjoint has no {method!r} (its 'rk4' is Kutta's 3/8 rule); use one of: "
            f"{', '.join(ADJOINT_FIXED_STEP)}, 'dopri5', or adjoint=False."
        )
    check_positive_int(probes, "the number of probes")
    eps = None if exact else draw_probes(data.shape, probes, probe_noise, generator, data.dtype, data.device)
    func = _AugmentedField(field, data.shape[1:], cond, eps)
    delta = torch.zeros(data.shape[0], dtype=data.dtype, device=data.device)
    if fixed and not adjoint:  # the course's own steps, on x and delta packed in one (B, D + 1) state
        state = torch.cat([data.flatten(1), delta[:, None]], 1)
        for t0, t1 in zip(ts[:-1].tolist(), ts[1:].tolist()):
            state = step(func.packed, state, t0, t1 - t0, method)
        noise, delta = state[:, :-1].reshape(data.shape), state[:, -1]
    else:
        solve = odeint_adjoint if adjoint else odeint
        xs, deltas = solve(
            func,
            (data, delta),
            ts.to(data),
            method=ADJOINT_FIXED_STEP.get(method, method),
            rtol=rtol,
            atol=atol,
        )
        noise, delta = xs[-1], deltas[-1]
    return LikelihoodResult(log_prob=_prior_log_prob(prior, noise) + delta, nfe=func.field.calls, noise=noise)


def _prior_log_prob(prior, noise):
    if prior is None:
        return standard_normal_log_prob(noise)
    log_p = prior.log_prob(noise) if hasattr(prior, "log_prob") else prior(noise)
    if log_p.shape != noise.shape[:1]:
        raise ValueError(
            f"the prior must return one log-density per sample, shape ({noise.shape[0]},), "
            f"got {tuple(log_p.shape)}."
        )
    return log_p


def train_max_likelihood(
    model,
    next_batch,
    steps: int,
    method: str = "rk4",
    solver_steps: int | None = 8,
    exact: bool = True,
    probes: int = 1,
    adjoint: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    prior=None,
    **train_kwargs,
) -> TrainResult:
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
        result = log_likelihood(
            model,
            data,
            method=method,
            steps=solver_steps,
            exact=exact,
            probes=probes,
            rtol=rtol,
            atol=atol,
            cond=cond,
            prior=prior,
            adjoint=adjoint,
        )
        return -result.log_prob.mean()

    return train(model, loss_fn, next_batch, steps, **train_kwargs)
