# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 01 — Denoising diffusion (DDPM) on 2D data
#
# **What you will learn**
# - the *forward process*: how data are destroyed by adding a little Gaussian noise at each of $T$ steps,
#   and why the result after $k$ steps has a closed form $q(x_k \mid x_0)$;
# - noise schedules (DDPM's linear betas, the cosine path), $\bar\alpha$, and the signal-to-noise ratio;
# - why a *variance-preserving* schedule keeps unit-variance data at unit variance;
# - training a network to predict the noise ($\epsilon$-prediction) and sampling with DDPM's
#   *ancestral sampler*, on a 2D toy so you can see every point;
# - where the loss comes from: the evidence lower bound (ELBO) on the likelihood, and the simple loss as the
#   ELBO with another weighting over log-SNR.
#
# **Claims proven here:** C1 (closed form = step-by-step chain), C2 (variance preserving),
# C3 (the trained model reproduces the target), C31 (the ELBO bounds the exact negative log-likelihood, and the
# simple loss is the ELBO reweighted over log-SNR).
#
# Sections: 1. The forward chain · 2. Schedules and SNR · 3. Training to predict the noise ·
# 4. Ancestral sampling · 5. The evidence lower bound · Exercises · What to remember

# %%
# Course setup: where the course's library is not installed (Colab, a JupyterHub), install it first.
# It takes the course's wheel from this folder if you uploaded one, else COURSE_INSTALL_SOURCE (a git URL or
# a wheel's path), else the package index. In a checkout, or after `pip install`, this cell does nothing.
# PyTorch is not reinstalled (Colab's own, with its GPU, is kept); lessons use the GPU when there is one.
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

if importlib.util.find_spec("lessons") is None:
    wheels = sorted(Path.cwd().glob("diffusion_to_flow_matching-*.whl"))
    default = os.environ.get("COURSE_INSTALL_SOURCE", "diffusion-to-flow-matching")
    source = str(wheels[-1]) if wheels else default
    print(f"installing the course from {source} ...")
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", source]).returncode != 0:
        raise RuntimeError(
            f"could not install the course from {source!r}. Upload the course's wheel "
            "(diffusion_to_flow_matching-*.whl, made by `make wheel`) next to this notebook, or set "
            "COURSE_INSTALL_SOURCE to the course repository's git URL (git+https://...), then run this cell again."
        )
    importlib.invalidate_caches()

# %%
import math

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from lessons.budget import budget, by_budget
from lessons.claims import control, prove
from lessons.data2d import sample_target, target_density
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.elbo import ddpm_bound, elbo_weights
from lessons.evaluation import data_band
from lessons.mixture import ExactMixtureModel
from lessons.models import MLP
from lessons.optimal_transport import w2
from lessons.schedules import CosineSchedule, LinearSchedule, VESchedule, VPSchedule
from lessons.training import random_batches, train
from lessons.weighting import implied_weighting
from widgets.training_monitor import TrainingMonitor

torch.manual_seed(0)
print(f"budget: {budget()}  (set COURSE_BUDGET=fast for a quick run)")

# %% [markdown]
# ## Two time conventions, one table
#
# DDPM papers count steps $k = 0, \dots, T$ with $x_0$ the **data** and $x_T$ pure **noise**. Flow-matching
# papers (and this course) use a continuous time $t \in [0, 1]$ with $t = 0$ **noise** and $t = 1$ **data**.
# We translate once, here, and the library does it in one tested helper (`lessons.ddpm.ddpm_step_to_t`).
#
# | DDPM paper | this course |
# |---|---|
# | step $k = 0, \dots, T$, $x_T$ is noise | time $t = 1 - k/T$ (`ddpm.t_of(k)`), $t = 0$ is noise |
# | $x_0$ (a clean data point) | `data` |
# | $x_k$ | `x_t` |
# | $\epsilon$ | `noise` |
# | $\beta_k$, $\bar\alpha_k$ | `ddpm.beta(k)`, `ddpm.alpha_bars[k]` |
# | $\sqrt{\bar\alpha_k}$, $\sqrt{1-\bar\alpha_k}$ | $\alpha(t)$, $\sigma(t)$ |
# | $\epsilon_\theta(x_k, k)$ | `model(x=x_t, t=1 - k/T)` |
#
# Sections 1, 3 and 4 write DDPM's formulas with the paper's $k$ and convert to $t$ where they call a model.

# %% [markdown]
# ## 1. The forward chain and its closed form
#
# DDPM destroys a data point $x_0$ in $T$ small steps, each adding Gaussian noise with variance $\beta_k$:
# $$ x_k = \sqrt{1-\beta_k}\, x_{k-1} + \sqrt{\beta_k}\, z_k, \qquad z_k \sim \mathcal N(0, I). $$
# Write $a_k = 1 - \beta_k$. Unrolling two steps,
# $x_k = \sqrt{a_k a_{k-1}}\, x_{k-2} + \sqrt{a_k(1-a_{k-1})}\, z_{k-1} + \sqrt{1-a_k}\, z_k$; the two noises are
# independent, so their sum is Gaussian with variance $a_k(1-a_{k-1}) + 1 - a_k = 1 - a_k a_{k-1}$.
# By induction, with $\bar\alpha_k = \prod_{i \le k} a_i$,
# $$ q(x_k \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_k}\, x_0,\; (1-\bar\alpha_k) I\big), \qquad
#    x_k = \sqrt{\bar\alpha_k}\, x_0 + \sqrt{1-\bar\alpha_k}\, \epsilon. $$
# This is what makes training cheap: we can jump to any step in one line. First the schedule, by hand:

# %%
T = 1000
betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)  # DDPM's linear schedule
alpha_bars = torch.cumprod(1 - betas, dim=0)  # abar_k for k = 1..T

ddpm = DDPM(num_steps=T)  # the library's version keeps abar_0 = 1 in front
assert torch.allclose(ddpm.alpha_bars[1:], alpha_bars)
print(f"abar_1 = {alpha_bars[0]:.4f}, abar_500 = {alpha_bars[499]:.4f}, abar_T = {alpha_bars[-1]:.2e}")

# %% [markdown]
# Now the check: take 20,000 points of the *moons* target, run the chain **step by step** to step $k$, and
# compare with the closed form. Given each starting point $x_0$, the residual $x_k - \sqrt{\bar\alpha_k}x_0$
# must have mean 0 and variance $v = 1 - \bar\alpha_k$ in every coordinate. With $n$ samples the estimated mean
# has standard error $\sqrt{v/n}$ and the estimated variance $\approx v\sqrt{2/n}$: the check asks every
# estimate to lie within 5 standard errors of the closed form. To see that this check can fail, it is also run on
# two wrong things: a chain with a classic bug (noise $\beta_k z$ instead of $\sqrt{\beta_k}\, z$, the forgotten
# square root), and the closed form of a neighbouring schedule ($\beta$ rising to $0.022$ instead of $0.02$).

