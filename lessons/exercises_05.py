"""The checks of lesson 05's exercises: the cosine path's straightness, a minibatch OT pairing, one RK4 step."""

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from lessons.couplings import couple
from lessons.data2d import sample_target, target_density
from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor, _WrongKind
from lessons.mixture import ExactMixtureModel
from lessons.schedules import CosineSchedule, LinearSchedule
from lessons.solvers import step

LESSON = "05_straight_vs_curved"  # the lesson's file name, and that of its solutions file


def _pair_sets(gen) -> dict:
    """The check's (noise, data) pairs, float64: independent in 2D and 3D, and minibatch OT pairs in 2D."""
    noise = torch.randn(256, 2, generator=gen, dtype=torch.float64)
    data = sample_target("8gaussians", 256, seed=21).double()
    noise_3d = torch.randn(128, 3, generator=gen, dtype=torch.float64)
    data_3d = 1.5 * torch.randn(128, 3, generator=gen, dtype=torch.float64) + torch.tensor([2.0, -1.0, 0.5])
    return {
        "256 independent pairs in 2D": (noise, data),
        "256 minibatch OT pairs in 2D": couple(noise, data, "ot"),
        "128 independent pairs in 3D": (noise_3d, data_3d),
    }


def _check_cosine_path_straightness(answer) -> Feedback:
    nodes, weights = np.polynomial.legendre.leggauss(64)  # Gauss-Legendre on [-1, 1], moved to [0, 1]
    tau = torch.tensor((nodes + 1) / 2, dtype=torch.float64)
    w = torch.tensor(weights / 2, dtype=torch.float64)[:, None]  # (Q, 1)
    schedule = CosineSchedule()
    c, ends = schedule(tau), schedule(torch.tensor([0.0, 1.0], dtype=torch.float64))
    cases, wrong = {}, {}
    for case, (noise, data) in _pair_sets(_seeded(20)).items():
        got = answer(noise.clone(), data.clone())
        # the reference integrates ||chord - dx/dt||^2 numerically, with the library's derivatives (no closed form)
        chord = (ends.alpha[1] - ends.alpha[0]) * data + (ends.sigma[1] - ends.sigma[0]) * noise  # x_1 - x_0
        velocity = c.d_alpha[:, None, None] * data + c.d_sigma[:, None, None] * noise  # (Q, B, D)
        sq = ((chord - velocity) ** 2).sum(-1)  # (Q, B)
        cases[case] = (_tensor(got, (), "cosine_path_straightness"), (w * sq).sum(0).mean())
        no_factor = ((chord - 2 / math.pi * velocity) ** 2).sum(-1)
        norms = (data**2).sum(1) + (noise**2).sum(1)
        wrong[case] = {
            "the chain-rule factor pi / 2 left out of the velocity": (w * no_factor).sum(0).mean(),
            "the cross term data . noise left out": ((math.pi**2 / 8 - 1) * norms).mean(),
            "a mean over the coordinates, not a sum": (w * sq).sum(0).mean() / data.shape[1],
            "the norm without the square": (w * sq.sqrt()).sum(0).mean(),
            "a sum over the pairs, not a mean": (w * sq).sum(0).sum(),
        }
    hints = {
        "the chain-rule factor pi / 2 left out of the velocity": "d/dt sin(pi t / 2) = (pi / 2) cos(pi t / 2): the "
        "velocity is (pi / 2)(cos(pi t / 2) data - sin(pi t / 2) noise).",
        "the cross term data . noise left out": "E[data . noise] = 0 holds for independent pairs on average, not for "
        "these pairs (OT pairs are strongly correlated): keep the (2 - pi / 2) data . noise term.",
        "a mean over the coordinates, not a sum": "||v||^2 sums the squares of the coordinates.",
        "the norm without the square": "the straightness integrates the squared norm ||(x_1 - x_0) - dx/dt||^2.",
        "a sum over the pairs, not a mean": "the straightness is a mean over the pairs (an expectation).",
    }
    return _judge(
        "cosine_path_straightness",
        "On independent and minibatch-OT pairs in 2D and 3D, against ||(x_1 - x_0) - dx/dt||^2 integrated by "
        "Gauss-Legendre quadrature with lessons.schedules.CosineSchedule's derivatives",
        cases,
        1e-5,
        hints,
        wrong,
        "with a = data, b = noise, expand ||(a - b) - (pi/2)(cos a - sin b)||^2 and integrate term by term over "
        "[0, 1]: int cos^2 = int sin^2 = 1/2, int sin cos = 1/pi, int cos = int sin = 2/pi; then average over pairs.",
    )


