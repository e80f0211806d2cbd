"""A KL autoencoder for MNIST (Stable Diffusion's VAE at MNIST scale): images (B, 1, 28, 28) <-> latents (B, C, 7, 7).

The encoder gives a diagonal Gaussian q(z | x) = N(mean, exp(logvar)) per image; training minimises
reconstruction error + beta * KL(q(z | x) || N(0, I)), which keeps the latents near a standard normal so
that a flow or diffusion model can later learn them. The decoder's output is unbounded (no tanh): a tanh
would saturate at the background value -1, which most MNIST pixels have, and starve their gradient; as in
Stable Diffusion, a caller clamps decoded images to [-1, 1] for display.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from lessons.checkpoints import configured_builder, load_model, save_configured_model
from lessons.checks import (
    check_finite,
    check_instance,
    check_matches_model,
    check_number,
    check_positive_int,
    check_seed,
    check_tensor,
    choose,
)
from lessons.device import pick_device
from lessons.mnist import MNIST, mnist_batches
from lessons.tensors import normal_like
from lessons.training import TrainResult, train
from lessons.unet import _groups

# KL weight: digits stay sharp, latents near N(0, I); see make_autoencoder_loss for what was measured
DEFAULT_BETA = 1e-2
LOGVAR_RANGE = (-30.0, 20.0)  # Stable Diffusion's clamp: exp(logvar) stays finite in float32
LATENT_SIZE = 7  # 28 -> 14 -> 7 after two stride-2 convolutions
SCALE_SEED = 0  # latent_scale draws its posterior samples from this seed, so it is repeatable


@dataclass
class AutoencoderConfig:
    """Widths at 28x28 and 14x14 (the 7x7 level keeps the second), latent channels, image channels."""

    channels: tuple = (32, 64)
    latent_channels: int = 4
    image_channels: int = 1

    def __post_init__(self):
        ch = self.channels
        if (
            not isinstance(ch, (tuple, list))
            or len(ch) != 2
            or any(isinstance(c, bool) or not isinstance(c, int) or c <= 0 for c in ch)
        ):
            raise ValueError(
                f"channels must be two positive whole widths (at 28x28 and at 14x14), e.g. (16, 32), got {ch!r}."
            )
        self.channels = tuple(ch)
        check_positive_int(self.latent_channels, "latent_channels (channels of the 7x7 latent)")
        check_positive_int(self.image_channels, "image_channels (1 for grey images, 3 for colour)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


SIZES = {  # tiny: CI trains it in seconds; small: the shipped checkpoint (about 120k parameters)
    "tiny": dict(channels=(8, 16)),
    "small": dict(channels=(16, 32)),
}


def autoencoder_config(size: str = "small", latent_channels: int = 4) -> AutoencoderConfig:
    """The configuration of a named size: 'tiny' or 'small'."""
    return AutoencoderConfig(
        **SIZES[choose(size, SIZES, "autoencoder size")], latent_channels=latent_channels
    )


class _Block(nn.Module):
    """out = x + conv(act(norm(conv(act(norm(x)))))), (B, C, H, W): the U-Net's ResBlock without time."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(_groups(channels), channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(_groups(channels), channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)  # each block starts as the identity
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _head(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.GroupNorm(_groups(c_in), c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1))