# %%
data = sample_target("moons", 20_000, seed=1).double()
steps_to_check = [1, 10, 100, 400, 1000]
generator = torch.Generator().manual_seed(3)
by_hand, x = {}, data
for k in range(1, T + 1):  # the chain, one step at a time
    x = (1 - betas[k - 1]).sqrt() * x + betas[k - 1].sqrt() * torch.randn(
        x.shape, generator=generator, dtype=x.dtype
    )
    if k in steps_to_check:
        by_hand[k] = x

# the library's DDPM.forward_chain runs the same loop once and records x_k at the steps asked for, (5, N, 2)
library_chain = ddpm.forward_chain(data, steps_to_check, generator=torch.Generator().manual_seed(3))
chain = dict(zip(steps_to_check, library_chain))
assert all(torch.allclose(chain[k], by_hand[k]) for k in steps_to_check), "hand and library chains disagree"


def worst_z(chain, abars, show=False):
    """Largest |residual mean| and |residual variance - (1 - abar_k)|, in standard errors, over the steps."""
    worst, n = 0.0, data.numel()  # n: residual coordinates pooled over points and both dimensions
    for k in steps_to_check:
        resid = chain[k] - abars[k].sqrt() * data
        var_true = 1 - abars[k].item()
        z_mean = resid.mean().item() / (var_true / n) ** 0.5
        z_var = (resid.var().item() - var_true) / (var_true * (2 / n) ** 0.5)
        worst = max(worst, abs(z_mean), abs(z_var))
        if show:
            print(
                f"{k:4d}  {abars[k]:.4f}   {resid.mean():+.5f}     {resid.var():.5f}      {var_true:.5f}"
                f"          {z_mean:+.2f}          {z_var:+.2f}"
            )
    return worst


print(" k   abar_k   resid. mean   resid. var   closed-form var   mean err / s.e.   var err / s.e.")
z_chain = worst_z(chain, ddpm.alpha_bars, show=True)

# the same check on two wrong things: a chain that forgets the square root of beta, and another schedule's closed form
generator, x, forgot_sqrt = torch.Generator().manual_seed(3), data, {}
for k in range(1, T + 1):
    x = (1 - betas[k - 1]).sqrt() * x + betas[k - 1] * torch.randn(
        x.shape, generator=generator, dtype=x.dtype
    )
    if k in steps_to_check:
        forgot_sqrt[k] = x
z_forgot_sqrt = worst_z(forgot_sqrt, ddpm.alpha_bars)
z_other_schedule = worst_z(chain, DDPM(num_steps=T, beta_end=0.022).alpha_bars)

# %%
fig, axes = plt.subplots(1, len(steps_to_check) + 1, figsize=(18, 3.3), sharex=True, sharey=True)
axes[0].scatter(*data[:3000].T, s=2, c="k")
axes[0].set_title("data (k = 0, t = 1)")
closed_gen = torch.Generator().manual_seed(2)
for ax, k in zip(axes[1:], steps_to_check):
    closed = ddpm.marginal(
        data[:3000], torch.full((3000,), k), torch.randn(3000, 2, generator=closed_gen, dtype=data.dtype)
    )
    ax.scatter(*chain[k][:3000].T, s=2, alpha=0.5, label="step by step")
    ax.scatter(*closed.T, s=2, alpha=0.5, label="closed form")
    ax.set_title(f"k = {k}  (t = {ddpm.t_of(k).item():.3f})")
for ax in axes:
    ax.set_aspect("equal")
axes[-1].legend(markerscale=5, loc="lower right")
fig.suptitle("The forward process on moons: the chain run step by step vs the closed form q(x_k | x_0)")
plt.show()

# proves C1: the closed-form marginal matches the step-by-step chain (mean and variance, within 5 standard errors)
prove("C1", z_chain, 5, what="chain vs closed form, worst |error| / std. error over k and mean/var")
# control for C1: the same check rejects a chain with a wrong step and the closed form of another schedule
control("C1", z_forgot_sqrt, 5, what="chain with noise beta z (forgotten sqrt) vs closed form")
control("C1", z_other_schedule, 5, what="chain vs closed form of betas up to 0.022 (not 0.02)")
print(
    f"C1 holds: the worst residual mean or variance is {z_chain:.1f} standard errors from the closed form (limit 5);"
    f" the forgotten square root is {z_forgot_sqrt:.0f} and the neighbouring schedule {z_other_schedule:.1f} away."
)

# %% [markdown]
# ## 2. Schedules, $\bar\alpha$ and the signal-to-noise ratio
#
# In the course's notation a Gaussian path is $x_t = \alpha(t)\,\text{data} + \sigma(t)\,\text{noise}$, so DDPM has
# $\alpha = \sqrt{\bar\alpha}$ and $\sigma = \sqrt{1 - \bar\alpha}$. The **signal-to-noise ratio** is
# $\mathrm{SNR}(t) = \alpha^2/\sigma^2$ and its logarithm $\lambda(t) = \log \mathrm{SNR}$ runs from $-\infty$ (noise)
# to $+\infty$ (data). Schedules differ in *how fast* they move along it:
#
# - **linear betas** (DDPM): in continuous time $\beta(\tau) = \beta_{\min} + (\beta_{\max}-\beta_{\min})\tau$ with
#   diffusion time $\tau = 1 - t$, and $\bar\alpha = \exp(-\int_0^\tau \beta)$; DDPM's $10^{-4}\dots0.02$ over $T=1000$
#   steps is $\beta_{\min} = 0.1$, $\beta_{\max} = 20$;
# - **the cosine path** (Nichol & Dhariwal's schedule with offset $s = 0$): $\alpha = \sin(\pi t/2)$, $\sigma = \cos(\pi t/2)$, so $\bar\alpha = \sin^2(\pi t / 2)$;
# - **linear path** (flow matching, lesson 04): $\alpha = t$, $\sigma = 1 - t$.

# %%
t = torch.linspace(0.001, 0.999, 400)
schedules = {
    "DDPM linear betas (VP)": VPSchedule(),
    "cosine path (s = 0)": CosineSchedule(),
    "linear path (OT)": LinearSchedule(),
}
fig, axes = plt.subplots(1, 3, figsize=(16, 4))
for name, schedule in schedules.items():
    out = schedule(t)
    axes[0].plot(t, out.alpha**2, label=name)
    axes[1].plot(t, schedule.log_snr(t), label=name)
    axes[2].plot(t, out.alpha**2 + out.sigma**2, label=name)
