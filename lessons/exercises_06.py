"""The checks of lesson 06's exercises: a diffusion eps-model as a flow on the linear path, the weighting of the
velocity loss, and the flow's schedule from the SDE's (f, g)."""

import torch

from lessons.conversions import change_schedule
from lessons.data2d import target_density
from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor, _WrongKind
from lessons.mixture import ExactMixtureModel
from lessons.schedules import CosineSchedule, LinearSchedule, RescaledSchedule, VPSchedule
from lessons.sde import sde_coefficients
from lessons.weighting import implied_weighting

LESSON = "06_two_sides"  # the lesson's file name, and that of its solutions file solutions/06_two_sides.py


def _eps_net(x, t, cond=None):
    """A fixed smooth stand-in for an eps-network, (B, 2): not linear in x, so a wrong scale of x shows."""
    return torch.tanh(x @ torch.tensor([[0.8, -0.5], [0.3, 1.1]], dtype=x.dtype) + t[:, None])


def _linear_velocities(model, schedule, x, t) -> dict:
    """The velocity on the linear path (key None) and what each common slip returns instead, each (B, D)."""
    lam = 2 * (torch.log(t) - torch.log1p(-t))  # the linear path's log-SNR
    t_src = schedule.time_at_log_snr(lam)  # the source's time of the same log-SNR

    def velocity(time, scale, towards_data, recover_from=None):
        c = schedule(time)
        a, s = c.alpha[:, None], c.sigma[:, None]
        x_in = x * (a + s) if scale == "times" else x / (a + s) if scale == "over" else x
        eps = model(x=x_in, t=time)
        data = ((x_in if recover_from is None else recover_from) - s * eps) / a
        return data - eps if towards_data else eps - data

    return {
        None: velocity(t_src, "times", True),
        "x not rescaled: the model fed x, not (alpha' + sigma') x": velocity(t_src, "none", True),
        "the linear path's t given to the model, not the time of equal log-SNR": velocity(t, "times", True),
        "x divided by (alpha' + sigma'), not multiplied": velocity(t_src, "over", True),
        "the data recovered from x, not from the x' the model saw": velocity(
            t_src, "times", True, recover_from=x
        ),
        "noise - data, the blog's direction": velocity(t_src, "times", False),
    }


def _check_linear_velocity_from_eps(answer) -> Feedback:
    mixture, lin, gen = target_density("mixture"), LinearSchedule(), _seeded(60)
    exact_lin = ExactMixtureModel(mixture, lin, prediction="velocity")  # the linear path's own exact field
    cases, wrong = {}, {}
    for case, schedule, model in (
        ("cosine, the exact eps-model", CosineSchedule(), None),
        ("VP, a fixed eps-network", VPSchedule(), _eps_net),
        ("VP-rescaled linear, the exact eps-model", RescaledSchedule(lin), None),
    ):
        model = ExactMixtureModel(mixture, schedule, prediction="eps") if model is None else model
        t = 0.05 + 0.9 * torch.rand(200, generator=gen, dtype=torch.float64)
        noise = torch.randn(200, 2, generator=gen, dtype=torch.float64)
        data = mixture.sample(200, generator=gen).double()
        x = t[:, None] * data + (1 - t[:, None]) * noise  # points x_t of the linear path
        got = answer(model, schedule, x.clone(), t.clone())
        if isinstance(model, ExactMixtureModel):  # independent of the change of variables: the exact field
            want = exact_lin(x=x, t=t)
        else:
            want = change_schedule(model, source=schedule, target=lin, prediction="eps", output="velocity")(
                x=x, t=t
            )
        cases[case] = (_tensor(got, x.shape, "linear_velocity_from_eps"), want)
        wrong[case] = _linear_velocities(model, schedule, x, t)
        wrong[case].pop(None)
    hints = {
        "x not rescaled: the model fed x, not (alpha' + sigma') x": "on the source path x' = alpha' data + sigma' noise "
        "= (alpha' + sigma') x, since the linear path's alpha + sigma is 1: feed the model x'.",
        "the linear path's t given to the model, not the time of equal log-SNR": "the model knows its own clock: "
        "find t' with schedule.time_at_log_snr(lambda), lambda = 2 log(t / (1 - t)) the linear path's log-SNR.",
        "x divided by (alpha' + sigma'), not multiplied": "x_lin = x' / (alpha' + sigma'), so the model's input is "
        "x' = (alpha' + sigma') x.",
        "the data recovered from x, not from the x' the model saw": "eps_hat belongs to x': the data estimate is "
        "(x' - sigma' eps_hat) / alpha', with the x' you fed the model.",
        "noise - data, the blog's direction": "in the course's time the flow runs from noise (t = 0) to data (t = 1): "
        "the linear path's velocity is data_hat - eps_hat.",
    }
    return _judge(
        "linear_velocity_from_eps",
        "At 200 points of the linear path for 3 source schedules, against the exact marginal field of the linear "
        "path (lessons.mixture.ExactMixtureModel) and lessons.conversions.change_schedule",
        cases,
        1e-8,
        hints,
        wrong,
        "t' = schedule.time_at_log_snr(2 log(t / (1 - t))), x' = (alpha' + sigma') x, eps_hat = eps_model(x=x', "
        "t=t'), data_hat = (x' - sigma' eps_hat) / alpha'; return data_hat - eps_hat.",
    )


