"""Couplings: minibatch OT is an exact, cost-lowering permutation; reflow pairs follow the model's ODE."""

import pytest
import torch
from model_helpers import two_clouds

from lessons.couplings import couple, pair_batches, reflow_pairs, transport_cost
from lessons.optimal_transport import ot_assignment


def test_transport_cost_by_hand():
    noise = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    data = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    assert transport_cost(noise, data) == pytest.approx((25 + 1) / 2)


def test_independent_coupling_keeps_pairs():
    noise, data = two_clouds(10)
    out = couple(noise, data, "independent")
    assert torch.equal(out[0], noise) and torch.equal(out[1], data)


def test_reflow_pairs_follow_the_ode():
    shift = torch.tensor([2.0, -1.0])

    def field(x, t, cond=None):  # dx/dt = shift - x has x(1) = shift + (x(0) - shift) e^{-1}
        return shift - x

    noise, _ = two_clouds(50)
    out_noise, out_data = reflow_pairs(field, noise, steps=200, method="rk4")
    assert torch.equal(out_noise, noise)
    assert torch.allclose(out_data, shift + (noise - shift) * torch.exp(torch.tensor(-1.0)), atol=1e-5)


def test_pair_batches_shapes_and_couplings():
    noise, data = two_clouds(1000)
    for coupling in ("independent", "ot"):
        batch_noise, batch_data = pair_batches(data, 64, coupling, seed=3)()
        assert batch_noise.shape == batch_data.shape == (64, 2)
    ind = pair_batches(data, 128, "independent", seed=4)
    ot_batches = pair_batches(data, 128, "ot", seed=4)
    assert transport_cost(*ot_batches()) < transport_cost(*ind())
    src, dst = pair_batches(data, 32, "paired", source=noise, seed=5)()
    rows = [int((data == d).all(1).nonzero()[0]) for d in dst]
    assert torch.equal(src, noise[rows])  # each source row travels with its own data row
    src, _ = pair_batches(data, 32, "independent", source=noise[:10], seed=6)()
    assert all((noise[:10] == s).all(1).any() for s in src)  # the noise comes from the given source


def test_bad_input():
    noise, data = two_clouds(8)
    with pytest.raises(ValueError, match="coupling"):
        couple(noise, data, "sinkhorn")
    with pytest.raises(ValueError, match="same shape"):
        ot_assignment(noise, data[:5])
    with pytest.raises(ValueError, match="shape"):
        transport_cost(noise[0], data[0])
    with pytest.raises(ValueError, match="paired"):
        pair_batches(data, 4, "paired")
    with pytest.raises(ValueError, match="batch size"):
        pair_batches(data, 0)
    with pytest.raises(ValueError, match="coupling"):
        pair_batches(data, 4, "random")


@pytest.mark.parametrize("coupling", ["independent", "ot"])
def test_couple_refuses_empty_and_non_finite_batches(coupling):
    noise, data = two_clouds(8)
    with pytest.raises(ValueError, match="at least 1 sample"):
        couple(noise[:0], data[:0], coupling)
    with pytest.raises(ValueError, match="data holds 16 NaN"):
        couple(noise, data * float("nan"), coupling)
    with pytest.raises(ValueError, match="same shape"):
        couple(noise, data[:, :1], coupling)


def test_transport_cost_refuses_empty_and_non_finite_pairs():
    noise, data = two_clouds(8)
    with pytest.raises(ValueError, match="at least 1 sample"):
        transport_cost(noise[:0], data[:0])
    with pytest.raises(ValueError, match="noise holds 1 NaN"):
        transport_cost(torch.cat([noise[:7], torch.tensor([[float("inf"), 0.0]])]), data)


def test_reflow_pairs_refuses_bad_models_and_steps():
    noise, _ = two_clouds(8)
    with pytest.raises(TypeError, match="model or a function"):
        reflow_pairs(None, noise)
    with pytest.raises(ValueError, match="number of steps"):
        reflow_pairs(lambda x, t, cond=None: -x, noise, steps=0)
    with pytest.raises(ValueError, match="unknown ODE solver"):
        reflow_pairs(lambda x, t, cond=None: -x, noise, method="leapfrog")
    with pytest.raises(ValueError, match="noise holds"):
        reflow_pairs(lambda x, t, cond=None: -x, noise * float("nan"))


def test_pair_batches_refuses_bad_data_sources_seeds_and_sizes():
    noise, data = two_clouds(100)
    with pytest.raises(ValueError, match="data holds"):
        pair_batches(data * float("nan"), 4)
    with pytest.raises(ValueError, match="source must have 2 columns"):
        pair_batches(data, 4, source=noise[:, :1])
    with pytest.raises(ValueError, match="seed"):
        pair_batches(data, 4, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        pair_batches(data, 4, seed=1.5)
    with pytest.raises(ValueError, match=r"batches of 1000000 pairs would need about [\d.]+ [KMGT]iB"):
        pair_batches(data, 10**6, "ot")  # the OT cost matrix alone: 8 TB