k = torch.arange(0, T + 1, 25)
axes[0].scatter(
    ddpm.t_of(k), ddpm.alpha_bars[k], s=10, c="k", zorder=3, label="DDPM discrete, every 25th step"
)
axes[0].set(title=r"$\bar\alpha(t) = \alpha(t)^2$: how much signal is left", xlabel="t (0 = noise, 1 = data)")
axes[1].set(title=r"log-SNR $\lambda(t) = \log(\alpha^2/\sigma^2)$", xlabel="t", ylim=(-15, 15))
axes[2].set(title=r"$\alpha^2 + \sigma^2$", xlabel="t", ylim=(0, 1.1))
for ax in axes:
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The discrete DDPM points sit on the continuous VP curve: the continuous schedule *is* DDPM's in the limit of
# many steps. Note how the linear-beta schedule destroys the signal early (in diffusion time): $\bar\alpha$ is
# nearly 0 over the first third of $t$, wasted steps that motivated Nichol & Dhariwal's cosine schedule.
#
# **Variance preserving.** If $\alpha^2 + \sigma^2 = 1$ and the data have unit variance (and are independent of the
# noise), then $\mathrm{Var}(x_t) = \alpha^2 \cdot 1 + \sigma^2 \cdot 1 = 1$ at every $t$. The linear path is *not*
# variance preserving: $t^2 + (1-t)^2$ dips to $1/2$ at $t = 1/2$. For the continuous schedules this is an identity
# (the library defines $\sigma$ from $\alpha$), so the picture below only *illustrates* it; the proof comes after,
# on DDPM's chain run step by step.

# %%
unit = sample_target("moons", 50_000, seed=4)
unit = (unit - unit.mean(0)) / unit.std(0)  # unit variance in each coordinate
noise = torch.randn(unit.shape, generator=torch.Generator().manual_seed(5))
t_grid = torch.linspace(0, 1, 21)
variances = {}
for name, schedule in {**schedules, "variance exploding": VESchedule(sigma_max=10.0)}.items():
    out = schedule(t_grid)
    variances[name] = torch.stack(
        [(a * unit + s * noise).var(0).mean() for a, s in zip(out.alpha, out.sigma)]
    )

fig, ax = plt.subplots(figsize=(7, 4))
for name, v in variances.items():
    ax.plot(t_grid, v, marker="o", ms=3, label=name)
ax.set(
    yscale="log",
    xlabel="t",
    ylabel=r"Var$(x_t)$ (per coordinate)",
    title="Unit-variance data along each path",
)
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# an illustration: alpha^2 + sigma^2 = 1 holds by construction for the VP schedules; the linear path dips to 1/2
for name in ("DDPM linear betas (VP)", "cosine path (s = 0)"):
    out = schedules[name](t)
    assert torch.allclose(out.alpha**2 + out.sigma**2, torch.ones_like(t), atol=1e-6), name
    print(
        f"{name:24s}: max |alpha^2 + sigma^2 - 1| = {(out.alpha**2 + out.sigma**2 - 1).abs().max():.1e}, "
        f"max |Var(x_t) - 1| = {(variances[name] - 1).abs().max():.4f}"
    )
dip = variances["linear path (OT)"].min().item()
print(f"linear path (OT)        : min Var(x_t) = {dip:.3f}, not variance preserving (expected 0.5)")
assert abs(dip - 0.5) < 0.02

# %% [markdown]
# **The proof, on the chain itself.** The chain knows nothing of $\alpha^2 + \sigma^2 = 1$: each step
# $x_k = \sqrt{1-\beta_k}\,x_{k-1} + \sqrt{\beta_k}\,z_k$ maps variance $v$ to $(1-\beta_k)v + \beta_k$, which keeps
# $v = 1$ fixed. So we run the chain step by step (`ddpm.forward_chain`) on 20,000 unit-variance points, and measure
# $\mathrm{Var}(x_k)$ every 50 steps. The tolerance is a standard error computed from the samples: the estimated
# variance of $n$ values with deviations $d_i$ has standard error $\mathrm{std}(d_i^2)/\sqrt n$, and every estimate
# must lie within 5 of them of 1. The control runs a chain that is *not* variance preserving the same way:
# $x_k = \sqrt{1-\beta_k}\,x_{k-1} + \sqrt{2\beta_k}\,z_k$ (twice the noise variance), whose variance climbs to 2.

# %%
record = list(range(0, T + 1, 50))  # the steps at which Var(x_k) is measured
start = unit[:20_000]  # unit-variance moons, (N, 2)


def variance_and_error(xs):
    """Per-coordinate variance of xs (K, N, D) over its N points, and the standard error of that estimate, (K, D)."""
    dev2 = (xs - xs.mean(1, keepdim=True)) ** 2
    return xs.var(1), dev2.std(1) / xs.shape[1] ** 0.5


vp_chain = ddpm.forward_chain(start, record, generator=torch.Generator().manual_seed(6))  # (21, N, 2)
generator, x, kept = torch.Generator().manual_seed(6), start, [start]
for k in range(1, T + 1):  # the same loop with twice the noise: not variance preserving
    x = (1 - ddpm.beta(k)) ** 0.5 * x + (2 * ddpm.beta(k)) ** 0.5 * torch.randn(x.shape, generator=generator)
    if k in record:
        kept.append(x)
twice_noise_chain = torch.stack(kept)
var_vp, error_vp = variance_and_error(vp_chain)
var_twice, error_twice = variance_and_error(twice_noise_chain)
z_vp, z_twice = (var_vp - 1) / error_vp, (var_twice - 1) / error_twice  # distances from 1 in standard errors

fig, ax = plt.subplots(figsize=(7, 4))
k_axis = torch.tensor(record)
band = 5 * error_vp.mean(1)
ax.fill_between(k_axis, 1 - band, 1 + band, color="0.8", label="1 +- 5 standard errors")
ax.plot(k_axis, var_vp.mean(1), marker="o", ms=3, label=r"DDPM chain, $\sqrt{\beta_k}\,z$")
ax.plot(k_axis, var_twice.mean(1), marker="o", ms=3, label=r"control chain, $\sqrt{2\beta_k}\,z$")
ax.set(xlabel="step k (k = T is noise, t = 1 - k/T)", ylabel=r"Var$(x_k)$ (mean of the two coordinates)")
ax.set_title("Unit-variance data along the step-by-step chain")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# proves C2: unit-variance data keep unit variance along DDPM's step-by-step chain (within 5 standard errors)
prove("C2", z_vp.abs().max(), 5, what="DDPM chain, worst |Var(x_k) - 1| / std. error over k and coordinates")
# control for C2: the same check rejects a chain that is not variance preserving
control("C2", z_twice.abs().max(), 5, what="chain with twice the noise variance, same check")
print(
    f"C2 holds: along DDPM's chain Var(x_k) stays in [{var_vp.min():.3f}, {var_vp.max():.3f}], at most"
    f" {z_vp.abs().max():.1f} standard errors from 1 (limit 5); the twice-noise chain reaches"
    f" {var_twice.max():.2f}, {z_twice.abs().max():.0f} standard errors away."
)

