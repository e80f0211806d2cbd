"""The checks of lesson 02b's exercises: the score from a velocity, an annealed Langevin step, MALA's acceptance."""

import functools
import math

import torch

from lessons.data2d import target_density
from lessons.exercise_checks import Feedback, _gap, _judge, _seeded, _tensor
from lessons.langevin import annealed_langevin, snr_step_size
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.schedules import CosineSchedule, LinearSchedule, VPSchedule

LESSON = "02b_score_matching"  # the lesson's file name, and that of its solutions file solutions/02b_score_matching.py


# section 8's noise = x - t u, with alpha for t and sigma or 1 - alpha for 1 - t
LINEAR_SIGMA = "the linear path's -(x - t u) / (1 - t) on every path, as -(x - alpha u) / sigma"
LINEAR_ALPHA = "the linear path's -(x - t u) / (1 - t) on every path, as -(x - alpha u) / (1 - alpha)"


def _check_score_from_velocity(answer) -> Feedback:
    mixture, gen, cases, wrong = target_density("8gaussians"), _seeded(21), {}, {}
    t = 0.05 + 0.9 * torch.rand(200, generator=gen, dtype=torch.float64)
    for case, schedule in (("linear", LinearSchedule()), ("VP", VPSchedule()), ("cosine", CosineSchedule())):
        c = schedule(t)
        x = mixture.sample_noised(200, c.alpha, c.sigma, generator=gen, dtype=torch.float64)  # x ~ p_t
        u = ExactMixtureModel(mixture, schedule, prediction="velocity")(x=x, t=t)  # the exact marginal field
        a, s, da, ds = (v[:, None] for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma))  # (B, 1)
        got = answer(u.clone(), x.clone(), a.clone(), s.clone(), da.clone(), ds.clone())
        # the reference: grad log p_t of the noised mixture in closed form, not through any conversion
        cases[case] = (_tensor(got, x.shape, "score_from_velocity"), mixture.score(x, c.alpha, c.sigma))
        noise = (a * u - da * x) / (a * ds - da * s)  # E[noise | x], solved from x and u
        wrong[case] = {
            LINEAR_SIGMA: -(x - a * u) / s,
            LINEAR_ALPHA: -(x - a * u) / (1 - a),
            "+E[noise | x] / sigma, the sign flipped": noise / s,
            "E[noise | x] divided by sigma^2": -noise / s**2,
            "-E[noise | x] without the division by sigma": -noise,
        }
    linear_hint = (
        "noise = x - t u holds on the linear path only (d_alpha = 1, d_sigma = -1): solve x = alpha data + "
        "sigma noise and u = d_alpha data + d_sigma noise."
    )
    hints = {
        LINEAR_SIGMA: linear_hint,
        LINEAR_ALPHA: linear_hint,
        "+E[noise | x] / sigma, the sign flipped": "the score points from x back towards the data, against the noise: "
        "score = -E[noise | x] / sigma.",
        "E[noise | x] divided by sigma^2": "-(x - alpha data) / sigma^2 = -noise / sigma: once (x - alpha data) is "
        "written as sigma noise, one sigma is left.",
        "-E[noise | x] without the division by sigma": "that is the eps-prediction; the score is -eps / sigma.",
    }
    return _judge(
        "score_from_velocity",
        "At 200 points of p_t on the linear, VP and cosine paths, with the exact velocity, against the closed-form "
        "score of the noised mixture (lessons.mixture.GaussianMixture.score)",
        cases,
        1e-6,
        hints,
        wrong,
        "noise = (alpha u - d_alpha x) / (alpha d_sigma - d_alpha sigma), then score = -noise / sigma.",
    )


def _langevin_steps(x, s, z, snr) -> dict:
    """The annealed Langevin step x + h s + sqrt(2 h) z (key None) and what each common slip returns instead."""
    ratio = z.norm(dim=1).mean() / s.norm(dim=1).mean()  # mean ||z|| / mean ||s||
    h = 2 * (snr * ratio) ** 2
    own = 2 * (snr * z.norm(dim=1, keepdim=True) / s.norm(dim=1, keepdim=True)) ** 2  # (B, 1)
    squares = 2 * snr**2 * (z**2).sum(1).mean() / (s**2).sum(1).mean()
    return {
        None: x + h * s + (2 * h).sqrt() * z,
        "h from each chain's own norms, not the batch's mean norms": x + own * s + (2 * own).sqrt() * z,
        "sqrt(h) z where sqrt(2 h) z belongs": x + h * s + h.sqrt() * z,
        "h without the factor 2": x + h / 2 * s + h.sqrt() * z,
        "mean ||score|| / mean ||z||, the ratio inverted": x
        + 2 * (snr / ratio) ** 2 * s
        + 2 * snr / ratio * z,
        "the mean squared norms where the squared mean norms belong": x
        + squares * s
        + (2 * squares).sqrt() * z,
    }


