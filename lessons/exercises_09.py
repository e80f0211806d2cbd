"""The checks of lesson 09's exercises: the beta-VAE loss, the logit-normal density, an adaLN DiT block."""

import math

import torch
from torch import nn

from lessons.autoencoder import KLAutoencoder, autoencoder_config, autoencoder_loss
from lessons.dit import DiTBlock, _attention
from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor, _WrongKind
from lessons.weighting import logit_normal_density

LESSON = "09_latent_dit"  # the lesson's file name, and that of its solutions file solutions/09_latent_dit.py


def _vae_slips(model, images, eps, beta) -> dict:
    """What each slip of the beta-VAE loss returns (0-dim, no graph), from the same eps (B, C, 7, 7)."""
    with torch.no_grad():
        mean, logvar = model.encode(images)
        std = torch.exp(0.5 * logvar)

        def loss(z, per_pixel=False, variance=None, beta_on_reconstruction=False):
            variance = logvar.exp() if variance is None else variance  # sigma^2, or a slip's stand-in
            err = (model.decode(z) - images).square().flatten(1)  # (B, pixels)
            reconstruction = err.mean(1) if per_pixel else err.sum(1)  # (B,)
            kl = 0.5 * (mean.square() + variance - 1 - logvar).flatten(1).sum(1)  # (B,)
            if beta_on_reconstruction:
                return (beta * reconstruction + kl).mean()
            return (reconstruction + beta * kl).mean()

        return {
            "exp(logvar) as the std, where exp(logvar / 2) belongs": loss(mean + logvar.exp() * eps),
            "z = mean: decoded from the mean, not a posterior sample": loss(mean),
            "a mean over the pixels, not a sum": loss(mean + std * eps, per_pixel=True),
            "beta on the reconstruction, not on the KL": loss(mean + std * eps, beta_on_reconstruction=True),
            "sigma where sigma^2 belongs in the KL": loss(mean + std * eps, variance=std),
        }


def _check_beta_vae_loss(answer) -> Feedback:
    torch.manual_seed(9)  # the autoencoder's weights (review runs checks inside torch.random.fork_rng)
    model, gen, cases, wrong = KLAutoencoder(autoencoder_config("tiny")), _seeded(90), {}, {}
    for i, beta in enumerate((0.01, 0.5)):
        images = torch.rand(16, 1, 28, 28, generator=gen) * 2 - 1
        seed = 91 + i  # eps: the draws autoencoder_loss makes from a generator of this seed
        eps = torch.randn(16, model.config.latent_channels, 7, 7, generator=_seeded(seed))
        got = answer(model, images.clone(), eps.clone(), beta)
        if not (isinstance(got, torch.Tensor) and got.requires_grad):
            raise _WrongKind(
                "It returns a loss without a graph, so training could not take its gradient: return the "
                "tensor itself (no .item(), no torch.no_grad())."
            )
        case = f"beta = {beta:g}"
        want = autoencoder_loss(model, images, beta, generator=_seeded(seed))[0].detach()
        cases[case] = (_tensor(got, (), "beta_vae_loss"), want.double())
        wrong[case] = {slip: value.double() for slip, value in _vae_slips(model, images, eps, beta).items()}
    hints = {
        "exp(logvar) as the std, where exp(logvar / 2) belongs": (
            "logvar is log sigma^2, so sigma = exp(logvar / 2): z = mean + exp(logvar / 2) eps."
        ),
        "z = mean: decoded from the mean, not a posterior sample": (
            "the ELBO's expectation is over q(z | x): decode the sample z = mean + sigma eps, so that the "
            "noise of the code is paid for in the reconstruction."
        ),
        "a mean over the pixels, not a sum": (
            "the reconstruction term is the log-likelihood of the whole image, a sum over its pixels "
            "(F.mse_loss would average them and shrink it against the KL)."
        ),
        "beta on the reconstruction, not on the KL": (
            "the loss is ||x - D(z)||^2 + beta KL: beta weighs the KL term (a tiny beta keeps the digits "
            "sharp)."
        ),
        "sigma where sigma^2 belongs in the KL": (
            "KL = 0.5 (mu^2 + sigma^2 - 1 - log sigma^2) per number, and sigma^2 = exp(logvar)."
        ),
    }
    return _judge(
        "beta_vae_loss",
        "On 16 random images at beta = 0.01 and 0.5 with a fixed tiny KLAutoencoder, against "
        "lessons.autoencoder.autoencoder_loss with the same eps",
        cases,
        1e-5,
        hints,
        wrong,
        "mean, logvar = model.encode(images); z = mean + exp(logvar / 2) eps; the loss is the batch mean of "
        "sum_pixels (model.decode(z) - images)^2 + beta 0.5 sum (mean^2 + exp(logvar) - 1 - logvar).",
    )


