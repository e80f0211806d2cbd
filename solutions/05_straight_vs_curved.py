"""Solutions of lesson 05's checked exercises, one function per exercise (lessons.exercises checks them)."""

import math

import torch
from scipy.optimize import linear_sum_assignment


def cosine_path_straightness(noise, data):
    """Liu et al.'s straightness of the cosine path's conditional paths through the pairs (noise_i, data_i), (B, D).

    x_t = sin(pi t / 2) data + cos(pi t / 2) noise; per pair, with a = data and b = noise,
    int_0^1 ||(a - b) - dx/dt||^2 dt = (pi^2 / 8 - 1)(|a|^2 + |b|^2) + (2 - pi / 2) a . b; a float, the mean.
    """
    squares = (data**2).sum(1) + (noise**2).sum(1)  # (B,)
    cross = (data * noise).sum(1)  # (B,)
    return ((math.pi**2 / 8 - 1) * squares + (2 - math.pi / 2) * cross).mean().item()


def minibatch_ot_pairs(noise, data):
    """data (B, D) re-ordered so that row i is noise[i]'s partner in the optimal assignment (squared distances)."""
    cost = torch.cdist(noise, data) ** 2  # (B, B), cost[i, j] = ||noise_i - data_j||^2
    rows, cols = linear_sum_assignment(cost.numpy())  # rows come out sorted: 0, 1, ..., B - 1
    return data[cols]


def rk4_step(field, x, t, h):
    """One classical Runge-Kutta step of size h from x (B, D) at the time t (floats); call field(x=..., t=(B,))."""

    def at(x, s):
        return field(x=x, t=torch.full((x.shape[0],), s, dtype=x.dtype))

    k1 = at(x, t)
    k2 = at(x + h / 2 * k1, t + h / 2)
    k3 = at(x + h / 2 * k2, t + h / 2)
    k4 = at(x + h * k3, t + h)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