# %% [markdown]
# ## 3. Training a network to predict the noise
#
# The reverse of a small Gaussian step is again close to Gaussian, and its mean depends on the data through
# $\mathbb E[x_0 \mid x_k]$, or equivalently on the noise $\epsilon$ that was added. Ho et al. train a network
# $\epsilon_\theta(x_k, k)$ with the *simple loss*
# $$ L(\theta) = \mathbb E_{k,\, x_0,\, \epsilon}\, \big\| \epsilon - \epsilon_\theta\big(\sqrt{\bar\alpha_k}x_0 + \sqrt{1-\bar\alpha_k}\,\epsilon,\ k\big)\big\|^2 , $$
# a regression: noise the data with the closed form, ask the network which noise was used. In the course's
# time, the network receives $t = 1 - k/T$. Here is the loss in a few lines, checked against the library's:


# %%
def ddpm_loss_by_hand(model, data):
    k = torch.randint(1, T + 1, (data.shape[0],))  # a random step per point
    noise = torch.randn_like(data)
    abar = alpha_bars[k - 1].float()[:, None]
    x_k = abar.sqrt() * data + (1 - abar).sqrt() * noise
    return ((model(x=x_k, t=1 - k.float() / T) - noise) ** 2).mean()


model = MLP(dim=2, hidden=128, depth=3)
batch = sample_target("moons", 256, seed=6)
torch.manual_seed(7)
by_hand = ddpm_loss_by_hand(model, batch)
torch.manual_seed(7)
assert torch.allclose(by_hand, ddpm.loss(model, batch)), "the hand-written loss and the library's disagree"
print(f"loss of an untrained model: {by_hand.item():.3f} (hand) = library; predicting 0 would give about 1.0")

# %% [markdown]
# Training uses the course's one loop, `lessons.training.train` (AdamW, loss history, and a safe stop if the
# loss ever becomes NaN). Its length comes from the budget switch. The training monitor
# (`widgets.training_monitor`) is its callback: every few hundred steps it redraws the loss and 500 samples of
# the model so far, drawn by section 4's ancestral sampler. The monitor samples on a fork of torch's random
# state, so watching does not change a single number of the training.

# %%
train_points = sample_target("moons", 10_000, seed=8)
steps = by_budget(fast=3_000, full=20_000)
next_batch = random_batches(train_points, 256)  # 256 random rows per step, drawn by torch's seeded generator
watch_noise = torch.randn(500, 2, generator=torch.Generator().manual_seed(100))


def watch_samples(m):  # the same noise at every redraw, so only the model changes between pictures
    return ddpm.sample(m, watch_noise, generator=torch.Generator().manual_seed(101), keep_path=False).final


monitor = TrainingMonitor(
    sample=watch_samples,
    target=train_points[:2000],
    smooth=100,
    view=7,
    title="DDPM training (noise-prediction MSE)",
)
display(monitor)
result = train(
    model,
    ddpm.loss,
    next_batch,
    steps=steps,
    lr=2e-3,
    seed=0,
    device="cpu",
    progress=False,
    callback=monitor,
    callback_every=steps // 8,
)
print(
    f"trained {result.steps_done} steps in {result.seconds:.1f} s; final loss {sum(result.losses[-200:]) / 200:.3f}"
)

# %% [markdown]
# ## 4. Ancestral sampling
#
# Sampling runs the chain backwards. Given $x_k$ and the predicted noise $\hat\epsilon = \epsilon_\theta(x_k, k)$,
# the data estimate is $\hat x_0 = (x_k - \sqrt{1-\bar\alpha_k}\,\hat\epsilon)/\sqrt{\bar\alpha_k}$, and the
# Gaussian posterior $q(x_{k-1} \mid x_k, \hat x_0)$ has mean
# $$ \mu_k = \frac{1}{\sqrt{1-\beta_k}}\Big(x_k - \frac{\beta_k}{\sqrt{1-\bar\alpha_k}}\,\hat\epsilon\Big)
#    \quad\text{and variance}\quad \tilde\beta_k = \frac{1-\bar\alpha_{k-1}}{1-\bar\alpha_k}\,\beta_k . $$
# DDPM samples $x_{k-1} = \mu_k + \sqrt{\tilde\beta_k}\, z$ for $k = T, \dots, 1$ (no noise at the last step).
# Written out:


# %%
@torch.no_grad()
def ancestral_by_hand(model, noise, generator):
    x = noise
    abar = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars])  # abar[0] = 1
    for k in range(T, 0, -1):
        eps = model(x=x, t=torch.full((x.shape[0],), 1 - k / T))
        beta = betas[k - 1].item()
        x = (x - beta / (1 - abar[k].item()) ** 0.5 * eps) / (1 - beta) ** 0.5
        if k > 1:
            var = (1 - abar[k - 1].item()) / (1 - abar[k].item()) * beta
            x = x + var**0.5 * torch.randn(x.shape, generator=generator)
    return x


noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(9))
by_hand = ancestral_by_hand(model, noise, torch.Generator().manual_seed(10))
trajectory = ddpm.sample(model, noise, generator=torch.Generator().manual_seed(10))
assert torch.allclose(by_hand, trajectory.final, atol=1e-5), "hand-written sampler and library disagree"
print(
    f"library and hand-written sampler agree; {trajectory.nfe} network evaluations, path shape {tuple(trajectory.xs.shape)}"
)

# %% [markdown]
# How good are the samples? We measure the exact 2-Wasserstein distance $W_2$ between 2,000 samples and 2,000
# held-out target points (`lessons.optimal_transport.w2`, an optimal assignment). Even two fresh draws *of the target itself*
# are not at distance 0 with finitely many points: ten pairs of independent 2,000-point draws of moons
# (`lessons.evaluation.data_band`) give the data-vs-data band, and samples pass if they are within twice its
# largest value. The prior (pure noise) gives the ceiling. The control runs the same check on the same trained model
# sampled with a convention bug: the network is fed the paper's $k/T$ instead of the course's $t = 1 - k/T$ (see the
# table at the top).

# %%
test = sample_target("moons", 2000, seed=11)
band = data_band(w2, lambda seed: sample_target("moons", 2000, seed=200 + seed), repeats=10)
threshold = 2 * band.max().item()
ceiling = w2(noise, test)
distance = w2(trajectory.final, test)


def paper_time_model(x, t, cond=None):  # the bug: a model called with k/T, where t = 1 - k/T is meant
    return model(x=x, t=1 - t, cond=cond)


wrong_time = ddpm.sample(
    paper_time_model, noise, generator=torch.Generator().manual_seed(10), keep_path=False
)
distance_wrong_time = w2(wrong_time.final, test)
print(
    f"W2(samples, target) = {distance:.3f}   data-vs-data band = {band.mean():.3f} +- {band.std():.3f}"
    f" (largest {band.max():.3f})   noise-vs-data = {ceiling:.3f}   model fed k/T = {distance_wrong_time:.3f}"
)

