"""The checks of lesson 03's exercises: Hutchinson's estimator, its Rademacher variance, an affine flow's density."""

import math

import torch

from lessons.cnf import log_likelihood
from lessons.divergence import divergence_exact
from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor, _WrongKind, _z_judge
from lessons.models import MLP

LESSON = "03_cnf"  # the lesson's file name, and that of its solutions file solutions/03_cnf.py


def _check_hutchinson_divergence(answer) -> Feedback:
    # inside review's fork_rng: the field's weights and the learner's probes are the same at every run
    torch.manual_seed(0)
    field = MLP(dim=3, hidden=16, depth=2, time_scale=1.0).double()
    points, n = torch.tensor([[0.5, -1.0, 0.2], [1.5, 0.3, -0.7]], dtype=torch.float64), 4000
    t_points = torch.tensor([0.3, 0.7], dtype=torch.float64)
    exact = divergence_exact(field, points, t_points)  # (2,)
    jac = torch.stack(
        [
            torch.autograd.functional.jacobian(
                lambda z, i=i: field(x=z[None], t=t_points[i : i + 1])[0], points[i]
            )
            for i in range(2)
        ]
    )  # (2, D, D)
    x, t = points.repeat(n, 1), t_points.repeat(n)  # (2n, D), (2n,)
    worst, spread = {}, {}
    for probes in (1, 4):
        est = _tensor(answer(field, x.clone(), t.clone(), probes), (2 * n,), "hutchinson_divergence").view(
            n, 2
        )
        mean, se = est.mean(0), est.std(0) / n**0.5
        if not bool((se > 0).all()):
            raise _WrongKind(
                "its estimates do not vary from one call to the next: Hutchinson's estimator draws random probes."
            )
        centred = (est - mean) ** 2
        spread[probes] = (
            centred.mean(0),
            centred.std(0) / n**0.5,
        )  # the variance and its standard error, (2,)

        def z(target, mean=mean, se=se):
            return ((mean - target).abs() / se).max().item()

        worst[probes] = {
            None: z(exact),
            "the probes summed, not averaged": z(probes * exact),
            "eps^T J summed without the last product with eps": z(torch.zeros(2, dtype=torch.float64)),
            "uniform probes in [0, 1) (torch.rand)": z(
                torch.diagonal(jac, dim1=1, dim2=2).sum(1) / 12 + jac.sum((1, 2)) / 4
            ),
        }
    hints = {
        "the probes summed, not averaged": "with P probes, average the P estimates eps_p^T J eps_p: divide by P.",
        "eps^T J summed without the last product with eps": "after the vector-Jacobian product eps^T J, multiply by eps and sum: eps^T J eps.",
        "uniform probes in [0, 1) (torch.rand)": "probes need mean 0 and E[eps eps^T] = I: torch.randint(0, 2, shape) * 2 - 1, or torch.randn.",
    }
    z_max = max(worst[p][None] for p in worst)
    slip_z = {slip: max(worst[p][slip] for p in worst) for slip in hints}
    against = f"Against lessons.divergence.divergence_exact at 2 points, each repeated {n} times, with 1 and 4 probes"
    feedback = _z_judge(
        "hutchinson_divergence",
        against,
        z_max,
        4.5,
        hints,
        slip_z,
        "average eps^T (dv/dx) eps over P random probes.",
    )
    # averaging 4 probes divides the variance by 4: the ratio's standard error by the delta method
    (var_1, se_1), (var_4, se_4) = spread[1], spread[4]
    ratio = var_1 / var_4
    ratio_z = ((ratio - 4).abs() / (ratio * ((se_1 / var_1) ** 2 + (se_4 / var_4) ** 2).sqrt())).max().item()
    if feedback.passed and ratio_z > 4.5:
        return Feedback(
            "hutchinson_divergence",
            "not right yet",
            f"hutchinson_divergence: not right yet. Its mean is right, but from 1 to 4 probes its variance fell "
            f"{ratio.min().item():.2f}-fold where averaging 4 independent probes divides it by 4 ({ratio_z:.1f} "
            "standard errors away, allowed 4.5). Hint: draw P probes and average their estimates.",
        )
    return feedback


