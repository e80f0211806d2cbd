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

from lessons.checks import (
    check_finite_step,
    check_instance,
    check_matches_model,
    check_memory,
    check_model,
    check_number,
    check_positive_int,
    choose,
)
from lessons.divergence import PROBES, _check_states, _velocity_and_divergence, draw_probes
from lessons.progress import Progress
from lessons.solvers import NFE_PER_STEP, ODE_METHODS, _step, grid_steps
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
    _check_states(noise, "noise")
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
        return _velocity_and_divergence(self.field, x, t.clamp(0, 1), self.probe_vectors, self.cond)

    def forward(self, t, state):
        """torchdiffeq's call: a scalar t and the state (x, delta)."""
        x = state[0]
        if bool(
            t.isnan()
        ):  # torchdiffeq sizes its steps from the field's values: NaN there leads it to t = NaN
            raise ValueError(
                "dopri5 could not go on: the field returned NaN or inf, which left the solver's time NaN."
            )
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

    _check_states(data, "data")
    _check_options(field, method, steps, exact, probes, rtol, atol, adjoint, probe_noise)
    check_matches_model(data, field, "data")
    if prior is not None and not (callable(prior) or hasattr(prior, "log_prob")):
        raise TypeError(
            f"prior must be a function of the noise or an object with .log_prob (e.g. a torch distribution), "
            f"got {type(prior).__name__}."
        )
    if generator is not None:
        check_instance(generator, torch.Generator, "generator", "torch.Generator().manual_seed(0)")
    fixed = method in NFE_PER_STEP
    if fixed:
        _check_solve_memory(data, method, steps, adjoint)
        ts = torch.linspace(1.0, 0.0, steps + 1, dtype=data.dtype)
    else:
        ts = torch.tensor([1.0, 0.0])
    eps = None if exact else draw_probes(data.shape, probes, probe_noise, generator, data.dtype, data.device)
    func = _AugmentedField(field, data.shape[1:], cond, eps)
    delta = torch.zeros(data.shape[0], dtype=data.dtype, device=data.device)
    if fixed and not adjoint:  # the course's own steps, on x and delta packed in one (B, D + 1) state
        state = torch.cat([data.flatten(1), delta[:, None]], 1)
        what = f"the {method} solve of the likelihood ODE (x and the log-density change)"
        with Progress(steps, what) as bar:
            for i, (t0, t1) in enumerate(grid_steps(ts), start=1):
                state = check_finite_step(_step(func.packed, state, t0, t1 - t0, method, None), i, t0, what)
                bar.update()
        noise, delta = state[:, :-1].reshape(data.shape), state[:, -1]
    else:
        solve = odeint_adjoint if adjoint else odeint
        try:
            xs, deltas = solve(
                func,
                (data, delta),
                ts.to(data),
                method=ADJOINT_FIXED_STEP.get(method, method),
                rtol=rtol,
                atol=atol,
            )
        except AssertionError as err:  # torchdiffeq's "underflow in dt": dopri5's step size shrank to nothing
            raise ValueError(
                f"dopri5 could not solve the likelihood ODE ({err}): the field returned NaN or inf, or changes "
                "too fast for rtol/atol; a fixed-step method (method='rk4', steps=20) names the step where it fails."
            ) from err
        noise, delta = xs[-1], deltas[-1]
        if not bool(torch.isfinite(noise).all() and torch.isfinite(delta).all()):
            raise ValueError(
                f"the {method} solve of the likelihood ODE ended with NaN or inf (checked on its result, not "
                "step by step): the field returned a non-finite value or derivative."
            )
    return LikelihoodResult(log_prob=_prior_log_prob(prior, noise) + delta, nfe=func.field.calls, noise=noise)


def _prior_log_prob(prior, noise):
    if prior is None:
        return standard_normal_log_prob(noise)
    log_p = prior.log_prob(noise) if hasattr(prior, "log_prob") else prior(noise)
    if not isinstance(log_p, torch.Tensor):
        raise TypeError(f"the prior must return a tensor of log-densities (B,), got {type(log_p).__name__}.")
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
    _check_options(model, method, solver_steps, exact, probes, rtol, atol, adjoint, "rademacher")

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


def _check_solve_memory(data, method, steps, adjoint) -> None:
    """Refuse fixed-step solves whose time grid, or whose graph for backpropagation, would not fit in memory."""
    grid = (steps + 1) * data.element_size()
    # backpropagating through the solver keeps at least the state of every field evaluation (a lower bound)
    keeps_graph = torch.is_grad_enabled() and not adjoint
    state = data.shape[0] * (data[0].numel() + 1) * data.element_size()
    graph = steps * NFE_PER_STEP[method] * state if keeps_graph else 0
    check_memory(
        grid + graph, f"a likelihood solve of {steps} {method} steps" + " with its graph" * keeps_graph
    )


def _check_options(field, method, steps, exact, probes, rtol, atol, adjoint, probe_noise) -> None:
    """Refuse bad solver options of log_likelihood in words, before any work is done."""
    check_model(field, "the field")
    choose(method, ODE_METHODS, "ODE solver")
    for flag, name, meaning in (
        (exact, "exact", "True for the exact trace, False for Hutchinson's estimator"),
        (adjoint, "adjoint", "True for the adjoint method, False to backpropagate through the solver"),
    ):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False ({meaning}), got {flag!r}.")
    if method in NFE_PER_STEP:
        if steps is None:
            raise ValueError(f"the fixed-step method {method!r} needs a number of steps, e.g. steps=20.")
        check_positive_int(steps, "the number of steps")
    else:
        if steps is not None:
            raise ValueError("dopri5 chooses its own steps from rtol and atol; leave steps=None.")
        check_number(rtol, "rtol (dopri5's relative tolerance)", low=0.0, low_open=True)
        check_number(atol, "atol (dopri5's absolute tolerance)", low=0.0, low_open=True)
    if adjoint and not isinstance(field, nn.Module):
        raise ValueError(
            "the adjoint method differentiates the parameters of an nn.Module; pass the model itself."
        )
    if adjoint and method in NFE_PER_STEP and method not in ADJOINT_FIXED_STEP:
        raise ValueError(
            f"torchdiffeq's adjoint has no {method!r} (its 'rk4' is Kutta's 3/8 rule); use one of: "
            f"{', '.join(ADJOINT_FIXED_STEP)}, 'dopri5', or adjoint=False."
        )
    check_positive_int(probes, "the number of probes")
    choose(probe_noise, PROBES, "probe distribution (probe_noise)")
