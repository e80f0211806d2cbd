"""Couplings of noise and data for flow matching: which noise sample travels to which data sample.

independent: pairs drawn apart, pi = p_noise x p_data (I-CFM, 1-rectified flow);
minibatch OT (Tong et al. 2024): in each batch, the permutation minimising sum_i ||noise_i - data_perm(i)||^2;
reflow (Liu et al. 2023): pairs (noise, ODE_model(noise)) produced by a trained flow.
"""

import torch

from lessons.checks import (
    check_finite,
    check_memory,
    check_model,
    check_point_set,
    check_positive_int,
    check_same_shape,
    check_seed,
    check_tensor,
    choose,
)
from lessons.optimal_transport import ot_assignment
from lessons.solvers import solve_ode
from lessons.training import random_batches

COUPLINGS = ("independent", "ot", "paired")


def transport_cost(noise: torch.Tensor, data: torch.Tensor) -> float:
    """Mean squared distance of the pairs (noise_i, data_i): (1/B) sum_i ||noise_i - data_i||^2."""
    check_point_set(noise, "noise")
    check_same_shape(noise, data, "noise", "data")
    check_point_set(data, "data")
    return float(((noise.double() - data.double()) ** 2).sum(1).mean())


def couple(noise: torch.Tensor, data: torch.Tensor, coupling: str = "ot"):
    """Return (noise, data') with data' = data re-ordered by the coupling ('independent' keeps the order)."""
    choose(coupling, COUPLINGS[:2], "coupling")
    if coupling == "independent":
        for x, name in ((noise, "noise"), (data, "data")):
            check_finite(check_tensor(x, name), name)
        check_same_shape(noise, data, "noise", "data")
        return noise, data
    return noise, data[ot_assignment(noise, data)]


def reflow_pairs(model, noise: torch.Tensor, steps: int = 100, method: str = "euler", cond=None):
    """Rectified-flow pairs (noise, data_hat), each (B, D), data_hat = the model's ODE output from noise."""
    check_model(model, "the model")
    check_point_set(noise, "noise")
    with torch.no_grad():
        data_hat = solve_ode(model, noise, steps=steps, method=method, cond=cond).final
    return noise, data_hat


def pair_batches(
    data: torch.Tensor,
    batch_size: int,
    coupling: str = "independent",
    source: torch.Tensor | None = None,
    seed: int = 0,
):
    """A next_batch() for lessons.training.train that returns coupled (noise, data) batches, each (batch_size, D).

    data: (N, D) training points. source: (M, D) points of the source distribution, or None for N(0, I).
    'independent' and 'ot' draw noise and data apart, then couple them; 'paired' keeps the given
    rows together (source[i] with data[i], as reflow pairs need).
    """
    choose(coupling, COUPLINGS, "coupling")
    check_point_set(data, "data")
    check_positive_int(batch_size, "the batch size")
    check_seed(seed)
    if source is not None:
        check_point_set(source, "source", data.shape[1])
    if coupling == "paired" and (source is None or source.shape[0] != data.shape[0]):
        raise ValueError("the 'paired' coupling needs a source with one row per data row (the reflow pairs).")
    # a batch of noise and of data, and for 'ot' the float64 cost matrix, its square and POT's plan
    per_batch = 2 * batch_size * data.shape[1] * data.element_size()
    check_memory(
        per_batch + (3 * 8 * batch_size**2 if coupling == "ot" else 0), f"batches of {batch_size} pairs"
    )
    g = torch.Generator().manual_seed(seed)  # one stream for the rows and the noise
    if coupling == "paired":
        return random_batches((source, data), batch_size, g)
    data_rows = random_batches(data, batch_size, g)
    source_rows = None if source is None else random_batches(source, batch_size, g)

    def next_batch():
        batch = data_rows()
        noise = torch.randn(batch_size, data.shape[1], generator=g) if source is None else source_rows()
        return couple(noise, batch, coupling)

    return next_batch
