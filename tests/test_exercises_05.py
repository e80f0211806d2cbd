"""lessons.exercises_05: each check passes lesson 05's solution and names the slip of a typical wrong answer."""

import itertools
import math

import numpy as np
import pytest
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids
from scipy.optimize import linear_sum_assignment

from lessons import exercises_05
from lessons.exercises import review, solution
from lessons.metrics import straightness
from lessons.paths import GaussianPath
from lessons.schedules import CosineSchedule
from lessons.solvers import solve_ode
from lessons.trajectory import Trajectory


def _cosine(noise, data, factor=math.pi / 2, cross=True, reduce=torch.mean):
    """The closed form per pair, with the velocity's factor and the cross term as given, then reduced over pairs."""
    squares, dot = (data**2).sum(1) + (noise**2).sum(1), (data * noise).sum(1)
    # int ||(a - b) - f (cos a - sin b)||^2 = |a - b|^2 - 4 f / pi |a - b|^2 + f^2 (|a|^2 + |b|^2 - 4 a.b / pi) / 2
    per_pair = (1 - 4 * factor / math.pi) * (squares - 2 * dot) + factor**2 * (
        squares - 4 / math.pi * dot
    ) / 2
    if not cross:
        per_pair = (math.pi**2 / 8 - 1) * squares
    return reduce(per_pair)


def straightness_no_chain_rule(noise, data):
    return _cosine(noise, data, factor=1.0)


def straightness_without_cross_term(noise, data):
    return _cosine(noise, data, cross=False)


def straightness_over_coordinates(noise, data):
    return _cosine(noise, data) / data.shape[1]


def straightness_summed(noise, data):
    return _cosine(noise, data, reduce=torch.sum)


def straightness_of_the_norm(noise, data):  # the norm, not its square, by the midpoint rule (error ~1e-8)
    ts = torch.linspace(0, 1, 4001, dtype=torch.float64)
    mid = (ts[1:] + ts[:-1])[:, None, None] / 2
    v = math.pi / 2 * (torch.cos(math.pi * mid / 2) * data - torch.sin(math.pi * mid / 2) * noise)
    return ((data - noise - v).norm(dim=-1) * (ts[1:] - ts[:-1])[:, None]).sum(0).mean()


def straightness_of_a_line(noise, data):
    return 0.0  # the OT path's straightness: no slip it knows, the general hint


def straightness_by_fine_grid(noise, data):  # right too: the library's measure on 2000 steps (error ~1e-7)
    ts = torch.linspace(0, 1, 2001, dtype=torch.float64)
    path = GaussianPath(CosineSchedule())
    xs = torch.stack([path.sample(noise, data, t.repeat(len(noise))).x_t for t in ts])
    return straightness(Trajectory(ts, xs, nfe=0))


def _assign(cost):
    return linear_sum_assignment(cost)[1]


def pairs_transposed(noise, data):
    return data[_assign((torch.cdist(data, noise) ** 2).numpy())]


def pairs_by_distance(noise, data):
    return data[_assign(torch.cdist(noise, data).numpy())]


def pairs_as_drawn(noise, data):
    return data.clone()


def pairs_by_first_coordinate(noise, data):
    out = torch.empty_like(data)
    out[torch.argsort(noise[:, 0])] = data[torch.argsort(data[:, 0])]
    return out


def pairs_greedy(noise, data):
    cost, taken, out = torch.cdist(noise, data), set(), []
    for row in cost:
        j = min((j for j in range(len(data)) if j not in taken), key=lambda j: row[j].item())
        taken.add(j)
        out.append(data[j])
    return torch.stack(out)


def pairs_maximal(noise, data):
    return data[linear_sum_assignment((torch.cdist(noise, data) ** 2).numpy(), maximize=True)[1]]


def pairs_permutation(noise, data):
    return torch.as_tensor(_assign((torch.cdist(noise, data) ** 2).numpy()))


def pairs_tuple(noise, data):
    return noise, solution("minibatch_ot_pairs")(noise, data)


def pairs_float32(noise, data):  # right too: a float32 cost matrix gives the same pairing here
    return data[_assign((torch.cdist(noise.float(), data.float()) ** 2).numpy())]


