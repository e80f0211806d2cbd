"""Flow matching in an autoencoder's latent space: Stable Diffusion 3's recipe at MNIST scale (lesson 09).

A trained KL autoencoder (lessons.autoencoder) maps a digit (1, 28, 28) to a latent (4, 7, 7), four times
fewer numbers. LatentSpace multiplies the latents by one scaling factor so that they have unit standard
deviation over the data (Stable Diffusion's 0.18215 at its own scale), the scale of the Gaussian noise they
are mixed with. A velocity network (the U-Net or the DiT, both called as model(x=..., t=..., cond=...)) then
learns conditional flow matching on the straight path x_t = t latent + (1 - t) noise, with SD3's
logit-normal times (lessons.weighting.logit_normal_times), which put more training on the middle of the path.
Sampling integrates the velocity from noise to a latent and decodes it.
"""

import torch

from lessons.autoencoder import KLAutoencoder, latent_scale
from lessons.checks import (
    check_finite,
    check_instance,
    check_number,
    check_positive_int,
    check_seed,
    check_tensor,
    choose,
)
from lessons.class_labels import check_labels
from lessons.device import pick_device
from lessons.dit import DiTConfig, dit_config
from lessons.flow_matching import cfm_loss, sample_times
from lessons.guidance import drop_labels
from lessons.image_training import autocast_for, generate
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule
from lessons.training import random_batches, train_with_ema
from lessons.unet import UNet, UNetConfig
from lessons.weighting import logit_normal_times

TIME_SAMPLINGS = ("logit_normal", "uniform")
# the latent U-Net: one resolution level (7x7 cannot be halved twice), sized to the small DiT's parameter count
LATENT_UNET = dict(channels=(48,), emb_dim=64)


def latent_unet(num_classes: int | None = None, latent_channels: int = 4) -> UNet:
    """The lesson's U-Net for latents (latent_channels, 7, 7): about as many parameters as latent_dit_config's DiT."""
    return UNet(UNetConfig(**LATENT_UNET, image_channels=latent_channels, num_classes=num_classes))


def latent_dit_config(num_classes: int | None = None, latent_channels: int = 4, **overrides) -> DiTConfig:
    """The lesson's DiT for latents (latent_channels, 7, 7): the 'small' size, one token per latent pixel.

    overrides go to lessons.dit.dit_config (depth, heads, ...), except the three the latent's shape fixes.
    """
    fixed = sorted(set(overrides) & {"input_size", "patch_size", "in_channels"})
    if fixed:
        raise ValueError(
            f"latent_dit_config sets {', '.join(fixed)} from the latents' shape (latent_channels, 7, 7): "
            "input_size 7, in_channels = latent_channels, and patch_size 1, since 7 splits into more than one "
            "patch only by 1. Change latent_channels=, or call lessons.dit.dit_config for another shape."
        )
    return dit_config(
        "small", num_classes, input_size=7, patch_size=1, in_channels=latent_channels, **overrides
    )


class LatentSpace:
    """An autoencoder and its scaling factor: encode(images) -> scale * z (B, C, 7, 7); decode(latents) -> images."""

    def __init__(self, autoencoder: KLAutoencoder, scale: float):
        self.autoencoder = check_instance(autoencoder, KLAutoencoder, "autoencoder", "KLAutoencoder()")
        self.scale = check_number(scale, "scale (the latent scaling factor)", low=0, low_open=True)
        self.autoencoder.eval().requires_grad_(False)

    @classmethod
    def from_data(cls, autoencoder: KLAutoencoder, images: torch.Tensor) -> "LatentSpace":
        """The scaling factor computed from images: 1 / std of their posterior samples (lessons.autoencoder.latent_scale)."""
        return cls(autoencoder, latent_scale(autoencoder, images))

    @property
    def shape(self) -> tuple:
        """(C, H, W) of one latent."""
        return (self.autoencoder.config.latent_channels, 7, 7)

    @torch.no_grad()
    def posterior(self, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale * mean, scale * std) of the encoder's Gaussian for each image, each (B, C, 7, 7)."""
        check_finite(check_tensor(images, "images", ndim=4), "images")
        check_positive_int(batch_size, "batch_size")
        means, stds = [], []
        for part in torch.split(images, batch_size):
            mean, logvar = self.autoencoder.encode(part)
            means.append(mean * self.scale)
            stds.append(torch.exp(0.5 * logvar) * self.scale)
        return torch.cat(means), torch.cat(stds)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        """Scaled latents of images (B, 1, 28, 28): the posterior mean, or a posterior sample when sample=True."""
        if not isinstance(sample, bool):
            raise TypeError(f"sample must be True (a posterior sample) or False (the mean), got {sample!r}.")
        mean, std = self.posterior(images)
        if not sample:
            return mean
        return mean + std * torch.randn(mean.shape, generator=generator).to(mean.device)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 500, clamp: bool = True) -> torch.Tensor:
        """Images (B, 1, 28, 28) from scaled latents (B, C, 7, 7), clamped to the pixel range [-1, 1] by default."""
        check_finite(check_tensor(latents, "latents", ndim=4), "latents")
        if tuple(latents.shape[1:]) != self.shape:
            raise ValueError(
                f"latents must have shape (B, {', '.join(map(str, self.shape))}) for this autoencoder, "
                f"got {tuple(latents.shape)}."
            )
        check_positive_int(batch_size, "batch_size")
        images = torch.cat(
            [self.autoencoder.decode(part / self.scale) for part in torch.split(latents, batch_size)]
        )
        return images.clamp(-1, 1) if clamp else images


