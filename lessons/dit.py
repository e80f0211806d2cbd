"""A tiny Diffusion Transformer (Peebles and Xie 2023) for latents: (x (B, C, H, W), t (B,), cond (B,) or None) -> x's shape.

The latent is cut into p x p patches, one token each (patchify), plus a fixed 2D sin-cos position
embedding. The time embedding plus a class embedding (index num_classes is the null class of
classifier-free guidance) makes one vector c that scales, shifts and gates every block (adaLN-zero:
the gates start at 0, so each block starts as the identity and the fresh model outputs 0). With
joint_attention, the blocks are MM-DiT blocks (Esser et al. 2024, Stable Diffusion 3): the class is
also class_tokens learned context tokens with their own weights, and attention runs over
[context; image] together.
"""

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from lessons.checkpoints import configured_builder, load_model, save_configured_model
from lessons.checks import (
    check_instance,
    check_memory,
    check_number,
    check_positive_int,
    check_tensor,
    choose,
)
from lessons.class_labels import labels_or_null
from lessons.device import pick_device
from lessons.models import SinusoidalTimeEmbedding, _check_input, _check_num_classes
from lessons.unet import count_parameters as count_parameters  # one parameter counter for every model


@dataclass
class DiTConfig:
    """Latent size and channels, patch size, width, depth, heads, MLP ratio, classes, and the MM-DiT switch."""

    input_size: int = 7
    patch_size: int = 1
    in_channels: int = 4
    hidden: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int | None = None
    joint_attention: bool = False
    class_tokens: int = 4

    def __post_init__(self):
        check_positive_int(self.input_size, "input_size (the height and width of the latent)")
        check_positive_int(self.patch_size, "patch_size (the side of one patch)")
        if self.input_size % self.patch_size:
            raise ValueError(
                f"input_size {self.input_size} must be divisible by patch_size {self.patch_size}, so that "
                "the patches tile the latent exactly."
            )
        check_positive_int(self.in_channels, "in_channels (the latent's channels)")
        check_positive_int(self.hidden, "hidden (the token width)")
        check_positive_int(self.depth, "depth (the number of blocks)")
        check_positive_int(self.heads, "heads (the number of attention heads)")
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} must be divisible by heads {self.heads} (equal heads).")
        if self.hidden % 4:
            raise ValueError(
                f"hidden must be a multiple of 4 (sin and cos of the row and of the column), got {self.hidden}."
            )
        _check_mlp_ratio(self.mlp_ratio, self.hidden)
        _check_num_classes(self.num_classes)
        if not isinstance(self.joint_attention, bool):
            raise TypeError(f"joint_attention must be True or False, got {self.joint_attention!r}.")
        if self.joint_attention and not self.num_classes:
            raise ValueError(
                "joint_attention needs num_classes: its context tokens are made from the class label."
            )
        check_positive_int(self.class_tokens, "class_tokens (context tokens per class)")

    def to_dict(self) -> dict:
        return asdict(self)


SIZES = {  # tiny: CI trains it in seconds; small: about 180k parameters, the size of the lesson's U-Net
    "tiny": dict(hidden=32, depth=2, heads=2),
    "small": dict(hidden=48, depth=4, heads=4),
}


def dit_config(size: str = "small", num_classes: int | None = None, **overrides) -> DiTConfig:
    """The configuration of a named size, 'tiny' or 'small', with any DiTConfig field overridden."""
    names = {f.name for f in fields(DiTConfig)}
    for key in overrides:
        choose(key, names - {"num_classes"}, "DiT setting")
    return DiTConfig(**{**SIZES[choose(size, SIZES, "DiT size")], "num_classes": num_classes, **overrides})