class KLAutoencoder(nn.Module):
    """encode(images) -> (mean, logvar), decode(z) -> images, forward(images) -> (recon, mean, logvar)."""

    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        config = AutoencoderConfig() if config is None else config
        if isinstance(config, str):
            raise TypeError(
                f"KLAutoencoder takes an AutoencoderConfig, not the name {config!r}: use "
                f"KLAutoencoder(autoencoder_config({config!r}))."
            )
        self.config = check_instance(config, AutoencoderConfig, "config", "autoencoder_config('small')")
        (c1, c2), lat, img = config.channels, config.latent_channels, config.image_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(img, c1, 3, padding=1),
            _Block(c1),  # 28x28
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            _Block(c2),  # 14x14
            nn.Conv2d(c2, c2, 3, stride=2, padding=1),
            _Block(c2),  # 7x7
            _head(c2, 2 * lat),  # mean and logvar side by side
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(lat, c2, 3, padding=1),
            _Block(c2),  # 7x7
            _up(c2, c2),
            _Block(c2),  # 14x14
            _up(c2, c1),
            _Block(c1),  # 28x28
            _head(c1, img),
        )

    def _check(self, x, name: str, channels: int, size: int) -> torch.Tensor:
        check_tensor(x, name)
        if x.ndim != 4 or x.shape[1] != channels or tuple(x.shape[2:]) != (size, size):
            raise ValueError(
                f"{name} must have shape (B, {channels}, {size}, {size}) ({size}x{size} with {channels} "
                f"channel(s)), got {tuple(x.shape)}."
            )
        return check_matches_model(x, self, name)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of q(z | x), each (B, latent_channels, 7, 7), for images x (B, image_channels, 28, 28)."""
        self._check(x, "images", self.config.image_channels, 28)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (B, image_channels, 28, 28), unbounded, from latents z (B, latent_channels, 7, 7)."""
        self._check(z, "z (the latents)", self.config.latent_channels, LATENT_SIZE)
        return self.decoder(z)

    def forward(self, x: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None):
        """(recon (B, C, 28, 28), mean, logvar): decode z = mean + exp(logvar / 2) eps, or z = mean when sample=False."""
        if not isinstance(sample, bool):
            raise TypeError(
                f"sample must be True (draw z from q(z | x)) or False (use the mean), got {sample!r}."
            )
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * normal_like(mean, generator) if sample else mean
        return self.decoder(z), mean, logvar


