"""Solutions of lesson 02's checked exercises, one function per exercise (lessons.exercises checks them)."""


def ddim_step(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    """One deterministic DDIM step (eta = 0) from x = x_t to the later time s; (B, D)."""
    x_hat = (x - sigma_t * eps_hat) / alpha_t  # the network's guess of the data
    return alpha_s * x_hat + sigma_s * eps_hat


def ddpm_posterior_std(alpha_t, sigma_t, alpha_s, sigma_s):
    """c_DDPM, the standard deviation of DDPM's posterior q(x_s | x_t, data) for t < s; a float."""
    variance = (sigma_s**2 / sigma_t**2) * (sigma_t**2 - (alpha_t / alpha_s) ** 2 * sigma_s**2)
    return max(variance, 0.0) ** 0.5


def sde_drift_and_diffusion(alpha, sigma, d_alpha, d_sigma):
    """(f, g) of the noising SDE dx = f x dt + g dW, each (B,), from the schedule's values at t (B,)."""
    f = d_alpha / alpha
    g2 = 2 * sigma**2 * f - 2 * sigma * d_sigma
    return f, g2.sqrt()
