"""DDPM's variational bound (Ho et al. 2020, eq. 5) on continuous data, and the simple loss as a reweighting of it.

With the forward chain q and the model's reverse chain p (step k = T is noise, t = 1 - k / T),
    -log p(x_0) <= L_T + sum_{k=2}^T L_{k-1} + L_0,                                                 (nats)
    L_T     = KL(q(x_T | x_0) || N(0, I)),
    L_{k-1} = E_q KL(q(x_{k-1} | x_k, x_0) || p(x_{k-1} | x_k)),  both Gaussian, so each KL is closed form,
    L_0     = -E_q log p(x_0 | x_1),  a Gaussian decoder N(x_0; data_hat(x_1), v I).
DDPM's posterior variance at k = 1 is 0 (abar_0 = 1), which is no density; the decoder uses v = 1 / SNR_1 =
(1 - abar_1) / abar_1, the spread of x_0 around data_hat(x_1) when the data's density is flat on the scale of the
first step's noise. The bound is then on a continuous density (nats, not bits of a quantised image).
With DDPM's posterior variance, every term is a multiple of the eps error: L_{k-1} = c_k E||eps - eps_hat||^2 with
c_k = (SNR_{k-1} / SNR_k - 1) / 2 = expm1(lambda_{k-1} - lambda_k) / 2, and L_0 = const + E||eps - eps_hat||^2 / 2.
"""

import math
from dataclasses import dataclass

import torch

from lessons.checks import (
    check_finite,
    check_generator,
    check_instance,
    check_memory,
    check_model_output,
    check_positive_int,
    check_start,
    check_tensor,
    choose,
)
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.progress import Progress
from lessons.tensors import expand_like, normal_like
from lessons.weighting import implied_weighting


def _check_shapes(fields: dict, shapes: dict) -> None:
    """Each field a float tensor of the shape given for it (a record's parts must agree with one another)."""
    for name, value in fields.items():
        if tuple(check_tensor(value, name, min_batch=0).shape) != shapes[name]:
            raise ValueError(f"{name} must have shape {shapes[name]}, got {tuple(value.shape)}.")


@dataclass(frozen=True)
class DDPMBound:
    """The bound's parts per data point, in nats: prior L_T (B,), kl L_{k-1} (B, T-1) for k = 2..T (column k - 2),
    decoder L_0 (B,); eps_error (B, T): ||eps - eps_hat||^2 at k = 1..T on the same draws; decoder_variance v."""

    prior: torch.Tensor
    kl: torch.Tensor
    decoder: torch.Tensor
    eps_error: torch.Tensor
    decoder_variance: float

    def __post_init__(self):
        B, T = check_tensor(self.eps_error, "eps_error", ndim=2).shape
        if T == 0:
            raise ValueError("eps_error must hold one column per step k = 1..T (T >= 1), got 0 columns.")
        fields = {"prior": self.prior, "kl": self.kl, "decoder": self.decoder}
        _check_shapes(fields, {"prior": (B,), "kl": (B, T - 1), "decoder": (B,)})
        v = self.decoder_variance
        if not isinstance(v, float) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"decoder_variance must be a positive float, got {self.decoder_variance!r}.")

    @property
    def total(self) -> torch.Tensor:
        """The upper bound on -log p(x_0), (B,): L_T + sum_k L_{k-1} + L_0."""
        return self.prior + self.kl.sum(1) + self.decoder


@dataclass(frozen=True)
class ELBOWeights:
    """Per step k = 1..T, each (T,): log_snr lambda_k; elbo c_k and constant b_k, with the bound's term
    c_k ||eps - eps_hat||^2 + b_k (b_1 the decoder's normaliser); simple 1 / (T D), the simple loss's coefficient
    (k uniform, mean over D coordinates); continuous (D / 2) d lambda / dt, the continuous-time ratio of the two
    weightings over log-SNR (lesson 06's implied_weighting). Bound = prior + sum_k b_k + sum_k c_k ||eps - eps_hat||^2.
    """

    log_snr: torch.Tensor
    elbo: torch.Tensor
    constant: torch.Tensor
    simple: torch.Tensor
    continuous: torch.Tensor

    def __post_init__(self):
        shape = tuple(check_tensor(self.log_snr, "log_snr", ndim=1).shape)
        fields = {
            "elbo": self.elbo,
            "constant": self.constant,
            "simple": self.simple,
            "continuous": self.continuous,
        }
        _check_shapes(fields, dict.fromkeys(fields, shape))

    @property
    def per_step(self) -> torch.Tensor:
        """w_k = c_k / (1 / (T D)) = T D c_k, (T,): the simple loss's step k times w_k is the bound's term."""
        return self.elbo / self.simple


