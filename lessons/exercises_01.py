"""The checks of lesson 01's exercises: DDPM's closed form, one ancestral step, one step's KL in the bound."""

import torch

from lessons.ddpm import DDPM
from lessons.elbo import elbo_weights
from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor

LESSON = "01_ddpm"  # the lesson's file name, and that of its solutions file solutions/01_ddpm.py

# (case, the DDPM): DDPM's own schedule, and two with fewer, larger steps where every slip shows
SCHEDULES = (
    ("T = 1000, betas 1e-4..0.02", DDPM()),
    ("T = 100, betas 1e-3..0.05", DDPM(num_steps=100, beta_start=1e-3, beta_end=0.05)),
    ("T = 10, betas 0.05..0.5", DDPM(num_steps=10, beta_start=0.05, beta_end=0.5)),
)


def _eps_field(x, t, cond=None):
    """A fixed smooth stand-in for an eps-network, (B, 2)."""
    return torch.tanh(x @ torch.tensor([[0.8, -0.5], [0.3, 1.1]], dtype=x.dtype) + t[:, None])


def _check_ddpm_marginal(answer) -> Feedback:
    gen, cases, wrong = _seeded(1), {}, {}
    for case, ddpm in SCHEDULES:
        T, betas = ddpm.num_steps, ddpm.betas  # (T,), float64
        data, noise = (torch.randn(200, 2, generator=gen, dtype=torch.float64) for _ in range(2))
        k = torch.cat([torch.tensor([1, T]), torch.randint(1, T + 1, (198,), generator=gen)])  # (200,)
        got = answer(data.clone(), noise.clone(), betas.clone(), k.clone())
        cases[case] = (_tensor(got, data.shape, "ddpm_marginal"), ddpm.marginal(data, k, noise))

        def closed_form(a, b, data=data, noise=noise):  # a data + b noise, a and b (B,)
            return a[:, None] * data + b[:, None] * noise

        abar = ddpm.alpha_bars[k]  # (B,): alpha_bars[0] = 1, so index k is abar_k
        wrong[case] = {
            "abar_{k-1}: the product stops one step early": closed_form(
                ddpm.alpha_bars[k - 1].sqrt(), (1 - ddpm.alpha_bars[k - 1]).sqrt()
            ),
            "the product of the betas, not of 1 - beta": closed_form(
                torch.cumprod(betas, 0)[k - 1].sqrt(), (1 - torch.cumprod(betas, 0)[k - 1]).sqrt()
            ),
            "abar_k and 1 - abar_k without their square roots": closed_form(abar, 1 - abar),
            "the noise variance sum_i beta_i": closed_form(abar.sqrt(), torch.cumsum(betas, 0)[k - 1].sqrt()),
        }
    hints = {
        "abar_{k-1}: the product stops one step early": "abar_k = prod_{i <= k} (1 - beta_i) includes step k "
        "itself; betas[i - 1] is beta_i, so abar_k is torch.cumprod(1 - betas, 0)[k - 1].",
        "the product of the betas, not of 1 - beta": "each step keeps sqrt(1 - beta_i) of the signal: multiply "
        "the 1 - beta_i.",
        "abar_k and 1 - abar_k without their square roots": "abar_k and 1 - abar_k are variances; x_k = "
        "sqrt(abar_k) data + sqrt(1 - abar_k) noise.",
        "the noise variance sum_i beta_i": "each later step shrinks the noise already added by sqrt(1 - beta): the "
        "noise's variance is 1 - abar_k, less than the sum of the betas.",
    }
    return _judge(
        "ddpm_marginal",
        "On 200 random points and steps of 3 linear-beta schedules, against lessons.ddpm.DDPM.marginal",
        cases,
        1e-10,
        hints,
        wrong,
        "abar_k = prod_{i <= k} (1 - beta_i); x_k = sqrt(abar_k) data + sqrt(1 - abar_k) noise, one abar_k per row.",
    )


def _coefficients(ddpm, k: int) -> tuple:
    """beta_k, abar_k and abar_{k-1} of a DDPM as floats (the lesson's ancestral_by_hand takes them so)."""
    return tuple(v.item() for v in (ddpm.betas[k - 1], ddpm.alpha_bars[k], ddpm.alpha_bars[k - 1]))


