"""The score-SDE view (Song et al. 2021) in the course's time: t = 0 is noise, t = 1 is data.

Noising runs backwards in course time, from t = 1 down to t = 0: dx = f_t x dt + g_t dW (dt < 0) with
  f_t = d log alpha / dt,   g_t^2 = 2 sigma^2 f_t - 2 sigma d sigma / dt = -2 alpha sigma d(sigma / alpha) / dt,
which keeps x_t = alpha_t data + sigma_t noise at every t (VP: f = beta / 2, g^2 = beta; VE: f = 0).
Generation runs forwards in t, from noise to data:
  reverse SDE            dx = (f x + g^2 score) dt + g dW,
  probability-flow ODE   dx/dt = f x + g^2 score / 2,
with score = grad log p_t(x) = -eps / sigma from an eps-prediction network.
"""

from dataclasses import dataclass

import torch

from lessons.checks import check_grid, check_points, check_time
from lessons.conversions import convert
from lessons.mixture import GaussianMixture
from lessons.schedules import Schedule
from lessons.trajectory import Trajectory


@dataclass
class SDECoefficients:
    """Drift rate f_t and diffusion g_t of the noising SDE dx = f_t x dt + g_t dW, each (B,)."""

    f: torch.Tensor
    g: torch.Tensor


def sde_coefficients(schedule: Schedule, t: torch.Tensor) -> SDECoefficients:
    """f = d_alpha / alpha and g = sqrt(2 sigma^2 f - 2 sigma d_sigma), each (B,), from the schedule at t (B,)."""
    c = schedule(t)
    f = c.d_alpha / c.alpha
    g2 = 2 * c.sigma**2 * f - 2 * c.sigma * c.d_sigma
    return SDECoefficients(f=f, g=g2.clamp_min(0).sqrt())


def score(model, schedule: Schedule, x: torch.Tensor, t: torch.Tensor, prediction: str = "eps",
          cond=None) -> torch.Tensor:
    """grad_x log p_t(x), (B, ...), from a network's prediction; for eps: score = -eps / sigma."""
    check_time(t, batch=x.shape[0])
    c = schedule(t)
    if (c.sigma <= 0).any():
        raise ValueError("the score -eps / sigma is undefined where sigma = 0 (t = 1 for VP); "
                         "stop the time grid short of 1, e.g. at 1 - 1e-3.")
    return convert(model(x=x, t=t, cond=cond), prediction, "score", x, c)


def probability_flow(model, schedule: Schedule, prediction: str = "eps", cond=None):
    """The field of the probability-flow ODE, field(x=..., t=...) = f x + g^2 score / 2, (B, ...), for solve_ode."""

    def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        k = sde_coefficients(schedule, check_time(t, batch=x.shape[0]))
        shape = (-1,) + (1,) * (x.ndim - 1)
        return k.f.reshape(shape) * x + 0.5 * k.g.reshape(shape) ** 2 * score(model, schedule, x, t, prediction, cond)

    return field


@torch.no_grad()
def reverse_sde(model, noise: torch.Tensor, schedule: Schedule, ts: torch.Tensor, prediction: str = "eps",
                cond=None, generator: torch.Generator | None = None) -> Trajectory:
    """Euler-Maruyama on dx = (f x + g^2 score) dt + g dW along the increasing grid ts; xs (len(ts), B, ...).

    noise is the state at ts[0] (standard noise for VP; for VE, multiply it by sigma(0)).
    Each step evaluates the network once, at the left end of the step, so ts may end at t = 1.
    """
    check_grid(ts)
    x, xs, batch = noise, [noise], noise.shape[0]
    shape = (-1,) + (1,) * (x.ndim - 1)
    for t, s in zip(ts[:-1].tolist(), ts[1:].tolist()):
        t_vec = torch.full((batch,), t, dtype=x.dtype, device=x.device)
        k = sde_coefficients(schedule, t_vec)
        f, g = k.f.reshape(shape), k.g.reshape(shape)
        drift = f * x + g**2 * score(model, schedule, x, t_vec, prediction, cond)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x + (s - t) * drift + g * (s - t) ** 0.5 * z
        xs.append(x)
    return Trajectory(ts=ts, xs=torch.stack(xs), nfe=len(ts) - 1)


class ExactEps:
    """The ideal eps-prediction for a Gaussian-mixture target: eps(x, t) = -sigma_t * score of p_t, (B, D).

    Called like a network, model(x=..., t=..., cond=None); it has no error, so what a sampler
    does with it shows the sampler alone.
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule):
        self.mixture, self.schedule = mixture, schedule

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        check_points(x, "x", self.mixture.dim)
        if cond is not None:
            raise ValueError("the exact mixture model is unconditional; call it with cond=None.")
        c = self.schedule(check_time(t, batch=x.shape[0]))
        return -c.sigma[:, None] * self.mixture.score(x, c.alpha, c.sigma)