def _greedy(cost: np.ndarray) -> np.ndarray:
    """Each noise point in turn takes its nearest data point not yet taken, (B,)."""
    free, cols = np.ones(cost.shape[1], dtype=bool), np.empty(cost.shape[0], dtype=np.int64)
    for i, row in enumerate(cost):
        cols[i] = np.flatnonzero(free)[row[free].argmin()]
        free[cols[i]] = False
    return cols


def _check_minibatch_ot_pairs(answer) -> Feedback:
    gen, cases, wrong = _seeded(22), {}, {}
    batches = {
        "64 pairs in 2D": (torch.randn(64, 2, generator=gen), sample_target("8gaussians", 64, seed=23)),
        "128 pairs in 2D": (torch.randn(128, 2, generator=gen), sample_target("8gaussians", 128, seed=24)),
        "32 pairs in 3D": (torch.randn(32, 3, generator=gen), 2 * torch.randn(32, 3, generator=gen) + 1),
    }
    for case, (noise, data) in batches.items():
        noise, data = noise.double(), data.double()
        got = answer(noise.clone(), data.clone())
        if isinstance(got, tuple):
            raise _WrongKind(
                "It returns a tuple: return only the re-ordered data (B, D), whose row i is noise[i]'s partner."
            )
        if isinstance(got, torch.Tensor) and got.shape == (len(data),) and not got.is_floating_point():
            raise _WrongKind(
                "It returns a permutation (B,): return the data re-ordered by it, data[perm], of shape (B, D)."
            )
        cases[case] = (_tensor(got, data.shape, "minibatch_ot_pairs"), couple(noise, data, "ot")[1])
        cost = (torch.cdist(noise, data) ** 2).numpy()  # cost[i, j] = ||noise_i - data_j||^2
        by_x = torch.empty_like(data)
        by_x[noise[:, 0].argsort()] = data[
            data[:, 0].argsort()
        ]  # the k-th smallest x with the k-th smallest x
        wrong[case] = {
            "the cost matrix transposed (data on the rows)": data[linear_sum_assignment(cost.T)[1]],
            "distances where squared distances belong": data[linear_sum_assignment(np.sqrt(cost))[1]],
            "the pairs left as drawn (the independent coupling)": data,
            "the points matched by their first coordinate only": by_x,
            "a greedy pairing (each noise point takes the nearest free data point)": data[_greedy(cost)],
        }
    hints = {
        "the cost matrix transposed (data on the rows)": "linear_sum_assignment pairs row i with column cols[i]: put "
        "the noise on the rows, cost[i, j] = ||noise_i - data_j||^2, then return data[cols].",
        "distances where squared distances belong": "the OT cost of W2 is the squared distance, torch.cdist(noise, "
        "data) ** 2; plain distances give another pairing (W1's).",
        "the pairs left as drawn (the independent coupling)": "re-pair the batch: solve the assignment problem on the "
        "(B, B) matrix of squared distances and return data[cols].",
        "the points matched by their first coordinate only": "sorting solves OT in 1D only: in 2D and more the "
        "pairing must see every coordinate, through the full (B, B) cost matrix.",
        "a greedy pairing (each noise point takes the nearest free data point)": "greedy choices force long pairs "
        "at the end; the optimal assignment of the whole batch is an exact solve (linear_sum_assignment).",
    }
    return _judge(
        "minibatch_ot_pairs",
        "On 3 random batches (64 and 128 pairs in 2D, 32 in 3D), against lessons.couplings.couple(noise, data, 'ot')",
        cases,
        1e-6,
        hints,
        wrong,
        "cost = torch.cdist(noise, data) ** 2; rows, cols = linear_sum_assignment(cost.numpy()); return data[cols].",
    )


_LINEAR = torch.tensor([[-0.8, 1.3], [-0.9, 0.2]], dtype=torch.float64)  # A, a rotation with some damping


def _linear_field(x, t, cond=None):
    """v(x) = A x for each row of x (B, 2): RK4's step is exactly x -> P(hA) x, P the Taylor polynomial of degree 4."""
    return x @ _LINEAR.to(x.dtype).T


