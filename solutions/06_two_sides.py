"""Solutions of lesson 06's checked exercises, one function per exercise (lessons.exercises checks them)."""

import torch


def linear_velocity_from_eps(eps_model, schedule, x, t):
    """The velocity field of the linear path, (B, D), that an eps-model made for ``schedule`` defines at (x, t)."""
    log_snr = 2 * (torch.log(t) - torch.log1p(-t))  # the linear path's lambda = 2 log(t / (1 - t)), (B,)
    t_src = schedule.time_at_log_snr(log_snr)  # the source's time of the same log-SNR
    c = schedule(t_src)
    alpha, sigma = c.alpha[:, None], c.sigma[:, None]  # (B, 1)
    x_src = (alpha + sigma) * x  # x' = alpha' data + sigma' noise, as alpha + sigma = 1 on the linear path
    eps_hat = eps_model(x=x_src, t=t_src)
    data_hat = (x_src - sigma * eps_hat) / alpha
    return data_hat - eps_hat  # u = d_alpha data + d_sigma noise on the linear path


def velocity_loss_weighting(alpha, sigma, d_alpha, d_sigma):
    """w(lambda_t) = factor / (d lambda / dt), (B,), of the velocity MSE with t ~ U[0, 1]; inputs (B,)."""
    factor = (d_sigma - d_alpha * sigma / alpha) ** 2  # ||u_hat - u||^2 / ||eps_hat - eps||^2 at a fixed x_t
    d_log_snr = 2 * (d_alpha / alpha - d_sigma / sigma)  # lambda = 2 (log alpha - log sigma)
    return factor / d_log_snr


def schedule_from_sde(ts, f, g):
    """(alpha, sigma), each (N,), on the increasing grid ts (N,) ending at t = 1, from the SDE's f and g (N,)."""

    def from_t_to_1(y):  # int_{t_i}^1 y for every grid point, by the trapezoid rule, (N,)
        pieces = 0.5 * (ts[1:] - ts[:-1]) * (y[1:] + y[:-1])
        return torch.cat([pieces.flip(0).cumsum(0).flip(0), torch.zeros(1, dtype=y.dtype)])

    alpha = torch.exp(-from_t_to_1(f))  # log alpha(1) = 0, d log alpha / dt = f
    # sigma(1) = 0 and d(sigma^2 / alpha^2)/dt = -g^2 / alpha^2
    sigma = alpha * from_t_to_1(g**2 / alpha**2).sqrt()
    return alpha, sigma
