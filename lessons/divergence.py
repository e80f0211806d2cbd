"""The divergence of a velocity field, div v(x, t) = tr(d v / d x), exactly or by Hutchinson's estimator.

Exact: one backward pass per dimension, div v = sum_i d v_i / d x_i (D passes for D dimensions).
Hutchinson: div v = E[eps^T (d v / d x) eps] for probes eps with E[eps eps^T] = I (Rademacher or
Gaussian); one backward pass per probe, whatever D, at the price of variance.
The field is called as field(x=x, t=t, cond=cond) with x (B, ...) and t (B,); each sample's output must
depend on that sample's input only (no batch norm), so one backward pass serves the whole batch.
"""

import math

import torch

from lessons.checks import (
    check_finite,
    check_instance,
    check_matches_model,
    check_memory,
    check_model,
    check_model_output,
    check_positive_int,
    check_tensor,
    check_time,
    choose,
)
from lessons.trajectory import _call_field

PROBES = ("rademacher", "gaussian")


def draw_probes(
    shape, probes: int = 1, noise: str = "rademacher", generator=None, dtype=torch.float32, device=None
) -> torch.Tensor:
    """Probe vectors eps, (probes, *shape), with E[eps] = 0 and E[eps eps^T] = I."""
    check_positive_int(probes, "the number of probes")
    choose(noise, PROBES, "probe distribution")
    if not isinstance(shape, (tuple, list, torch.Size)) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape
    ):
        raise ValueError(f"shape must be a tuple of positive whole numbers, e.g. x.shape; got {shape!r}.")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a float dtype such as torch.float32 or x.dtype, got {dtype!r}.")
    if generator is not None:
        check_instance(generator, torch.Generator, "generator", "torch.Generator().manual_seed(0)")
    size = probes * math.prod(shape)
    # a Rademacher draw holds int64 bits and float temporaries beside the probes: budget them all
    check_memory(
        size * (8 + 2 * torch.finfo(dtype).bits // 8), f"{probes} probe vectors of shape {tuple(shape)}"
    )
    if noise == "gaussian":
        eps = torch.randn((probes, *shape), generator=generator, dtype=dtype)
    else:  # +1 or -1 with probability 1/2 each
        eps = torch.randint(0, 2, (probes, *shape), generator=generator).to(dtype) * 2 - 1
    return eps.to(device) if device is not None else eps


def _check_states(x, name: str = "x") -> torch.Tensor:
    """Check that x is a finite float tensor of shape (B, ...) with B >= 1 and at least one more dimension."""
    check_tensor(x, name)
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have shape (B, ...): one row per sample, with its coordinates; got shape "
            f"{tuple(x.shape)} (for one sample use {name}[None])."
        )
    return check_finite(x, name)


def _check_state(field, x, t):
    """field a model or function, x a finite float tensor (B, ...) of the model's dtype, t (B,) in [0, 1]."""
    check_model(field, "the field")
    _check_states(x, "x")
    check_matches_model(x, field, "x")
    check_time(t, batch=x.shape[0])


def _vjp(v, x, vector, create_graph):
    """vector^T (d v / d x), (B, ...): one backward pass through the field (zeros if v ignores x)."""
    if not v.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(v, x, vector, create_graph=create_graph, retain_graph=True, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def velocity_and_divergence(
    field, x: torch.Tensor, t: torch.Tensor, probe_vectors: torch.Tensor | None = None, cond=None
):
    """(v (B, ...), div (B,)): exact trace when probe_vectors is None, else the mean of eps^T J eps.

    probe_vectors: (P, B, ...) fixed probes (a CNF keeps the same probes along one ODE solve).
    The graph is kept (create_graph) when gradients are enabled on entry, so the divergence can be
    differentiated again (maximum-likelihood training, the adjoint method); under torch.no_grad()
    both outputs come back detached.
    """
    _check_state(field, x, t)
    if probe_vectors is not None:
        _check_probe_vectors(probe_vectors, x)
    return _velocity_and_divergence(field, x, t, probe_vectors, cond)


def _velocity_and_divergence(field, x, t, probe_vectors, cond):
    """velocity_and_divergence without the checks of its inputs (a CNF checks its state once per step)."""
    keep_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_(True)
        v = check_model_output(_call_field(field, x_in, t, cond=cond), x, "the field")
        if probe_vectors is None:
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            flat = x.flatten(1)  # (B, D)
            for i in range(flat.shape[1]):  # d v_i / d x_i for every i, one pass each
                basis = torch.zeros_like(flat)  # a fresh e_i: autograd may keep it for double backward
                basis[:, i] = 1
                row = _vjp(v, x_in, basis.view_as(x), keep_graph)  # (B, ...): row i of J per sample
                div = div + row.flatten(1)[:, i]
        else:
            div = 0
            for eps in probe_vectors:  # eps^T J eps, averaged over the probes
                div = div + (_vjp(v, x_in, eps, keep_graph) * eps).flatten(1).sum(1)
            div = div / probe_vectors.shape[0]
    if not keep_graph:
        v, div = v.detach(), div.detach()
    return v, div


def _check_probe_vectors(probe_vectors, x):
    if not isinstance(probe_vectors, torch.Tensor):
        raise TypeError(f"probe_vectors must be a tensor (P, *x.shape), got {type(probe_vectors).__name__}.")
    if probe_vectors.ndim != x.ndim + 1 or probe_vectors.shape[1:] != x.shape or probe_vectors.shape[0] == 0:
        raise ValueError(
            f"probe vectors must have shape (P, *x.shape) = (P, {', '.join(map(str, x.shape))}) with P >= 1, "
            f"got {tuple(probe_vectors.shape)}."
        )
    if probe_vectors.dtype != x.dtype or probe_vectors.device != x.device:
        raise ValueError(
            f"probe vectors must have x's dtype and device ({x.dtype} on {x.device}), got "
            f"{probe_vectors.dtype} on {probe_vectors.device}; convert them with probe_vectors.to(x)."
        )
    check_finite(probe_vectors, "probe_vectors")


def _checked_divergence(div):
    if not bool(torch.isfinite(div).all()):
        raise ValueError(
            "the divergence is NaN or inf: the field returned non-finite values or derivatives here."
        )
    return div


def divergence_exact(field, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
    """div v(x, t) = sum_i d v_i / d x_i, (B,), by D backward passes (x: (B, ...), t: (B,))."""
    _check_state(field, x, t)
    return _checked_divergence(_velocity_and_divergence(field, x, t, None, cond)[1])


def divergence_hutchinson(
    field,
    x: torch.Tensor,
    t: torch.Tensor,
    probes: int = 1,
    noise: str = "rademacher",
    generator: torch.Generator | None = None,
    cond=None,
) -> torch.Tensor:
    """Unbiased estimate (1/P) sum_p eps_p^T (d v / d x) eps_p of div v, (B,), with P fresh probes."""
    _check_state(field, x, t)
    eps = draw_probes(x.shape, probes, noise, generator, x.dtype, x.device)  # drawn on the CPU, then moved
    return _checked_divergence(_velocity_and_divergence(field, x, t, eps, cond)[1])
