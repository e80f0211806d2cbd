"""The checks of lesson 02's exercises: one DDIM step, DDPM's posterior noise, the SDE's drift and diffusion."""

import torch

from lessons.ddim import ddim
from lessons.ddpm import DDPM
from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor, _WrongKind
from lessons.schedules import CosineSchedule, VESchedule, VPSchedule
from lessons.sde import sde_coefficients

LESSON = (
    "02_ddim_and_sdes"  # the lesson's file name, and that of its solutions file solutions/02_ddim_and_sdes.py
)


def _eps_field(x, t, cond=None):
    """A fixed smooth stand-in for an eps-network, (B, 2)."""
    return torch.tanh(x @ torch.tensor([[0.8, -0.5], [0.3, 1.1]], dtype=x.dtype) + t[:, None])


def _check_ddim_step(answer) -> Feedback:
    schedule, gen = VPSchedule(), _seeded(0)
    cases, wrong = {}, {}
    for t, s in ((0.1, 0.3), (0.4, 0.45), (0.6, 0.9), (0.05, 0.95)):
        x = torch.randn(64, 2, generator=gen, dtype=torch.float64)
        c_t, c_s = (schedule(torch.tensor([v], dtype=torch.float64)) for v in (t, s))
        a_t, s_t, a_s, s_s = (v.item() for v in (c_t.alpha, c_t.sigma, c_s.alpha, c_s.sigma))
        eps = _eps_field(x, torch.full((64,), t, dtype=torch.float64))
        want = ddim(_eps_field, x, schedule, torch.tensor([t, s], dtype=torch.float64)).final
        case = f"t = {t} -> s = {s}"
        cases[case] = (
            _tensor(answer(x.clone(), eps.clone(), a_t, s_t, a_s, s_s), x.shape, "ddim_step's x_s"),
            want,
        )
        x_hat = (x - s_t * eps) / a_t
        wrong[case] = {
            "alpha_t where alpha_s belongs": a_t * x_hat + s_s * eps,
            "sigma_t where sigma_s belongs": a_s * x_hat + s_t * eps,
            "a plus sign in the data guess": a_s * (x + s_t * eps) / a_t + s_s * eps,
            "a data guess not divided by alpha_t": a_s * (x - s_t * eps) + s_s * eps,
            "the data guess itself returned": x_hat,
        }
    hints = {
        "alpha_t where alpha_s belongs": "the data guess is brought to the signal level of the time you step to: alpha_s x_hat.",
        "sigma_t where sigma_s belongs": "the noise that stays is at the level of the new time: sigma_s eps_hat.",
        "a plus sign in the data guess": "x_t = alpha_t data + sigma_t noise, so the data guess is (x - sigma_t eps_hat) / alpha_t.",
        "a data guess not divided by alpha_t": "solve x_t = alpha_t data + sigma_t eps for the data: divide by alpha_t.",
        "the data guess itself returned": "a step goes to x_s, not to the data: re-noise the guess, alpha_s x_hat + sigma_s eps_hat.",
    }
    return _judge(
        "ddim_step",
        "On 4 random steps of a VP schedule, against lessons.ddim.ddim (eta = 0)",
        cases,
        1e-5,
        hints,
        wrong,
        "x_s = alpha_s x_hat + sigma_s eps_hat with x_hat = (x - sigma_t eps_hat) / alpha_t.",
    )