def _steps(x, eps_hat, z, beta, abar, abar_prev) -> dict:
    """DDPM's reverse step x_{k-1} (B, D) of section 4 (key None) and what each common slip returns instead."""
    c, root = beta / (1 - abar) ** 0.5, (1 - beta) ** 0.5  # the eps_hat coefficient, and sqrt(1 - beta_k)
    var = (1 - abar_prev) / (1 - abar) * beta  # DDPM's posterior variance, 0 at k = 1

    def step(c=c, divide=root, std=var**0.5):
        return (x - c * eps_hat) / divide + std * z

    return {
        None: step(),
        "beta_k / (1 - abar_k): the square root missing": step(c=beta / (1 - abar)),
        "sqrt(abar_k) where sqrt(1 - beta_k) belongs": step(divide=abar**0.5),
        "the variance used as the standard deviation": step(std=var),
        "a plus sign on the eps_hat term": step(c=-c),
        "beta_k as the variance, DDPM's other choice": step(std=beta**0.5),
    }


def _sample(step, ddpm, model, noise, generator) -> torch.Tensor:
    """Section 4's sampler, x_T = noise down to x_0, with every step taken by step(x, eps_hat, z, ...), (B, D).

    z is drawn as DDPM.sample draws it, from the same generator, at k > 1; at k = 1, where DDPM adds no noise,
    z is drawn too (from the same generator, after the last of DDPM's), so a step that adds noise there shows."""
    T, x = ddpm.num_steps, noise
    for k in range(T, 0, -1):
        eps_hat = model(x=x, t=torch.full((x.shape[0],), 1.0 - k / T, dtype=x.dtype))
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        got = step(x.clone(), eps_hat.clone(), z.clone(), *_coefficients(ddpm, k))
        x = _tensor(got, x.shape, "ddpm_ancestral_step")
    return x


def _check_ddpm_ancestral_step(answer) -> Feedback:
    hints = {
        "beta_k / (1 - abar_k): the square root missing": "eps_hat is scaled like the noise in x_k, whose std is "
        "sqrt(1 - abar_k): the mean is (x_k - beta_k / sqrt(1 - abar_k) eps_hat) / sqrt(1 - beta_k).",
        "sqrt(abar_k) where sqrt(1 - beta_k) belongs": "one reverse step undoes one forward step, x_k = "
        "sqrt(1 - beta_k) x_{k-1} + ...: divide by sqrt(1 - beta_k), not by sqrt(abar_k) (that is the data guess).",
        "the variance used as the standard deviation": "tilde beta_k is a variance: add sqrt(tilde beta_k) z.",
        "a plus sign on the eps_hat term": "x_k holds the noise with a plus sign, and the mean takes some of it out: "
        "x_k - beta_k / sqrt(1 - abar_k) eps_hat.",
        "beta_k as the variance, DDPM's other choice": "this exercise asks for the posterior variance tilde beta_k "
        "= (1 - abar_{k-1}) / (1 - abar_k) beta_k, which adds no noise at the last step.",
    }
    gen, cases, wrong = _seeded(2), {}, {}
    ddpm = DDPM(num_steps=50, beta_start=1e-3, beta_end=0.2)  # abar_T = 4.5e-3: x_T is nearly pure noise
    noise = torch.randn(200, 2, generator=gen, dtype=torch.float64)
    want = ddpm.sample(_eps_field, noise, generator=_seeded(3), keep_path=False).final
    case = "a 50-step sampler"
    cases[case] = (_sample(answer, ddpm, _eps_field, noise, _seeded(3)), want)
    wrong[case] = {  # the same sampler with each slip's step
        slip: _sample(lambda *args, slip=slip: _steps(*args)[slip], ddpm, _eps_field, noise, _seeded(3))
        for slip in hints
    }
    ddpm = DDPM()
    for k in (2, 30, 400, 1000):
        x, eps_hat, z = (torch.randn(64, 2, generator=gen, dtype=torch.float64) for _ in range(3))
        args = (x, eps_hat, z, *_coefficients(ddpm, k))
        table = _steps(*args)
        case = f"step k = {k} of T = 1000"
        got = answer(*(a.clone() if isinstance(a, torch.Tensor) else a for a in args))
        cases[case] = (_tensor(got, x.shape, "ddpm_ancestral_step"), table.pop(None))
        wrong[case] = table
    return _judge(
        "ddpm_ancestral_step",
        "In a 50-step sampler of a fixed eps-field, against lessons.ddpm.DDPM.sample (same draws z), and on 4 steps "
        "of DDPM's schedule",
        cases,
        1e-9,
        hints,
        wrong,
        "x_{k-1} = (x_k - beta_k / sqrt(1 - abar_k) eps_hat) / sqrt(1 - beta_k) + sqrt(tilde beta_k) z, "
        "tilde beta_k = (1 - abar_{k-1}) / (1 - abar_k) beta_k.",
    )