def _annealed(step, model, x, ts, steps_per_level, snr, generator) -> torch.Tensor:
    """The lesson's my_annealed_langevin, each Langevin step taken by step(x, score, z, snr), (B, D)."""
    for t_value in ts[1:].tolist():
        t = torch.full((len(x),), t_value, dtype=x.dtype)
        for _ in range(steps_per_level):
            s = model(x=x, t=t)
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = _tensor(step(x.clone(), s.clone(), z.clone(), snr), x.shape, "snr_langevin_step's x")
            if not bool(torch.isfinite(x).all()):
                return x  # NaN or inf: off by infinitely much, without sampling on from it
    return x


SNR, STEP_TOL = 0.16, 1e-8  # Song et al.'s signal-to-noise ratio (the lesson's); the check's tolerance


@functools.cache  # the same seeded inputs at every run: the library's chains are computed once a session
def _annealed_reference() -> tuple:
    """(the exact score model of the 8-Gaussians on VP, start (300, 2), ts (7,), annealed_langevin's chains)."""
    vp = VPSchedule()
    model = ExactMixtureModel(target_density("8gaussians"), vp, prediction="score")  # the exact score of p_t
    start = torch.randn(300, 2, generator=_seeded(22), dtype=torch.float64)  # p_0: about N(0, I) on VP
    ts = torch.linspace(0, 0.9, 7, dtype=torch.float64)
    want = annealed_langevin(model, start, vp, ts, 5, SNR, "score", generator=_seeded(23)).final
    return model, start, ts, want


def _check_snr_langevin_step(answer) -> Feedback:
    hints = {
        "h from each chain's own norms, not the batch's mean norms": "Song et al.'s rule averages the norms over the "
        "batch first: one step size h for every chain of the level.",
        "sqrt(h) z where sqrt(2 h) z belongs": "Langevin is dX = score ds + sqrt(2) dW: the noise of a step of size h "
        "has standard deviation sqrt(2 h).",
        "h without the factor 2": "h = 2 (r mean ||z|| / mean ||score||)^2: the 2 makes the drift h ||score|| equal to "
        "r times the noise sqrt(2 h) ||z||.",
        "mean ||score|| / mean ||z||, the ratio inverted": "a steep score (a narrow law) needs a small step: the "
        "score's norm goes in the denominator.",
        "the mean squared norms where the squared mean norms belong": "average the norms ||z|| and ||score|| over the "
        "batch, then square their ratio.",
    }
    gen, cases, wrong = _seeded(25), {}, {}
    model, start, ts, want = _annealed_reference()
    case = "annealed Langevin, 6 levels of 5 steps"
    run = functools.partial(_annealed, model=model, x=start, ts=ts, steps_per_level=5, snr=SNR)
    cases[case] = (run(answer, generator=_seeded(23)), want)
    if _gap(*cases[case]) > STEP_TOL:  # the same sampler with each slip's step, only where the answer is off
        wrong[case] = {
            slip: run(lambda *args, slip=slip: _langevin_steps(*args)[slip], generator=_seeded(23))
            for slip in hints
        }
    for i, (scale, snr_i) in enumerate(((0.5, 0.16), (3.0, 0.05), (20.0, 0.3))):
        x, z = (torch.randn(64, 2, generator=gen, dtype=torch.float64) for _ in range(2))
        s = scale * torch.randn(64, 2, generator=gen, dtype=torch.float64) * torch.rand(64, 1, generator=gen)
        table = _langevin_steps(x, s, z, snr_i)
        h = snr_step_size(s, z, snr_i)  # the library's step size
        case = f"random step {i + 1} (snr {snr_i}, score of size {scale})"
        got = answer(x.clone(), s.clone(), z.clone(), snr_i)
        cases[case] = (_tensor(got, x.shape, "snr_langevin_step's x"), x + h * s + math.sqrt(2 * h) * z)
        table.pop(None)
        wrong[case] = table
    return _judge(
        "snr_langevin_step",
        "In annealed Langevin (300 chains) on the exact score of the 8-Gaussians' p_t, against "
        "lessons.langevin.annealed_langevin, and on 3 random steps against lessons.langevin.snr_step_size",
        cases,
        STEP_TOL,
        hints,
        wrong,
        "h = 2 (snr mean ||z|| / mean ||score||)^2 with norms per chain averaged over the batch; x + h score + "
        "sqrt(2 h) z.",
    )


