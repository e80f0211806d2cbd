"""lessons.latent: the scaled latent space and flow matching in it."""

import pytest
import torch

from lessons.autoencoder import KLAutoencoder, autoencoder_config
from lessons.latent import LatentSpace, latent_dit_config


def _space(scale=2.0):
    torch.manual_seed(0)
    return LatentSpace(KLAutoencoder(autoencoder_config("tiny")), scale)


def test_encode_scales_the_posterior_mean_and_decode_divides_it_out():
    space = _space(2.0)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        mean, _ = space.autoencoder.encode(x)
        z = space.encode(x, sample=False)
        assert torch.allclose(z, 2.0 * mean, atol=1e-6)
        assert z.shape == (3, *space.shape)
        direct = space.autoencoder.decode(mean)
        assert torch.allclose(space.decode(z, clamp=False), direct, atol=1e-5)
        wrong = space.autoencoder.decode(z)  # forgetting the scale gives another image
        assert not torch.allclose(wrong, direct, atol=1e-3)


def test_a_bad_space_is_refused_in_words():
    with pytest.raises((TypeError, ValueError)):
        LatentSpace("autoencoder", 1.0)


def test_the_latent_dit_takes_settings_but_not_the_ones_the_latent_shape_fixes():
    config = latent_dit_config(10, latent_channels=2, depth=2)
    assert (config.input_size, config.patch_size, config.in_channels, config.depth) == (7, 1, 2, 2)
    for fixed in ({"patch_size": 7}, {"input_size": 14}, {"in_channels": 3}):
        with pytest.raises(ValueError, match=f"sets {next(iter(fixed))} from the latents' shape"):
            latent_dit_config(10, **fixed)