def _check_rademacher_variance(answer) -> Feedback:
    gen, cases, wrong = _seeded(3), {}, {}
    for dim in (2, 3, 4, 4):
        jac = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
        signs = torch.cartesian_prod(
            *[torch.tensor([-1.0, 1.0], dtype=torch.float64)] * dim
        )  # every probe (2^D, D)
        values = ((signs @ jac) * signs).sum(1)  # eps^T J eps for each equally likely probe
        case = f"a {dim} x {dim} matrix" + (" (the second)" if f"a {dim} x {dim} matrix" in cases else "")
        cases[case] = (_tensor(answer(jac.clone()), (), "rademacher_variance"), values.var(unbiased=False))
        sym = (jac + jac.T) / 2
        frob, diag = (sym**2).sum(), (torch.diagonal(sym) ** 2).sum()
        wrong[case] = {
            "J in place of its symmetric part S": 2 * ((jac**2).sum() - (torch.diagonal(jac) ** 2).sum()),
            "the Gaussian probes' variance 2 ||S||^2": 2 * frob,
            "the factor 2 missing": frob - diag,
            "the standard deviation instead of the variance": (2 * (frob - diag)).sqrt(),
        }
    hints = {
        "J in place of its symmetric part S": "eps^T J eps = eps^T S eps with S = (J + J^T) / 2: only S matters.",
        "the Gaussian probes' variance 2 ||S||^2": "Rademacher probes have eps_i^2 = 1, so the diagonal is estimated without error: subtract sum S_ii^2.",
        "the factor 2 missing": "each off-diagonal pair appears twice in eps^T S eps (S_ij and S_ji): Var = 2 (||S||^2 - sum S_ii^2).",
        "the standard deviation instead of the variance": "return the variance, not its square root.",
    }
    return _judge(
        "rademacher_variance",
        "On 4 random matrices, against the variance over all 2^D sign vectors",
        cases,
        1e-9,
        hints,
        wrong,
        "expand eps^T S eps = sum_i S_ii + sum_{i != j} S_ij eps_i eps_j; the products eps_i eps_j are uncorrelated signs.",
    )


def _check_affine_log_density(answer) -> Feedback:
    gen, cases, wrong = _seeded(4), {}, {}
    for case in ("flow 1", "flow 2", "flow 3"):
        A = 0.6 * torch.randn(2, 2, generator=gen, dtype=torch.float64)
        b = torch.randn(2, generator=gen, dtype=torch.float64)
        x = 1.5 * torch.randn(200, 2, generator=gen, dtype=torch.float64)

        def field(x, t, cond=None, A=A, b=b):
            return x @ A.T + b

        with torch.no_grad():  # the numerical CNF: augmented ODE, rk4 with 64 steps (error ~1e-8 nats)
            want = log_likelihood(field, x, method="rk4", steps=64).log_prob
        cases[case] = (_tensor(answer(x.clone(), A.clone(), b.clone()), (200,), "affine_log_density"), want)
        expm = torch.linalg.matrix_exp(A)
        noise = torch.linalg.solve(
            expm, (x - torch.linalg.solve(A, (expm - torch.eye(2, dtype=A.dtype)) @ b)).T
        ).T
        log_n = -0.5 * (noise**2).sum(1) - math.log(2 * math.pi)
        wrong[case] = {
            "+ tr A where - tr A belongs": log_n + torch.trace(A),
            "the trace term left out": log_n,
            "log N evaluated at x itself": -0.5 * (x**2).sum(1) - math.log(2 * math.pi) - torch.trace(A),
            "the shift b left out of the noise": -0.5 * ((x @ torch.linalg.inv(expm).T) ** 2).sum(1)
            - math.log(2 * math.pi)
            - torch.trace(A),
        }
    hints = {
        "+ tr A where - tr A belongs": "d log p / dt = -div v along a path, so log p_1(x) = log N(noise) - tr A.",
        "the trace term left out": "the flow stretches volume at the rate div v = tr A: log p_1 = log N(noise) - tr A.",
        "log N evaluated at x itself": "evaluate N(0, I) at the noise that flows to x, psi_1^{-1}(x), not at x.",
        "the shift b left out of the noise": "psi_1(noise) = e^A noise + A^{-1}(e^A - I) b: undo the shift before e^{-A}.",
    }
    return _judge(
        "affine_log_density",
        "On 3 random affine flows, against lessons.cnf.log_likelihood (rk4, 64 steps)",
        cases,
        1e-5,
        hints,
        wrong,
        "noise = e^{-A}(x - A^{-1}(e^A - I) b), then log p_1(x) = log N(noise; 0, I) - tr A.",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "hutchinson_divergence": _check_hutchinson_divergence,
    "rademacher_variance": _check_rademacher_variance,
    "affine_log_density": _check_affine_log_density,
}