def _rk4_variants(field, x, t, h) -> dict:
    """What each common slip returns for the step from (x, t) of size h, (B, D)."""

    def at(x, s):
        return field(x=x, t=torch.full((x.shape[0],), s, dtype=x.dtype))

    k1 = at(x, t)
    k2 = at(x + h / 2 * k1, t + h / 2)
    k3 = at(x + h / 2 * k2, t + h / 2)
    k4 = at(x + h * k3, t + h)
    k2_at_t = at(x + h / 2 * k1, t)
    k3_at_t = at(x + h / 2 * k2_at_t, t)
    k3_from_k1 = at(x + h / 2 * k1, t + h / 2)
    k4_half = at(x + h / 2 * k3, t + h)
    return {
        "k2 and k3 at time t, not t + h / 2": x
        + h / 6 * (k1 + 2 * k2_at_t + 2 * k3_at_t + at(x + h * k3_at_t, t + h)),
        "equal weights 1/4 where 1/6, 2/6, 2/6, 1/6 belong": x + h / 4 * (k1 + k2 + k3 + k4),
        "k3 probed from k1 (x + h/2 k1) where k2 belongs": x
        + h / 6 * (k1 + 2 * k2 + 2 * k3_from_k1 + at(x + h * k3_from_k1, t + h)),
        "k4 probed half a step (x + h/2 k3) where a full step belongs": x
        + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4_half),
        "Kutta's 3/8 rule, not the classical RK4": step(field, x, t, h, "rk4_38"),
    }


def _check_rk4_step(answer) -> Feedback:
    gen, cases, wrong = _seeded(25), {}, {}
    ot_field = ExactMixtureModel(target_density("8gaussians"), LinearSchedule(sigma_min=1e-3), "velocity")
    for t, h in ((0.0, 0.25), (0.35, 0.3), (0.7, 0.3)):
        data = sample_target("8gaussians", 100, seed=26).double()
        x = t * data + (1 - t) * torch.randn(100, 2, generator=gen, dtype=torch.float64)  # points of x_t
        got = answer(ot_field, x.clone(), t, h)
        case = f"the exact OT field, t = {t}, h = {h}"
        cases[case] = (_tensor(got, x.shape, "rk4_step's x_{t+h}"), step(ot_field, x, t, h, "rk4"))
        wrong[case] = _rk4_variants(ot_field, x, t, h)
    x, h = torch.randn(100, 2, generator=gen, dtype=torch.float64), 0.5
    taylor = sum(torch.linalg.matrix_power(h * _LINEAR, k) / math.factorial(k) for k in range(5))  # P(hA)
    case = "a linear field, h = 0.5 (against its Taylor polynomial)"
    cases[case] = (
        _tensor(answer(_linear_field, x.clone(), 0.2, h), x.shape, "rk4_step's x_{t+h}"),
        x @ taylor.T,
    )
    wrong[case] = _rk4_variants(_linear_field, x, 0.2, h)
    hints = {
        "k2 and k3 at time t, not t + h / 2": "the two middle slopes are taken at the middle of the step: "
        "field(x=..., t=t + h / 2).",
        "equal weights 1/4 where 1/6, 2/6, 2/6, 1/6 belong": "RK4 is Simpson's rule on the step: "
        "x + h / 6 (k1 + 2 k2 + 2 k3 + k4).",
        "k3 probed from k1 (x + h/2 k1) where k2 belongs": "each probe uses the slope just found: k3 = f(x + h/2 k2, "
        "t + h/2), then k4 = f(x + h k3, t + h).",
        "k4 probed half a step (x + h/2 k3) where a full step belongs": "the last slope is at the end of the step: "
        "k4 = f(x + h k3, t + h).",
        "Kutta's 3/8 rule, not the classical RK4": "the 3/8 rule is fourth order too, but this exercise asks for the "
        "classical RK4 (probes at h/2, h/2, h; weights 1, 2, 2, 1 over 6).",
    }
    return _judge(
        "rk4_step",
        "On 3 steps of the lesson's exact OT field, against lessons.solvers.step(..., 'rk4'), and on a linear field "
        "against the Taylor polynomial of e^(hA) of degree 4",
        cases,
        1e-6,
        hints,
        wrong,
        "k1 = f(x, t), k2 = f(x + h/2 k1, t + h/2), k3 = f(x + h/2 k2, t + h/2), k4 = f(x + h k3, t + h); "
        "x + h/6 (k1 + 2 k2 + 2 k3 + k4).",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "cosine_path_straightness": _check_cosine_path_straightness,
    "minibatch_ot_pairs": _check_minibatch_ot_pairs,
    "rk4_step": _check_rk4_step,
}
