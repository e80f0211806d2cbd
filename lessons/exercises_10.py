"""The checks of lesson 10's exercises: a DPM-Solver++(2M) step, MeanFlow's target, a Gaussian's average velocity."""

import functools

import torch

from lessons.data2d import target_density
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.dpm_solver import dpm_solver_2m
from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor
from lessons.mean_flow import AverageVelocityMLP, mean_flow_jvp
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.schedules import LinearSchedule, VPSchedule
from lessons.solvers import solve_ode

LESSON = "10_few_steps"  # the lesson's file name, and that of its solutions file solutions/10_few_steps.py


def _updates_2m(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev) -> dict:
    """The step x_s (B, D) of section 1 (key None) and what each common slip returns instead."""
    c, c_inverted = h / (2 * h_prev), h_prev / (2 * h)  # 1 / (2 r) with r = h_prev / h, and with r inverted
    gain = -torch.expm1(-h)  # 1 - e^(-h)

    def step(ratio, gain, c):
        return ratio * x + alpha_s * gain * ((1 + c) * d_now - c * d_prev)

    return {
        None: step(sigma_s / sigma_t, gain, c),
        "the correction's sign flipped": step(sigma_s / sigma_t, gain, -c),
        "r = h / h_prev, inverted": step(sigma_s / sigma_t, gain, c_inverted),
        "sigma_t / sigma_s where sigma_s / sigma_t belongs": step(sigma_t / sigma_s, gain, c),
        "h where 1 - e^(-h) belongs": step(sigma_s / sigma_t, h, c),
        "no correction (a DDIM step)": step(sigma_s / sigma_t, gain, 0 * c),
    }


def _sample_2m(update, model, noise, schedule, ts) -> torch.Tensor:
    """The lesson's my_dpm_solver_2m with each middle step taken by update; the first and last are DDIM's, (B, D)."""
    c = schedule(ts)
    x, d_prev, h_prev = noise, None, None
    for i in range(len(ts) - 1):
        a_t, s_t, a_s, s_s = c.alpha[i], c.sigma[i], c.alpha[i + 1], c.sigma[i + 1]
        d_now = (x - s_t * model(x=x, t=ts[i].expand(x.shape[0]))) / a_t  # the data prediction D(x_t)
        if s_s == 0:  # the last step, into the data
            return a_s * d_now
        h = torch.log(a_s / s_s) - torch.log(a_t / s_t)
        if d_prev is None:  # the first step: no earlier prediction yet
            x = (s_s / s_t) * x + a_s * -torch.expm1(-h) * d_now
        else:
            got = update(*(v.clone() for v in (x, d_now, d_prev, a_s, s_s, s_t, h, h_prev)))
            x = _tensor(got, x.shape, "dpm_solver_2m_update's x_s")
            if not bool(torch.isfinite(x).all()):
                return x  # NaN or inf: off by infinitely much, without sampling on from it
        d_prev, h_prev = d_now, h
    return x


