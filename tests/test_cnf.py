"""CNF log-likelihood by the augmented ODE: closed-form flows, priors, gradients, training, bits per dimension."""

import math

import pytest
import torch
from torch import nn

from lessons.cnf import (
    ADJOINT_FIXED_STEP,
    LikelihoodResult,
    log_likelihood,
    standard_normal_log_prob,
    train_max_likelihood,
)
from lessons.image_metrics import bits_per_dim, dequantize
from lessons.mixture import GaussianMixture
from lessons.models import MLP, SinusoidalTimeEmbedding
from lessons.solvers import NFE_PER_STEP, solve_ode

F64 = torch.float64


class Affine(nn.Module):
    """v(x, t) = A x + b, constant in time: the flow map is x(1) = e^A x(0) + A^-1 (e^A - I) b."""

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = (
            nn.Parameter(torch.as_tensor(a, dtype=F64)),
            nn.Parameter(torch.as_tensor(b, dtype=F64)),
        )

    def forward(self, x, t, cond=None):
        return x @ self.a.T + self.b

    def pushforward(self):
        """The law of x(1) when x(0) ~ N(0, I): N(A^-1 (e^A - I) b, e^A e^A^T), by the closed form."""
        m = torch.linalg.matrix_exp(self.a)
        mean = torch.linalg.solve(self.a, (m - torch.eye(len(self.b), dtype=F64)) @ self.b)
        return torch.distributions.MultivariateNormal(mean, m @ m.T)


def _affine():
    return Affine([[0.3, -1.0], [0.5, -0.2]], [1.0, -0.5])


def test_identity_flow_gives_the_prior_density():
    data = torch.randn(50, 2, dtype=F64)

    def zero(x, t, cond=None):
        return torch.zeros_like(x)

    normal = torch.distributions.Normal(0.0, 1.0)
    for method, steps in [("dopri5", None), ("rk4", 3), ("euler", 1)]:
        result = log_likelihood(zero, data, method=method, steps=steps)
        assert isinstance(result, LikelihoodResult)
        assert torch.allclose(result.log_prob, normal.log_prob(data).sum(1))
        assert torch.allclose(result.noise, data, rtol=0, atol=1e-12)
    assert torch.allclose(standard_normal_log_prob(data), normal.log_prob(data).sum(1))


@pytest.mark.parametrize(
    "method, steps, tol", [("dopri5", None, 1e-4), ("rk4", 20, 1e-6), ("midpoint", 50, 2e-3)]
)
def test_affine_flow_likelihood_matches_closed_form(method, steps, tol):
    field = _affine()
    with torch.no_grad():
        data = field.pushforward().sample((300,))
        result = log_likelihood(field, data, method=method, steps=steps, rtol=1e-7, atol=1e-7)
        assert (result.log_prob - field.pushforward().log_prob(data)).abs().max() < tol
        # the noise is the inverse flow map: data = e^A noise + mean
        back = result.noise @ torch.linalg.matrix_exp(field.a).T + field.pushforward().mean
        assert torch.allclose(back, data, atol=tol)


def test_fixed_step_nfe_counts_the_augmented_evaluations():
    field = _affine()
    data = torch.randn(10, 2, dtype=F64)
    with torch.no_grad():
        assert log_likelihood(field, data, method="rk4", steps=7).nfe == 4 * 7
        assert log_likelihood(field, data, method="euler", steps=5).nfe == 5
        adaptive = log_likelihood(field, data, rtol=1e-8, atol=1e-8).nfe
        assert adaptive > log_likelihood(field, data, rtol=1e-3, atol=1e-3).nfe