def _log_q(to, start, score_at_start, h, variance=None):
    """log N(to; start + h score(start), 2 h I) (or that variance) summed over coordinates, (B,), by torch.distributions."""
    proposal = torch.distributions.Normal(
        start + h * score_at_start, math.sqrt(2 * h if variance is None else variance)
    )
    return proposal.log_prob(to).sum(1)


def _check_mala_log_acceptance(answer) -> Feedback:
    gen, cases, wrong = _seeded(24), {}, {}
    targets = (
        ("8-Gaussians", target_density("8gaussians"), 0.05),
        ("8-Gaussians", target_density("8gaussians"), 0.6),
        ("the skewed mixture", target_density("mixture"), 0.2),
        ("a 3D Gaussian", GaussianMixture([[0.5, -1.0, 2.0]], 0.7), 0.3),
    )
    for name, mixture, h in targets:
        x = mixture.sample(200, generator=gen).double()
        x = x + 0.5 * torch.randn(x.shape, generator=gen, dtype=torch.float64)  # some points off the modes
        s_x = mixture.score(x)
        x_new = x + h * s_x + math.sqrt(2 * h) * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        s_new = mixture.score(x_new)
        got = answer(x.clone(), x_new.clone(), mixture.log_prob, mixture.score, h)
        lp_x, lp_new = mixture.log_prob(x), mixture.log_prob(x_new)
        forward, backward = _log_q(x_new, x, s_x, h), _log_q(x, x_new, s_new, h)
        case = f"{name}, h = {h}"
        want = lp_new - lp_x + backward - forward
        cases[case] = (_tensor(got, (200,), "mala_log_acceptance"), want)
        wrong[case] = {
            "the proposal terms left out (random-walk Metropolis)": lp_new - lp_x,
            "q(x' | x) and q(x | x') swapped": lp_new - lp_x + forward - backward,
            "the proposal's variance h where 2 h belongs": lp_new
            - lp_x
            + _log_q(x, x_new, s_new, h, variance=h)
            - _log_q(x_new, x, s_x, h, variance=h),
            "both proposals centred with the score at x": lp_new - lp_x + _log_q(x, x_new, s_x, h) - forward,
            "min(0, log r): the log of the acceptance probability": want.clamp(max=0.0),
        }
    hints = {
        "the proposal terms left out (random-walk Metropolis)": "Langevin's proposal is not symmetric, q(x' | x) != "
        "q(x | x'): add log q(x | x') - log q(x' | x).",
        "q(x' | x) and q(x | x') swapped": "the ratio is p(x') q(x | x') / (p(x) q(x' | x)): the reverse move "
        "x' -> x goes in the numerator.",
        "the proposal's variance h where 2 h belongs": "the Langevin proposal adds sqrt(2 h) z, so "
        "q(x' | x) = N(x'; x + h score(x), 2 h I).",
        "both proposals centred with the score at x": "the reverse move starts at x': q(x | x') is centred at "
        "x' + h score(x').",
        "min(0, log r): the log of the acceptance probability": "return log r itself; the accept step compares it "
        "with log u, u ~ U(0, 1).",
    }
    return _judge(
        "mala_log_acceptance",
        "At 200 Langevin proposals on each of 4 cases (3 targets, 2 step sizes on one), against the ratio "
        "written with torch.distributions.Normal's log densities",
        cases,
        1e-8,
        hints,
        wrong,
        "log r = log p(x') - log p(x) + log q(x | x') - log q(x' | x), q(b | a) = N(b; a + h score(a), 2 h I).",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "score_from_velocity": _check_score_from_velocity,
    "snr_langevin_step": _check_snr_langevin_step,
    "mala_log_acceptance": _check_mala_log_acceptance,
}