def _check_dpm_solver_2m_update(answer) -> Feedback:
    hints = {
        "the correction's sign flipped": "D = (1 + 1/(2r)) D(x_t) - 1/(2r) D_prev: the line through the two predictions "
        "is read beyond D(x_t), away from D_prev.",
        "r = h / h_prev, inverted": "r = h_prev / h, so 1/(2r) = h / (2 h_prev): a long step reads the line further out.",
        "sigma_t / sigma_s where sigma_s / sigma_t belongs": "the noise shrinks along the step: x_t is scaled by "
        "sigma_s / sigma_t, the new noise level over the old one.",
        "h where 1 - e^(-h) belongs": "the integral of e^l from l_t to l_s, times sigma_s, is alpha_s (1 - e^(-h)): "
        "h is only its first-order term.",
        "no correction (a DDIM step)": "with D = D(x_t) alone this is DDIM: use the line through D(x_t) and D_prev.",
    }
    gen, cases, wrong = _seeded(10), {}, {}
    ddpm = DDPM(num_steps=1000)
    schedule = DiscreteVPSchedule(ddpm)
    model = ExactMixtureModel(target_density("mixture"), schedule, prediction="eps")  # the ideal eps-network
    noise = torch.randn(200, 2, generator=gen, dtype=torch.float64)
    ts = ddim_times(ddpm, 20, dtype=torch.float64)  # 20 >= 15 steps: the library's last step is not shortened
    case = "a 20-step sampler"
    cases[case] = (
        _sample_2m(answer, model, noise, schedule, ts),
        dpm_solver_2m(model, noise, schedule, ts).final,
    )
    wrong[case] = {  # the same sampler with each slip's update
        slip: _sample_2m(lambda *args, slip=slip: _updates_2m(*args)[slip], model, noise, schedule, ts)
        for slip in hints
    }
    vp = VPSchedule()
    for i, (t_prev, t, s) in enumerate(((0.1, 0.3, 0.35), (0.4, 0.45, 0.7), (0.2, 0.6, 0.95))):
        c = vp(torch.tensor([t_prev, t, s], dtype=torch.float64))
        lam = torch.log(c.alpha / c.sigma)  # the half log-SNR l at the three times
        x, d_now, d_prev = (torch.randn(64, 2, generator=gen, dtype=torch.float64) for _ in range(3))
        args = (x, d_now, d_prev, c.alpha[2], c.sigma[2], c.sigma[1], lam[2] - lam[1], lam[1] - lam[0])
        table = _updates_2m(*args)
        case = f"random step {i + 1} (t = {t} -> s = {s})"
        got = answer(*(a.clone() for a in args))
        cases[case] = (_tensor(got, x.shape, "dpm_solver_2m_update's x_s"), table.pop(None))
        wrong[case] = table
    return _judge(
        "dpm_solver_2m_update",
        "In a 20-step sampler of an exact eps-model, against lessons.dpm_solver.dpm_solver_2m, and on 3 random steps",
        cases,
        1e-8,
        hints,
        wrong,
        "x_s = (sigma_s / sigma_t) x + alpha_s (1 - e^(-h)) D, D = (1 + 1/(2r)) d_now - 1/(2r) d_prev, r = h_prev / h.",
    )


def _check_mean_flow_target(answer) -> Feedback:
    torch.manual_seed(10)  # the network's weights (review runs checks inside torch.random.fork_rng)
    model = AverageVelocityMLP(dim=2, hidden=32, depth=2, time_dim=8).double()
    gen, cases, wrong = _seeded(11), {}, {}
    for case in ("batch 1", "batch 2"):
        x, velocity = (torch.randn(128, 2, generator=gen, dtype=torch.float64) for _ in range(2))
        a, b = torch.rand(2, 128, generator=gen, dtype=torch.float64)
        s, t = torch.minimum(a, b), torch.maximum(a, b)
        got = answer(model, x.clone(), s.clone(), t.clone(), velocity.clone())
        _, du_ds = mean_flow_jvp(model, x, s, t, velocity)
        gap = (t - s)[:, None]
        cases[case] = (_tensor(got, x.shape, "mean_flow_target"), (velocity + gap * du_ds).detach())

        def along(tangents, x=x, s=s, t=t):  # the derivative of u(x, s, t) along other tangents
            return torch.func.jvp(lambda x, s, t: model(x, s, t), (x, s, t), tangents)[1].detach()

        zero, one = torch.zeros_like(s), torch.ones_like(s)
        wrong[case] = {
            "(s - t) where (t - s) belongs": (velocity - gap * du_ds).detach(),
            "the tangent (velocity, 0, 0): the d/ds term left out": velocity
            + gap * along((velocity, zero, zero)),
            "the tangent (velocity, 0, 1): d/dt where d/ds belongs": velocity
            + gap * along((velocity, zero, one)),
            "the tangent (0, 1, 0): the transport term left out": velocity
            + gap * along((torch.zeros_like(x), one, zero)),
            "the target without v": (gap * du_ds).detach(),
        }
    hints = {
        "(s - t) where (t - s) belongs": "differentiate (t - s) u = x_t - x_s in s: -u + (t - s) du/ds = -v, so "
        "u = v + (t - s) du/ds.",
        "the tangent (velocity, 0, 0): the d/ds term left out": "u depends on s directly too: the tangent of s is 1.",
        "the tangent (velocity, 0, 1): d/dt where d/ds belongs": "t stays fixed when x_s slides along the flow: the "
        "tangents are (velocity, 1, 0) for (x, s, t).",
        "the tangent (0, 1, 0): the transport term left out": "x moves with s along the flow, dx/ds = v: the tangent "
        "of x is the velocity.",
        "the target without v": "the identity is u = v + (t - s) du/ds: add the velocity.",
    }
    return _judge(
        "mean_flow_target",
        "On 2 random batches with a fixed AverageVelocityMLP, against lessons.mean_flow.mean_flow_jvp",
        cases,
        1e-6,
        hints,
        wrong,
        "du/ds = torch.func.jvp(model, (x, s, t), (velocity, 1, 0))[1]; the target is v + (t - s) du/ds.",
    )