def _check_ddpm_posterior_std(answer) -> Feedback:
    ddpm = DDPM(num_steps=1000)
    abar = ddpm.alpha_bars  # (T + 1,), float64
    cases, wrong = {}, {}
    for k, j in ((500, 499), (2, 1), (1000, 900), (800, 600), (100, 20)):  # from step k to the less noisy j
        a_t, s_t, a_s, s_s = (
            v.item() for v in (abar[k].sqrt(), (1 - abar[k]).sqrt(), abar[j].sqrt(), (1 - abar[j]).sqrt())
        )
        # DDPM's chain from j to k adds noise of variance 1 - abar_k / abar_j; the posterior of x_j given x_k, data:
        want = ((1 - abar[j]) / (1 - abar[k]) * (1 - abar[k] / abar[j])).sqrt()
        case = f"steps {k} -> {j}"
        cases[case] = (_tensor(answer(a_t, s_t, a_s, s_s), (), "ddpm_posterior_std"), want)
        var = s_s**2 / s_t**2 * (s_t**2 - (a_t / a_s) ** 2 * s_s**2)
        swapped = s_s**2 / s_t**2 * (s_t**2 - (a_s / a_t) ** 2 * s_s**2)
        wrong[case] = {
            slip: torch.tensor(value, dtype=torch.float64)
            for slip, value in (
                ("the variance c^2 instead of the standard deviation c", var),
                (
                    "the factor sigma_s^2 / sigma_t^2 missing",
                    max(s_t**2 - (a_t / a_s) ** 2 * s_s**2, 0) ** 0.5,
                ),
                ("alpha_s / alpha_t where alpha_t / alpha_s belongs", max(swapped, 0) ** 0.5),
            )
        }
    hints = {
        "the variance c^2 instead of the standard deviation c": "the step adds c z with z ~ N(0, I): return c, the square root.",
        "the factor sigma_s^2 / sigma_t^2 missing": "c^2 = (sigma_s^2 / sigma_t^2) (sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2): keep the first factor.",
        "alpha_s / alpha_t where alpha_t / alpha_s belongs": "the noise added from s to t has variance sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2.",
    }
    return _judge(
        "ddpm_posterior_std",
        "On 5 pairs of DDPM steps, against the posterior of DDPM's own chain (from its betas)",
        cases,
        1e-6,
        hints,
        wrong,
        "DDPM's posterior keeps the marginal of x_s: c^2 = (sigma_s^2 / sigma_t^2)(sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2).",
    )


def _check_sde_drift_and_diffusion(answer) -> Feedback:
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    cases, wrong = {}, {}
    for case, schedule in (("VP", VPSchedule()), ("VE", VESchedule()), ("cosine", CosineSchedule())):
        c, ref = schedule(t), sde_coefficients(schedule, t)
        out = answer(c.alpha.clone(), c.sigma.clone(), c.d_alpha.clone(), c.d_sigma.clone())
        if not (isinstance(out, tuple) and len(out) == 2):
            raise _WrongKind(
                f"sde_drift_and_diffusion should return a pair (f, g), got {type(out).__name__}."
            )
        got = torch.cat([_tensor(out[0], t.shape, "f"), _tensor(out[1], t.shape, "g")])
        cases[case] = (got, torch.cat([ref.f, ref.g]))
        f = c.d_alpha / c.alpha
        g2 = 2 * c.sigma**2 * f - 2 * c.sigma * c.d_sigma
        wrong[case] = {
            "f = d_alpha without dividing by alpha": torch.cat(
                [c.d_alpha, (2 * c.sigma**2 * c.d_alpha - 2 * c.sigma * c.d_sigma).clamp_min(0).sqrt()]
            ),
            "g^2 returned in place of g": torch.cat([f, g2]),
            "the sign of the sigma d_sigma term flipped": torch.cat(
                [f, (2 * c.sigma**2 * f + 2 * c.sigma * c.d_sigma).abs().sqrt()]
            ),
            "the factor 2 in g^2 missing": torch.cat([f, (g2 / 2).sqrt()]),
            "g^2 = 2 f, VP's beta": torch.cat([f, (2 * f).sqrt()]),
        }
    hints = {
        "f = d_alpha without dividing by alpha": "f is the rate of change of log alpha: d_alpha / alpha.",
        "g^2 returned in place of g": "return the diffusion g itself, the square root of g^2.",
        "the sign of the sigma d_sigma term flipped": "sigma shrinks towards the data (d_sigma < 0), and g^2 = 2 sigma^2 f - 2 sigma d_sigma.",
        "the factor 2 in g^2 missing": "g^2 = -2 alpha sigma d(sigma / alpha)/dt = 2 sigma^2 f - 2 sigma d_sigma: both terms carry 2.",
        "g^2 = 2 f, VP's beta": "g^2 = beta = 2 f holds only where alpha^2 + sigma^2 = 1; write it with sigma and d_sigma.",
    }
    return _judge(
        "sde_drift_and_diffusion",
        "At 19 times on the VP, VE and cosine schedules, against lessons.sde.sde_coefficients",
        cases,
        1e-6,
        hints,
        wrong,
        "keep x_t = alpha data + sigma noise at every t: f = d_alpha / alpha, g^2 = 2 sigma^2 f - 2 sigma d_sigma.",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "ddim_step": _check_ddim_step,
    "ddpm_posterior_std": _check_ddpm_posterior_std,
    "sde_drift_and_diffusion": _check_sde_drift_and_diffusion,
}