def _weightings(alpha, sigma, d_alpha, d_sigma) -> dict:
    """w(lambda_t) of the velocity MSE, (B,) (key None), and what each common slip returns instead."""
    rate = 2 * (d_alpha / alpha - d_sigma / sigma)  # d lambda / dt
    error = d_sigma - d_alpha * sigma / alpha  # u_hat - u = error (eps_hat - eps) at a fixed x_t
    return {
        None: error**2 / rate,
        "the error factor not squared": error / rate,
        "d lambda / dt without its factor 2": error**2 / (rate / 2),
        "the factor not divided by d lambda / dt": error**2,
        "the sign of the d_alpha sigma / alpha term flipped": (d_sigma + d_alpha * sigma / alpha) ** 2 / rate,
        "flow matching's e^(-lambda / 2) / 2 on every schedule": 0.5 * sigma / alpha,
    }


def _check_velocity_loss_weighting(answer) -> Feedback:
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    lin = LinearSchedule()
    bumped = RescaledSchedule(lin, scale=lambda t: (1 + t * (1 - t), 1 - 2 * t))  # not variance preserving
    cases, wrong = {}, {}
    for case, schedule in (
        ("linear", lin),
        ("cosine", CosineSchedule()),
        ("VP", VPSchedule()),
        ("linear times 1 + t (1 - t)", bumped),
    ):
        c = schedule(t)
        got = answer(c.alpha.clone(), c.sigma.clone(), c.d_alpha.clone(), c.d_sigma.clone())
        cases[case] = (
            _tensor(got, t.shape, "velocity_loss_weighting"),
            implied_weighting("velocity", schedule, t),
        )
        wrong[case] = _weightings(c.alpha, c.sigma, c.d_alpha, c.d_sigma)
        wrong[case].pop(None)
    hints = {
        "the error factor not squared": "the loss is a squared norm: ||u_hat - u||^2 = (d_sigma - d_alpha sigma / "
        "alpha)^2 ||eps_hat - eps||^2.",
        "d lambda / dt without its factor 2": "lambda = log(alpha^2 / sigma^2) = 2 log(alpha / sigma): d lambda / dt = "
        "2 (d_alpha / alpha - d_sigma / sigma).",
        "the factor not divided by d lambda / dt": "w is a density in lambda: with t ~ U[0, 1], dt = d lambda / (d lambda "
        "/ dt), so divide the factor by d lambda / dt.",
        "the sign of the d_alpha sigma / alpha term flipped": "at a fixed x_t, data_hat - data = -(sigma / alpha)(eps_hat "
        "- eps): u_hat - u = (d_sigma - d_alpha sigma / alpha)(eps_hat - eps).",
        "flow matching's e^(-lambda / 2) / 2 on every schedule": "e^(-lambda / 2) / 2 is the linear path's weighting; "
        "on another schedule write the factor and d lambda / dt with its own alpha, sigma and derivatives.",
    }
    return _judge(
        "velocity_loss_weighting",
        "At 19 times on the linear, cosine, VP and a rescaled linear schedule, against "
        "lessons.weighting.implied_weighting('velocity', ...)",
        cases,
        1e-8,
        hints,
        wrong,
        "factor = (d_sigma - d_alpha sigma / alpha)^2, d lambda / dt = 2 (d_alpha / alpha - d_sigma / sigma); "
        "w = factor / (d lambda / dt).",
    )


