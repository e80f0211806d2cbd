"""Solutions of lesson 02b's checked exercises, one function per exercise (lessons.exercises checks them)."""


def score_from_velocity(u, x, alpha, sigma, d_alpha, d_sigma):
    """grad log p_t(x), (B, D), from the velocity u (B, D) at x on any Gaussian path; coefficients (B, 1)."""
    # x = alpha data + sigma noise and u = d_alpha data + d_sigma noise: eliminate the data
    noise = (alpha * u - d_alpha * x) / (alpha * d_sigma - d_alpha * sigma)  # E[noise | x]
    return -noise / sigma


def snr_langevin_step(x, score_value, z, snr):
    """One Langevin step x + h score + sqrt(2 h) z, (B, D), with h = 2 (snr mean ||z|| / mean ||score||)^2."""
    ratio = z.norm(dim=1).mean() / score_value.norm(dim=1).mean()  # norms per chain, averaged over the batch
    h = 2 * (snr * ratio) ** 2
    return x + h * score_value + (2 * h).sqrt() * z


def mala_log_acceptance(x, x_new, log_p, score_fn, h):
    """log [p(x') q(x | x') / (p(x) q(x' | x))], (B,), for Langevin proposals q(b | a) = N(b; a + h score(a), 2 h I)."""

    def log_q(to, start):  # up to its normalising constant, the same in both directions (it cancels)
        return -((to - start - h * score_fn(start)) ** 2).sum(1) / (4 * h)

    return log_p(x_new) - log_p(x) + log_q(x, x_new) - log_q(x_new, x)
