"""Divergence of a velocity field: exact trace against finite differences, Hutchinson against the exact trace."""

import pytest
import torch

from lessons.divergence import divergence_exact, divergence_hutchinson, draw_probes, velocity_and_divergence
from lessons.models import MLP


def _model(dim=3, seed=0):
    torch.manual_seed(seed)
    return MLP(dim=dim, hidden=16, depth=2, time_scale=1.0).double()


def _xt(batch=4, dim=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=g, dtype=torch.float64), torch.rand(
        batch, generator=g, dtype=torch.float64
    )


def _jacobian_fd(field, x, t, h=1e-6):
    """Central finite differences: J[b, i, j] = d v_i / d x_j at sample b, (B, D, D)."""
    cols = []
    for j in range(x.shape[1]):
        e = torch.zeros_like(x)
        e[:, j] = h
        with torch.no_grad():
            cols.append((field(x=x + e, t=t) - field(x=x - e, t=t)) / (2 * h))
    return torch.stack(cols, dim=2)


def test_exact_divergence_matches_finite_difference_trace():
    model, (x, t) = _model(), _xt()
    trace = torch.diagonal(_jacobian_fd(model, x, t), dim1=1, dim2=2).sum(1)
    assert torch.allclose(divergence_exact(model, x, t), trace, atol=1e-7)


def test_exact_divergence_of_image_shaped_states():
    # a linear field on (B, 1, 2, 2) images: v = A vec(x), so div = tr(A) for every sample
    g = torch.Generator().manual_seed(3)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)

    def field(x, t, cond=None):
        return (x.flatten(1) @ a.T).view_as(x)

    x, t = torch.randn(5, 1, 2, 2, dtype=torch.float64, generator=g), torch.rand(5, dtype=torch.float64)
    assert torch.allclose(divergence_exact(field, x, t), torch.trace(a).expand(5))


def _repeated_estimates(field, x, t, n, noise, generator):
    """n independent one-probe estimates per sample, (n, B): the batch repeated n times, one call."""
    big_x, big_t = x.repeat(n, 1), t.repeat(n)
    return divergence_hutchinson(field, big_x, big_t, noise=noise, generator=generator).view(n, x.shape[0])


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(noise):
    model, (x, t) = _model(), _xt()
    exact = divergence_exact(model, x, t)
    n = 4000
    g = torch.Generator().manual_seed(0)
    draws = _repeated_estimates(model, x, t, n, noise, g)
    mean, stderr = draws.mean(0), draws.std(0) / n**0.5
    assert ((mean - exact).abs() < 5 * stderr + 1e-12).all()
    # averaging P probes inside one call is the same estimator with P times less variance
    many = divergence_hutchinson(model, x, t, probes=25, noise=noise, generator=g)
    assert ((many - exact).abs() < 5 * stderr * (n / 25) ** 0.5).all()


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_variance_matches_closed_form(noise):
    # Var(eps^T J eps) = 2 ||S||_F^2 (Gaussian), 2 (||S||_F^2 - sum_i S_ii^2) (Rademacher), S = (J + J^T) / 2
    model, (x, t) = _model(seed=2), _xt(batch=2, seed=4)
    jac = _jacobian_fd(model, x, t)
    sym = 0.5 * (jac + jac.transpose(1, 2))
    var = 2 * (sym**2).sum((1, 2))
    if noise == "rademacher":
        var = var - 2 * (torch.diagonal(sym, dim1=1, dim2=2) ** 2).sum(1)
    g = torch.Generator().manual_seed(1)
    draws = _repeated_estimates(model, x, t, 6000, noise, g)
    assert torch.allclose(draws.var(0), var, rtol=0.1)


def test_divergence_is_differentiable_in_the_parameters():
    # d div / d w for v = tanh(w x): autograd through the divergence against finite differences in w
    w = torch.tensor([[0.7, -0.4], [0.3, 1.1]], dtype=torch.float64, requires_grad=True)
    x, t = torch.randn(6, 2, dtype=torch.float64), torch.rand(6, dtype=torch.float64)

    def div_sum(weight):
        return divergence_exact(lambda x, t, cond=None: torch.tanh(x @ weight.T), x, t).sum()

    (grad,) = torch.autograd.grad(div_sum(w), w)
    h, fd = 1e-6, torch.zeros_like(w)
    for i in range(2):
        for j in range(2):
            e = torch.zeros_like(w)
            e[i, j] = h
            with torch.no_grad():
                fd[i, j] = (div_sum(w + e) - div_sum(w - e)) / (2 * h)
    assert torch.allclose(grad, fd, atol=1e-7)


def test_no_grad_detaches_and_fields_that_ignore_x_have_zero_divergence():
    model, (x, t) = _model(), _xt()
    with torch.no_grad():
        v, div = velocity_and_divergence(model, x, t)
    assert not v.requires_grad and not div.requires_grad
    assert torch.equal(
        divergence_exact(lambda x, t, cond=None: torch.zeros_like(x), x, t), torch.zeros(4, dtype=x.dtype)
    )
    assert torch.equal(
        divergence_hutchinson(lambda x, t, cond=None: torch.ones_like(x), x, t), torch.zeros(4, dtype=x.dtype)
    )


def test_probes_have_zero_mean_and_identity_second_moment():
    g = torch.Generator().manual_seed(0)
    for noise in ("rademacher", "gaussian"):
        eps = draw_probes((20000, 3), 1, noise, g)[0]
        assert eps.shape == (20000, 3)
        assert eps.mean(0).abs().max() < 0.05
        assert torch.allclose(eps.T @ eps / 20000, torch.eye(3), atol=0.05)
    assert set(draw_probes((50, 2), 2, "rademacher", g).unique().tolist()) == {-1.0, 1.0}


def test_bad_inputs_raise_value_errors():
    model, (x, t) = _model(), _xt()
    with pytest.raises(ValueError, match=r"shape \(B, \.\.\.\)"):
        divergence_exact(model, x[0], t)
    with pytest.raises(ValueError, match="one time per sample"):
        divergence_exact(model, x, t[:2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        divergence_hutchinson(model, x, t + 2)
    with pytest.raises(ValueError, match="number of probes"):
        divergence_hutchinson(model, x, t, probes=0)
    with pytest.raises(ValueError, match="unknown probe distribution"):
        divergence_hutchinson(model, x, t, noise="uniform")
    with pytest.raises(ValueError, match="shaped like x"):
        divergence_exact(lambda x, t, cond=None: x.sum(1), x, t)
    with pytest.raises(ValueError, match="probe vectors"):
        velocity_and_divergence(model, x, t, torch.ones(2, 4, 2, dtype=x.dtype))