def _variance(value, name: str, like: torch.Tensor) -> torch.Tensor:
    """A positive variance, one number or one per sample (B,), as a (B, 1, ...) column broadcasting against like."""
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(
            f"{name} must be a positive number or a tensor of one per sample, got {type(value).__name__}."
        )
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1)
    if value.numel() not in (1, like.shape[0]):
        raise ValueError(
            f"{name} must be one number or one per sample ({like.shape[0]}), got {value.numel()} values."
        )
    if not bool((torch.isfinite(value) & (value > 0)).all()):
        raise ValueError(f"{name} is a variance and must be finite and > 0, got {value[:5].tolist()}.")
    return expand_like(value, like)


def gaussian_kl(mean_q: torch.Tensor, var_q, mean_p: torch.Tensor, var_p) -> torch.Tensor:
    """KL(N(mean_q, var_q I) || N(mean_p, var_p I)) per sample, (B,), in nats; means (B, ...), variances positive
    numbers or (B,): (1/2) sum_d [var_q / var_p - 1 - log(var_q / var_p) + (mean_q - mean_p)^2 / var_p]."""
    for name, mean in (("mean_q", mean_q), ("mean_p", mean_p)):
        check_finite(check_tensor(mean, name), name)
    if mean_q.shape != mean_p.shape:
        raise ValueError(
            f"mean_q and mean_p must have the same shape, got {tuple(mean_q.shape)} and {tuple(mean_p.shape)}."
        )
    var_q, var_p = _variance(var_q, "var_q", mean_q), _variance(var_p, "var_p", mean_q)
    ratio = var_q / var_p
    per_coord = ratio - 1 - torch.log(ratio) + (mean_q - mean_p) ** 2 / var_p
    return 0.5 * per_coord.flatten(1).sum(1)


def prior_kl(ddpm: DDPM, data: torch.Tensor) -> torch.Tensor:
    """L_T = KL(N(sqrt(abar_T) data, (1 - abar_T) I) || N(0, I)), (B,), in nats."""
    check_instance(ddpm, DDPM, "ddpm", "DDPM()")
    check_finite(check_tensor(data, "data"), "data")
    abar = ddpm.alpha_bars[-1].item()
    return gaussian_kl(abar**0.5 * data, 1 - abar, torch.zeros_like(data), 1.0)