fig, axes = plt.subplots(1, 3, figsize=(16, 5), sharex=True, sharey=True)
axes[0].scatter(*test.T, s=3, c="k")
axes[0].set_title("target (held-out moons)")
axes[1].scatter(*trajectory.final.T, s=3, c="tab:blue")
axes[1].set_title(f"DDPM samples, {trajectory.nfe} steps: W2 = {distance:.3f} (limit {threshold:.3f})")
axes[2].scatter(*wrong_time.final.T, s=3, c="tab:red")
axes[2].set_title(f"control: the model fed k/T, W2 = {distance_wrong_time:.3f}")
for ax in axes:
    ax.set_aspect("equal")
plt.show()

# proves C3: the eps-model trained with the DDPM loss and sampled ancestrally reproduces the target
prove("C3", distance, threshold, what="W2(DDPM samples, moons) vs 2 x largest data-vs-data W2")
assert distance < 0.25 * ceiling
# control for C3: the same check rejects the same model sampled with the time convention flipped
control("C3", distance_wrong_time, threshold, what="W2 of the model fed k/T instead of t = 1 - k/T")
print(
    f"C3 holds: W2 = {distance:.3f} is within twice the largest data-vs-data distance ({threshold:.3f}) and"
    f" {distance / ceiling:.2f} x the noise-vs-data distance; the model fed k/T is at {distance_wrong_time:.3f}."
)

# %% [markdown]
# ### The denoising trajectory
# Every sampler in the course returns a `Trajectory(ts, xs, nfe)`. Here are snapshots of the 2,000 points at
# several times, and the paths of a few of them: DDPM's paths are jagged, because fresh noise is injected at
# every step (lesson 02 removes it).

# %%
snap_ts = [0.0, 0.5, 0.75, 0.9, 0.97, 1.0]
fig, axes = plt.subplots(1, len(snap_ts) + 1, figsize=(21, 3.4))
for ax, t_snap in zip(axes, snap_ts):
    i = int(torch.argmin((trajectory.ts - t_snap).abs()))
    ax.scatter(*trajectory.xs[i].T, s=2)
    ax.set_title(f"t = {trajectory.ts[i]:.2f}")
    ax.set_aspect("equal")
    ax.set(xlim=(-5, 6), ylim=(-5, 5))
for j in range(12):
    axes[-1].plot(*trajectory.xs[:, j].T, lw=0.6)
axes[-1].scatter(*trajectory.final[:12].T, c="k", s=12, zorder=3)
axes[-1].set(title="12 paths from noise to data", xlim=(-5, 6), ylim=(-5, 5))
axes[-1].set_aspect("equal")
plt.show()

# %% [markdown]
# ## 5. Where the loss comes from: the evidence lower bound (C31)
#
# Section 3 took the simple loss on trust. Here is where it comes from. The model is a reverse chain
# $p_\theta(x_{0:T}) = \mathcal N(x_T; 0, I)\prod_k p_\theta(x_{k-1} \mid x_k)$, each step Gaussian with the mean $\mu_k$ of
# section 4 and a variance $s_k^2$ ($\tilde\beta_k$ or $\beta_k$). Its likelihood $p_\theta(x_0) = \int p_\theta(x_{0:T})\,dx_{1:T}$
# has no closed form, but the forward chain gives a bound: by Jensen's inequality,
# $$ -\log p_\theta(x_0) = -\log \mathbb E_q\Big[\tfrac{p_\theta(x_{0:T})}{q(x_{1:T} \mid x_0)}\Big]
#    \le \mathbb E_q\Big[-\log \tfrac{p_\theta(x_{0:T})}{q(x_{1:T} \mid x_0)}\Big] = L(x_0). $$
# Bayes' rule turns the forward chain around, $q(x_{1:T} \mid x_0) = q(x_T \mid x_0)\prod_{k \ge 2} q(x_{k-1} \mid x_k, x_0)$,
# and $L$ splits into Gaussian terms ($L_T$ is tiny and has no parameters):
# $$ L = \underbrace{\mathrm{KL}\big(q(x_T \mid x_0)\,\|\,\mathcal N(0, I)\big)}_{L_T}
#    + \sum_{k=2}^{T} \underbrace{\mathbb E_q\,\mathrm{KL}\big(q(x_{k-1} \mid x_k, x_0)\,\|\,p_\theta(x_{k-1} \mid x_k)\big)}_{L_{k-1}}
#    \underbrace{-\ \mathbb E_q \log p_\theta(x_0 \mid x_1)}_{L_0} . $$
# The posterior $q(x_{k-1} \mid x_k, x_0)$ has variance $\tilde\beta_k$ and the mean $\mu_k$ with the *true* noise in place
# of $\hat\epsilon$: $\tilde\mu - \mu_k = \beta_k(\hat\epsilon - \epsilon)/\sqrt{(1-\beta_k)(1-\bar\alpha_k)}$. With
# $s_k^2 = \tilde\beta_k$ the KL is $\|\tilde\mu - \mu_k\|^2 / (2\tilde\beta_k)$, so with the log-SNR
# $\lambda_k = \log \mathrm{SNR}_k = \log(\bar\alpha_k / (1 - \bar\alpha_k))$,
# $$ L_{k-1} = \tfrac12\big(e^{\lambda_{k-1} - \lambda_k} - 1\big)\,\mathbb E\|\epsilon - \hat\epsilon\|^2 , \qquad
#    L_0 = \tfrac D2 \log(2\pi v) + \tfrac12\,\mathbb E\|\epsilon - \hat\epsilon\|^2 , $$
# for a decoder $p_\theta(x_0 \mid x_1) = \mathcal N(\hat x_0, v I)$ with $v = 1/\mathrm{SNR}_1$ (DDPM's last step has
# $\tilde\beta_1 = 0$, no density). With $s_k^2 = \beta_k$ the mean term is divided by $\beta_k$ instead and each KL
# gains a variance term $\tfrac D2(r_k - 1 - \log r_k)$, $r_k = \tilde\beta_k / \beta_k$. Any model's bound holds for its own likelihood; averaged over the data it also lies
# above the data's entropy, the **exact** NLL:
# $\mathbb E\,L \ge \mathbb E[-\log p_\theta] = \mathbb E[-\log p_{\rm data}] + \mathrm{KL}(p_{\rm data} \,\|\, p_\theta)$.
#
# To measure the gap we need a target whose density is known: the three-Gaussian `mixture`. We train the same network
# with the same loss as in section 3 on it, and compute $L$ with `lessons.elbo.ddpm_bound` (one draw of each $x_k$ per
# point, the KLs in closed form) on held-out points (1,000 in the fast budget, 4,000 in full), for the trained network and for the *exact* noise
# prediction of the mixture (`ExactMixtureModel`), whose gap is the reverse variance's and the $T$ steps' alone. The
# gap's tolerance is its standard error over the points; the control is the same check on a bound whose decoder
# Gaussian forgot its $2\pi$ (a wrong constant, $\log(2\pi)$ nats too low), which must be rejected.

