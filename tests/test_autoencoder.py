"""The KL autoencoder: shapes, the Gaussian KL against torch and Monte Carlo, the loss, training, scale, checkpoints."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from lessons.autoencoder import (
    SCALE_SEED,
    AutoencoderConfig,
    KLAutoencoder,
    autoencoder_config,
    autoencoder_loss,
    gaussian_kl,
    latent_scale,
    load_autoencoder,
    make_autoencoder_loss,
    save_autoencoder,
    train_autoencoder,
)
from lessons.checkpoints import save_checkpoint
from lessons.mnist import load_mnist
from lessons.training import TrainResult
from lessons.unet import UNet, count_parameters, unet_config

TRAIN_STEPS = 150


def images(b=3, seed=0):
    return torch.rand(b, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def per_image_error(a, b):
    return (a - b).square().flatten(1).sum(1)  # (B,)


@pytest.fixture(scope="module")
def trained():
    """A tiny autoencoder trained TRAIN_STEPS steps, with held-out digits and their error before training."""
    torch.manual_seed(0)
    model = KLAutoencoder(autoencoder_config("tiny"))
    held_out = load_mnist("test", verbose=False).images[:200]
    with torch.no_grad():
        before = per_image_error(model.decode(model.encode(held_out)[0]), held_out).mean().item()
    result = train_autoencoder(
        model, load_mnist("train", verbose=False), TRAIN_STEPS, batch_size=32, progress=False
    )
    return model, result, held_out, before


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_shapes(size):
    model = KLAutoencoder(autoencoder_config(size, latent_channels=3))
    x = images(2)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (2, 3, 7, 7)
    assert model.decode(mean).shape == (2, 1, 28, 28)
    recon, m, lv = model(x)
    assert recon.shape == x.shape and torch.equal(m, mean) and torch.equal(lv, logvar)


def test_sizes_and_config():
    counts = {size: count_parameters(KLAutoencoder(autoencoder_config(size))) for size in ("tiny", "small")}
    assert counts["tiny"] < counts["small"]
    assert 50_000 <= counts["small"] <= 150_000
    config = autoencoder_config("small")
    assert AutoencoderConfig(**{**config.to_dict(), "channels": tuple(config.channels)}) == config
    assert config.to_dict() == {"channels": [16, 32], "latent_channels": 4, "image_channels": 1}


def test_logvar_is_clamped():
    model = KLAutoencoder(autoencoder_config("tiny"))
    with torch.no_grad():
        model.encoder[-1][-1].bias[4:] = 1e4  # the logvar half of the head
    assert (model.encode(images())[1] == 20.0).all()


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(5, 4, 7, 7, generator=g, dtype=torch.float64)
    logvar = 2 * torch.randn(5, 4, 7, 7, generator=g, dtype=torch.float64)
    q = Independent(Normal(mean, torch.exp(0.5 * logvar)), 3)
    p = Independent(Normal(torch.zeros_like(mean), torch.ones_like(mean)), 3)
    assert torch.allclose(gaussian_kl(mean, logvar), kl_divergence(q, p), rtol=1e-12, atol=1e-10)


def _agrees_with_monte_carlo(kl_fn, n=200_000) -> bool:
    """kl_fn(mean, logvar) within 4 standard errors of the mean of log q(z) - log p(z), z ~ q, for each sample."""
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(3, 2, 2, 2, generator=g, dtype=torch.float64)
    logvar = torch.rand(3, 2, 2, 2, generator=g, dtype=torch.float64) * 3 - 2  # variances in [e^-2, e]
    std = torch.exp(0.5 * logvar)
    z = mean + std * torch.randn(n, *mean.shape, generator=g, dtype=torch.float64)  # (n, B, 2, 2, 2)
    log_q = (-0.5 * ((z - mean) / std) ** 2 - torch.log(std)).flatten(2).sum(2)  # the 2 pi terms cancel
    log_p = (-0.5 * z**2).flatten(2).sum(2)
    diff = log_q - log_p  # (n, B)
    estimate, standard_error = diff.mean(0), diff.std(0) / math.sqrt(n)
    return bool(((kl_fn(mean, logvar) - estimate).abs() < 4 * standard_error).all())


def test_gaussian_kl_matches_monte_carlo():
    assert _agrees_with_monte_carlo(gaussian_kl)  # proves the closed form
    # control: the same test rejects a formula without the -1, and one with the std in place of the variance
    assert not _agrees_with_monte_carlo(lambda m, lv: gaussian_kl(m, lv) + 0.5 * m[0].numel())
    assert not _agrees_with_monte_carlo(
        lambda m, lv: 0.5 * (m**2 + torch.exp(0.5 * lv) - 1 - lv).flatten(1).sum(1)
    )


def test_gaussian_kl_is_zero_at_the_prior():
    zeros = torch.zeros(3, 4, 7, 7)
    assert torch.equal(gaussian_kl(zeros, zeros), torch.zeros(3))
    assert (gaussian_kl(zeros + 0.1, zeros) > 0).all()


def test_loss_equals_its_parts_and_a_computation_by_hand():
    model, x, beta = KLAutoencoder(autoencoder_config("tiny")), images(4), 0.3
    loss, parts = autoencoder_loss(model, x, beta, generator=torch.Generator().manual_seed(5))
    assert set(parts) == {"reconstruction", "kl"} and all(isinstance(v, float) for v in parts.values())
    assert loss.item() == pytest.approx(parts["reconstruction"] + beta * parts["kl"], rel=1e-6)
    mean, logvar = model.encode(x)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(5))
    recon = model.decode(mean + torch.exp(logvar / 2) * eps)
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum((1, 2, 3))
    assert parts["reconstruction"] == pytest.approx(per_image_error(recon, x).mean().item(), rel=1e-5)
    assert parts["kl"] == pytest.approx(kl.mean().item(), rel=1e-5)


def test_make_autoencoder_loss_ignores_labels():
    model, x = KLAutoencoder(autoencoder_config("tiny")), images(4)
    loss_fn = make_autoencoder_loss(0.1)
    torch.manual_seed(3)
    plain = loss_fn(model, x)
    torch.manual_seed(3)
    assert torch.equal(loss_fn(model, (x, torch.arange(4))), plain)
    torch.manual_seed(3)
    assert torch.equal(autoencoder_loss(model, x, 0.1)[0], plain)


def test_sampling_is_repeatable_and_the_mean_is_deterministic():
    model, x = KLAutoencoder(autoencoder_config("tiny")), images(2)
    mean_recon = model(x, sample=False)[0]
    assert torch.equal(model(x, sample=False)[0], mean_recon)
    assert torch.equal(mean_recon, model.decode(model.encode(x)[0]))
    first = model(x, generator=torch.Generator().manual_seed(7))[0]
    assert torch.equal(model(x, generator=torch.Generator().manual_seed(7))[0], first)
    assert not torch.allclose(model(x, generator=torch.Generator().manual_seed(8))[0], first)
    assert not torch.allclose(first, mean_recon)


def test_reparameterised_gradient_reaches_mean_and_logvar():
    model, x = KLAutoencoder(autoencoder_config("tiny")), images(4)
    head = model.encoder[-1][-1]  # its first 4 output channels are the mean, the last 4 the logvar

    def head_grads(sample):
        model.zero_grad()
        recon = model(x, sample=sample, generator=torch.Generator().manual_seed(0))[0]
        per_image_error(recon, x).mean().backward()  # beta = 0: the logvar is reached only through z
        return head.weight.grad[:4].abs().sum().item(), head.weight.grad[4:].abs().sum().item()

    to_mean, to_logvar = head_grads(sample=True)
    assert to_mean > 0 and to_logvar > 0
    assert head_grads(sample=False)[1] == 0.0  # control: without the noise, z does not depend on the logvar


def test_training_lowers_the_error_and_round_trips_digits(trained):
    model, result, held_out, before = trained
    assert (
        isinstance(result, TrainResult) and result.steps_done == TRAIN_STEPS and result.stopped_early is None
    )
    assert sum(result.losses[-20:]) / 20 < 0.1 * sum(result.losses[:5]) / 5
    with torch.no_grad():
        round_trip = model.decode(model.encode(held_out)[0])
    own = per_image_error(round_trip, held_out).mean().item()
    shuffled = per_image_error(round_trip, held_out.roll(1, dims=0)).mean().item()
    assert own < 0.1 * before  # about 21 against 730 when written
    assert own < 0.25 * shuffled  # control: another digit is much farther than the one encoded


def test_latent_scale_is_one_over_the_sample_std():
    model, x = KLAutoencoder(autoencoder_config("tiny")), images(40)
    with torch.no_grad():
        mean, logvar = model.encode(x)
        eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(SCALE_SEED))
        by_hand = 1 / (mean + torch.exp(logvar / 2) * eps).double().std().item()
        of_means = 1 / mean.std().item()
    scale = latent_scale(model, x, batch_size=40)
    assert scale == pytest.approx(by_hand, rel=1e-6)
    assert latent_scale(model, x, batch_size=40) == scale  # seeded: repeatable
    assert latent_scale(model, x, batch_size=7) == pytest.approx(by_hand, rel=0.02)  # other draws, same law
    assert abs(scale - of_means) > 0.05 * of_means  # control: the posterior noise counts


def test_save_and_load_round_trip(trained, tmp_path):
    model = trained[0]
    digest = save_autoencoder(tmp_path / "ae.pt", model, {"beta": 0.01, "scale": 1.5})
    loaded, settings = load_autoencoder(tmp_path / "ae.pt")
    assert len(digest) == 64 and not loaded.training
    assert settings == {"beta": 0.01, "scale": 1.5, "autoencoder": model.config.to_dict()}
    assert loaded.config == model.config
    x = images(3)
    assert torch.equal(loaded(x, sample=False)[0], model(x, sample=False)[0])
    assert torch.equal(loaded.encode(x)[1], model.encode(x)[1])


def test_loading_another_checkpoint_is_refused(tmp_path):
    save_checkpoint(tmp_path / "plain.pt", {"w": torch.zeros(2)}, {"method": "cfm"})
    with pytest.raises(ValueError, match="no autoencoder configuration"):
        load_autoencoder(tmp_path / "plain.pt")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: m.encode(torch.zeros(2, 28, 28)), ValueError, r"\(B, 1, 28, 28\)"),
        (lambda m: m.encode(torch.zeros(2, 1, 32, 32)), ValueError, "28x28"),
        (lambda m: m.encode(torch.zeros(2, 3, 28, 28)), ValueError, "channel"),
        (lambda m: m.encode(torch.zeros(2, 1, 28, 28, dtype=torch.long)), ValueError, "float"),
        (lambda m: m.encode(torch.zeros(2, 1, 28, 28, dtype=torch.float64)), ValueError, "dtype"),
        (lambda m: m.encode([[0.0]]), TypeError, "tensor"),
        (lambda m: m.decode(torch.zeros(2, 4, 14, 14)), ValueError, r"\(B, 4, 7, 7\)"),
        (lambda m: m(images(), sample="yes"), TypeError, "sample"),
        (lambda m: m(images(), generator=0), TypeError, "generator"),
        (lambda m: autoencoder_loss(m, images(), -1.0), ValueError, "beta"),
        (lambda m: autoencoder_loss(m, images(), float("nan")), ValueError, "beta"),
        (lambda m: autoencoder_loss(UNet(unet_config("tiny")), images(), 0.1), TypeError, "KLAutoencoder"),
        (lambda m: autoencoder_loss(m, images().fill_(float("nan")), 0.1), ValueError, "NaN"),
        (lambda m: make_autoencoder_loss(-0.5), ValueError, "beta"),
        (lambda m: gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 3)), ValueError, "same shape"),
        (lambda m: gaussian_kl(torch.zeros(2), torch.zeros(2)), ValueError, "latent dimensions"),
        (lambda m: gaussian_kl(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4)), ValueError, "float"),
        (lambda m: latent_scale(m, images(), batch_size=0), ValueError, "batch_size"),
        (lambda m: latent_scale("model", images()), TypeError, "model"),
        (lambda m: save_autoencoder("x.pt", UNet(unet_config("tiny")), {}), TypeError, "KLAutoencoder"),
        (lambda m: save_autoencoder("x.pt", m, "settings"), TypeError, "settings"),
        (lambda m: KLAutoencoder("tiny"), TypeError, "autoencoder_config"),
        (lambda m: autoencoder_config("medium"), ValueError, "choose one of"),
        (lambda m: AutoencoderConfig(channels=(8, 16, 32)), ValueError, "two"),
        (lambda m: AutoencoderConfig(channels=(8, 0)), ValueError, "channels"),
        (lambda m: AutoencoderConfig(latent_channels=0), ValueError, "latent_channels"),
    ],
)
def test_bad_input_is_refused_in_words(call, error, match):
    with pytest.raises(error, match=match):
        call(KLAutoencoder(autoencoder_config("tiny")))


def test_train_autoencoder_refuses_bad_arguments_before_any_work():
    model, data = KLAutoencoder(autoencoder_config("tiny")), load_mnist("test", verbose=False)
    before = [p.clone() for p in model.parameters()]
    for kwargs, match in (
        ({"steps": 0}, "steps"),
        ({"beta": -1.0}, "beta"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "learning rate"),
        ({"lr_schedule": "linear"}, "linear"),
        ({"device": "gpu"}, "device"),
    ):
        with pytest.raises(ValueError, match=match):
            train_autoencoder(model, data, **{"steps": 2, **kwargs})
    with pytest.raises(TypeError, match="MNIST"):
        train_autoencoder(model, "mnist", 2)
    with pytest.raises(ValueError, match="image channel"):
        train_autoencoder(KLAutoencoder(AutoencoderConfig(channels=(8, 16), image_channels=3)), data, 2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
