"""Solutions of lesson 04's checked exercises, one function per exercise (lessons.exercises checks them)."""

import torch

from lessons.mixture import ExactMixtureModel


def gaussian_path_velocity(x, data, alpha, sigma, d_alpha, d_sigma):
    """u_t(x | data) = d_alpha data + (d_sigma / sigma)(x - alpha data), (B, D); coefficients (B, 1)."""
    return d_alpha * data + d_sigma / sigma * (x - alpha * data)


def ot_cfm_loss(model, data, noise, t):
    """The CFM loss on the OT path: mean of (model(x_t, t) - (data - noise))^2, x_t = t data + (1 - t) noise."""
    x_t = t[:, None] * data + (1 - t[:, None]) * noise
    return ((model(x=x_t, t=t) - (data - noise)) ** 2).mean()


def cfm_fm_constant(mixture, path, t, n):
    """Monte Carlo estimate, from n samples, of E||u_t(x_t | data) - u_t(x_t)||^2 at the time t; a float."""
    tt = torch.full((n,), t)
    sample = path.sample(torch.randn(n, mixture.dim), mixture.sample(n), tt)
    marginal = ExactMixtureModel(mixture, path.schedule, prediction="velocity")(x=sample.x_t, t=tt)
    return ((sample.velocity - marginal) ** 2).sum(1).mean().item()
