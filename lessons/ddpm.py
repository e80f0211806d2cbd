"""DDPM (Ho et al. 2020) in the course's time convention: step k = T is noise, t = 1 - k / T.

Discrete forward chain q(x_k | x_{k-1}) = N(sqrt(1 - beta_k) x_{k-1}, beta_k I); its closed form
q(x_k | x_0) = N(sqrt(abar_k) x_0, (1 - abar_k) I) with abar_k = prod_{i <= k} (1 - beta_i).
"""

import torch
import torch.nn.functional as F

from lessons.checks import (
    check_finite,
    check_finite_step,
    check_generator,
    check_instance,
    check_memory,
    check_model_output,
    check_number,
    check_positive_int,
    check_same_shape,
    check_start,
    check_tensor,
    choose,
)
from lessons.progress import Progress
from lessons.schedules import Schedule, ScheduleOutput
from lessons.solvers import trajectory_bytes
from lessons.tensors import expand_like, normal_like, time_like
from lessons.trajectory import Trajectory


def _steps(k, low: int, high: int, name: str = "the DDPM steps k") -> torch.Tensor:
    """k (a whole number or a tensor / list of them) as an integer tensor, refused unless every step is in low..high."""
    if k is None or isinstance(k, str):
        raise TypeError(f"{name} must be whole numbers in {low}..{high}, got {k!r}.")
    try:
        k = torch.as_tensor(k)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"{name} must be a whole number or a list / tensor of whole numbers in {low}..{high}, "
            f"got {type(k).__name__}."
        ) from None
    if k.is_floating_point() or k.is_complex() or k.dtype == torch.bool:
        raise ValueError(
            f"{name} must be whole numbers in {low}..{high}, got dtype {k.dtype}: {k.tolist()}; "
            "give ints (a tensor of them: k.long())."
        )
    outside = k[(k < low) | (k > high)]
    if outside.numel():
        raise ValueError(
            f"{name} must be whole numbers in {low}..{high} (k = {high} is pure noise, smaller k is cleaner), "
            f"got {outside[:5].tolist()}{' ...' if outside.numel() > 5 else ''}."
        )
    return k


def _float_dtype(dtype) -> torch.dtype | None:
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(
            f"dtype must be a float dtype such as torch.float32 or torch.float64, got {dtype!r}."
        )
    return dtype