def _normal_of(value: torch.Tensor, mean: float, std: float, variance_in_exponent=None) -> torch.Tensor:
    """The N(mean, std^2) density at value, with the exponent's divisor 2 variance_in_exponent when given."""
    divisor = 2 * (std**2 if variance_in_exponent is None else variance_in_exponent)
    return torch.exp(-((value - mean) ** 2) / divisor) / (std * math.sqrt(2 * math.pi))


def _check_logit_normal_pdf(answer) -> Feedback:
    t = torch.linspace(0.002, 0.998, 250, dtype=torch.float64)
    cases, wrong = {}, {}
    for mean, std in ((0.0, 1.0), (0.5, 0.7), (-1.0, 1.6)):
        case = f"m = {mean:g}, s = {std:g}"
        got = answer(t.clone(), mean, std)
        cases[case] = (_tensor(got, t.shape, "logit_normal_pdf"), logit_normal_density(t, mean, std))
        logit, jacobian = torch.log(t / (1 - t)), t * (1 - t)  # l = log(t / (1 - t)), dl/dt = 1 / (t (1 - t))
        wrong[case] = {
            "the Jacobian 1 / (t (1 - t)) left out": _normal_of(logit, mean, std),
            "t (1 - t) multiplying where it divides": _normal_of(logit, mean, std) * jacobian,
            "the factor 1 / s left out": _normal_of(logit, mean, std) * std / jacobian,
            "s where s^2 belongs in the exponent": _normal_of(logit, mean, std, std) / jacobian,
            "log((1 - t) / t) where log(t / (1 - t)) belongs": _normal_of(-logit, mean, std) / jacobian,
        }
    hints = {
        "the Jacobian 1 / (t (1 - t)) left out": (
            "a density changes with the variable: pi(t) = N(l; m, s^2) |dl/dt|, and dl/dt = 1 / (t (1 - t)) "
            "for l = log(t / (1 - t))."
        ),
        "t (1 - t) multiplying where it divides": (
            "|dl/dt| = 1 / (t (1 - t)), not dt/dl = t (1 - t): the density grows where a small step in t "
            "covers a long stretch of l, near 0 and 1."
        ),
        "the factor 1 / s left out": (
            "the normal density of l is exp(-(l - m)^2 / (2 s^2)) / (s sqrt(2 pi)): without 1 / s it does "
            "not integrate to 1 unless s = 1."
        ),
        "s where s^2 belongs in the exponent": "the exponent is -(l - m)^2 / (2 s^2), the variance s^2.",
        "log((1 - t) / t) where log(t / (1 - t)) belongs": (
            "t = sigmoid(l) inverts to l = log(t / (1 - t)); the other ratio gives the law of 1 - t, "
            "mirrored, which differs once m is not 0."
        ),
    }
    return _judge(
        "logit_normal_pdf",
        "At 250 times in (0, 1) for three (m, s), against lessons.weighting.logit_normal_density",
        cases,
        1e-8,
        hints,
        wrong,
        "l = log(t / (1 - t)); pi(t) = exp(-(l - m)^2 / (2 s^2)) / (s sqrt(2 pi)) / (t (1 - t)).",
    )