def _rk4(field, x, t, h, times=(0.5, 0.5, 1.0), probes=(0.5, 0.5, 1.0), weights=(1, 2, 2, 1), k3_from=2):
    def at(x, s):
        return field(x=x, t=torch.full((x.shape[0],), s, dtype=x.dtype))

    k1 = at(x, t)
    k2 = at(x + probes[0] * h * k1, t + times[0] * h)
    k3 = at(x + probes[1] * h * (k2 if k3_from == 2 else k1), t + times[1] * h)
    k4 = at(x + probes[2] * h * k3, t + times[2] * h)
    return x + h * sum(w * k for w, k in zip(weights, (k1, k2, k3, k4))) / sum(weights)


def rk4_times_left_out(field, x, t, h):
    return _rk4(field, x, t, h, times=(0.0, 0.0, 1.0))


def rk4_equal_weights(field, x, t, h):
    return _rk4(field, x, t, h, weights=(1, 1, 1, 1))


def rk4_k3_from_k1(field, x, t, h):
    return _rk4(field, x, t, h, k3_from=1)


def rk4_half_last_probe(field, x, t, h):
    return _rk4(field, x, t, h, probes=(0.5, 0.5, 0.5))


def rk4_three_eighths(field, x, t, h):
    def at(x, s):
        return field(x=x, t=torch.full((x.shape[0],), s, dtype=x.dtype))

    k1 = at(x, t)
    k2 = at(x + h * k1 / 3, t + h / 3)
    k3 = at(x + h * (k2 - k1 / 3), t + 2 * h / 3)
    k4 = at(x + h * (k1 - k2 + k3), t + h)
    return x + h / 8 * (k1 + 3 * k2 + 3 * k3 + k4)


def rk4_heun(field, x, t, h):
    k1 = field(x=x, t=torch.full((x.shape[0],), t, dtype=x.dtype))
    k2 = field(x=x + h * k1, t=torch.full((x.shape[0],), t + h, dtype=x.dtype))
    return x + h / 2 * (k1 + k2)  # no slip it knows: the general hint


def rk4_float_time(field, x, t, h):
    return x + h * field(x=x, t=t)  # the field wants a (B,) tensor of times: it raises, in words


def rk4_float32(field, x, t, h):  # right too: a float32 time tensor, as the lesson's heun_step builds
    def at(x, s):
        return field(x=x, t=torch.full((x.shape[0],), s))

    k1 = at(x, t)
    k2 = at(x + h / 2 * k1, t + h / 2)
    k3 = at(x + h / 2 * k2, t + h / 2)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + at(x + h * k3, t + h))