def _check_mlp_ratio(mlp_ratio, hidden: int) -> None:
    check_number(mlp_ratio, "mlp_ratio (MLP width / token width)", low=0, low_open=True)
    if int(hidden * mlp_ratio) < 1:
        raise ValueError(f"mlp_ratio {mlp_ratio} leaves the MLP of width-{hidden} tokens no hidden unit.")


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> tokens (B, N, C p p), N = (H / p)(W / p) patches row by row, each flattened as (C, p, p)."""
    check_tensor(x, "x", ndim=4)
    p = check_positive_int(patch_size, "patch_size")
    b, c, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"x's height and width {h} x {w} must be divisible by patch_size {p}.")
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)  # (B, H/p, W/p, C, p, p)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(tokens: torch.Tensor, patch_size: int, channels: int, height: int, width: int) -> torch.Tensor:
    """The inverse of patchify: tokens (B, N, C p p) -> (B, C, height, width)."""
    p = check_positive_int(patch_size, "patch_size")
    for value, name in ((channels, "channels"), (height, "height"), (width, "width")):
        check_positive_int(value, name)
    if height % p or width % p:
        raise ValueError(f"height and width {height} x {width} must be divisible by patch_size {p}.")
    check_tensor(tokens, "tokens", ndim=3)
    gh, gw = height // p, width // p
    if tokens.shape[1:] != (gh * gw, channels * p * p):
        raise ValueError(
            f"tokens must have shape (B, {gh * gw}, {channels * p * p}) for {channels} channels of "
            f"{height} x {width} in {p} x {p} patches, got {tuple(tokens.shape)}."
        )
    x = tokens.reshape(-1, gh, gw, channels, p, p).permute(0, 3, 1, 4, 2, 5)  # (B, C, H/p, p, W/p, p)
    return x.reshape(-1, channels, height, width)


def position_embedding_2d(grid_size: int, dim: int) -> torch.Tensor:
    """Fixed sin-cos embedding (G^2, dim) of a G x G grid, row by row: [code(row), code(column)],
    code(n) = [sin(n w_k), cos(n w_k)] with w_k = 10000^(-k / (dim / 4)), k = 0 .. dim / 4 - 1."""
    g = check_positive_int(grid_size, "grid_size (patches per side)")
    check_positive_int(dim, "dim (the token width)")
    if dim % 4:
        raise ValueError(
            f"dim must be a multiple of 4 (sin and cos of the row and of the column), got {dim}."
        )
    check_memory(8 * g * g * dim, f"a position embedding of {g} x {g} patches")
    quarter = dim // 4
    angles = torch.arange(g, dtype=torch.float64)[:, None] * 10_000.0 ** (-torch.arange(quarter) / quarter)
    code = torch.cat([angles.sin(), angles.cos()], dim=1)  # (G, dim/2)
    rows, cols = code[:, None].expand(g, g, 2 * quarter), code[None].expand(g, g, 2 * quarter)
    return torch.cat([rows, cols], dim=2).reshape(g * g, dim).float()


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x (B, N, D) * (1 + scale) + shift, scale and shift (B, D) broadcast over the tokens."""
    return x * (1 + scale[:, None]) + shift[:, None]


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v per head: q, k, v (B, heads, N, d) -> (B, N, heads d)."""
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).flatten(2)


def _check_tokens(x, name: str, hidden: int, batch: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor of shape (B, N, {hidden}), got {type(x).__name__}.")
    if x.ndim != 3 or x.shape[2] != hidden or (batch is not None and x.shape[0] != batch):
        b = "B" if batch is None else batch
        raise ValueError(f"{name} must have shape ({b}, N, {hidden}), got {tuple(x.shape)}.")


def _check_c(c, hidden: int, batch: int) -> None:
    if not isinstance(c, torch.Tensor) or c.shape != (batch, hidden):
        got = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
        raise ValueError(
            f"c must have shape ({batch}, {hidden}), one conditioning vector per sample, got {got}."
        )


class DiTBlock(nn.Module):
    """x + g1 * attn(adaLN(x)), then + g2 * mlp(adaLN(x)), tokens (B, N, D), c (B, D); (shift, scale, g) from c."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        check_positive_int(hidden, "hidden (the token width)")
        check_positive_int(heads, "heads (the number of attention heads)")
        if hidden % heads:
            raise ValueError(f"hidden {hidden} must be divisible by heads {heads} (equal heads).")
        _check_mlp_ratio(mlp_ratio, hidden)
        width = int(hidden * mlp_ratio)
        self.hidden, self.heads = hidden, heads
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv, self.proj = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Linear(width, hidden)
        )
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))
        nn.init.zeros_(self.modulation[1].weight)  # adaLN-zero: gates 0, the block starts as the identity
        nn.init.zeros_(self.modulation[1].bias)

    def _queries(self, x: torch.Tensor, mods) -> tuple:
        """q, k, v (B, heads, N, D / heads) of the modulated tokens."""
        h = _modulate(self.norm1(x), mods[0], mods[1])
        b, n, _ = x.shape
        return tuple(z.view(b, n, self.heads, -1).transpose(1, 2) for z in self.qkv(h).chunk(3, dim=2))

    def _finish(self, x: torch.Tensor, attended: torch.Tensor, mods) -> torch.Tensor:
        """The two gated residuals: attention output (B, N, D) in, the block's output (B, N, D) out."""
        x = x + mods[2][:, None] * self.proj(attended)
        return x + mods[5][:, None] * self.mlp(_modulate(self.norm2(x), mods[3], mods[4]))

    def forward(self, tokens: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        _check_tokens(tokens, "tokens", self.hidden)
        _check_c(c, self.hidden, tokens.shape[0])
        mods = self.modulation(c).chunk(6, dim=1)  # shift, scale, gate (attention); shift, scale, gate (MLP)
        return self._finish(tokens, _attention(*self._queries(tokens, mods)), mods)


class JointDiTBlock(nn.Module):
    """MM-DiT block: image (B, N, D) and context (B, M, D) streams, each with its own weights, one joint
    attention over [context; image]; c (B, D) modulates both. Returns (image, context)."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.image = DiTBlock(hidden, heads, mlp_ratio)  # its norms, qkv, projection, MLP and modulation
        self.context = DiTBlock(hidden, heads, mlp_ratio)
        self.hidden = hidden

    def forward(self, image: torch.Tensor, context: torch.Tensor, c: torch.Tensor) -> tuple:
        _check_tokens(image, "image", self.hidden)
        _check_tokens(context, "context", self.hidden, batch=image.shape[0])
        _check_c(c, self.hidden, image.shape[0])
        mods_i, mods_c = self.image.modulation(c).chunk(6, dim=1), self.context.modulation(c).chunk(6, dim=1)
        qkv_i, qkv_c = self.image._queries(image, mods_i), self.context._queries(context, mods_c)
        joint = _attention(*(torch.cat([zc, zi], dim=2) for zc, zi in zip(qkv_c, qkv_i)))  # (B, M + N, D)
        m = context.shape[1]
        return self.image._finish(image, joint[:, m:], mods_i), self.context._finish(
            context, joint[:, :m], mods_c
        )


class DiT(nn.Module):
    """Diffusion Transformer on (B, C, S, S) latents, S = input_size; called as model(x=..., t=..., cond=None)."""

    def __init__(self, config: DiTConfig | None = None):
        super().__init__()
        config = DiTConfig() if config is None else config
        if isinstance(config, str):
            raise TypeError(
                f"DiT takes a DiTConfig, not the name {config!r}: use DiT(dit_config({config!r}))."
            )
        self.config = cfg = check_instance(config, DiTConfig, "config", "dit_config('small')")
        self.num_classes = cfg.num_classes
        d, p, c = cfg.hidden, cfg.patch_size, cfg.in_channels
        self.patch_embedding = nn.Linear(c * p * p, d)
        # fixed, not learned: rebuilt from the config, so it is not stored in checkpoints
        self.register_buffer("pos_embedding", position_embedding_2d(cfg.input_size // p, d), persistent=False)
        self.time_embedding = nn.Sequential(
            SinusoidalTimeEmbedding(d), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d)
        )
        self.class_embedding = nn.Embedding(cfg.num_classes + 1, d) if cfg.num_classes else None
        self.context_embedding = (
            nn.Embedding(cfg.num_classes + 1, cfg.class_tokens * d) if cfg.joint_attention else None
        )
        block = JointDiTBlock if cfg.joint_attention else DiTBlock
        self.blocks = nn.ModuleList(block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.final_linear = nn.Linear(d, p * p * c)
        for layer in (self.final_modulation[1], self.final_linear):  # the fresh model outputs exactly 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        c, s = cfg.in_channels, cfg.input_size
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch tensor of shape (B, {c}, {s}, {s}), got {type(x).__name__}.")
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(
                f"x must have shape (B, {c}, {s}, {s}) (this DiT was built for input_size={s}), "
                f"got {tuple(x.shape)}."
            )
        _check_input(x, t, self)
        batch = x.shape[0]
        emb = self.time_embedding(t).to(x.dtype)  # (B, D)
        if self.class_embedding is None:
            if cond is not None:
                raise ValueError("this DiT was built without classes (num_classes=None) but got cond.")
        else:
            labels = labels_or_null(cond, cfg.num_classes, batch, x.device)
            emb = emb + self.class_embedding(labels)
        tokens = self.patch_embedding(patchify(x, cfg.patch_size)) + self.pos_embedding  # (B, N, D)
        if cfg.joint_attention:
            context = self.context_embedding(labels).view(batch, cfg.class_tokens, cfg.hidden)  # (B, M, D)
            for block in self.blocks:
                tokens, context = block(tokens, context, emb)
        else:
            for block in self.blocks:
                tokens = block(tokens, emb)
        shift, scale = self.final_modulation(emb).chunk(2, dim=1)
        out = self.final_linear(_modulate(self.final_norm(tokens), shift, scale))  # (B, N, p p C)
        return unpatchify(out, cfg.patch_size, c, s, s)


def save_dit(path, model: DiT, settings: dict) -> str:
    """Save a DiT's weights with its configuration (settings['dit']) and the given settings; return the checksum."""
    return save_configured_model(path, model, DiT, "dit", settings, "DiT(dit_config('tiny'))")


def load_dit(path, device="cpu") -> tuple:
    """Load (DiT in eval mode, settings) from a checkpoint written by save_dit, checksum verified."""
    device = pick_device(device)
    model, settings = load_model(path, _build_dit)
    return model.to(device), settings


_build_dit = configured_builder(
    DiT,
    DiTConfig,
    "dit",
    "it was not written by save_dit; a U-Net's checkpoint loads with lessons.image_training.load_image_model",
)
