"""A small U-Net for 28x28 images: (x (B, C, H, W), t (B,), cond (B,) or None) -> (B, C, H, W).

Encoder: residual blocks and stride-2 convolutions (28 -> 14 -> 7); decoder: nearest upsampling
and residual blocks fed the encoder's skip connections. The time embedding (plus a class
embedding when num_classes is set; class index num_classes is the 'no class' token used by
classifier-free guidance) shifts every block's features.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from lessons.checks import check_instance, check_positive_int, check_time, choose
from lessons.class_labels import labels_or_null
from lessons.models import SinusoidalTimeEmbedding, _check_input, _check_num_classes


@dataclass
class UNetConfig:
    """Channels per resolution level, embedding size, image channels and number of classes (None: unconditional)."""

    channels: tuple = (32, 64, 128)
    emb_dim: int = 128
    image_channels: int = 1
    num_classes: int | None = None

    def __post_init__(self):
        ch = self.channels
        if (
            not isinstance(ch, (tuple, list))
            or not ch
            or any(isinstance(c, bool) or not isinstance(c, int) or c <= 0 for c in ch)
        ):
            raise ValueError(
                f"channels must list at least one positive whole width per level, e.g. (16, 32), got {ch!r}."
            )
        self.channels = tuple(ch)
        check_positive_int(self.emb_dim, "emb_dim (the size of the time embedding)")
        if self.emb_dim % 2:
            raise ValueError(f"emb_dim must be even (sin and cos pairs), got {self.emb_dim}.")
        check_positive_int(self.image_channels, "image_channels (1 for grey images, 3 for colour)")
        _check_num_classes(self.num_classes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


SIZES = {  # tiny: CI trains it in seconds; small: the shipped CPU checkpoints; full: about 2M parameters
    "tiny": dict(channels=(8, 16), emb_dim=32),
    "small": dict(channels=(16, 32, 32), emb_dim=64),
    "full": dict(channels=(32, 64, 128), emb_dim=128),
}


def unet_config(size: str = "small", num_classes: int | None = None) -> UNetConfig:
    """The configuration of a named size: 'tiny', 'small' or 'full'."""
    return UNetConfig(**SIZES[choose(size, SIZES, "U-Net size")], num_classes=num_classes)


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """h = conv(act(norm(x))) + shift(emb); out = skip(x) + conv(act(norm(h))), (B, C_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        for value, name in ((c_in, "c_in"), (c_out, "c_out"), (emb_dim, "emb_dim")):
            check_positive_int(value, name)
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (its skip)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.SiLU()
        self.c_in, self.emb_dim = c_in, emb_dim

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.c_in:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.c_in}, H, W), got {got}.")
        if not isinstance(emb, torch.Tensor) or emb.shape != (x.shape[0], self.emb_dim):
            got = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
            raise ValueError(
                f"emb must have shape ({x.shape[0]}, {self.emb_dim}), one embedding per sample, got {got}."
            )
        h = self.conv1(self.act(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(self.act(self.norm2(h)))


class UNet(nn.Module):
    """Time- (and optionally class-) conditioned U-Net; called as model(x=..., t=..., cond=None)."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        config = UNetConfig() if config is None else config
        if isinstance(config, str):
            raise TypeError(
                f"UNet takes a UNetConfig, not the name {config!r}: use UNet(unet_config({config!r}))."
            )
        self.config = config = check_instance(config, UNetConfig, "config", "unet_config('small')")
        self.num_classes = config.num_classes
        ch, emb = list(config.channels), config.emb_dim
        self.time_embedding = nn.Sequential(
            SinusoidalTimeEmbedding(emb), nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb)
        )
        self.class_embedding = nn.Embedding(config.num_classes + 1, emb) if config.num_classes else None
        self.stem = nn.Conv2d(config.image_channels, ch[0], 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c_prev = ch[0]
        for i, c in enumerate(ch):
            self.down.append(ResBlock(c_prev, c, emb))
            if i < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            c_prev = c
        self.middle = ResBlock(c_prev, c_prev, emb)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(ch))):
            self.up.append(ResBlock(c_prev + ch[i], ch[i], emb))
            if i > 0:
                self.upsample.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch[i], ch[i - 1], 3, padding=1)
                    )
                )
            c_prev = ch[max(i - 1, 0)]
        self.head = nn.Sequential(
            nn.GroupNorm(_groups(ch[0]), ch[0]),
            nn.SiLU(),
            nn.Conv2d(ch[0], config.image_channels, 3, padding=1),
        )

    def embed(self, t: torch.Tensor, cond: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Time embedding plus class embedding (the null class when cond is None), (B, emb_dim)."""
        return self._embed(check_time(t, batch=batch), cond, batch)

    def _embed(self, t: torch.Tensor, cond: torch.Tensor | None, batch: int) -> torch.Tensor:
        emb = self.time_embedding(t)
        if self.class_embedding is None:
            if cond is not None:
                raise ValueError("this U-Net was built without classes (num_classes=None) but got cond.")
            return emb
        return emb + self.class_embedding(labels_or_null(cond, self.config.num_classes, batch, t.device))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        levels, c = len(self.config.channels), self.config.image_channels
        factor = 2 ** (levels - 1)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch tensor of shape (B, {c}, H, W), got {type(x).__name__}.")
        if (
            x.ndim != 4
            or x.shape[1] != c
            or min(x.shape[2:]) < 1
            or x.shape[2] % factor
            or x.shape[3] % factor
        ):
            raise ValueError(
                f"x must have shape (B, {c}, H, W) with H and W positive multiples of {factor}, "
                f"got {tuple(x.shape)}."
            )
        _check_input(x, t, self)
        emb = self._embed(t, cond, x.shape[0]).to(x.dtype)
        h, skips = self.stem(x), []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < levels - 1:
                h = self.downsample[i](h)
        h = self.middle(h, emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < levels - 1:
                h = self.upsample[i](h)
        return self.head(h)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    check_instance(model, nn.Module, "model", "UNet(unet_config('tiny'))")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
