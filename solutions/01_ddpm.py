"""Solutions of lesson 01's checked exercises, one function per exercise (lessons.exercises checks them)."""

import torch


def ddpm_marginal(data, noise, betas, k):
    """x_k = sqrt(abar_k) data + sqrt(1 - abar_k) noise, (B, D); betas (T,) = beta_1..beta_T; k (B,)."""
    abar = torch.cumprod(1 - betas, 0)[k - 1][:, None]  # (B, 1): betas[i - 1] is beta_i
    return abar.sqrt() * data + (1 - abar).sqrt() * noise


def ddpm_ancestral_step(x, eps_hat, z, beta, abar, abar_prev):
    """x_{k-1} = mu_k + sqrt(tilde beta_k) z, (B, D), from x = x_k; beta_k, abar_k, abar_{k-1} floats."""
    mean = (x - beta / (1 - abar) ** 0.5 * eps_hat) / (1 - beta) ** 0.5
    variance = (1 - abar_prev) / (1 - abar) * beta  # DDPM's posterior variance, 0 at k = 1
    return mean + variance**0.5 * z


def ddpm_step_kl(data, x_k, eps_hat, beta, abar, abar_prev):
    """L_{k-1} = KL(q(x_{k-1} | x_k, data) || p(x_{k-1} | x_k)) per point, (B,), nats; variances tilde beta_k."""
    noise = (x_k - abar**0.5 * data) / (1 - abar) ** 0.5  # the noise that took data to x_k

    def reverse_mean(eps):  # section 4's mu_k, with the true noise it is the posterior's mean
        return (x_k - beta / (1 - abar) ** 0.5 * eps) / (1 - beta) ** 0.5

    variance = (1 - abar_prev) / (1 - abar) * beta
    return ((reverse_mean(noise) - reverse_mean(eps_hat)) ** 2).sum(1) / (2 * variance)