# %%
mixture = target_density("mixture")  # three Gaussians: the exact -log p(x_0) is known
mixture_model = MLP(dim=2, hidden=128, depth=3)
mixture_run = train(
    mixture_model,
    ddpm.loss,
    random_batches(sample_target("mixture", 10_000, seed=12), 256),
    steps=by_budget(fast=1_000, full=10_000),
    lr=2e-3,
    seed=0,
    device="cpu",
)
held_out = sample_target("mixture", by_budget(fast=1_000, full=4_000), seed=13)
exact_nll = -mixture.log_prob(held_out).double()  # (N,), nats
ideal = ExactMixtureModel(mixture, DiscreteVPSchedule(ddpm), "eps")  # E[noise | x_k]: no training error
bounds, gaps = {}, {}
print("model        reverse variance   bound (nats)   exact NLL   gap +- s.e.   points with bound < NLL")
for name, m in (("trained", mixture_model), ("exact eps", ideal)):
    for variance in ("posterior", "beta"):
        b = ddpm_bound(m, ddpm, held_out, variance, generator=torch.Generator().manual_seed(14))
        gap = b.total - exact_nll  # (N,): one bound per point, each from one forward chain
        if name == "trained":  # kept for the reweighting below: (N, T) eps errors and KLs
            bounds[name, variance] = b
        gaps[name, variance] = (gap.mean().item(), gap.std().item() / len(gap) ** 0.5)
        print(
            f"{name:12s} {variance:16s} {b.total.mean():10.3f} {exact_nll.mean():11.3f}"
            f"   {gaps[name, variance][0]:.3f} +- {gaps[name, variance][1]:.3f}   {(gap < 0).float().mean():.0%}"
        )
two_pi = 0.5 * 2 * math.log(2 * math.pi)  # (D / 2) log(2 pi) of the decoder's normaliser, D = 2
no_two_pi = bounds["trained", "beta"].total - two_pi - exact_nll  # the gap of a bound that forgot the 2 pi
gap_no_two_pi, se_no_two_pi = no_two_pi.mean().item(), no_two_pi.std().item() / len(no_two_pi) ** 0.5

# proves C31: averaged over the data, the trained model's bound is not below the exact NLL (within 3 standard errors)
for variance in ("posterior", "beta"):
    gap, se = gaps["trained", variance]
    prove("C31", gap, -3 * se, ">=", what=f"mean(bound - exact NLL), trained model, variance {variance}")
# control for C31: the same check rejects a bound whose decoder Gaussian forgot its 2 pi (a wrong constant)
control("C31", gap_no_two_pi, -3 * se_no_two_pi, ">=", what="mean(bound - exact NLL), decoder without 2 pi")
print(
    f"C31 (bound) holds: after {mixture_run.steps_done} training steps the bound is"
    f" {gaps['trained', 'beta'][0]:.3f} +- {gaps['trained', 'beta'][1]:.3f} nats above the exact NLL with beta_k and"
    f" {gaps['trained', 'posterior'][0]:.3f} +- {gaps['trained', 'posterior'][1]:.3f} with the posterior variance"
    f" (the exact eps: {gaps['exact eps', 'beta'][0]:.3f} and {gaps['exact eps', 'posterior'][0]:.3f});"
    f" without the 2 pi it is {gap_no_two_pi:.2f} +- {se_no_two_pi:.2f}, below the NLL."
)

# %% [markdown]
# The bound holds on average, not point by point: a single point's bound is one draw of a noisy forward chain, and a
# point where the model puts more mass than the data do has $-\log p_\theta < -\log p_{\rm data}$. With the exact
# $\epsilon$ and $\beta_k$, 1,000 steps make the bound nearly tight; DDPM's posterior variance $\tilde\beta_k$, right
# for data concentrated on a point, is too small for a smooth density at the first steps and costs almost a nat.
#
# **The simple loss is the bound, reweighted.** Every term above is a multiple of the same noise error:
# $L = L_T + \sum_k b_k + \sum_k c_k\,\mathbb E\|\epsilon - \hat\epsilon\|^2$, with $c_1 = \tfrac12$,
# $c_k = \tfrac12(e^{\lambda_{k-1} - \lambda_k} - 1)$ and constants $b_k$ (the decoder's normaliser, and the variance terms
# with $\beta_k$). The simple loss is the same sum with the weight $\tfrac1{TD}$ on every step (the step drawn uniformly,
# the mean over the $D$ coordinates). So the bound is $\sum_k w_k \times$ (the simple loss's term $k$) plus constants,
# with $w_k = TD\,c_k$ (`lessons.elbo.elbo_weights`). Over log-SNR: as $T$ grows $c_k \to \tfrac12\,d\lambda$, so
# $L \to \tfrac12\int \mathbb E\|\epsilon - \hat\epsilon\|^2\,d\lambda$, a **flat** weighting $w(\lambda) = D/2$ per coordinate,
# while the simple loss weights $\lambda$ by $1/(d\lambda/dt)$, lesson 06's `implied_weighting("eps", ...)` (section 4
# there). Their ratio, $(D/2)\,d\lambda/dt$, is the limit of $w_k$.
#
# The check: rebuild each point's bound from its simple-loss terms with the weights $w_k$ (for both variances), and
# require it within one standard error of the bound's mean; the same check on the most generous single-weight
# version (the bound as the best affine function of the simple loss, fitted by least squares) must fail.

# %%
weights, deviation = {}, 0.0
for variance in ("posterior", "beta"):
    b = bounds["trained", variance]
    w = weights[variance] = elbo_weights(ddpm, dim=2, variance=variance)  # c_k, b_k, 1 / (T D), over k = 1..T
    simple_terms = w.simple * b.eps_error  # (N, T): step k's share of the simple loss, (1 / T) mean_d err^2
    rebuilt = b.prior + w.constant.sum() + (w.per_step * simple_terms).sum(1)  # (N,)
    deviation = max(deviation, (rebuilt - b.total).abs().max().item())
b, w = bounds["trained", "posterior"], weights["posterior"]
bound_se = b.total.std().item() / len(b.total) ** 0.5
simple = (w.simple * b.eps_error).sum(1)  # (N,): each point's simple loss, over the T steps
design = torch.stack([simple, torch.ones_like(simple)], 1)  # (N, 2)
fit = torch.linalg.lstsq(design, b.total[:, None]).solution  # (2, 1): least-squares a and c
single_weight = design @ fit  # (N, 1): the best a * simple + c
deviation_single = (single_weight[:, 0] - b.total).abs().max().item()