def _block_slips(x, mods, attention, mlp, norm) -> dict:
    """What each common slip of a DiT block returns (B, N, D), from the same mods and sublayers."""

    def block(modulate=None, gated=True, residual=True, parallel=False):
        modulate = modulate or (lambda h, shift, scale: h * (1 + scale[:, None]) + shift[:, None])

        def part(h, read, sublayer, shift, scale, gate):  # h + gate * sublayer(modulate(norm(read)))
            out = sublayer(modulate(norm(read), shift, scale))
            out = gate[:, None] * out if gated else out
            return h + out if residual else out

        h = part(x, x, attention, *mods[:3])
        return part(h, x if parallel else h, mlp, *mods[3:])

    return {
        "scale where 1 + scale belongs": block(
            modulate=lambda h, shift, scale: h * scale[:, None] + shift[:, None]
        ),
        "shift and scale swapped": block(
            modulate=lambda h, shift, scale: h * (1 + shift[:, None]) + scale[:, None]
        ),
        "the gates left out": block(gated=False),
        "both parts read the block's input (parallel branches)": block(parallel=True),
        "the residual left out": block(residual=False),
    }


def _check_adaln_zero_block(answer) -> Feedback:
    torch.manual_seed(12)  # the blocks' weights (review runs checks inside torch.random.fork_rng)
    gen, cases, wrong = _seeded(120), {}, {}
    blocks = {
        "width 16, 2 heads, random adaLN weights": (16, 2, True),
        "width 32, 4 heads, random adaLN weights": (32, 4, True),
        "width 16, 2 heads, fresh (adaLN-zero)": (16, 2, False),
    }
    for case, (width, heads, perturbed) in blocks.items():
        block = DiTBlock(width, heads).double()
        if perturbed:  # a block as training leaves it: gates, shifts and scales not 0
            nn.init.normal_(block.modulation[1].weight, std=0.3)
            nn.init.normal_(block.modulation[1].bias, std=0.3)
        tokens = torch.randn(4, 9, width, generator=gen, dtype=torch.float64)
        c = torch.randn(4, width, generator=gen, dtype=torch.float64)

        # the block's self-attention on the modulated tokens (B, N, D), as the sublayer the learner calls
        def attention(h, block=block, heads=heads):
            b, n, _ = h.shape
            q, k, v = (z.view(b, n, heads, -1).transpose(1, 2) for z in block.qkv(h).chunk(3, dim=2))
            return block.proj(_attention(q, k, v))

        with torch.no_grad():
            mods = block.modulation(c).chunk(6, dim=1)  # shift, scale, gate (attention); the same (MLP)
            got = answer(tokens.clone(), tuple(m.clone() for m in mods), attention, block.mlp, block.norm1)
            cases[case] = (_tensor(got, tokens.shape, "adaln_zero_block"), block(tokens, c))
            wrong[case] = _block_slips(tokens, mods, attention, block.mlp, block.norm1)
    hints = {
        "scale where 1 + scale belongs": (
            "adaLN multiplies by 1 + scale, so that scale = 0 (its start) leaves the normalised tokens as "
            "they are."
        ),
        "shift and scale swapped": (
            "the modulation comes as (shift, scale, gate) for each part: norm(h) (1 + scale) + shift."
        ),
        "the gates left out": (
            "each part's output is multiplied by its gate before it is added: the gates start at 0, which "
            "makes a fresh block the identity."
        ),
        "both parts read the block's input (parallel branches)": (
            "the MLP part reads the tokens after the attention part has been added: h = h + g1 attn(...), "
            "then h + g2 mlp(... norm(h) ...)."
        ),
        "the residual left out": (
            "each part adds to the tokens it reads: h + gate * sublayer(...), the residual stream that a "
            "zero gate leaves unchanged."
        ),
    }
    return _judge(
        "adaln_zero_block",
        "On 3 DiT blocks (two with random adaLN weights, one fresh), against lessons.dit.DiTBlock",
        cases,
        1e-8,
        hints,
        wrong,
        "h = x + g1 attention(norm(x) (1 + scale1) + shift1), then h + g2 mlp(norm(h) (1 + scale2) + "
        "shift2), each (B, D) vector indexed [:, None] to broadcast over the tokens.",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "beta_vae_loss": _check_beta_vae_loss,
    "logit_normal_pdf": _check_logit_normal_pdf,
    "adaln_zero_block": _check_adaln_zero_block,
}