@pytest.mark.parametrize("method", list(NFE_PER_STEP))
def test_fixed_steps_are_the_steps_of_solve_ode(method):
    """Each fixed-step name is one method: log_likelihood's noise is solve_ode's state, run from t = 1 to 0."""
    field = _affine()
    data = torch.randn(16, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = solve_ode(field, data, steps=5, method=method, t_start=1.0, t_end=0.0).final
        assert torch.allclose(
            log_likelihood(field, data, method=method, steps=5).noise, expected, rtol=0, atol=1e-13
        )
    if method in ADJOINT_FIXED_STEP:  # torchdiffeq's method of that name under the adjoint: the same steps
        adjoint = log_likelihood(field, data, method=method, steps=5, adjoint=True)
        assert torch.allclose(adjoint.noise, expected, rtol=0, atol=1e-13)


def test_hutchinson_likelihood_is_unbiased_for_a_linear_field():
    # for v = A x the estimate is constant along the path, so its error is eps^T A eps - tr A, mean zero
    field = _affine()
    with torch.no_grad():
        data = field.pushforward().sample((4000,))
        exact = log_likelihood(field, data, method="rk4", steps=10)
        g = torch.Generator().manual_seed(0)
        for noise in ("rademacher", "gaussian"):
            est = log_likelihood(
                field, data, method="rk4", steps=10, exact=False, probe_noise=noise, generator=g
            )
            err = est.log_prob - exact.log_prob
            assert err.abs().max() > 1e-3  # single-probe estimates really are noisy ...
            assert err.mean().abs() < 5 * err.std() / 4000**0.5  # ... and right on average


def test_priors_and_conditions_are_passed_through():
    mixture = GaussianMixture([[0.0, 1.0], [2.0, -1.0]], [0.5, 0.8], [0.3, 0.7])
    data = torch.randn(20, 2)

    def zero(x, t, cond=None):
        return 0 * x

    assert torch.allclose(log_likelihood(zero, data, prior=mixture).log_prob, mixture.log_prob(data))
    assert torch.allclose(log_likelihood(zero, data, prior=mixture.log_prob).log_prob, mixture.log_prob(data))
    # a conditional field: v = cond * x with one scalar per sample, so div = 2 cond and log p shifts by -2 cond
    cond = torch.linspace(-1, 1, 20)
    result = log_likelihood(lambda x, t, cond: cond[:, None] * x, data, method="rk4", steps=20, cond=cond)
    expected = standard_normal_log_prob(data * torch.exp(-cond)[:, None]) - 2 * cond
    assert torch.allclose(result.log_prob, expected, atol=1e-5)


def test_image_shaped_data():
    data = torch.randn(6, 1, 3, 3, dtype=F64)
    result = log_likelihood(lambda x, t, cond=None: -0.5 * x, data, method="rk4", steps=10)
    # x(1) = e^-0.5 x(0): noise = e^0.5 data and log p = log N(noise) + 9 * 0.5
    assert result.noise.shape == data.shape
    assert torch.allclose(result.log_prob, standard_normal_log_prob(data * math.exp(0.5)) + 4.5, atol=1e-6)


def test_gradients_through_the_solver_match_the_closed_form():
    field = _affine()
    data = field.pushforward().sample((64,)).detach()
    (-log_likelihood(field, data, method="dopri5", rtol=1e-9, atol=1e-9).log_prob.mean()).backward()
    solver_grads = [p.grad.clone() for p in field.parameters()]
    field.zero_grad()
    (-field.pushforward().log_prob(data).mean()).backward()
    for solver, closed in zip(solver_grads, [p.grad for p in field.parameters()]):
        assert torch.allclose(solver, closed, atol=1e-6)


@pytest.mark.parametrize("method, steps", [("dopri5", None), ("rk4_38", 6), ("heun", 6)])
def test_adjoint_gradients_equal_backprop_gradients(method, steps):
    torch.manual_seed(0)
    model = MLP(dim=2, hidden=16, depth=2, time_scale=1.0).double()
    data = torch.randn(32, 2, dtype=F64)
    grads = {}
    for adjoint in (False, True):
        model.zero_grad()
        result = log_likelihood(
            model, data, method=method, steps=steps, rtol=1e-8, atol=1e-8, adjoint=adjoint
        )
        (-result.log_prob.mean()).backward()
        grads[adjoint] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert grads[False].norm() > 1e-3
    assert (grads[True] - grads[False]).norm() < 1e-4 * grads[False].norm()  # solver tolerance 1e-8


def test_max_likelihood_training_reaches_the_entropy_of_a_gaussian():
    # a learnable affine flow can represent N(m, diag(s^2)) exactly; its NLL must approach the entropy
    mean, std = torch.tensor([1.5, -1.0], dtype=F64), torch.tensor([0.5, 2.0], dtype=F64)
    g = torch.Generator().manual_seed(0)
    field = Affine(torch.zeros(2, 2) + 0.01 * torch.eye(2), torch.zeros(2))
    result = train_max_likelihood(
        field,
        lambda: mean + std * torch.randn(256, 2, generator=g, dtype=F64),
        steps=100,
        method="rk4",
        solver_steps=2,
        lr=0.1,
        progress=False,
        device="cpu",
    )
    entropy = torch.distributions.Normal(mean, std).entropy().sum().item()
    assert result.steps_done == 100 and result.seconds > 0
    assert sum(result.losses[:10]) / 10 > entropy + 0.5
    assert abs(sum(result.losses[-20:]) / 20 - entropy) < 0.05


def test_bad_inputs_raise_value_errors():
    field, data = _affine(), torch.randn(4, 2, dtype=F64)
    with pytest.raises(ValueError, match="needs a number of steps"):
        log_likelihood(field, data, method="rk4")
    with pytest.raises(ValueError, match="leave steps=None"):
        log_likelihood(field, data, steps=10)
    with pytest.raises(ValueError, match="unknown ODE solver"):
        log_likelihood(field, data, method="rk45", steps=3)
    with pytest.raises(ValueError, match="positive whole number"):
        log_likelihood(field, data, method="euler", steps=0)
    with pytest.raises(ValueError, match=r"shape \(B, \.\.\.\)"):
        log_likelihood(field, data[0])
    with pytest.raises(ValueError, match="nn.Module"):
        log_likelihood(lambda x, t, cond=None: x, data, adjoint=True)
    with pytest.raises(ValueError, match="rk4_38"):
        log_likelihood(field, data, method="rk4", steps=4, adjoint=True)
    with pytest.raises(ValueError, match="one log-density per sample"):
        log_likelihood(field, data, prior=lambda noise: noise)
    with pytest.raises(ValueError, match=r"rtol .* must lie in \(0, inf\)"):
        log_likelihood(field, data, rtol=0.0)
    with pytest.raises(ValueError, match="number of probes"):
        log_likelihood(field, data, exact=False, probes=0)
    with pytest.raises(ValueError, match="data_range"):
        bits_per_dim(torch.zeros(2), 4, data_range=0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dequantize(torch.full((2, 2), 2.0))
    with pytest.raises(ValueError, match="time scale"):
        SinusoidalTimeEmbedding(scale=0.0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"exact": "hutchinson"}, TypeError, "exact must be True or False"),
        ({"adjoint": 1}, TypeError, "adjoint must be True or False"),
        ({"exact": False, "probe_noise": "uniform"}, ValueError, "choose one of: gaussian, rademacher"),
        ({"exact": False, "probes": 1.5}, ValueError, "number of probes"),
        ({"rtol": float("nan")}, ValueError, "rtol .* finite"),
        ({"atol": "small"}, TypeError, "atol"),
        ({"method": "rk4", "steps": 2.0}, ValueError, "number of steps"),
        ({"prior": 3}, TypeError, "prior must be a function"),
        ({"generator": 7, "exact": False}, TypeError, "generator must be a Generator"),
    ],
)
def test_log_likelihood_refuses_bad_options_in_words(kwargs, error, match):
    field, data = _affine(), torch.randn(4, 2, dtype=F64)
    with pytest.raises(error, match=match):
        log_likelihood(field, data, **kwargs)