def latent_cfm_loss(
    num_classes: int | None = None,
    p_uncond: float = 0.1,
    time_sampling: str = "logit_normal",
    mean: float = 0.0,
    std: float = 1.0,
):
    """loss_fn(model, batch) for lessons.training.train on batches (latent mean, latent std[, labels]).

    Each step draws a fresh posterior sample z = mean + std eps (as Stable Diffusion trains on samples of
    its encoder's Gaussian), drops each label to the null class with probability p_uncond (classifier-free
    guidance), draws t by time_sampling, and returns cfm_loss on the straight path.
    """
    choose(time_sampling, TIME_SAMPLINGS, "time sampling")
    if num_classes is not None:
        check_positive_int(num_classes, "num_classes")
    check_number(p_uncond, "p_uncond (the label dropout probability)", low=0, high=1)
    check_number(mean, "mean (of the logit of t)")
    check_number(std, "std (of the logit of t)", low=0, low_open=True)
    path = GaussianPath(LinearSchedule())

    def loss_fn(model, batch):
        if not (isinstance(batch, tuple) and len(batch) in (2, 3)):
            raise ValueError(
                "latent_cfm_loss expects batches (latent mean, latent std) or (mean, std, labels)."
            )
        mean_z, std_z, labels = batch if len(batch) == 3 else (*batch, None)
        z = mean_z + std_z * torch.randn_like(mean_z)
        if labels is not None and num_classes is not None and p_uncond > 0:
            labels = drop_labels(labels, p_uncond, num_classes)
        b = z.shape[0]
        if time_sampling == "uniform":
            t = sample_times(b, z.device)
        else:
            t = logit_normal_times(b, mean, std, device=z.device)
        with autocast_for(z.device):
            loss = cfm_loss(model, path, z, t=t, cond=labels if num_classes is not None else None)
        return loss.float()

    return loss_fn


def train_latent_model(
    model,
    space: LatentSpace,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    p_uncond: float = 0.1,
    time_sampling: str = "logit_normal",
    ema_decay: float = 0.999,
    seed: int = 0,
    device=None,
    progress: bool | None = None,
    callback=None,
    callback_every: int = 100,
):
    """Train a velocity network in place on the latents of images; return (EMA copy, TrainResult).

    The images are encoded once (their posterior means and stds); every step samples from the posterior.
    labels (N,) make a class-conditional model (the model needs num_classes); None trains it unconditional.
    callback(step, ema_model, losses) runs every callback_every steps.
    """
    check_instance(space, LatentSpace, "space", "LatentSpace(autoencoder, scale)")
    check_tensor(images, "images", ndim=4)
    check_positive_int(steps, "the number of training steps")
    check_positive_int(batch_size, "batch_size")
    check_number(ema_decay, "ema_decay", low=0, high=1, high_open=True)
    check_seed(seed)
    check_positive_int(callback_every, "callback_every")
    num_classes = getattr(model, "num_classes", None)
    if labels is not None:
        if not num_classes:
            raise ValueError("labels need a class-conditional model (built with num_classes).")
        check_labels(labels, num_classes, images.shape[0])
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be a function callback(step, ema_model, losses), got {type(callback).__name__}."
        )
    device = pick_device(device)
    mean_z, std_z = space.posterior(images)
    rows = (mean_z, std_z) if labels is None else (mean_z, std_z, labels)
    next_batch = random_batches(rows, batch_size, torch.Generator().manual_seed(seed))
    model.to(device)
    loss_fn = latent_cfm_loss(num_classes if labels is not None else None, p_uncond, time_sampling)
    return train_with_ema(
        model,
        loss_fn,
        next_batch,
        steps,
        ema_decay,
        callback,
        callback_every,
        lr=lr,
        seed=seed,
        device=device,
        progress=progress,
    )


@torch.no_grad()
def generate_latent(
    model,
    space: LatentSpace,
    noise: torch.Tensor,
    nfe: int,
    cond: torch.Tensor | None = None,
    guidance: float = 0.0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Images (B, 1, 28, 28): nfe Euler steps of the latent velocity from noise (B, C, 7, 7), then decoded."""
    check_instance(space, LatentSpace, "space", "LatentSpace(autoencoder, scale)")
    latents = generate(model, "cfm", noise, nfe, cond=cond, guidance=guidance, batch_size=batch_size).final
    return space.decode(latents)
