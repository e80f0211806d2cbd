"""The checks of lesson 04's exercises: a Gaussian path's velocity, the OT-CFM loss, the CFM - FM constant."""

import math

import torch

from lessons.data2d import target_density
from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor, _WrongKind, _z_judge
from lessons.flow_matching import cfm_loss
from lessons.mixture import ExactMixtureModel
from lessons.models import MLP
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule, VESchedule, VPSchedule

LESSON = (
    "04_flow_matching"  # the lesson's file name, and that of its solutions file solutions/04_flow_matching.py
)


def _check_gaussian_path_velocity(answer) -> Feedback:
    gen, cases, wrong = _seeded(5), {}, {}
    t = torch.linspace(0.02, 0.95, 100, dtype=torch.float64)
    for case, schedule in (("OT", LinearSchedule()), ("VP", VPSchedule()), ("VE", VESchedule())):
        noise, data = (torch.randn(100, 2, generator=gen, dtype=torch.float64) for _ in range(2))
        sample = GaussianPath(schedule).sample(noise, data, t)  # x_t and d x_t / dt
        c = schedule(t)
        a, s, da, ds = (v[:, None] for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma))  # (B, 1)
        got = answer(sample.x_t.clone(), data.clone(), a.clone(), s.clone(), da.clone(), ds.clone())
        cases[case] = (_tensor(got, data.shape, "gaussian_path_velocity"), sample.velocity)
        x = sample.x_t
        wrong[case] = {
            "d_alpha / alpha where d_sigma / sigma belongs": da * data + da / a * (x - a * data),
            "alpha data - x where x - alpha data belongs": da * data + ds / s * (a * data - x),
            "(x - alpha data) not divided by sigma": da * data + ds * (x - a * data),
            "the d_alpha data term left out": ds / s * (x - a * data),
            "OT's data - noise on every path": data - (x - a * data) / s,
        }
    hints = {
        "d_alpha / alpha where d_sigma / sigma belongs": "the factor in front of (x - alpha data) is d_sigma / sigma: it moves the noise part.",
        "alpha data - x where x - alpha data belongs": "x - alpha data = sigma noise: the noise part enters with a plus sign.",
        "(x - alpha data) not divided by sigma": "(x - alpha data) / sigma is the noise; the velocity is d_alpha data + d_sigma noise.",
        "the d_alpha data term left out": "the mean alpha data moves too: add d_alpha data.",
        "OT's data - noise on every path": "data - noise holds for OT only (d_alpha = 1, d_sigma = -1): use the derivatives.",
    }
    return _judge(
        "gaussian_path_velocity",
        "At 100 times on the OT, VP and VE paths, against lessons.paths.GaussianPath's velocity",
        cases,
        1e-6,
        hints,
        wrong,
        "write noise = (x - alpha data) / sigma, then u = d_alpha data + d_sigma noise.",
    )


