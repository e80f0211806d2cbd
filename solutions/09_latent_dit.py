"""Solutions of lesson 09's checked exercises, one function per exercise (lessons.exercises checks them)."""

import math

import torch


def beta_vae_loss(model, images, eps, beta):
    """The batch mean of sum_pixels (x - D(z))^2 + beta KL(q(z | x) || N(0, I)), z = mean + sigma eps."""
    mean, logvar = model.encode(images)  # each (B, C, 7, 7)
    z = mean + torch.exp(0.5 * logvar) * eps  # the reparameterisation: a posterior sample
    reconstruction = (model.decode(z) - images).square().flatten(1).sum(1)  # (B,)
    kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).flatten(1).sum(1)  # (B,)
    return (reconstruction + beta * kl).mean()


def logit_normal_pdf(t, mean, std):
    """The density (N,) at t (N,) in (0, 1) of sigmoid(mean + std n), n ~ N(0, 1): N(l; mean, std^2) dl/dt."""
    logit = torch.log(t) - torch.log1p(-t)  # l = log(t / (1 - t))
    normal = torch.exp(-((logit - mean) ** 2) / (2 * std**2)) / (std * math.sqrt(2 * math.pi))
    return normal / (t * (1 - t))  # dl/dt = 1 / (t (1 - t))


def adaln_zero_block(x, mods, attention, mlp, norm):
    """A DiT block's output (B, N, D): two gated residual parts, each modulated by its shift, scale, gate."""
    shift1, scale1, gate1, shift2, scale2, gate2 = (
        m[:, None] for m in mods
    )  # (B, 1, D): broadcast over tokens
    h = x + gate1 * attention(norm(x) * (1 + scale1) + shift1)
    return h + gate2 * mlp(norm(h) * (1 + scale2) + shift2)
