"""The divergence of a velocity field, div v(x, t) = tr(d v / d x), exactly or by Hutchinson's estimator.

Exact: one backward pass per dimension, div v = sum_i d v_i / d x_i (D passes for D dimensions).
Hutchinson: div v = E[eps^T (d v / d x) eps] for probes eps with E[eps eps^T] = I (Rademacher or
Gaussian); one backward pass per probe, whatever D, at the price of variance.
The field is called as field(x=x, t=t, cond=cond) with x (B, ...) and t (B,); each sample's output must
depend on that sample's input only (no batch norm), so one backward pass serves the whole batch.
"""

import torch

from lessons.checks import check_positive_int, check_time, choose

PROBES = ("rademacher", "gaussian")


def draw_probes(
    shape, probes: int = 1, noise: str = "rademacher", generator=None, dtype=torch.float32, device=None
) -> torch.Tensor:
    """Probe vectors eps, (probes, *shape), with E[eps] = 0 and E[eps eps^T] = I."""
    check_positive_int(probes, "the number of probes")
    choose(noise, PROBES, "probe distribution")
    if noise == "gaussian":
        eps = torch.randn((probes, *shape), generator=generator, dtype=dtype)
    else:  # +1 or -1 with probability 1/2 each
        eps = torch.randint(0, 2, (probes, *shape), generator=generator).to(dtype) * 2 - 1
    return eps.to(device) if device is not None else eps


def _check_state(x, t):
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or not torch.is_floating_point(x):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a float tensor of shape (B, ...): one row per sample; got {shape}.")
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
    keep_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_(True)
        v = field(x=x_in, t=t, cond=cond)
        if v.shape != x.shape:
            raise ValueError(
                f"the field must return a velocity shaped like x {tuple(x.shape)}, got {tuple(v.shape)}."
            )
        if probe_vectors is None:
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            flat = x.flatten(1)  # (B, D)
            for i in range(flat.shape[1]):  # d v_i / d x_i for every i, one pass each
                basis = torch.zeros_like(flat)  # a fresh e_i: autograd may keep it for double backward
                basis[:, i] = 1
                row = _vjp(v, x_in, basis.view_as(x), keep_graph)  # (B, ...): row i of J per sample
                div = div + row.flatten(1)[:, i]
        else:
            if probe_vectors.shape[1:] != x.shape:
                raise ValueError(
                    f"probe vectors must have shape (P, *x.shape) = (P, {tuple(x.shape)}), "
                    f"got {tuple(probe_vectors.shape)}."
                )
            div = 0
            for eps in probe_vectors:  # eps^T J eps, averaged over the probes
                div = div + (_vjp(v, x_in, eps, keep_graph) * eps).flatten(1).sum(1)
            div = div / probe_vectors.shape[0]
    if not keep_graph:
        v, div = v.detach(), div.detach()
    return v, div


def divergence_exact(field, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
    """div v(x, t) = sum_i d v_i / d x_i, (B,), by D backward passes (x: (B, ...), t: (B,))."""
    _check_state(x, t)
    return velocity_and_divergence(field, x, t, cond=cond)[1]


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
    _check_state(x, t)
    eps = draw_probes(x.shape, probes, noise, generator, x.dtype, x.device)  # drawn on the CPU, then moved
    return velocity_and_divergence(field, x, t, eps, cond=cond)[1]