GAUSSIANS = (
    ([1.5, -0.5], 0.5),
    ([0.5, 2.0, -1.0], 2.0),
    ([-1.0, 0.25], 0.0625),
)  # (mean, std), exact in float32


@functools.cache  # the same seeded inputs at every run: the RK4 reference is computed once a session
def _gaussian_references() -> tuple:
    """For each target of GAUSSIANS: (mean (D,), std, x (B, D), s (B,), t (B,), the average velocity (B, D))."""
    gen, out = _seeded(12), []
    for mean, std in GAUSSIANS:
        mean = torch.tensor(mean, dtype=torch.float64)
        n, dim = 100, mean.shape[0]
        x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
        s = 0.9 * torch.rand(n, generator=gen, dtype=torch.float64)
        t = s + (1 - s) * (0.05 + 0.95 * torch.rand(n, generator=gen, dtype=torch.float64))  # t - s >= 0.005
        exact = ExactMixtureModel(GaussianMixture(mean[None], std), LinearSchedule(), prediction="velocity")

        # the exact marginal velocity integrated from s to t: in tau in [0, 1] (solve_ode's t), each row's time
        # is s + tau (t - s), so that one RK4 solve runs every row over its own interval
        def field(x, t, cond=None, start=s, end=t, exact=exact):
            return (end - start)[:, None] * exact(x=x, t=start + t * (end - start))

        x_t = solve_ode(field, x, steps=256, method="rk4").final
        out.append((mean, std, x, s, t, (x_t - x) / (t - s)[:, None]))
    return tuple(out)


def _check_gaussian_average_velocity(answer) -> Feedback:
    cases, wrong = {}, {}
    for mean, std, x, s, t, want in _gaussian_references():
        case = f"N(mean, {std}^2 I) in {mean.shape[0]}D"
        got = answer(x.clone(), s.clone(), t.clone(), mean.clone(), std)
        cases[case] = (_tensor(got, x.shape, "gaussian_average_velocity"), want)
        s_, t_ = s[:, None], t[:, None]  # (B, 1)
        # sigma_t / sigma_s, and the same ratio of the slip's sigma_tau = tau std + (1 - tau)
        ratio = ((t_**2 * std**2 + (1 - t_) ** 2) / (s_**2 * std**2 + (1 - s_) ** 2)).sqrt()
        linear_ratio = (t_ * std + 1 - t_) / (s_ * std + 1 - s_)
        x_t = t_ * mean + ratio * (x - s_ * mean)
        wrong[case] = {
            "sigma_s / sigma_t where sigma_t / sigma_s belongs": (t_ * mean + (x - s_ * mean) / ratio - x)
            / (t_ - s_),
            "the mean term left out": (ratio * x - x) / (t_ - s_),
            "divided by t where t - s belongs": (x_t - x) / t_,
            "sigma_tau = tau std + (1 - tau)": (t_ * mean + linear_ratio * (x - s_ * mean) - x) / (t_ - s_),
        }
    hints = {
        "sigma_s / sigma_t where sigma_t / sigma_s belongs": "the flow carries the spread sigma_s at time s to "
        "sigma_t: x_t - t mean = (sigma_t / sigma_s)(x_s - s mean).",
        "the mean term left out": "the flow map moves the centre too: x_t = t mean + (sigma_t / sigma_s)(x_s - s mean).",
        "divided by t where t - s belongs": "the average is over the interval [s, t]: divide x_t - x_s by t - s.",
        "sigma_tau = tau std + (1 - tau)": "independent parts add variances: sigma_tau^2 = tau^2 std^2 + (1 - tau)^2.",
    }
    return _judge(
        "gaussian_average_velocity",
        "On 3 Gaussian targets at 100 random intervals each, against their exact marginal velocity "
        "(lessons.mixture.ExactMixtureModel) integrated from s to t by RK4 (256 steps)",
        cases,
        1e-7,
        hints,
        wrong,
        "x_t = t mean + (sigma_t / sigma_s)(x_s - s mean), sigma_tau = sqrt(tau^2 std^2 + (1 - tau)^2); "
        "u = (x_t - x_s) / (t - s).",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "dpm_solver_2m_update": _check_dpm_solver_2m_update,
    "mean_flow_target": _check_mean_flow_target,
    "gaussian_average_velocity": _check_gaussian_average_velocity,
}