def test_log_likelihood_refuses_bad_data_and_fields():
    field, data = _affine(), torch.randn(4, 2, dtype=F64)
    with pytest.raises(ValueError, match="data holds 1 NaN or infinite value"):
        log_likelihood(field, torch.cat([data, torch.tensor([[0.0, float("inf")]], dtype=F64)]))
    with pytest.raises(ValueError, match="at least 1 sample"):
        log_likelihood(field, data[:0])
    with pytest.raises(
        ValueError, match=r"data has dtype torch.float32 but the model's weights are torch.float64"
    ):
        log_likelihood(field, data.float())
    with pytest.raises(TypeError, match="class Affine itself"):
        log_likelihood(Affine, data)
    with pytest.raises(TypeError, match="the prior must return a tensor"):
        log_likelihood(field, data, prior=lambda noise: [0.0] * len(noise))
    with pytest.raises(ValueError, match=r"noise must have shape \(B, \.\.\.\)"):
        standard_normal_log_prob(torch.zeros(3))
    with pytest.raises(ValueError, match="noise holds"):
        standard_normal_log_prob(torch.full((2, 2), float("nan")))


def test_non_finite_fields_are_named_at_their_step_or_after_dopri5():
    data = torch.randn(4, 2, dtype=F64)

    def breaks_below_half(x, t, cond=None):  # NaN once the backward solve passes t = 0.5
        return torch.where(t[:, None] < 0.5, torch.nan, -x)

    with pytest.raises(
        ValueError, match=r"the euler solve of the likelihood ODE .* produced NaN or inf at step 7"
    ):
        log_likelihood(breaks_below_half, data, method="euler", steps=10)
    with pytest.raises(ValueError, match="dopri5"):
        log_likelihood(breaks_below_half, data)


def test_train_max_likelihood_refuses_bad_options_before_training():
    calls = []

    def next_batch():
        calls.append(1)
        return torch.randn(8, 2, dtype=F64)

    model = _affine()
    with pytest.raises(ValueError, match="unknown ODE solver"):
        train_max_likelihood(model, next_batch, steps=5, method="rk45")
    with pytest.raises(ValueError, match="number of steps"):
        train_max_likelihood(model, next_batch, steps=5, solver_steps=0)
    with pytest.raises(ValueError, match="rk4_38"):
        train_max_likelihood(model, next_batch, steps=5, adjoint=True)
    assert not calls  # nothing was drawn or trained


def test_step_counts_whose_graph_would_not_fit_are_refused_with_the_memory_needed():
    field, data = _affine(), torch.randn(1000, 2, dtype=F64)  # 24 TB of states: more than any machine has
    with pytest.raises(
        ValueError, match=r"a likelihood solve of 1000000000 euler steps with its graph .* GiB"
    ):
        log_likelihood(field, data, method="euler", steps=10**9)