def _kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (mean.square() + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag exp(logvar)) || N(0, I)) per sample, (B,): 0.5 sum(mean^2 + exp(logvar) - 1 - logvar)."""
    check_finite(check_tensor(mean, "mean"), "mean")
    check_finite(check_tensor(logvar, "logvar"), "logvar")
    if mean.shape != logvar.shape:
        raise ValueError(
            f"mean and logvar must have the same shape (one variance per mean), got {tuple(mean.shape)} "
            f"and {tuple(logvar.shape)}."
        )
    if mean.ndim < 2:
        raise ValueError(
            f"mean and logvar must have shape (B, ...): a batch, then the latent dimensions (e.g. (B, 4, 7, 7)); "
            f"got shape {tuple(mean.shape)}."
        )
    return _kl(mean, logvar)


def _loss_terms(model, images, beta: float, generator=None):
    """(loss, reconstruction (B,), kl (B,)) after the checks of autoencoder_loss."""
    check_instance(model, KLAutoencoder, "model", "KLAutoencoder(autoencoder_config('tiny'))")
    check_finite(check_tensor(images, "images"), "images")
    recon, mean, logvar = model(images, sample=True, generator=generator)
    reconstruction = (recon - images).square().flatten(1).sum(1)  # (B,)
    kl = _kl(mean, logvar)  # (B,)
    return (reconstruction + beta * kl).mean(), reconstruction, kl


def autoencoder_loss(model, images: torch.Tensor, beta: float, generator: torch.Generator | None = None):
    """(loss, {"reconstruction", "kl"}): loss = mean over images of [sum_pixels (recon - x)^2 + beta KL(q || N(0, I))].

    This is the negative ELBO of a Gaussian decoder p(x | z) = N(recon, s^2 I) with a fixed variance s^2, up to
    constants and a factor 1 / (2 s^2): -ELBO = sum (recon - x)^2 / (2 s^2) + KL. beta = 2 s^2 absorbs the decoder
    variance; beta < 2 s^2 (a beta-VAE with small beta) trades a less regular latent for sharper digits.
    The parts are per-image means (floats). recon is decoded from one posterior sample z = mean + std eps.
    """
    beta = check_number(beta, "beta (the KL weight)", low=0)
    loss, reconstruction, kl = _loss_terms(model, images, beta, generator)
    return loss, {"reconstruction": reconstruction.mean().item(), "kl": kl.mean().item()}


def make_autoencoder_loss(beta: float = DEFAULT_BETA):
    """loss_fn(model, batch) for lessons.training.train; batch is images (B, 1, 28, 28) or (images, labels).

    DEFAULT_BETA = 0.01, measured on MNIST test digits (tiny 600 steps, small 1000 steps): beta 1e-3 gives
    nearly deterministic latents (posterior noise under 1% of their variance, KL ~630 nats per image);
    0.01 keeps the digits as sharp (per-image squared error 3.2 vs 2.8 for small) with the noise at ~17% of
    the variance and half the KL; 0.03 and above visibly soften the decoded posterior samples. 0.01 is also
    about 2 s^2 for the per-pixel squared error s^2 ~ 0.004 to 0.008 the decoder reaches: the ELBO's own weight.
    """
    beta = check_number(beta, "beta (the KL weight)", low=0)

    def loss_fn(model, batch):
        images = batch[0] if isinstance(batch, tuple) else batch  # labels, if any, are not used
        return _loss_terms(model, images, beta)[0]

    return loss_fn


def train_autoencoder(
    model: KLAutoencoder,
    data: MNIST,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    beta: float = DEFAULT_BETA,
    seed: int = 0,
    device=None,
    progress: bool | None = None,
    callback=None,
    callback_every: int = 100,
    lr_schedule: str = "cosine",
) -> TrainResult:
    """Train model in place on random batches of data.images with lessons.training.train; return its TrainResult.

    callback(step, model, losses) runs every callback_every steps.
    """
    check_instance(model, KLAutoencoder, "model", "KLAutoencoder(autoencoder_config('tiny'))")
    check_instance(data, MNIST, "data", "load_mnist('train')")
    if model.config.image_channels != data.images.shape[1]:
        raise ValueError(
            f"the autoencoder expects {model.config.image_channels} image channel(s) but the MNIST digits have "
            f"{data.images.shape[1]}; build it with image_channels={data.images.shape[1]}."
        )
    check_positive_int(steps, "the number of training steps")
    check_positive_int(batch_size, "batch_size")
    check_number(lr, "the learning rate lr", low=0, low_open=True)
    check_seed(seed)
    return train(
        model,
        make_autoencoder_loss(beta),
        mnist_batches(data, batch_size, seed=seed),
        steps,
        lr=lr,
        seed=seed,
        device=device,
        progress=progress,
        callback=callback,
        callback_every=callback_every,
        lr_schedule=lr_schedule,
    )


@torch.no_grad()
def latent_scale(model: KLAutoencoder, images: torch.Tensor, batch_size: int = 500) -> float:
    """1 / std of posterior samples z = mean + exp(logvar / 2) eps over all images and latent numbers (SD's 0.18215).

    eps comes from a generator seeded with SCALE_SEED, so the factor is repeatable; images (N, C, 28, 28) go
    through the encoder batch_size at a time, on the model's device.
    """
    check_instance(model, KLAutoencoder, "model", "KLAutoencoder(autoencoder_config('tiny'))")
    check_finite(check_tensor(images, "images"), "images")
    check_positive_int(batch_size, "batch_size")
    param = next(model.parameters())
    generator = torch.Generator().manual_seed(SCALE_SEED)
    samples = []
    for part in torch.split(images, batch_size):
        mean, logvar = model.encode(part.to(param.device))
        samples.append((mean + torch.exp(0.5 * logvar) * normal_like(mean, generator)).double().cpu())
    std = torch.cat(samples).std().item()
    if not std > 0:
        raise ValueError("the latents of these images do not vary (std 0), so no factor makes their std 1.")
    return 1.0 / std


def save_autoencoder(path, model: KLAutoencoder, settings: dict) -> str:
    """Save an autoencoder's weights with its configuration and the given settings (beta, scale, ...); return the checksum."""
    return save_configured_model(
        path, model, KLAutoencoder, "autoencoder", settings, "KLAutoencoder(autoencoder_config('small'))"
    )


def load_autoencoder(path, device="cpu"):
    """Load (autoencoder in eval mode, settings) from a checkpoint written by save_autoencoder, checksum verified."""
    device = pick_device(device)
    model, settings = load_model(path, _build_autoencoder)
    return model.to(device), settings


_build_autoencoder = configured_builder(
    KLAutoencoder,
    AutoencoderConfig,
    "autoencoder",
    "it was not written by save_autoencoder; remake it with scripts/train_latent.py --models autoencoder",
    what="autoencoder",
)
