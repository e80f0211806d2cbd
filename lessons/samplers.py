"""DDIM (Song et al. 2021) on any schedule and any time grid, from any prediction type.

From x_t to a later (less noisy) time s, with (data_hat, noise_hat) recovered from the network:
  x_s = alpha_s data_hat + sqrt(sigma_s^2 - c^2) noise_hat + c z,
  c^2 = eta^2 (sigma_s^2 / sigma_t^2) (sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2),
so eta = 0 is deterministic and eta = 1 draws from DDPM's posterior q(x_s | x_t, data_hat).
"""

import torch

from lessons.checks import check_time
from lessons.conversions import to_data_and_noise
from lessons.schedules import Schedule
from lessons.trajectory import Trajectory


@torch.no_grad()
def ddim(model, noise: torch.Tensor, schedule: Schedule, ts: torch.Tensor, eta: float = 0.0,
         prediction: str = "eps", cond=None, generator: torch.Generator | None = None) -> Trajectory:
    """Sample from x = noise at ts[0] along the increasing grid ts (noise -> data); (len(ts), B, ...)."""
    check_time(ts)
    if len(ts) < 2 or not (ts[1:] > ts[:-1]).all():
        raise ValueError("ts must be an increasing grid of at least two times (noise at ts[0], data at ts[-1]).")
    if eta < 0:
        raise ValueError(f"eta must be >= 0 (0 is deterministic DDIM, 1 is DDPM), got {eta}.")
    x, xs, batch = noise, [noise], noise.shape[0]
    for t, s in zip(ts[:-1].tolist(), ts[1:].tolist()):
        t_vec = torch.full((batch,), t, dtype=x.dtype, device=x.device)
        c_t = schedule(t_vec)
        c_s = schedule(torch.full((batch,), s, dtype=x.dtype))
        data_hat, noise_hat = to_data_and_noise(model(x=x, t=t_vec, cond=cond), prediction, x, c_t)
        a_t, s_t, a_s, s_s = (v[0].item() for v in (c_t.alpha, c_t.sigma, c_s.alpha, c_s.sigma))
        var = eta**2 * (s_s**2 / s_t**2) * max(s_t**2 - (a_t / a_s) ** 2 * s_s**2, 0.0) if s_t > 0 else 0.0
        x = a_s * data_hat + max(s_s**2 - var, 0.0) ** 0.5 * noise_hat
        if var > 0:
            x = x + var**0.5 * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        xs.append(x)
    return Trajectory(ts=ts, xs=torch.stack(xs), nfe=len(ts) - 1)
