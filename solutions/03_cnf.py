"""Solutions of lesson 03's checked exercises, one function per exercise (lessons.exercises checks them)."""

import math

import torch


def hutchinson_divergence(field, x, t, probes):
    """Hutchinson's estimate of div v at x (B, D), t (B,): the mean of eps^T (dv/dx) eps over `probes` probes; (B,)."""
    x = x.detach().requires_grad_(True)
    v = field(x=x, t=t)
    total = torch.zeros(x.shape[0], dtype=x.dtype)
    for _ in range(probes):
        eps = torch.randint(0, 2, x.shape).to(x.dtype) * 2 - 1  # Rademacher: +1 or -1
        vjp = torch.autograd.grad(v, x, eps, retain_graph=True)[0]  # eps^T J, (B, D)
        total = total + (vjp * eps).sum(1)
    return (total / probes).detach()


def rademacher_variance(jacobian):
    """Var[eps^T J eps] for a Rademacher probe eps and a (D, D) matrix J: 2 (||S||_F^2 - sum_i S_ii^2)."""
    sym = (jacobian + jacobian.T) / 2  # only the symmetric part S matters
    return 2 * ((sym**2).sum() - (torch.diagonal(sym) ** 2).sum())


def affine_log_density(x, A, b):
    """log p_1(x), (B,), for the flow of v(x, t) = A x + b from N(0, I) at t = 0 to t = 1."""
    expm = torch.linalg.matrix_exp(A)
    shift = torch.linalg.solve(A, (expm - torch.eye(len(A), dtype=A.dtype)) @ b)  # A^{-1}(e^A - I) b
    noise = torch.linalg.solve(expm, (x - shift).T).T  # psi_1^{-1}(x)
    log_normal = -0.5 * (noise**2).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)
    return log_normal - torch.trace(A)  # minus the integral of div v = tr A over [0, 1]