def _integrals(y, ts):
    """int_{t_i}^1 y and int_{ts[0]}^{t_i} y for every grid point t_i, each (N,), by the trapezoid rule."""
    pieces = 0.5 * (ts[1:] - ts[:-1]) * (y[1:] + y[:-1])  # (N - 1,)
    zero = torch.zeros(1, dtype=y.dtype)
    return torch.cat([pieces.flip(0).cumsum(0).flip(0), zero]), torch.cat([zero, pieces.cumsum(0)])


def _schedules_from_sde(ts, f, g) -> dict:
    """(alpha, sigma) concatenated, (2N,), of the trapezoid rule (key None) and of each common slip."""

    def table(log_alpha, tail_of, g_power=2, inner_alpha=True, root=True):
        alpha = torch.exp(log_alpha)
        inner = g**g_power / alpha**2 if inner_alpha else g**g_power
        var = (alpha**2 if inner_alpha else 1) * tail_of(inner)
        return torch.cat([alpha, var.sqrt() if root else var])

    tail, head = (lambda y, k=k: _integrals(y, ts)[k] for k in (0, 1))
    return {
        None: table(-tail(f), tail),
        "integrated from the noise end ts[0], not from the data end t = 1": table(-head(f), head),
        "exp(+int f): the sign of the exponent flipped": table(tail(f), tail),
        "g where g^2 belongs": table(-tail(f), tail, g_power=1),
        "sigma^2 = int g^2, without the alpha factors": table(-tail(f), tail, inner_alpha=False),
        "sigma^2 returned in place of sigma": table(-tail(f), tail, root=False),
    }


def _check_schedule_from_sde(answer) -> Feedback:
    cases, wrong = {}, {}
    for case, schedule, t_min in (
        ("VP (DDPM's betas) on [0, 1]", VPSchedule(), 0.0),
        ("cosine on [0.1, 1]", CosineSchedule(), 0.1),
        ("VP-rescaled linear on [0.1, 1]", RescaledSchedule(LinearSchedule()), 0.1),
    ):
        ts = torch.linspace(t_min, 1.0, 1001, dtype=torch.float64)
        k = sde_coefficients(schedule, ts)  # (f, g) from the closed-form schedule
        out = answer(ts.clone(), k.f.clone(), k.g.clone())
        if not (isinstance(out, tuple) and len(out) == 2):
            raise _WrongKind(
                f"schedule_from_sde should return a pair (alpha, sigma), got {type(out).__name__}."
            )
        got = torch.cat([_tensor(out[0], ts.shape, "alpha"), _tensor(out[1], ts.shape, "sigma")])
        c = schedule(ts)
        cases[case] = (got, torch.cat([c.alpha, c.sigma]))
        wrong[case] = _schedules_from_sde(ts, k.f, k.g)
        wrong[case].pop(None)
    hints = {
        "integrated from the noise end ts[0], not from the data end t = 1": "what is known is the data end, alpha(1) = 1 "
        "and sigma(1) = 0: integrate from t to 1, int_t^1, so that the value at t = 1 is 0.",
        "exp(+int f): the sign of the exponent flipped": "f = d log alpha / dt and log alpha(1) = 0, so log alpha(t) = "
        "-int_t^1 f: alpha grows towards the data.",
        "g where g^2 belongs": "the variance grows with the square of the diffusion: integrate g^2 / alpha^2.",
        "sigma^2 = int g^2, without the alpha factors": "d(sigma^2 / alpha^2)/dt = -g^2 / alpha^2: sigma^2 = alpha^2 "
        "int_t^1 g^2 / alpha^2, the noise added at r shrunk by the signal's growth since.",
        "sigma^2 returned in place of sigma": "return sigma, the square root of alpha^2 int_t^1 g^2 / alpha^2.",
    }
    return _judge(
        "schedule_from_sde",
        "On grids of 1001 times for the VP, cosine and VP-rescaled linear SDEs, against each schedule's closed-form "
        "alpha and sigma (the trapezoid rule itself errs by about 2e-5 there)",
        cases,
        1e-4,
        hints,
        wrong,
        "log alpha(t) = -int_t^1 f and sigma(t)^2 = alpha(t)^2 int_t^1 g^2 / alpha^2, both integrals by the "
        "trapezoid rule from the grid point t to the end t = 1 (a rectangle rule errs by about 5e-3 here).",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "linear_velocity_from_eps": _check_linear_velocity_from_eps,
    "velocity_loss_weighting": _check_velocity_loss_weighting,
    "schedule_from_sde": _check_schedule_from_sde,
}