WRONG = [
    (
        "cosine_path_straightness",
        straightness_no_chain_rule,
        "the chain-rule factor pi / 2 left out of the velocity",
        "(pi / 2) cos(pi t / 2)",
    ),
    (
        "cosine_path_straightness",
        straightness_without_cross_term,
        "the cross term data . noise left out",
        "strongly correlated",
    ),
    (
        "cosine_path_straightness",
        straightness_over_coordinates,
        "a mean over the coordinates, not a sum",
        "sums the squares",
    ),
    ("cosine_path_straightness", straightness_of_the_norm, "the norm without the square", "squared norm"),
    (
        "cosine_path_straightness",
        straightness_summed,
        "a sum over the pairs, not a mean",
        "a mean over the pairs",
    ),
    ("cosine_path_straightness", straightness_of_a_line, None, "int sin cos = 1/pi"),
    (
        "minibatch_ot_pairs",
        pairs_transposed,
        "the cost matrix transposed (data on the rows)",
        "put the noise on the rows",
    ),
    ("minibatch_ot_pairs", pairs_by_distance, "distances where squared distances belong", "W1's"),
    (
        "minibatch_ot_pairs",
        pairs_as_drawn,
        "the pairs left as drawn (the independent coupling)",
        "re-pair the batch",
    ),
    (
        "minibatch_ot_pairs",
        pairs_by_first_coordinate,
        "the points matched by their first coordinate only",
        "sorting solves OT in 1D only",
    ),
    (
        "minibatch_ot_pairs",
        pairs_greedy,
        "a greedy pairing (each noise point takes the nearest free data point)",
        "greedy choices",
    ),
    ("minibatch_ot_pairs", pairs_maximal, None, "linear_sum_assignment(cost.numpy())"),
    ("minibatch_ot_pairs", pairs_permutation, None, "data[perm]"),
    ("minibatch_ot_pairs", pairs_tuple, None, "return only the re-ordered data"),
    ("rk4_step", rk4_times_left_out, "k2 and k3 at time t, not t + h / 2", "the middle of the step"),
    (
        "rk4_step",
        rk4_equal_weights,
        "equal weights 1/4 where 1/6, 2/6, 2/6, 1/6 belong",
        "Simpson's rule",
    ),
    (
        "rk4_step",
        rk4_k3_from_k1,
        "k3 probed from k1 (x + h/2 k1) where k2 belongs",
        "each probe uses the slope just found",
    ),
    (
        "rk4_step",
        rk4_half_last_probe,
        "k4 probed half a step (x + h/2 k3) where a full step belongs",
        "at the end of the step",
    ),
    ("rk4_step", rk4_three_eighths, "Kutta's 3/8 rule, not the classical RK4", "fourth order too"),
    ("rk4_step", rk4_heun, None, "x + h/6 (k1 + 2 k2 + 2 k3 + k4)"),
    ("rk4_step", rk4_float_time, None, ("It raised ValueError", "shape (B,)")),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


@pytest.mark.parametrize(
    "name, answer",
    [
        ("cosine_path_straightness", straightness_by_fine_grid),
        ("minibatch_ot_pairs", pairs_float32),
        ("rk4_step", rk4_float32),
    ],
)
def test_another_right_way_passes(name, answer):
    assert review(name, answer).passed, review(name, answer).text


def test_the_closed_form_is_the_library_straightness_of_the_sampled_paths():
    """The solution's closed form against lessons.metrics.straightness of the cosine paths on finer and finer grids."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(100, 2, generator=g, dtype=torch.float64)
    data = 2 * torch.randn(100, 2, generator=g, dtype=torch.float64) + 1
    closed = solution("cosine_path_straightness")(noise, data)
    path, errors = GaussianPath(CosineSchedule()), []
    for steps in (250, 500, 1000):
        ts = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
        xs = torch.stack([path.sample(noise, data, t.repeat(100)).x_t for t in ts])
        errors.append(abs(straightness(Trajectory(ts, xs, nfe=0)) - closed))
    assert errors[-1] < 1e-5 * closed
    assert 3.5 < errors[0] / errors[1] < 4.5 and 3.5 < errors[1] / errors[2] < 4.5  # the grid's O(dt^2) error


def test_the_ot_pairs_are_the_best_of_all_permutations():
    """On 6 pairs, the solution's pairing has the least cost of all 720 re-orderings (no assignment solver)."""
    g = torch.Generator().manual_seed(1)
    noise, data = torch.randn(2, 6, 2, generator=g, dtype=torch.float64)
    costs = {
        perm: ((noise - data[list(perm)]) ** 2).sum().item() for perm in itertools.permutations(range(6))
    }
    best = min(costs, key=costs.get)
    assert torch.equal(solution("minibatch_ot_pairs")(noise, data), data[list(best)])


def test_the_rk4_step_has_a_local_error_of_order_five_on_a_time_dependent_field():
    """dx/dt = 2 t x has x(t + h) = x exp((t + h)^2 - t^2): one step's error falls like h^5 (about 32-fold per
    halving; the h^6 term still adds a little at these h), where slopes taken at the wrong time give h^2."""

    def field(x, t, cond=None):
        return 2 * t[:, None] * x

    x, t = torch.tensor([[1.0, -2.0]], dtype=torch.float64), 0.3

    def order(step):
        errors = [
            (step(field, x, t, h) - x * math.exp((t + h) ** 2 - t**2)).abs().max().item()
            for h in (0.04, 0.02, 0.01)
        ]
        return [math.log2(a / b) for a, b in zip(errors, errors[1:])]

    assert all(4.8 < p < 6.0 for p in order(solution("rk4_step")))
    assert all(p < 3.5 for p in order(rk4_times_left_out))  # the control: the same measure rejects the slip


def test_the_rk4_solution_is_lessons_solve_ode_step_by_step():
    field = exercises_05._linear_field
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ours = x
    for i in range(8):
        ours = solution("rk4_step")(field, ours, i / 8, 1 / 8)
    lib = solve_ode(field, x, steps=8, method="rk4").final
    assert torch.allclose(ours, lib, rtol=0, atol=1e-14)


def test_the_checks_greedy_slip_is_a_greedy_pairing():
    """The pairing check's greedy slip is the test's own greedy loop, and a permutation."""
    g = torch.Generator().manual_seed(3)
    noise, data = torch.randn(2, 20, 2, generator=g, dtype=torch.float64)
    cols = exercises_05._greedy((torch.cdist(noise, data) ** 2).numpy())
    assert torch.equal(data[cols], pairs_greedy(noise, data))
    assert np.unique(cols).size == 20
