"""Solution of lesson 00's checked exercise (lessons.exercises checks it)."""


def linear_path(data, noise, t):
    """(x_t, velocity), each (B, D): x_t = t data + (1 - t) noise and its time derivative data - noise."""
    t = t[:, None]  # (B, 1): one time per point, broadcast against its D coordinates
    return t * data + (1 - t) * noise, data - noise