torch.manual_seed(15)  # the library's simple loss on the same points: the eps error is what it measures
with torch.no_grad():
    library_loss = torch.tensor([ddpm.loss(mixture_model, held_out).item() for _ in range(20)])
loss_se = (library_loss.var() / 20 + simple.var() / len(simple)).sqrt().item()
assert abs(library_loss.mean() - simple.mean()) < 4 * loss_se, "eps_error is not the simple loss's error"

# proves C31: the simple loss's terms, reweighted by w_k = T D c_k, give back every point's bound (both variances)
prove(
    "C31",
    deviation,
    bound_se,
    what="max |sum_k w_k (simple loss term k) + const - bound|, vs the bound's s.e.",
)
# control for C31: the same check rejects one weight for every step (the best affine function of the simple loss)
control("C31", deviation_single, bound_se, what="max |a * simple loss + c - bound|, least-squares a and c")
print(
    f"C31 (reweighting) holds: the reweighted simple loss gives back every bound to {deviation:.1e} nats (the"
    f" bound's standard error is {bound_se:.3f}); one weight for all steps misses by up to {deviation_single:.2f}."
    f" Simple loss {simple.mean():.3f}, library's {library_loss.mean():.3f} +- {library_loss.std() / 20**0.5:.3f}."
)

# %%
lam = w.log_snr  # (T,): lambda_k for k = 1..T, falling with k
t_mid = 1 - (torch.arange(1, T + 1, dtype=torch.float64) - 0.5) / T  # halfway through each step
w_simple = implied_weighting("eps", DiscreteVPSchedule(ddpm), t_mid)  # lesson 06: 1 / (d lambda / dt)
per_step_error = b.eps_error.mean(0)  # (T,): E ||eps - eps_hat||^2 at step k
share_bound = w.elbo * per_step_error / (w.elbo * per_step_error).sum()
share_simple = per_step_error / per_step_error.sum()
fig, axes = plt.subplots(1, 3, figsize=(18, 4.2))
axes[0].semilogy(lam, w_simple, label=r"simple loss: $1/(d\lambda/dt)$ (lesson 06)")
axes[0].semilogy(lam, torch.full_like(lam, 2 / 2), label=r"ELBO: $D/2$, flat (many steps)")
axes[0].set(title=r"weighting $w(\lambda)$ of the per-coordinate eps error", xlabel=r"log-SNR $\lambda$")
axes[1].semilogy(lam[1:], w.per_step[1:], ".", ms=3, label=r"$w_k = T D c_k$, per DDPM step")
axes[1].semilogy(lam, w.continuous, "--", label=r"$(D/2)\,d\lambda/dt$ = ELBO / simple")
axes[1].set(title="bound term / simple-loss term, per step", xlabel=r"log-SNR $\lambda_k$")
axes[2].plot(lam, share_bound.cumsum(0), label="the bound's eps-error terms")
axes[2].plot(lam, share_simple.cumsum(0), label="the simple loss")
axes[2].set(title="share from steps 1..k (trained model)", xlabel=r"log-SNR $\lambda_k$ (k = 1 at the right)")
for ax in axes:
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
plt.show()
print(
    f"the 100 least noisy steps (k <= 100, lambda >= {lam[99]:.1f}) carry {share_bound[:100].sum():.0%} of the"
    f" bound's eps-error terms and {share_simple[:100].sum():.0%} of the simple loss."
)

# %% [markdown]
# The bound spends most of its weight on the last, least noisy steps, where a small error in $\hat\epsilon$ is a large
# error in the data; the simple loss spreads it evenly over the steps, which is what makes it a better training loss
# for samples (Ho et al. found that it gives better samples than the bound). Lesson 06 puts the weightings of the
# other losses (x, v, flow matching) on the same log-SNR axis, after Kingma & Gao (2023).

# %% [markdown]
# ## Exercises
#
# **Checked exercises.** Each is a function to write. Replace the line `raise NotImplementedError(...)` by your
# code and run the cell: `check` runs your function on random inputs against the library and says what is
# right, what is off and by how much, and which common slip your answer matches. Until you fill it in, it
# says "not done yet" and the rest of the notebook runs as before. The solutions are in
# `solutions/01_ddpm.py` (a handout for learners leaves that folder out).
#
# **Checked 1: the closed form from the betas.** Write $x_k = \sqrt{\bar\alpha_k}\,x_0 + \sqrt{1-\bar\alpha_k}\,\epsilon$
# of section 1 from the schedule itself: `betas` `(T,)` holds $\beta_1, \dots, \beta_T$ (so `betas[i - 1]` is
# $\beta_i$), and `k` `(B,)` holds one integer step in $1, \dots, T$ for each row of `data` and `noise` `(B, D)`.
# The check compares it with `lessons.ddpm.DDPM.marginal` on three linear-beta schedules, from DDPM's 1000 small
# steps to 10 large ones, at random steps that include $k = 1$ and $k = T$.

# %%
from lessons.exercises import check


def ddpm_marginal(data, noise, betas, k):
    """x_k, (B, D), for data and noise (B, D); betas (T,) = beta_1..beta_T; k (B,) integer steps in 1..T."""
    raise NotImplementedError("hint: abar_k is a product over the steps i <= k; take one per row with k")


check("ddpm_marginal", ddpm_marginal)

# %% [markdown]
# **Checked 2: one step of the ancestral sampler.** Write one reverse step of section 4,
# $x_{k-1} = \mu_k + \sqrt{\tilde\beta_k}\,z$, from `x` $= x_k$, the predicted noise `eps_hat` and a standard
# normal draw `z` (all `(B, D)`), and the numbers `beta` $= \beta_k$, `abar` $= \bar\alpha_k$ and `abar_prev`
# $= \bar\alpha_{k-1}$ (floats). Add $\sqrt{\tilde\beta_k}\,z$ at every step: at $k = 1$, $\bar\alpha_0 = 1$ makes
# $\tilde\beta_1 = 0$ by itself. The check runs a 50-step sampler, the loop of `ancestral_by_hand` with your
# step, on a fixed stand-in for the network, and compares its samples with those of `lessons.ddpm.DDPM.sample`
# from the same draws $z$; then it tries four steps of DDPM's schedule on random inputs.


# %%
def ddpm_ancestral_step(x, eps_hat, z, beta, abar, abar_prev):
    """x_{k-1}, (B, D), from x = x_k, eps_hat, z (B, D); beta = beta_k, abar = abar_k, abar_prev = abar_{k-1}."""
    raise NotImplementedError("hint: section 4's mean mu_k, plus the posterior's standard deviation times z")


check("ddpm_ancestral_step", ddpm_ancestral_step)

