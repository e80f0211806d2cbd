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
    with pytest.raises(ValueError, match=r"returned shape \(4,\) for an input of shape \(4, 3\)"):
        divergence_exact(lambda x, t, cond=None: x.sum(1), x, t)
    with pytest.raises(ValueError, match="probe vectors"):
        velocity_and_divergence(model, x, t, torch.ones(2, 4, 2, dtype=x.dtype))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"probes": 2.5}, "number of probes must be a positive whole number"),
        ({"probes": -1}, "number of probes must be a positive whole number"),
        (
            {"noise": "hutchinson"},
            "unknown probe distribution 'hutchinson'; choose one of: gaussian, rademacher",
        ),
    ],
)
def test_hutchinson_refuses_bad_probe_counts_and_estimators(kwargs, match):
    model, (x, t) = _model(), _xt()
    with pytest.raises(ValueError, match=match):
        divergence_hutchinson(model, x, t, **kwargs)


def test_draw_probes_refuses_bad_shapes_dtypes_generators_and_sizes():
    with pytest.raises(ValueError, match="shape must be a tuple of positive whole numbers"):
        draw_probes((4, 0))
    with pytest.raises(ValueError, match="shape must be a tuple"):
        draw_probes(4)
    with pytest.raises(ValueError, match="dtype must be a float dtype"):
        draw_probes((4, 2), dtype=torch.int64)
    with pytest.raises(TypeError, match="generator must be a Generator"):
        draw_probes((4, 2), generator=0)
    with pytest.raises(ValueError, match=r"10000000 probe vectors of shape \(100000, 2\) would need about"):
        draw_probes((100_000, 2), probes=10**7)  # 2e12 values: refused before drawing


def test_divergence_refuses_non_finite_states_and_mismatched_dtypes():
    model, (x, t) = _model(), _xt()
    bad = x.clone()
    bad[1, 0] = float("nan")
    for fn in (divergence_exact, divergence_hutchinson, velocity_and_divergence):
        with pytest.raises(ValueError, match="x holds 1 NaN or infinite value"):
            fn(model, bad, t)
        with pytest.raises(
            ValueError, match=r"x has dtype torch.float32 but the model's weights are torch.float64"
        ):
            fn(model, x.float(), t.float())
        with pytest.raises(ValueError, match="at least 1 sample"):
            fn(model, x[:0], t[:0])
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            fn(model, x, t * float("nan"))
        with pytest.raises(TypeError, match="class MLP itself"):
            fn(MLP, x, t)


def test_divergence_refuses_fields_that_return_the_wrong_thing():
    model, (x, t) = _model(), _xt()
    with pytest.raises(TypeError, match="must return a tensor"):
        divergence_exact(lambda x, t, cond=None: None, x, t)
    with pytest.raises(ValueError, match="the divergence is NaN or inf"):
        divergence_exact(lambda x, t, cond=None: x.sqrt(), -x.abs() - 1, t)  # sqrt of negatives: NaN
    with pytest.raises(ValueError, match="the divergence is NaN or inf"):
        divergence_hutchinson(lambda x, t, cond=None: x.sqrt(), -x.abs() - 1, t)
    probes = draw_probes(x.shape, 2, dtype=x.dtype)
    with pytest.raises(
        ValueError, match=r"probe vectors must have x's dtype and device.*probe_vectors.to\(x\)"
    ):
        velocity_and_divergence(model, x, t, probes.float())
    with pytest.raises(ValueError, match="P >= 1"):
        velocity_and_divergence(model, x, t, probes[:0])
    with pytest.raises(ValueError, match="probe_vectors holds"):
        velocity_and_divergence(model, x, t, probes * float("inf"))
    with pytest.raises(TypeError, match="probe_vectors must be a tensor"):
        velocity_and_divergence(model, x, t, probes.tolist())