def _check_ddpm_step_kl(answer) -> Feedback:
    gen, cases, wrong = _seeded(4), {}, {}
    for (_, ddpm), k, dim in (
        (SCHEDULES[0], 2, 2),
        (SCHEDULES[0], 40, 3),
        (SCHEDULES[0], 600, 2),
        (SCHEDULES[2], 6, 3),
    ):
        beta, abar, abar_prev = _coefficients(ddpm, k)
        data, noise = (torch.randn(100, dim, generator=gen, dtype=torch.float64) for _ in range(2))
        error = torch.randn(100, dim, generator=gen, dtype=torch.float64)
        eps_hat = noise + 0.5 * error  # an imperfect network's prediction
        x_k = abar**0.5 * data + (1 - abar) ** 0.5 * noise
        got = answer(data.clone(), x_k.clone(), eps_hat.clone(), beta, abar, abar_prev)
        # the bound's term of section 5: c_k ||eps - eps_hat||^2, c_k = expm1(lambda_{k-1} - lambda_k) / 2
        c_k = elbo_weights(ddpm, dim).elbo[k - 1]
        case = f"step k = {k} of T = {ddpm.num_steps}, D = {dim}"
        cases[case] = (_tensor(got, (100,), "ddpm_step_kl"), c_k * ((noise - eps_hat) ** 2).sum(1))
        gap = beta * (eps_hat - noise) / ((1 - beta) * (1 - abar)) ** 0.5  # posterior mean - model mean
        var = (1 - abar_prev) / (1 - abar) * beta
        sq = (gap**2).sum(1)
        wrong[case] = {
            "the factor 1/2 missing": sq / var,
            "divided by beta_k, the other variance": sq / (2 * beta),
            "divided by the standard deviation sqrt(tilde beta_k)": sq / (2 * var**0.5),
            "both means left without the factor 1 / sqrt(1 - beta_k)": sq * (1 - beta) / (2 * var),
            "a mean over the coordinates, not a sum": (gap**2).mean(1) / (2 * var),
        }
    hints = {
        "the factor 1/2 missing": "KL(N(m1, v I) || N(m2, v I)) = ||m1 - m2||^2 / (2 v): keep the 2.",
        "divided by beta_k, the other variance": "both Gaussians have DDPM's posterior variance tilde beta_k = "
        "(1 - abar_{k-1}) / (1 - abar_k) beta_k: divide by 2 tilde beta_k.",
        "divided by the standard deviation sqrt(tilde beta_k)": "the KL divides the squared distance by the "
        "variance tilde beta_k itself.",
        "both means left without the factor 1 / sqrt(1 - beta_k)": "the reverse mean is (x_k - beta_k / "
        "sqrt(1 - abar_k) eps) / sqrt(1 - beta_k): divide by sqrt(1 - beta_k).",
        "a mean over the coordinates, not a sum": "||m1 - m2||^2 sums the squares over the D coordinates.",
    }
    return _judge(
        "ddpm_step_kl",
        "At 4 steps of 2 schedules, against the bound's term c_k ||eps - eps_hat||^2 of section 5 "
        "(c_k from lessons.elbo.elbo_weights)",
        cases,
        1e-7,
        hints,
        wrong,
        "eps = (x_k - sqrt(abar_k) data) / sqrt(1 - abar_k); the posterior mean is mu_k with eps in place of "
        "eps_hat; KL = ||posterior mean - mu_k||^2 / (2 tilde beta_k), summed over the coordinates.",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "ddpm_marginal": _check_ddpm_marginal,
    "ddpm_ancestral_step": _check_ddpm_ancestral_step,
    "ddpm_step_kl": _check_ddpm_step_kl,
}
