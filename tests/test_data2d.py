"""2D targets: shapes, seeds, and the scale of each target."""

import math

import pytest
import torch

from lessons.data2d import TARGETS, eight_gaussians, sample_target, skewed_mixture, target_density
from lessons.mixture import GaussianMixture

N = 4000


@pytest.mark.parametrize("name", TARGETS)
def test_shape_dtype_and_seeds(name):
    x = sample_target(name, N, seed=0)
    assert x.shape == (N, 2) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert torch.equal(x, sample_target(name, N, seed=0))
    assert not torch.equal(x, sample_target(name, N, seed=1))
    assert sample_target(name, 1, seed=0).shape == (1, 2)


@pytest.mark.parametrize("name", TARGETS)
def test_points_are_shuffled(name):
    """No half of the set belongs to one part: the first and second halves have the same mean."""
    x = sample_target(name, N, seed=2)
    scale = x.std(0).max()
    assert (x[: N // 2].mean(0) - x[N // 2 :].mean(0)).abs().max() < 0.15 * scale


def test_seed_none_draws_fresh_points():
    torch.manual_seed(0)
    assert not torch.equal(sample_target("moons", 100, seed=None), sample_target("moons", 100, seed=None))


def test_eight_gaussians_scale():
    x = sample_target("8gaussians", N)
    radius = x.norm(dim=1)
    assert radius.mean().item() == pytest.approx(5.0, abs=0.1)
    angles = torch.atan2(x[:, 1], x[:, 0])
    sector = torch.round(angles / (2 * math.pi / 8)) % 8
    counts = torch.bincount(sector.long(), minlength=8).float()
    assert (counts / N - 1 / 8).abs().max() < 0.03  # equal weights
    mixture = eight_gaussians()
    assert torch.allclose(mixture.means.norm(dim=1), torch.full((8,), 5.0))
    assert torch.allclose(mixture.stds, torch.full((8,), 0.1**0.25))


def test_moons_range():
    x = sample_target("moons", N)
    # clean moons span x in [-1, 2], y in [-0.5, 1]; the course scales by 3 and shifts by -1
    assert -6.5 < x[:, 0].min() < -3.0 and 4.0 < x[:, 0].max() < 7.5
    assert -5.0 < x[:, 1].min() < -2.0 and 1.5 < x[:, 1].max() < 4.5
    assert x.mean(0)[0].item() == pytest.approx(0.5, abs=0.15)  # 3 * 0.5 - 1


def test_checkerboard_is_a_checkerboard_on_minus4_4():
    x = sample_target("checkerboard", N)
    assert x.min() >= -4 and x.max() <= 4
    cells = torch.floor(x / 2).long()
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all()  # only the 'black' squares
    assert len({tuple(c) for c in cells.tolist()}) == 8


def test_rings_radii():
    radius = sample_target("rings", N).norm(dim=1)
    for r in (0.75, 1.5, 2.25, 3.0):
        assert ((radius - r).abs() < 0.4).float().mean() > 0.2
    assert radius.max() < 3.5


def test_other_targets_rough_scale():
    g = sample_target("gaussian", N)
    assert g.mean(0).abs().max() < 0.1 and (g.std(0) - 1).abs().max() < 0.05
    for name in ("swissroll", "scurve", "2spirals"):
        x = sample_target(name, N)
        assert 0.5 < x.abs().max() < 7.0, name
    s = sample_target("scurve", N)
    assert s[:, 0].abs().max() < 2.5  # 2 sin(t) plus a little noise


def test_target_density_matches_sampler():
    for name, build in (("8gaussians", eight_gaussians), ("mixture", skewed_mixture)):
        mixture = target_density(name)
        assert isinstance(mixture, GaussianMixture)
        assert torch.equal(mixture.means, build().means)
        x = sample_target(name, 20_000)
        mean = mixture.weights @ mixture.means
        assert torch.allclose(x.mean(0), mean, atol=0.08)


@pytest.mark.parametrize("name, n", [("moon", 10), ("8gaussians", 0), ("8gaussians", -3), ("moons", 2.5)])
def test_bad_name_or_size_raises(name, n):
    with pytest.raises(ValueError):
        sample_target(name, n)


def test_target_density_only_for_mixtures():
    with pytest.raises(ValueError, match="closed-form density"):
        target_density("moons")


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="unknown 2D target 'moon'; choose one of: .*moons"):
        sample_target("moon", 10)
    with pytest.raises(TypeError, match="name must be the name of a 2D target"):
        sample_target(eight_gaussians(), 10)
    with pytest.raises(ValueError, match="closed-form density 'rings'; choose one of: 8gaussians, mixture"):
        target_density("rings")
    with pytest.raises(TypeError, match="name must be '8gaussians' or 'mixture'"):
        target_density(None)


@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10", float("nan"), float("inf")])
def test_bad_sizes_are_refused_in_words(n):
    with pytest.raises(ValueError, match="number of points n must be a positive whole number"):
        sample_target("moons", n)


@pytest.mark.parametrize("seed", [1.5, "0", float("nan"), True])
def test_bad_seeds_are_refused(seed):
    with pytest.raises(ValueError, match="seed must be a whole number"):
        sample_target("moons", 10, seed=seed)


def test_a_draw_too_large_for_memory_is_refused_before_any_work(monkeypatch):
    import lessons.checks

    monkeypatch.setattr(lessons.checks, "available_memory_bytes", lambda: 2**30)  # a 1 GiB machine
    with pytest.raises(ValueError, match="n = 1,000,000,000 points.*[KMGT]iB of memory"):
        sample_target("moons", 10**9)
    assert sample_target("moons", 2_000_000).shape == (2_000_000, 2)  # within memory: drawn as before