@torch.no_grad()
def ddpm_bound(
    model,
    ddpm: DDPM,
    data: torch.Tensor,
    variance: str = "posterior",
    cond=None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> DDPMBound:
    """DDPM's bound on -log p(data) per point (one x_k ~ q(x_k | data) per point and step), as a DDPMBound.

    The model's reverse step is N(mu, s_k^2 I), mu = (x_k - beta_k / sqrt(1 - abar_k) eps_hat) / sqrt(1 - beta_k),
    s_k^2 = DDPM's posterior variance ('posterior') or beta_k ('beta'), as in DDPM.sample; computed in float64.
    """
    check_instance(ddpm, DDPM, "ddpm", "DDPM()")
    check_start(model, data, "data")
    choose(variance, ("beta", "posterior"), "DDPM variance")
    check_generator(generator)
    T, (B, D) = ddpm.num_steps, (data.shape[0], data[0].numel())
    check_memory(8 * B * (2 * T + 3 * D + 2), f"the bound's {T} terms for {B} points")
    clean = data.double()  # x_0
    betas, abars = ddpm.betas, ddpm.alpha_bars  # float64, abars[0] = 1
    kl = torch.empty(B, T - 1, dtype=torch.float64, device=clean.device)
    eps_error = torch.empty(B, T, dtype=torch.float64, device=clean.device)
    decoder_variance = ((1 - abars[1]) / abars[1]).item()
    with Progress(T, "DDPM bound", progress) as bar:
        for k in range(1, T + 1):
            beta, abar, abar_prev = betas[k - 1].item(), abars[k].item(), abars[k - 1].item()
            noise = normal_like(clean, generator)
            x_k = abar**0.5 * clean + (1 - abar) ** 0.5 * noise
            t = ddpm.t_of(torch.full((B,), k), data.dtype).to(data.device)
            eps_hat = check_model_output(model(x=x_k.to(data.dtype), t=t, cond=cond), data).double()
            if not bool(torch.isfinite(eps_hat).all()):
                raise ValueError(
                    f"the model returned NaN or inf at step k = {k} (t = {1 - k / T:.4g}): the bound is undefined there."
                )
            eps_error[:, k - 1] = (noise - eps_hat).flatten(1).pow(2).sum(1)
            if k == 1:  # the decoder: -log N(x_0; data_hat, v I), data_hat the sampler's last step
                data_hat = (x_k - (1 - abar) ** 0.5 * eps_hat) / abar**0.5
                sq = (clean - data_hat).flatten(1).pow(2).sum(1)
                decoder = 0.5 * D * math.log(2 * math.pi * decoder_variance) + sq / (2 * decoder_variance)
            else:
                post_var = (1 - abar_prev) / (1 - abar) * beta
                post_mean = (abar_prev**0.5 * beta * clean + (1 - beta) ** 0.5 * (1 - abar_prev) * x_k) / (
                    1 - abar
                )
                mu = (x_k - beta / (1 - abar) ** 0.5 * eps_hat) / (1 - beta) ** 0.5
                kl[:, k - 2] = gaussian_kl(
                    post_mean, post_var, mu, post_var if variance == "posterior" else beta
                )
            bar.update()
    return DDPMBound(prior_kl(ddpm, clean), kl, decoder, eps_error, decoder_variance)


def elbo_weights(ddpm: DDPM, dim: int, variance: str = "posterior") -> ELBOWeights:
    """The bound's and the simple loss's coefficients of ||eps - eps_hat||^2 per step k = 1..T, over log-SNR.

    c_1 = 1/2 (the decoder); for k >= 2, c_k = expm1(lambda_{k-1} - lambda_k) / 2 with the posterior variance, times
    r_k = (1 - abar_{k-1}) / (1 - abar_k) with beta_k, whose KL adds D (r_k - 1 - log r_k) / 2. As T grows c_k tends
    to d lambda / 2: the bound weights log-SNR evenly (w = D / 2 per coordinate-mean eps error) where the simple loss
    weights it by 1 / (d lambda / dt) (implied_weighting); their ratio (D / 2) d lambda / dt is taken mid-step.
    """
    check_instance(ddpm, DDPM, "ddpm", "DDPM()")
    check_positive_int(dim, "dim (the number of coordinates of one data point)")
    choose(variance, ("beta", "posterior"), "DDPM variance")
    T, abars = ddpm.num_steps, ddpm.alpha_bars
    log_snr = torch.log(abars[1:]) - torch.log(1 - abars[1:])  # k = 1..T (lambda_0 = +inf)
    ratio = (1 - abars[1:-1]) / (1 - abars[2:])  # r_k = posterior variance / beta_k, k = 2..T
    kl = 0.5 * torch.expm1(log_snr[:-1] - log_snr[1:])
    extra = torch.zeros_like(ratio)
    if variance == "beta":
        kl, extra = kl * ratio, 0.5 * dim * (ratio - 1 - torch.log(ratio))
    decoder_variance = ((1 - abars[1]) / abars[1]).item()
    decoder = 0.5 * dim * math.log(2 * math.pi * decoder_variance)
    one = torch.ones(1, dtype=torch.float64)
    middle = 1 - (torch.arange(1, T + 1, dtype=torch.float64) - 0.5) / T  # t halfway through each step
    return ELBOWeights(
        log_snr=log_snr,
        elbo=torch.cat([0.5 * one, kl]),
        constant=torch.cat([decoder * one, extra]),
        simple=torch.full((T,), 1 / (T * dim), dtype=torch.float64),
        continuous=0.5 * dim / implied_weighting("eps", DiscreteVPSchedule(ddpm), middle),
    )
