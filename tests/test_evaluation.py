"""Judging results: the data-vs-data band (seeds, values, spread) and the NFE at which a curve crosses a target."""

import math

import pytest
import torch

from lessons.evaluation import data_band, nfe_to_reach
from lessons.metrics import energy_distance


def test_data_band_pairs_consecutive_seeds():
    seen = []

    def draw(seed):
        seen.append(seed)
        return torch.tensor(float(seed))

    band = data_band(lambda a, b: (b - a) * a, draw, repeats=3, first_seed=10)
    assert seen == [10, 11, 12, 13, 14, 15]
    assert torch.equal(band, torch.tensor([10.0, 12.0, 14.0]))


def test_data_band_of_the_energy_distance_is_chance_around_zero():
    """Two samples of one law: unbiased energy distances scatter around 0; another law is far outside the band."""

    def draw(seed):
        return torch.randn(400, 2, generator=torch.Generator().manual_seed(seed))

    band = data_band(energy_distance, draw, repeats=30)
    by_hand = torch.tensor([energy_distance(draw(2 * i), draw(2 * i + 1)) for i in range(30)])
    assert torch.equal(band, by_hand) and band.shape == (30,)
    assert abs(band.mean().item()) < 4 * band.std().item() / math.sqrt(30)
    shifted = energy_distance(draw(100), draw(101) + 0.5)
    assert shifted > 2 * band.max().item()


def test_data_band_rejects_bad_input():
    with pytest.raises(ValueError, match="positive whole number"):
        data_band(energy_distance, lambda seed: torch.zeros(3, 2), repeats=0)
    with pytest.raises(ValueError, match="function"):
        data_band(energy_distance, torch.zeros(3, 2))


def test_nfe_to_reach_is_exact_on_a_power_law():
    """error = 3 NFE^-2 is a straight line in log-log: the interpolated crossing is (3 / target)^(1/2) exactly."""
    nfes = [2, 4, 8, 16, 32, 64]
    errors = [3.0 * n**-2 for n in nfes]
    for target in (0.5, 0.1, 0.01, 3.0 / 64**2):
        assert nfe_to_reach(nfes, errors, target) == pytest.approx(math.sqrt(3.0 / target), rel=1e-12)
    assert nfe_to_reach(torch.tensor(nfes), torch.tensor(errors, dtype=torch.float64), 0.1) == pytest.approx(
        math.sqrt(30.0), rel=1e-12
    )


def test_nfe_to_reach_at_the_ends_and_past_a_divergence():
    nfes = [1, 2, 4, 8]
    assert nfe_to_reach(nfes, [0.5, 0.2, 0.1, 0.05], 1.0) == 1.0  # reached at once
    assert nfe_to_reach(nfes, [0.5, 0.2, 0.1, 0.05], 0.01) == math.inf  # never reached
    assert (
        nfe_to_reach(nfes, [math.inf, math.inf, 0.1, 0.05], 0.2) == 4.0
    )  # diverged before: the first that reaches
    assert nfe_to_reach(nfes, [0.5, 0.01, 0.3, 0.02], 0.1) < 2  # the first crossing counts
    assert (
        nfe_to_reach(nfes, [0.5, 0.0, 0.0, 0.0], 0.1) == 1.0
    )  # an exact zero: the log-log line drops at once


@pytest.mark.parametrize(
    "nfes, errors, target, match",
    [
        ([1, 2, 4], [0.3, 0.2], 0.1, "one error per NFE"),
        ([0, 2, 4], [0.3, 0.2, 0.1], 0.1, "positive"),
        ([1, 2, 4], [0.3, 0.2, 0.1], 0.0, "target"),
    ],
)
def test_nfe_to_reach_rejects_bad_input(nfes, errors, target, match):
    with pytest.raises(ValueError, match=match):
        nfe_to_reach(nfes, errors, target)


@pytest.mark.parametrize(
    "metric, match",
    [
        (lambda a, b: float("nan"), "metric returned nan for the draws of seeds 0 and 1"),
        (lambda a, b: torch.tensor(float("inf")), "metric returned inf"),
    ],
)
def test_data_band_refuses_non_finite_metric_values(metric, match):
    with pytest.raises(ValueError, match=match):
        data_band(metric, lambda seed: torch.zeros(3, 2), repeats=2)


def test_data_band_refuses_bad_seeds_and_non_numbers():
    with pytest.raises(ValueError, match="[KMGT]iB of memory"):
        data_band(energy_distance, lambda seed: torch.zeros(3, 2), repeats=10**12)
    with pytest.raises(ValueError, match="first_seed"):
        data_band(energy_distance, lambda seed: torch.zeros(3, 2), first_seed=-1)
    with pytest.raises(TypeError, match="metric must return one number, got Tensor"):
        data_band(lambda a, b: a, lambda seed: torch.zeros(3, 2), repeats=1)
    with pytest.raises(TypeError, match="metric must return one number, got str"):
        data_band(lambda a, b: "0.1", lambda seed: torch.zeros(3, 2), repeats=1)


@pytest.mark.parametrize(
    "nfes, errors, target, error, match",
    [
        ([1, float("inf")], [0.3, 0.2], 0.1, ValueError, "positive finite"),
        ([1, float("nan")], [0.3, 0.2], 0.1, ValueError, "positive finite"),
        ([], [], 0.1, ValueError, "one error per NFE"),
        ([1, 2], [0.3, 0.2], float("inf"), ValueError, "target error must be a finite"),
        ([1, 2], [0.3, 0.2], float("nan"), ValueError, "target error must be a finite"),
        ([1, 2], [0.3, 0.2], -0.1, ValueError, "target error must lie in"),
        ([1, 2], [0.3, 0.2], "0.1", TypeError, "target error must be a real number"),
        (4, [0.3], 0.1, TypeError, "nfes must be a list"),
        ([1, 2], "0.3", 0.1, TypeError, "errors must be a list"),
        ([1, 2], [0.3, "x"], 0.1, TypeError, "errors must hold real numbers"),
        (torch.ones(2, 2), [0.3, 0.2], 0.1, ValueError, "nfes must be one-dimensional"),
        ([1, 2], [0.3, -0.2], 0.1, ValueError, "errors must be >= 0"),
    ],
)
def test_nfe_to_reach_refuses_more_bad_input(nfes, errors, target, error, match):
    with pytest.raises(error, match=match):
        nfe_to_reach(nfes, errors, target)


def test_nfe_to_reach_reads_nan_as_a_diverged_point():
    assert nfe_to_reach([1, 2, 4], [float("nan"), 0.2, 0.05], 0.1) == pytest.approx(2 * 2**0.5)
    assert nfe_to_reach([1, 2, 4], [0.5, float("nan"), 0.05], 0.1) == 4.0