# %% [markdown]
# **Checked 3: one term of the bound.** Write section 5's
# $L_{k-1} = \mathrm{KL}\big(q(x_{k-1} \mid x_k, x_0)\,\|\,p_\theta(x_{k-1} \mid x_k)\big)$ for each point, in nats,
# with DDPM's posterior variance $\tilde\beta_k$ on both sides, from the clean `data`, the noisy `x_k` and the
# prediction `eps_hat` (all `(B, D)`), and `beta`, `abar`, `abar_prev` as in checked 2 (here $k \ge 2$). Build it
# from the two Gaussians: the noise that took `data` to `x_k`, the posterior's mean (section 4's $\mu_k$ with that
# true noise in place of $\hat\epsilon$), the model's $\mu_k$, and the KL of two Gaussians of the same variance.
# The check does not take your route: it compares with the form section 5 derived,
# $\tfrac12\big(e^{\lambda_{k-1} - \lambda_k} - 1\big)\,\|\epsilon - \hat\epsilon\|^2$, its weight from
# `lessons.elbo.elbo_weights`, at four steps of two schedules in 2 and 3 dimensions.


# %%
def ddpm_step_kl(data, x_k, eps_hat, beta, abar, abar_prev):
    """L_{k-1} = KL(q(x_{k-1} | x_k, data) || p(x_{k-1} | x_k)) per point, (B,), in nats; variances tilde beta_k."""
    raise NotImplementedError("hint: the noise from data and x_k turns mu_k into the posterior's mean")


check("ddpm_step_kl", ddpm_step_kl)

# %% [markdown]
# **Open questions** (no automatic check: each asks for an experiment or a derivation; what a good answer
# contains is said under it).
#
# 1. **The other reverse variance.** Sample the trained model with $\beta_k$ in place of DDPM's posterior
#    variance $\tilde\beta_k$ (`ddpm.sample(..., variance="beta")`, the same noise and generator). Does $W_2$
#    change? Why do the two choices coincide as $T \to \infty$?
#    *A good answer* puts both $W_2$ next to the data-vs-data band (they differ by far less than the band's
#    spread), and shows that $\tilde\beta_k / \beta_k = (1 - \bar\alpha_{k-1}) / (1 - \bar\alpha_k)$ tends to 1 at
#    every fixed $t$ as the steps shrink, because $\bar\alpha_{k-1} - \bar\alpha_k = \bar\alpha_{k-1}\beta_k \to 0$;
#    only the last few steps, where $1 - \bar\alpha_k$ is itself of the order of $\beta_k$, keep a ratio far from 1.
#    It may add that the two are Ho et al.'s extremes: the best reverse variance for data that are a single point
#    ($\tilde\beta_k$) and for standard normal data ($\beta_k$).
# 2. **Other targets.** Train the same network on `"8gaussians"` and on `"checkerboard"` (see
#    `lessons.data2d.TARGETS`). Which is hardest, and why?
#    *A good answer* compares each $W_2$ with its own target's data-vs-data band, not with another target's (the
#    targets have different scales; after the fast budget's 3,000 steps, 8gaussians lands inside its band and
#    checkerboard at about 1.7 times its band's mean, moons at about 1.3), shows the samples, and points to the
#    checkerboard's sharp edges: its density jumps from square to square, so the noise prediction must change
#    abruptly near the data, and a small network trained briefly rounds the corners off.
# 3. **Fewer steps.** Train with $T = 100$ instead of 1000 (`DDPM(num_steps=100)`). How many steps does sampling
#    need now, and what happens to quality?
#    *A good answer* notes that ancestral sampling runs exactly the $T$ steps the model was trained on (100 network
#    evaluations), and looks at $\bar\alpha_T$ before judging the samples: with the betas still $10^{-4} \dots 0.02$,
#    $\bar\alpha_{100} \approx 0.36$, so $x_T$ is far from pure noise and sampling from $\mathcal N(0, I)$ starts
#    from the wrong distribution ($W_2$ about 1.1, far outside the band); with the betas scaled up to $0.2$
#    (`DDPM(num_steps=100, beta_end=0.2)`, $\bar\alpha_{100} \approx 2 \cdot 10^{-5}$) the samples are about as
#    close to the target as with 1000 steps.
# 4. **Raw data.** Show that $\mathrm{Var}(x_t)$ along the cosine path stays at 1 only if the data are standardized:
#    what is it for raw moons?
#    *A good answer* measures the per-coordinate $\mathrm{Var}(x_t)$ of raw moons along the cosine path, with its
#    standard error, and compares it with $\alpha^2 v + \sigma^2$, $v$ the data's variance (about 7.1 and 2.5 for
#    the two coordinates): it climbs from 1 at $t = 0$ to $v$ at $t = 1$. A variance-preserving schedule keeps the
#    variance at 1 only for data of variance 1, which is why data are standardized before training.
# 5. **The bound with 100 steps.** Compute the bound of section 5 with `DDPM(num_steps=100)` and the exact model
#    (retrain nothing: the exact $\epsilon$ of `ExactMixtureModel` on `DiscreteVPSchedule(DDPM(100))`). Is it
#    looser or tighter than with 1000 steps?
#    *A good answer* reports the gap (bound minus exact NLL, with its standard error) for both reverse variances at
#    $T = 100$ and $T = 1000$, splits the bound into its terms, and explains what it sees: with the betas unchanged,
#    $\bar\alpha_{100} \approx 0.36$, so the prior term $L_T$ alone costs about 1.3 nats and the bound is looser
#    (a gap of about 3 nats with $\tilde\beta_k$ and 0.4 with $\beta_k$, against 0.9 and 0.01 at $T = 1000$); with
#    the betas rescaled (`beta_end=0.2`), $L_T$ vanishes and the bound with $\beta_k$ is nearly tight again, while
#    $\tilde\beta_k$, far too small a reverse variance for steps this large, makes it much looser (about 20 nats).
#
# ## What to remember
# - The forward chain has a closed form $x_t = \alpha(t)\,\text{data} + \sigma(t)\,\text{noise}$, with
#   $\alpha = \sqrt{\bar\alpha}$, $\sigma = \sqrt{1-\bar\alpha}$ for DDPM; training jumps straight to any $t$.
# - A schedule is a path in log-SNR; variance-preserving ones keep $\alpha^2 + \sigma^2 = 1$, and DDPM's chain,
#   run step by step, keeps unit-variance data at unit variance (a chain with twice the noise does not).
# - DDPM learns the added noise by regression, and samples by running $T$ noisy reverse steps: $T$ network
#   evaluations per sample. Lesson 02 asks how to use far fewer.
# - The loss is not arbitrary: DDPM's evidence lower bound is a sum of Gaussian KLs, each a multiple of the same
#   noise error, and it lies above the exact NLL on average (measured on the mixture). The simple loss is that bound
#   with another weighting over log-SNR: flat in $\lambda$ for the bound, $1/(d\lambda/dt)$ for the simple loss.
