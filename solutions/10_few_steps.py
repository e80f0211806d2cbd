"""Solutions of lesson 10's checked exercises, one function per exercise (lessons.exercises checks them)."""

import torch


def dpm_solver_2m_update(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev):
    """One DPM-Solver++(2M) step from x = x_t to the later time s, (B, D); the scalars are 0-dim tensors."""
    c = h / (2 * h_prev)  # 1 / (2 r), r = h_prev / h
    d = (1 + c) * d_now - c * d_prev  # the line through the last two data predictions
    return (sigma_s / sigma_t) * x + alpha_s * (1 - torch.exp(-h)) * d


def mean_flow_target(model, x, s, t, velocity):
    """MeanFlow's target v + (t - s) du/ds, (B, D), du/ds the derivative of model(x, s, t) along the flow."""
    _, du_ds = torch.func.jvp(
        model, (x, s, t), (velocity, torch.ones_like(s), torch.zeros_like(t))
    )  # tangents: dx/ds = v, ds/ds = 1, t fixed
    return velocity + (t - s)[:, None] * du_ds


def gaussian_average_velocity(x, s, t, mean, std):
    """u(x_s, s, t) = (x_t - x_s) / (t - s), (B, D), of the straight path to the data N(mean, std^2 I)."""
    s, t = s[:, None], t[:, None]  # (B, 1)
    sigma_s = (s**2 * std**2 + (1 - s) ** 2).sqrt()
    sigma_t = (t**2 * std**2 + (1 - t) ** 2).sqrt()
    x_t = t * mean + (sigma_t / sigma_s) * (x - s * mean)  # the flow map of a Gaussian is affine
    return (x_t - x) / (t - s)