def ddpm_step_to_t(k, num_steps: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Map DDPM's integer step k in {0, ..., T} (k = T is noise) to t = 1 - k / T (t = 0 is noise).

    Computed in float64, then cast to dtype (default: torch's default dtype), so a float64 run that asks for
    float64 gets its grid exactly; a float32 t is off by up to 3e-8, which DDIM on DDPM's grid turns into a
    1e-5 disagreement with a float64 DDPM chain.
    """
    check_positive_int(num_steps, "the number of DDPM steps T")
    k = _steps(k, 0, num_steps)
    return (1.0 - k.double() / num_steps).to(_float_dtype(dtype) or torch.get_default_dtype())


class DDPM:
    """The discrete schedule: betas (T,) linear from beta_start to beta_end, as in Ho et al."""

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        self.num_steps = check_positive_int(num_steps, "the number of DDPM steps T")
        beta_start = check_number(beta_start, "beta_start")
        beta_end = check_number(beta_end, "beta_end")
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1 (each beta is the variance of one step's noise), "
                f"got {beta_start} and {beta_end}."
            )
        check_memory(4 * 8 * (num_steps + 1), f"a DDPM schedule of T = {num_steps} steps")
        self.betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        # alpha_bars[k] for k = 0..T, alpha_bars[0] = 1 (clean data)
        self.alpha_bars = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - self.betas, 0)])

    def beta(self, k: int) -> float:
        """beta_k for k in 1..T."""
        k = _steps(k, 1, self.num_steps, "the step k of beta(k)")
        if k.ndim:
            raise ValueError(f"beta(k) takes one step k, got shape {tuple(k.shape)}; use ddpm.betas[k - 1].")
        return self.betas[k - 1].item()

    def t_of(self, k, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The course time t of step k (k = T is noise, t = 0), computed in float64, returned as dtype."""
        return ddpm_step_to_t(k, self.num_steps, dtype)

    def marginal(self, data: torch.Tensor, k, noise: torch.Tensor) -> torch.Tensor:
        """x_k = sqrt(abar_k) data + sqrt(1 - abar_k) noise, (B, ...), k (B,) integer steps (or one for all)."""
        check_tensor(data, "data")
        check_tensor(noise, "noise")
        check_same_shape(noise, data, "noise", "data")
        if noise.device != data.device:
            raise ValueError(
                f"noise is on {noise.device} but data on {data.device}; move one, e.g. noise.to('{data.device}')."
            )
        check_finite(data, "data")
        check_finite(noise, "noise")
        k = _steps(k, 0, self.num_steps)
        if k.ndim == 0:
            k = k.expand(data.shape[0])
        if k.shape != (data.shape[0],):
            raise ValueError(
                f"k must hold one step per sample, shape ({data.shape[0]},), or be one whole number; "
                f"got shape {tuple(k.shape)}."
            )
        return self._marginal(data, k, noise)

    def _marginal(self, data, k, noise):
        """marginal without the checks (k an integer tensor (B,) in 0..T): the training loss's inner call."""
        abar = self.alpha_bars[k.cpu()].to(device=data.device, dtype=data.dtype)
        abar = expand_like(abar, data)
        return abar.sqrt() * data + (1 - abar).sqrt() * noise

    def forward_chain(
        self, data: torch.Tensor, ks, generator: torch.Generator | None = None, progress: bool | None = None
    ) -> torch.Tensor:
        """x_k at each k in ks, (K, B, ...): one run of x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z."""
        check_tensor(data, "data")
        check_finite(data, "data")
        check_generator(generator)
        ks = _steps(ks, 0, self.num_steps, "the steps ks to record")
        if ks.ndim != 1 or len(ks) == 0:
            raise ValueError(f"give the steps to record as a list of whole numbers, got {ks.tolist()}.")
        wanted = set(ks.tolist())
        check_memory(trajectory_bytes(len(wanted) + len(ks) - 1, data), "the forward chain")
        kept, x = {0: data}, data
        with Progress(max(wanted), "forward chain", progress) as bar:
            for i in range(1, max(wanted) + 1):
                beta = self.betas[i - 1].item()  # beta(i), without re-checking i
                z = normal_like(x, generator)
                x = (1 - beta) ** 0.5 * x + beta**0.5 * z
                if i in wanted:
                    kept[i] = x
                bar.update()
        return torch.stack([kept[k] for k in ks.tolist()])

    def loss(self, model, data: torch.Tensor, cond=None) -> torch.Tensor:
        """Ho et al.'s simple loss: || eps - eps_theta(x_k, t_k) ||^2, k uniform in 1..T."""
        check_start(model, data, "data")
        k = torch.randint(1, self.num_steps + 1, (data.shape[0],))
        noise = torch.randn_like(data)
        x_k = self._marginal(data, k, noise)
        pred = model(x=x_k, t=self.t_of(k, data.dtype).to(data.device), cond=cond)
        return F.mse_loss(check_model_output(pred, x_k), noise)

    @torch.no_grad()
    def sample(
        self,
        model,
        noise: torch.Tensor,
        variance: str = "posterior",
        cond=None,
        generator: torch.Generator | None = None,
        keep_path: bool = True,
        progress: bool | None = None,
    ) -> Trajectory:
        """Ancestral sampling from x_T = noise down to x_0; returns the Trajectory (t from 0 to 1).

        x_{k-1} = (x_k - beta_k / sqrt(1 - abar_k) eps) / sqrt(1 - beta_k) + s_k z, with
        s_k^2 = beta_k ('beta') or the posterior variance (1 - abar_{k-1}) / (1 - abar_k) beta_k ('posterior').
        progress: a tqdm bar (True), none (False), or one only when sampling runs long (None).
        """
        check_start(model, noise)
        choose(variance, ("beta", "posterior"), "DDPM variance")
        check_generator(generator)
        if not isinstance(keep_path, bool):
            raise TypeError(
                f"keep_path must be True (keep every state) or False (the first and last), got {keep_path!r}."
            )
        T = self.num_steps
        check_memory(trajectory_bytes(T if keep_path else 1, noise), "DDPM sampling")
        # one buffer for the kept states: a thousand small tensors kept between each step's large temporaries
        # fragment glibc's heap, which then grows by about a temporary per step (1 GiB for 1000 steps of 2000 points)
        x, xs = noise, noise.new_empty((T + 1 if keep_path else 2, *noise.shape))
        xs[0] = noise
        with Progress(T, "DDPM sampling", progress) as bar:
            for k in range(T, 0, -1):
                t_k = 1.0 - k / T  # = t_of(k) in float64, exactly
                t = time_like(t_k, x)
                eps = check_model_output(model(x=x, t=t, cond=cond), x)
                beta, abar, abar_prev = (
                    v.item() for v in (self.betas[k - 1], self.alpha_bars[k], self.alpha_bars[k - 1])
                )
                x = (x - beta / (1 - abar) ** 0.5 * eps) / (1 - beta) ** 0.5
                if k > 1:
                    var = beta if variance == "beta" else (1 - abar_prev) / (1 - abar) * beta
                    z = normal_like(x, generator)
                    x = x + var**0.5 * z
                check_finite_step(x, T - k + 1, t_k, "DDPM sampling")
                if keep_path or k == 1:
                    xs[T - k + 1 if keep_path else 1] = x
                bar.update()
        ts = (
            self.t_of(torch.arange(T, -1, -1), x.dtype)
            if keep_path
            else torch.tensor([0.0, 1.0], dtype=x.dtype)
        )
        return Trajectory(ts=ts, xs=xs, nfe=T)


class DiscreteVPSchedule(Schedule):
    """DDPM's discrete alpha-bars as a continuous Schedule: alpha^2 = abar, exact at t = 1 - k / T.

    Between grid times, log abar is interpolated linearly, so DDIM can run on any sub-sequence of
    DDPM's steps with the very alphas the model was trained on.
    """

    name = "ddpm"
    variance_preserving = True

    def __init__(self, ddpm: DDPM):
        check_instance(ddpm, DDPM, "ddpm", "DDPM() or DDPM(num_steps=1000)")
        self.num_steps = ddpm.num_steps
        self.log_abar = torch.log(ddpm.alpha_bars)  # (T+1,), index k

    def _coefficients(self, t):
        pos = ((1 - t.double()) * self.num_steps).clamp(0, self.num_steps)  # fractional step k
        lo = pos.floor().long().clamp(max=self.num_steps - 1)
        table = self.log_abar.to(t.device)  # t may live on a GPU
        slope = table[lo + 1] - table[lo]  # d log abar / dk
        log_abar = table[lo] + (pos - lo) * slope
        alpha = torch.exp(0.5 * log_abar)
        sigma = torch.sqrt(-torch.expm1(log_abar))
        d_alpha = alpha * 0.5 * (-self.num_steps * slope)  # dk/dt = -T
        d_sigma = -alpha * d_alpha / sigma.clamp_min(1e-12)
        return ScheduleOutput(*(v.to(t.dtype) for v in (alpha, sigma, d_alpha, d_sigma)))

    def _time_at_log_snr(self, log_snr):
        # abar = sigmoid(lambda); -log abar increases with k and is linear on each step: find the step, solve
        target = torch.logaddexp(torch.zeros_like(log_snr), -log_snr)  # -log abar, (B,)
        table = -self.log_abar.to(log_snr.device)  # (T+1,), increasing
        lo = (torch.searchsorted(table, target) - 1).clamp(0, self.num_steps - 1)
        pos = lo + (target - table[lo]) / (table[lo + 1] - table[lo])  # fractional step k
        return 1 - pos.clamp(0, self.num_steps) / self.num_steps

    def __repr__(self) -> str:
        return f"DiscreteVPSchedule(num_steps={self.num_steps})"


def ddim_times(ddpm: DDPM, steps: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An evenly spaced sub-sequence of DDPM's steps k = T ... 0 as course times t = 1 - k / T, (steps+1,), as dtype."""
    check_instance(ddpm, DDPM, "ddpm", "DDPM()")
    check_positive_int(steps, "the number of sampling steps")
    if steps > ddpm.num_steps:
        raise ValueError(f"DDIM can take at most T = {ddpm.num_steps} steps on DDPM's grid, got {steps}.")
    k = torch.linspace(ddpm.num_steps, 0, steps + 1).round().long()
    return ddpm.t_of(k, dtype)