def _check_ot_cfm_loss(answer) -> Feedback:
    torch.manual_seed(6)  # the network's weights (review runs checks inside torch.random.fork_rng)
    model, path, gen = MLP(dim=2, hidden=32, depth=2), GaussianPath(LinearSchedule()), _seeded(6)
    cases, wrong = {}, {}
    for case in ("batch 1", "batch 2"):
        data, noise = torch.randn(256, 2, generator=gen) * 2, torch.randn(256, 2, generator=gen)
        t = torch.rand(256, generator=gen)
        got = answer(model, data.clone(), noise.clone(), t.clone())
        if not (isinstance(got, torch.Tensor) and got.requires_grad):
            raise _WrongKind(
                "It returns a loss without a graph, so training could not take its gradient: return the tensor "
                "itself (no .item(), no torch.no_grad())."
            )
        cases[case] = (
            _tensor(got, (), "ot_cfm_loss"),
            cfm_loss(model, path, data, noise=noise, t=t).detach(),
        )
        tc = t[:, None]
        with torch.no_grad():
            out = model(x=tc * data + (1 - tc) * noise, t=t)
            swapped = model(x=tc * noise + (1 - tc) * data, t=t)
        wrong[case] = {
            "noise - data as the target": ((out - (noise - data)) ** 2).mean(),
            "x_t = t noise + (1 - t) data": ((swapped - (data - noise)) ** 2).mean(),
            "a sum over the 2 coordinates, not a mean": ((out - (data - noise)) ** 2).sum(1).mean(),
            "the data as the target": ((out - data) ** 2).mean(),
        }
    hints = {
        "noise - data as the target": "t = 0 is noise and t = 1 is data here: the velocity points to the data, data - noise.",
        "x_t = t noise + (1 - t) data": "x_t = t data + (1 - t) noise: at t = 1 it is the data.",
        "a sum over the 2 coordinates, not a mean": "cfm_loss is a mean over the batch and the coordinates (F.mse_loss).",
        "the data as the target": "the network predicts the velocity d x_t / dt = data - noise, not the data.",
    }
    return _judge(
        "ot_cfm_loss",
        "On 2 random batches with a fixed network, against lessons.flow_matching.cfm_loss",
        cases,
        1e-5,
        hints,
        wrong,
        "x_t = t data + (1 - t) noise; the loss is the mean of (model(x=x_t, t=t) - (data - noise))^2.",
    )


def _check_cfm_fm_constant(answer) -> Feedback:
    mixture, path, n, n_ref = target_density("mixture"), GaussianPath(LinearSchedule()), 10_000, 100_000
    exact = ExactMixtureModel(mixture, path.schedule, prediction="velocity")
    worst, slip_z = 0.0, {}
    hints = {
        "a mean over the coordinates, not a sum": "||u||^2 sums the squares of the coordinates (F.mse_loss would average them).",
        "E||u_t(x_t | data)||^2, without the marginal field": "subtract the marginal field at the same x_t: u_t(x_t | data) - u_t(x_t).",
        "E||u_t(x_t | data) - u_t(x_t)|| without the square": "the constant is a mean of squared norms.",
    }
    for t_value in (0.3, 0.8):
        torch.manual_seed(7)
        got = float(_tensor(answer(mixture, path, t_value, n), (), "cfm_fm_constant"))
        t = torch.full((n_ref,), t_value)
        sample = path.sample(
            torch.randn(n_ref, 2, generator=_seeded(8)), mixture.sample(n_ref, generator=_seeded(9)), t
        )
        diff = sample.velocity - exact(x=sample.x_t, t=t)
        per_sample = {
            None: (diff**2).sum(1),
            "a mean over the coordinates, not a sum": (diff**2).mean(1),
            "E||u_t(x_t | data)||^2, without the marginal field": (sample.velocity**2).sum(1),
            "E||u_t(x_t | data) - u_t(x_t)|| without the square": diff.norm(dim=1),
        }
        for (
            slip,
            values,
        ) in per_sample.items():  # z: the answer against each, in standard errors of both estimates
            se = values.double().std().item() * (1 / n + 1 / n_ref) ** 0.5
            z = abs(got - values.double().mean().item()) / se
            z = math.inf if math.isnan(z) else z  # a NaN answer is never within the band (max would skip it)
            if slip is None:
                worst = max(worst, z)
            else:
                slip_z[slip] = max(slip_z.get(slip, 0.0), z)
    against = f"At t = 0.3 and 0.8 with n = {n}, against the check's own estimate from {n_ref} samples"
    return _z_judge(
        "cfm_fm_constant",
        against,
        worst,
        4.5,
        hints,
        slip_z,
        "average ||path.sample(...).velocity - exact(x=x_t, t=t)||^2 over n samples.",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "gaussian_path_velocity": _check_gaussian_path_velocity,
    "ot_cfm_loss": _check_ot_cfm_loss,
    "cfm_fm_constant": _check_cfm_fm_constant,
}
