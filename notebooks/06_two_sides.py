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
# # Lesson 06 — Two sides of one coin: diffusion and Gaussian flow matching
#
# "Which is better, diffusion or flow matching?" This lesson shows, number by number, that for a Gaussian
# source the question has no answer: the two are **one family of models** written in two notations
# (Gao, Hoogeboom, Heek, De Bortoli, Murphy, Salimans, *Diffusion Meets Flow Matching: Two Sides of the
# Same Coin*, 2024). What differs are *choices* inside the family: the network output, the weighting of
# the loss, the sampling schedule. Knowing that they are choices lets you mix the tools of both worlds.
#
# **What you will learn**
# - the DDIM sampler *is* the flow-matching Euler sampler, after an explicit change of variables;
# - DDIM does not care how $(\alpha_t, \sigma_t)$ are scaled; the flow Euler sampler does;
# - "flow matching is straight" is true for a single target point, not for a distribution;
# - the network outputs $\hat\epsilon$, $\hat x$, $\hat v$, $\hat u$ (and the score) convert exactly, and every
#   loss is an $\epsilon$-MSE with a weighting $w(\lambda)$ in log-SNR $\lambda$;
# - flow matching's weighting is the $v$-MSE weighting of the cosine schedule;
# - the training schedule matters only through its end points (in expectation);
# - the SDE description $(f_t, g_t)$ and the flow description $(\alpha_t, \sigma_t)$ convert into each other;
# - logit-normal time sampling (Stable Diffusion 3) moves training effort to the middle of the path.
#
# **Claims proven here:** C20 (DDIM = flow Euler), C21 (scaling), C22 (conversions and weightings),
# C23 (flow matching = $v$-MSE on cosine), C24 (schedule invariance), C25 (SDE $\leftrightarrow$ flow),
# C26 (logit-normal sampling).
#
# Sections: 0. Setup and two trained networks · 1. DDIM is the flow Euler sampler · 2. Invariance to scaling ·
# 3. Straight to a point is not straight to a distribution · 4. Network outputs and weightings ·
# 5. Flow matching's weighting · 6. The training schedule · 7. SDE and flow descriptions ·
# 8. Logit-normal time sampling · Exercises · What to remember

# %% [markdown]
# ## Two notations, one table
#
# The blog post writes $z_t = \alpha_t x + \sigma_t \epsilon$ with $t = 0$ **data** and $t = 1$ **noise**, and flow
# matching as $z_t = (1-t)x + t\epsilon$. The course uses $t = 0$ **noise** and $t = 1$ **data**
# (lesson 01). The translation, once:
#
# | blog | this course |
# |---|---|
# | $z_t$, $t=1$ is noise | `x_t`, $t = 0$ is noise |
# | $x$, $\epsilon$ | `data`, `noise` |
# | flow matching $\alpha_t = 1-t$, $\sigma_t = t$ | `LinearSchedule`: $\alpha_t = t$, $\sigma_t = 1 - t$ |
# | $u = \epsilon - x$ (points towards noise) | velocity $u = \dot\alpha\,\text{data} + \dot\sigma\,\text{noise} = \text{data} - \text{noise}$ |
# | $\lambda_t = \log(\alpha_t^2/\sigma_t^2)$ decreases with $t$ | $\lambda_t$ increases with $t$ (from $-\infty$ to $+\infty$) |
#
# With Gaussian noise the flow-matching path *is* a diffusion forward process: $x_t \mid \text{data}$ is
# $\mathcal N(\alpha_t\,\text{data}, \sigma_t^2 I)$ in both, with the schedule $\alpha_t = t$, $\sigma_t = 1-t$.
#
# Two symbols change meaning between the papers this lesson quotes (and from lesson 02), so once more, for them:
#
# | symbol | flow-matching papers | DDPM / DDIM papers | this lesson |
# |---|---|---|---|
# | $x_0$ | noise (the source) | data | not used: `noise` and `data` |
# | $\eta$ | — | DDIM's noise level: 0 deterministic, 1 DDPM (lesson 02) | section 1: $\eta = \sigma/\alpha$, the blog's time variable (not a noise level); section 7: $\eta_t$, lesson 02's noise level |

# %% [markdown]
# ## 0. Setup and two trained networks
#
# The target is the course's skewed three-component Gaussian mixture: its posterior $E[\text{data} \mid x_t]$ is
# closed form **for any schedule**, so where a claim is about samplers or losses we can use the ideal
# model and see the claim without training noise. Where a claim is about networks, we train two:
#
# - a **flow-matching network** $\hat u(x, t)$: velocity output, linear path, CFM loss (lesson 04);
# - a **diffusion network** $\hat v(x, t)$: $v$-output ($v = \alpha\epsilon - \sigma x$), on the cosine path
#   (Nichol & Dhariwal's schedule with offset $s = 0$: $\alpha_t = \sin\frac{\pi t}{2}$, $\sigma_t = \cos\frac{\pi t}{2}$),
#   $v$-MSE loss, the classic recipe of Salimans & Ho.

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
import copy
import itertools
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from scipy import integrate

from lessons.budget import budget, by_budget
from lessons.claims import control, prove
from lessons.conversions import PREDICTIONS, convert, from_data_and_noise, to_data_and_noise
from lessons.data2d import target_density
from lessons.evaluation import data_band
from lessons.flow_matching import cfm_loss
from lessons.metrics import energy_distance, straightness
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.models import MLP
from lessons.paths import GaussianPath
from lessons.schedules import (
    CosineSchedule,
    LinearSchedule,
    RescaledSchedule,
    ScheduleOutput,
    TruncatedSchedule,
    VPSchedule,
)
from lessons.sde import SDECoefficients, SDESchedule, reverse_sde, sde_coefficients
from lessons.training import train
from lessons.weighting import (
    eps_mse_factor,
    fm_weighting,
    implied_weighting,
    logit_normal_density,
    logit_normal_times,
    weighted_eps_loss,
)

torch.manual_seed(0)
print(f"budget: {budget()}  (set COURSE_BUDGET=fast for a quick run)")
target = target_density("mixture")  # 3 unequal Gaussians with a closed-form posterior
lin, cos = LinearSchedule(), CosineSchedule()
train_steps = by_budget(fast=1500, full=6000)


def v_mse_loss(model, data):
    """Diffusion's v-MSE on the cosine schedule: || v_hat - (alpha noise - sigma data) ||^2, t ~ U[0, 1]."""
    t, noise = torch.rand(data.shape[0]), torch.randn_like(data)
    sample = GaussianPath(cos).sample(noise, data, t)
    return F.mse_loss(model(x=sample.x_t, t=t), from_data_and_noise(data, noise, "v", cos(t)))


start = time.process_time()
fm_net, v_net = MLP(hidden=128, depth=3), MLP(hidden=128, depth=3)
fm_run = train(
    fm_net,
    lambda m, b: cfm_loss(m, GaussianPath(lin), b),
    lambda: target.sample(256),
    steps=train_steps,
    lr=5e-4,
    seed=0,
    device="cpu",
)
v_run = train(
    v_net,
    v_mse_loss,
    lambda: target.sample(256),
    steps=train_steps,
    lr=5e-4,
    seed=1,
    device="cpu",
)
print(
    f"trained two networks for {train_steps} steps each in {time.process_time() - start:.1f} s of CPU; "
    f"last losses: FM {sum(fm_run.losses[-100:]) / 100:.3f}, v-MSE {sum(v_run.losses[-100:]) / 100:.3f}"
)

# %% [markdown]
# ## 1. DDIM is the flow-matching Euler sampler (C20)
#
# **DDIM.** From $x_t$ the network gives estimates $(\hat x, \hat\epsilon)$ of (data, noise) with
# $x_t = \alpha_t \hat x + \sigma_t \hat\epsilon$ *exactly* (that is how they are recovered from any output, lesson 02).
# DDIM moves to a later time $s$ by keeping both estimates and changing the coefficients:
# $$ x_s = \alpha_s \hat x + \sigma_s \hat\epsilon . $$
#
# **On the linear path** ($\alpha = t$, $\sigma = 1 - t$) subtract the two lines:
# $$ x_s - x_t = (s - t)\,\hat x + \big((1-s) - (1-t)\big)\hat\epsilon = (s-t)\,(\hat x - \hat\epsilon) = (s - t)\,\hat u , $$
# because the velocity of the linear path is $u = \dot\alpha\,x + \dot\sigma\,\epsilon = x - \epsilon$. That is one
# Euler step of $\mathrm dx/\mathrm dt = \hat u(x, t)$. **DDIM with $\eta = 0$ on a grid is Euler on the same grid**,
# step by step, with no approximation. First one step, by hand, with the flow-matching network:

# %%
fm64, v64 = copy.deepcopy(fm_net).double(), copy.deepcopy(v_net).double()  # float64 copies: differences show
noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

t, s = 0.3, 0.45
x = t * target.sample(2000).double() + (1 - t) * noise  # an x_t of the linear path
u_hat = fm64(x=x, t=torch.full((2000,), t, dtype=torch.float64))
data_hat = x + (1 - t) * u_hat  # solve x = t data + (1 - t) noise and u = data - noise
noise_hat = x - t * u_hat
ddim_step = s * data_hat + (1 - s) * noise_hat  # DDIM: same estimates, coefficients of time s
euler_step = x + (s - t) * u_hat  # Euler on dx/dt = u_hat
print(f"one step: max |DDIM - Euler| = {(ddim_step - euler_step).abs().max():.2e}")
assert torch.allclose(ddim_step, euler_step, atol=1e-12)

# %% [markdown]
# Now the library's samplers over a whole grid: `lessons.ddim.ddim` told that the network predicts the
# velocity, and `lessons.solvers.solve_ode` with Euler, on the same 50-step grid, from the same noise.

# %%
# the library's version, imported after deriving it (so are the other imports below the first cell)
from lessons.ddim import ddim
from lessons.solvers import solve_ode

grid = torch.linspace(0, 1, 51, dtype=torch.float64)
ddim_fm = ddim(fm64, noise, lin, grid, prediction="velocity")
euler_fm = solve_ode(fm64, noise, ts=grid, method="euler")
gap_fm64 = (ddim_fm.xs - euler_fm.xs).abs().max().item()
gap_fm32 = (
    (
        ddim(fm_net, noise.float(), lin, grid.float(), prediction="velocity").final
        - solve_ode(fm_net, noise.float(), ts=grid.float(), method="euler").final
    )
    .abs()
    .max()
    .item()
)
print(
    f"FM network, 50 steps: max |DDIM - Euler| over the whole path = {gap_fm64:.1e} (float64), "
    f"{gap_fm32:.1e} on the final samples in float32"
)

# %% [markdown]
# **Any schedule.** The blog's change of variables: divide by $\alpha$. With $\tilde x = x/\alpha$ and
# $\eta = \sigma/\alpha$ (the inverse square root of the SNR), DDIM's two lines become
# $\tilde x_s = \hat x + \eta_s\hat\epsilon$ and $\tilde x_t = \hat x + \eta_t\hat\epsilon$, so
# $$ \tilde x_s = \tilde x_t + (\eta_s - \eta_t)\,\hat\epsilon : $$
# an Euler step of $\mathrm d\tilde x/\mathrm d\eta = \hat\epsilon$, whatever the schedule. The schedule entered only
# through $\eta$ at the grid points. If $\hat\epsilon$ were constant along the path, this Euler step would be the
# exact integral: DDIM's only error is that the network output changes between grid points.
#
# $\eta$ is infinite at pure noise, so for whole trajectories we use a version that stays finite at both
# ends: divide by $\alpha + \sigma$ instead. With $\tau = \alpha/(\alpha+\sigma) = 1/(1+\eta)$ and
# $x^{\rm lin} = x/(\alpha+\sigma) = \tau \hat x + (1-\tau)\hat\epsilon$, **every schedule becomes the linear path in
# the time $\tau$**, and DDIM on any schedule is flow-matching Euler on the grid $\tau_i = \tau(t_i)$.
# By hand, for the diffusion network (cosine schedule, $v$ output), one step in the blog's variables, then the
# network rewritten as a velocity field of the linear path:

# %%
t_vec, s_vec = torch.full((2000,), 0.3, dtype=torch.float64), torch.full((2000,), 0.45, dtype=torch.float64)
c_t, c_s = cos(t_vec), cos(s_vec)
x = c_t.alpha[:, None] * target.sample(2000).double() + c_t.sigma[:, None] * noise
data_hat, noise_hat = to_data_and_noise(v64(x=x, t=t_vec), "v", x, c_t)
ddim_step = c_s.alpha[:, None] * data_hat + c_s.sigma[:, None] * noise_hat
eta_t, eta_s = c_t.sigma / c_t.alpha, c_s.sigma / c_s.alpha
x_tilde_s = (
    x / c_t.alpha[:, None] + (eta_s - eta_t)[:, None] * noise_hat
)  # Euler in (x / alpha, sigma / alpha)
print(
    f"one cosine step: max |DDIM / alpha_s - Euler in x/alpha| = {(ddim_step / c_s.alpha[:, None] - x_tilde_s).abs().max():.1e}"
)
assert torch.allclose(ddim_step / c_s.alpha[:, None], x_tilde_s, atol=1e-10)


def v_net_as_linear_velocity(x, t, cond=None):
    """The cosine v-network seen on the linear path: same SNR, x scaled by (alpha + sigma)."""
    t_cos = 2 / math.pi * torch.atan(t / (1 - t))  # tan(pi t_cos / 2) = alpha / sigma = t / (1 - t)
    c = cos(t_cos)
    k = (c.alpha + c.sigma)[:, None]  # x_cos = (alpha + sigma) x_lin
    data_hat, noise_hat = to_data_and_noise(v64(x=k * x, t=t_cos), "v", k * x, c)
    return data_hat - noise_hat  # the linear path's velocity


# %% [markdown]
# The library does the same for any pair of schedules with `lessons.conversions.change_schedule` (it finds the
# time of equal log-SNR with the source schedule's closed-form `time_at_log_snr` and rescales $x$). Both
# versions must agree, and then DDIM on the cosine grid must equal Euler on the linear path on the grid
# $\tau_i$, with the paths related by the factor $\alpha+\sigma$.

# %%
from lessons.conversions import change_schedule

v_as_velocity = change_schedule(v64, source=cos, target=lin, prediction="v", output="velocity")
probe_t = torch.rand(2000, dtype=torch.float64) * 0.98 + 0.01
print(
    f"hand-made vs library change of schedule: max diff = "
    f"{(v_net_as_linear_velocity(noise, probe_t) - v_as_velocity(x=noise, t=probe_t)).abs().max():.1e}"
)
assert torch.allclose(v_net_as_linear_velocity(noise, probe_t), v_as_velocity(x=noise, t=probe_t), atol=1e-9)

c_grid = cos(grid)
tau_grid = c_grid.alpha / (c_grid.alpha + c_grid.sigma)
ddim_cos = ddim(v64, noise, cos, grid, prediction="v")
euler_lin = solve_ode(v_as_velocity, noise, ts=tau_grid, method="euler")
scale = (c_grid.alpha + c_grid.sigma)[:, None, None]
gap_cos = (ddim_cos.xs - scale * euler_lin.xs).abs().max().item()
print(
    f"diffusion network, 50 cosine steps: max |DDIM path - (alpha + sigma) x Euler path| = {gap_cos:.1e}; "
    f"final samples differ by {(ddim_cos.final - euler_lin.final).abs().max():.1e}"
)

# %%
reference = target.sample(2000, generator=torch.Generator().manual_seed(7))
fig, axes = plt.subplots(1, 3, figsize=(17, 5))
axes[0].scatter(*reference.T, s=3, c="lightgray", label="target")
axes[0].scatter(
    *ddim_fm.final.T, s=14, facecolors="none", edgecolors="C0", lw=0.6, label="DDIM (velocity output)"
)
axes[0].scatter(*euler_fm.final.T, s=2, c="C3", label="flow Euler")
axes[0].set_title("FM network, 50 steps: DDIM and Euler samples coincide")
show = slice(0, 15)
for i in range(15):
    axes[1].plot(*ddim_cos.xs[:, i].T, c="C0", lw=1, label="DDIM on cosine, x_t" if i == 0 else None)
    axes[1].plot(
        *euler_lin.xs[:, i].T,
        c="C3",
        lw=1,
        ls="--",
        label="Euler on linear, x / (alpha + sigma)" if i == 0 else None,
    )
    axes[2].plot(
        *(ddim_cos.xs[:, i] / scale[:, 0]).T,
        c="C0",
        lw=3,
        alpha=0.4,
        label="DDIM path / (alpha + sigma)" if i == 0 else None,
    )
    axes[2].plot(*euler_lin.xs[:, i].T, c="C3", lw=1, label="Euler on linear" if i == 0 else None)
axes[1].scatter(*ddim_cos.final[show].T, c="k", s=12, zorder=3, label="same end points")
axes[1].set_title("diffusion network: two different-looking paths ...")
axes[2].set_title("... are one path after the change of variables")
for ax in axes:
    ax.set(xlabel="x[0]", ylabel="x[1]", aspect="equal")
    ax.legend(loc="lower left", fontsize=8, markerscale=2)
plt.tight_layout()
plt.show()


def rounding_tolerance(dtype, ops, size):
    """What float rounding alone can give: ops operations of relative error eps (of dtype) on numbers of this size."""
    return ops * torch.finfo(dtype).eps * size


# tolerance: 50 steps, each output a sum of 128 products (the network's width), on samples of size max |x|
steps, size = len(grid) - 1, ddim_fm.xs.abs().max().item()
tol64, tol32 = (rounding_tolerance(dtype, steps * 128, size) for dtype in (torch.float64, torch.float32))
rounding32 = (
    (ddim(fm_net, noise.float(), lin, grid.float(), prediction="velocity").final - ddim_fm.final).abs().max()
)
assert rounding32 < tol32  # the bound is a bound: one sampler in float32 vs float64 stays inside it
# two wrong pairs, measured the same way: DDIM told another schedule than the network's (cosine instead of
# linear), and Euler on the diffusion network's velocity on its own cosine schedule, without the change of variables
gap_wrong_schedule = (ddim(fm64, noise, cos, grid, prediction="velocity").xs - euler_fm.xs).abs().max().item()
euler_unrescaled = solve_ode(change_schedule(v64, cos, cos, "v", "velocity"), noise, ts=grid, method="euler")
gap_unrescaled = (ddim_cos.xs - euler_unrescaled.xs).abs().max().item()
print(
    f"FM network: DDIM vs Euler {gap_fm64:.1e} (float64) and {gap_fm32:.1e} (float32); "
    f"diffusion network through the change of variables: {gap_cos:.1e}"
)
print(
    f"rounding tolerance 50 x 128 x eps x {size:.1f}: {tol64:.1e} (float64), {tol32:.1e} (float32; "
    f"float32 vs float64 of one sampler: {rounding32:.1e})"
)
print(
    f"wrong pairs: DDIM on the cosine schedule vs Euler {gap_wrong_schedule:.2f}; "
    f"DDIM vs Euler on the unrescaled cosine velocity {gap_unrescaled:.2f}"
)
print(
    f"the samples are good ones: energy distance to the target {energy_distance(ddim_fm.final, reference.double()):.4f} (FM net), "
    f"{energy_distance(ddim_cos.final, reference.double()):.4f} (v net)"
)
# proves C20: DDIM and flow Euler give the same samples from the same network, to float rounding
prove("C20", gap_fm64, tol64, what="FM net: max |DDIM - Euler| over the path, float64")
prove("C20", gap_fm32, tol32, what="FM net: max |DDIM - Euler| on the samples, float32")
prove("C20", gap_cos, tol64, what="v net: DDIM on cosine vs Euler on linear after x/(alpha+sigma)")
# control for C20: the same check rejects DDIM on another schedule, and Euler without the change of variables
control("C20", gap_wrong_schedule, tol64, what="DDIM told the cosine schedule vs Euler, FM net")
control("C20", gap_unrescaled, tol64, what="Euler on the unrescaled cosine velocity vs DDIM, v net")

# %% [markdown]
# The tolerance is what rounding alone can give: 50 steps, each a sum of 128 products, with a relative error of
# float's $\epsilon$ ($10^{-16}$ in float64, $10^{-7}$ in float32) on numbers of size about 5. The float32 gap, a few
# $10^{-6}$, is of the size of one sampler's own float32 rounding; in float64 it falls below $10^{-14}$: the two samplers
# are the same computation. The same tolerance rejects both wrong pairs by many orders of magnitude: DDIM told
# another schedule than the network's, and Euler on the cosine network's velocity *without* the change of
# variables, which is a different (first-order) integrator of the same ODE.
#
# **DDIM integrates exactly where the output is constant.** For a one-point target (a Gaussian of std $10^{-6}$
# here) the ideal data estimate is the point itself at every $t$, so DDIM reaches it in **one** step on any schedule,
# while Euler on the cosine schedule's velocity field is far off with one step and still off with ten (that field
# is curved; on the linear path it would be exact, since there $\hat u$ is constant too). The ideal model of a
# mixture target, for any schedule and prediction type, is `lessons.mixture.ExactMixtureModel`; with
# `prediction="velocity"` it is the exact marginal field, a velocity field for solvers and for DDIM alike.

# %%
point = GaussianMixture([[2.0, 1.0]], 1e-6)
p_noise = noise[:200]
point_u = ExactMixtureModel(point, cos, prediction="velocity")
for steps in (1, 10):
    g = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    err_ddim = (ddim(point_u, p_noise, cos, g, prediction="velocity").final - point.means).norm(dim=1).max()
    err_euler = (solve_ode(point_u, p_noise, ts=g).final - point.means).norm(dim=1).max()
    print(
        f"{steps:2d} step(s) on the cosine schedule, one-point target: DDIM error {err_ddim:.1e}, Euler error {err_euler:.2f}"
    )

# %% [markdown]
# ## 2. DDIM is invariant to scaling; the flow Euler sampler is not (C21)
#
# Multiply both coefficients by a positive function: $\alpha'_t = c_t\alpha_t$, $\sigma'_t = c_t\sigma_t$. The log-SNR
# $\lambda_t$ is unchanged and $x'_t = c_t x_t$; an ideal model (or a network fed $x/c_t$) gives the same
# $(\hat x, \hat\epsilon)$. DDIM's step $x'_s = c_s(\alpha_s \hat x + \sigma_s\hat\epsilon)$ is the old step times $c_s$:
# the paths differ by the factor $c_t$, and where $c = 1$ (at $t = 1$) the samples are identical. In the blog's
# variables: $\tilde x = x'/\alpha'$ and $\eta = \sigma'/\alpha'$ do not see $c$ at all.
#
# The Euler step $x'_s = x'_t + (s-t)\,\hat u'$ uses the velocity $\hat u'(x') = \tfrac{\dot c}{c}\,x' + c\,\hat u(x'/c)$ at
# the left end only, and the $\dot c$ term changes what a finite step does: Euler's paths **and** samples change. Both ODEs
# describe the same flow, so the difference shrinks as the steps get smaller.
#
# We take $c_t = 1/\sqrt{\alpha_t^2+\sigma_t^2}$, which turns the flow-matching schedule into a variance-preserving
# schedule with the same $\lambda_t$ (the blog's "FM" vs "VP" comparison), `lessons.schedules.RescaledSchedule`.
# By hand first:

# %%
tt = torch.linspace(0, 1, 11, dtype=torch.float64)
norm = torch.sqrt(tt**2 + (1 - tt) ** 2)
vp_lin = RescaledSchedule(lin)  # default scale: c = 1 / sqrt(alpha^2 + sigma^2)
assert torch.allclose(vp_lin(tt).alpha, tt / norm) and torch.allclose(vp_lin(tt).sigma, (1 - tt) / norm)
assert torch.allclose(vp_lin.log_snr(tt[1:-1]), lin.log_snr(tt[1:-1]))
print(
    "c(t) at t = 0, 0.5, 1:",
    [round(v, 4) for v in (1 / norm[[0, 5, 10]]).tolist()],
    "; alpha^2 + sigma^2 of the rescaled schedule:",
    (vp_lin(tt).alpha ** 2 + vp_lin(tt).sigma ** 2).unique().tolist(),
)

# %%
step_counts = [2, 4, 8, 16, 32, 64, 128]
rows = []
u_fm, u_vp = (
    ExactMixtureModel(target, sched, prediction="velocity") for sched in (lin, vp_lin)
)  # the ideal models
for steps in step_counts:
    g = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    d_fm = ddim(u_fm, noise, lin, g, prediction="velocity")
    d_vp = ddim(u_vp, noise, vp_lin, g, prediction="velocity")
    e_fm = solve_ode(u_fm, noise, ts=g)
    e_vp = solve_ode(u_vp, noise, ts=g)
    rows.append(
        dict(
            steps=steps,
            ddim_final=(d_fm.final - d_vp.final).norm(dim=1).mean().item(),
            ddim_path=(d_fm.xs - d_vp.xs).norm(dim=2).max().item(),
            ddim_scaled=(d_vp.xs - d_fm.xs / torch.sqrt(g**2 + (1 - g) ** 2)[:, None, None])
            .abs()
            .max()
            .item(),
            euler_final=(e_fm.final - e_vp.final).norm(dim=1).mean().item(),
            euler_path=(e_fm.xs - e_vp.xs).norm(dim=2).max().item(),
        )
    )
    if steps == 8:
        paths8 = (d_fm, d_vp, e_fm, e_vp)
print(
    "steps | DDIM: mean |final FM - final VP|  max path gap  | Euler: mean |final FM - final VP|  max path gap"
)
for r in rows:
    print(
        f"{r['steps']:5d} |       {r['ddim_final']:.1e}              {r['ddim_path']:.2f}      |"
        f"        {r['euler_final']:.3f}                   {r['euler_path']:.2f}"
    )

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 5))
names = ("DDIM, FM schedule", "DDIM, VP-rescaled", "Euler, FM schedule", "Euler, VP-rescaled")
for ax, pair, title in (
    (axes[0], (0, 1), "DDIM, 8 steps: paths differ, samples identical"),
    (axes[1], (2, 3), "flow Euler, 8 steps: paths and samples differ"),
):
    ax.scatter(*reference.T, s=2, c="lightgray")
    for j, ls in zip(pair, ("-", "--")):
        for i in range(12):
            ax.plot(*paths8[j].xs[:, i].T, ls=ls, c=f"C{j}", lw=1.2, label=names[j] if i == 0 else None)
        ax.scatter(
            *paths8[j].final[:12].T,
            c=f"C{j}",
            s=40 if ls == "-" else 12,
            marker="o" if ls == "-" else "x",
            zorder=3,
        )
    ax.set(xlabel="x[0]", ylabel="x[1]", aspect="equal", title=title)
    ax.legend(loc="lower left", fontsize=8)
axes[2].loglog(step_counts, [max(r["ddim_final"], 1e-17) for r in rows], "o-", label="DDIM")
axes[2].loglog(step_counts, [r["euler_final"] for r in rows], "s-", label="flow Euler")
axes[2].loglog(
    step_counts, [rows[0]["euler_final"] * 2 / n for n in step_counts], "k:", label="slope -1 (first order)"
)
axes[2].set(
    xlabel="steps",
    ylabel="mean |sample(FM) - sample(VP-rescaled)|",
    title="the gap between the two schedules' samples",
)
axes[2].legend()
plt.tight_layout()
plt.show()

# tolerance: float64 rounding of the longest run (128 steps of about 100 operations each) on samples of size max |x|
tol_scale = rounding_tolerance(torch.float64, 128 * 100, paths8[0].xs.abs().max().item())
ddim_gap = max(max(r["ddim_final"], r["ddim_scaled"]) for r in rows)
euler_gap = min(r["euler_final"] for r in rows)
print(
    f"C21: DDIM samples equal to {ddim_gap:.0e} (rounding tolerance {tol_scale:.0e}); flow Euler samples differ by "
    f"{rows[0]['euler_final']:.3f} (2 steps) to {rows[-1]['euler_final']:.4f} (128 steps)"
)
# proves C21: DDIM's samples do not change under the rescaling (its path scales by c_t) ...
prove("C21", ddim_gap, tol_scale, what="DDIM: FM vs VP-rescaled samples (and path / c_t), 2 to 128 steps")
# control for C21: ... the same check on the flow Euler sampler rejects it
control("C21", euler_gap, tol_scale, what="flow Euler: FM vs VP-rescaled samples, 2 to 128 steps")
# proves C21: ... flow Euler's samples do change, beyond rounding, at every step count
prove("C21", euler_gap, tol_scale, sense=">=", what="flow Euler moves: smallest sample gap, 2 to 128 steps")
# control for C21: the same 'it moves' check on DDIM is rejected
control("C21", ddim_gap, tol_scale, sense=">=", what="DDIM does not move: largest sample gap")
for r in rows:
    assert r["ddim_path"] > 0.5 and r["euler_path"] > 0.5, r  # both samplers' paths are far apart
assert (
    rows[-1]["euler_final"] < rows[0]["euler_final"] / 30
)  # and Euler's gap is a discretisation error: it shrinks

# %% [markdown]
# ## 3. Straight to a point is not straight to a distribution
#
# "Flow matching paths are straight" is a statement about the **conditional** path: towards one data point,
# $x_t = t\,\text{data} + (1-t)\,\text{noise}$ is a straight line run at constant speed. If the model is sure
# which point it is heading to, the sampling path is that straight line and Euler makes no error. But the
# sampler follows the **marginal** field, an average over all points the noise could lead to.
#
# Measure it with Liu et al.'s straightness (`lessons.metrics.straightness`, lesson 05):
# $S = E\int_0^1 \|(x_1 - x_0) - \dot x_t\|^2\,\mathrm dt$, zero only for straight lines at constant speed. We
# integrate the *exact* marginal fields of Gaussian targets (midpoint rule, 200 steps) on the linear (FM) path and on
# the cosine (VP) path, for a **narrow** target (a point) and for **broad** ones. Note the extreme case
# data $\sim \mathcal N(0, I)$: on a variance-preserving path $x_t$ is $\mathcal N(0, I)$ at every $t$, the field is zero
# and nothing moves ($S = 0$), while the FM path first shrinks the cloud to variance $\tfrac12$ and then grows it back.

# %%
s_noise = noise[:1000]


def exact_path(mixture, schedule, steps=200):
    return solve_ode(
        ExactMixtureModel(mixture, schedule, "velocity"), s_noise, steps=steps, method="midpoint"
    )


targets = {
    "point (2, 1), std 1e-2": GaussianMixture([[2.0, 1.0]], 0.01),
    "N(0, I)": GaussianMixture([[0.0, 0.0]], 1.0),
    "the skewed mixture": target,
}
straight = {
    name: {
        sched_name: straightness(exact_path(mix, sched)) for sched_name, sched in (("FM", lin), ("VP", cos))
    }
    for name, mix in targets.items()
}
widths = [0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0]
sweep = {
    name: [straightness(exact_path(GaussianMixture([[0.0, 0.0]], w), sched)) for w in widths]
    for name, sched in (("FM (linear)", lin), ("VP (cosine)", cos))
}
for name, row in straight.items():
    print(f"{name:24s} straightness: FM {row['FM']:.4f}   VP {row['VP']:.4f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 5))
for ax, name in zip(axes[:2], ("point (2, 1), std 1e-2", "the skewed mixture")):
    for sched_name, sched, c in (("FM (linear)", lin, "C0"), ("VP (cosine)", cos, "C1")):
        tr = exact_path(targets[name], sched, steps=40)
        for i in range(12):
            ax.plot(
                *tr.xs[:, i].T,
                c=c,
                lw=1,
                label=f"{sched_name}: S = {straight[name][sched_name[:2]]:.3f}" if i == 0 else None,
            )
        ax.scatter(*tr.xs[0, :12].T, c="k", s=8)
    ax.set(xlabel="x[0]", ylabel="x[1]", aspect="equal", title=f"exact sampling paths to {name}")
    ax.legend(loc="lower left", fontsize=9)
for name, vals in sweep.items():
    axes[2].plot(widths, vals, "o-", label=name)
axes[2].set(
    xscale="log",
    xlabel="target width (std of N(0, w^2 I))",
    ylabel="straightness S (0 = straight)",
    title="narrow targets favour FM, broad ones VP",
)
axes[2].legend()
plt.tight_layout()
plt.show()

# the blog's claim, measured: straight to a point (FM), not straight to a distribution (VP can be straighter)
assert straight["point (2, 1), std 1e-2"]["FM"] < 0.02 * straight["point (2, 1), std 1e-2"]["VP"]
assert straight["N(0, I)"]["VP"] < 1e-6 and straight["N(0, I)"]["FM"] > 0.5
assert straight["the skewed mixture"]["VP"] < 0.7 * straight["the skewed mixture"]["FM"]
assert (
    sweep["FM (linear)"][0] < sweep["VP (cosine)"][0] and sweep["VP (cosine)"][-1] < sweep["FM (linear)"][-1]
)

# %% [markdown]
# FM is the straighter path for a point (0.008 vs 1.6) and for narrow targets; from a width of about 0.3 on, the
# VP path is straighter, and on our skewed mixture it is too. Which sampling schedule integrates best depends on
# the data; "flow matching is straight" is not a law. (Straightness also counts changes of *speed*, so it depends on
# the time parametrisation; the next exercise asks what a change of time does to it.)

# %% [markdown]
# ## 4. Network outputs convert exactly, and every loss is an $\epsilon$-MSE (C22)
#
# Given $x_t$, each output determines the pair $(\hat x, \hat\epsilon)$ through $x_t = \alpha \hat x + \sigma\hat\epsilon$:
#
# | output | target | recovers |
# |---|---|---|
# | $\hat\epsilon$ | noise | $\hat x = (x_t - \sigma\hat\epsilon)/\alpha$ |
# | $\hat x$ | data | $\hat\epsilon = (x_t - \alpha\hat x)/\sigma$ |
# | $\hat v$ | $\alpha\epsilon - \sigma x$ | $\hat x = (\alpha x_t - \sigma\hat v)/(\alpha^2+\sigma^2)$ |
# | $\hat u$ | $\dot\alpha x + \dot\sigma\epsilon$ | $\hat x = (\dot\sigma x_t - \sigma\hat u)/(\alpha\dot\sigma - \sigma\dot\alpha)$ |
# | score | $-\epsilon/\sigma$ | $\hat\epsilon = -\sigma\,\text{score}$ |
#
# **The losses.** With $x_t$ fixed, $\hat x - x = -\tfrac{\sigma}{\alpha}(\hat\epsilon - \epsilon)$: one error vector, seen
# through different linear maps. So every MSE is the $\epsilon$-MSE times a factor:
# $$ \|\hat x - x\|^2 = e^{-\lambda}\|\hat\epsilon-\epsilon\|^2,\quad
#    \|\hat v - v\|^2 = \alpha^2(e^{-\lambda}+1)^2\|\hat\epsilon-\epsilon\|^2,\quad
#    \|\hat u - u\|^2_{\rm linear} = (1+e^{-\lambda/2})^2\|\hat\epsilon-\epsilon\|^2 . $$
# With $t \sim p(t)$, substitute $\lambda = \lambda_t$: $E_t[\text{factor}\,\|\hat\epsilon-\epsilon\|^2] =
# \int w(\lambda)\,E\|\hat\epsilon-\epsilon\|^2\,\mathrm d\lambda$ with the **weighting**
# $$ w(\lambda_t) = \frac{p(t)\,\text{factor}(t)}{\mathrm d\lambda/\mathrm dt} \qquad \text{(Kingma \& Gao 2023).}$$
# Round trips first, on the diffusion network's outputs, through every pair of kinds:

# %%
g = torch.Generator().manual_seed(3)
t_probe = torch.rand(4000, generator=g, dtype=torch.float64) * 0.98 + 0.01
x_probe = (
    GaussianPath(cos)
    .sample(
        torch.randn(4000, 2, generator=g, dtype=torch.float64),
        target.sample(4000, generator=g).double(),
        t_probe,
    )
    .x_t
)
v_out, c_probe = v64(x=x_probe, t=t_probe), cos(t_probe)
pairs = list(itertools.permutations(PREDICTIONS, 2))


def round_trip_error(v_to):
    """max |v -> a -> b -> v - v| over every ordered pair (a, b) of kinds; v_to(v, a) is the first conversion."""
    return max(
        (convert(convert(v_to(v_out, a), a, b, x_probe, c_probe), b, "v", x_probe, c_probe) - v_out)
        .abs()
        .max()
        .item()
        for a, b in pairs
    )


round_trip = round_trip_error(lambda v, a: convert(v, "v", a, x_probe, c_probe))
# two deliberately wrong first conversions: alpha and sigma swapped, and v read with the opposite sign
swapped = ScheduleOutput(c_probe.sigma, c_probe.alpha, c_probe.d_sigma, c_probe.d_alpha)
round_trip_swapped = round_trip_error(lambda v, a: convert(v, "v", a, x_probe, swapped))
round_trip_sign = round_trip_error(lambda v, a: convert(-v, "v", a, x_probe, c_probe))
# tolerance: three conversions of ~30 operations on numbers of size max |x_t|, |v|, divided by alpha and by sigma
size_trip = (
    max(x_probe.abs().max().item(), v_out.abs().max().item()) / (c_probe.alpha * c_probe.sigma).min().item()
)
tol_trip = rounding_tolerance(torch.float64, 100, size_trip)
print(
    f"v -> a -> b -> v for all {len(pairs)} ordered pairs (a, b): max error {round_trip:.1e} "
    f"(rounding tolerance {tol_trip:.1e}); with alpha and sigma swapped {round_trip_swapped:.2f}, "
    f"with the sign of v flipped {round_trip_sign:.2f}"
)

# %% [markdown]
# Now the loss identity, per sample, for the flow-matching network: its velocity output, converted into each kind,
# errs against that kind's true target by exactly the factor times its $\epsilon$ error. The factor comes from
# `lessons.weighting.eps_mse_factor`; we check it against the closed forms above, too.
#
# Why the output matters even though the losses are interchangeable: the factors also say how an output's error is
# *amplified* when it is turned into another. At high noise ($\alpha \to 0$) an $\epsilon$-network's data estimate
# carries its error times $\sigma/\alpha$; at low noise an $x$-network's noise estimate carries $\alpha/\sigma$. The
# $v$ and $u$ outputs keep both bounded.

# %%
g = torch.Generator().manual_seed(4)
data_p, noise_p = (
    target.sample(4000, generator=g).double(),
    torch.randn(4000, 2, generator=g, dtype=torch.float64),
)
t_p = torch.rand(4000, generator=g, dtype=torch.float64) * 0.98 + 0.01
coef = lin(t_p)
x_p = GaussianPath(lin).sample(noise_p, data_p, t_p).x_t
u_out = fm64(x=x_p, t=t_p)
eps_hat = convert(u_out, "velocity", "eps", x_p, coef)
eps_err, eps_terms = ((eps_hat - noise_p) ** 2).sum(1), ((eps_hat.abs() + noise_p.abs()) ** 2).sum(1)


def loss_identity_gap(factor_of):
    """max over samples and kinds of | ||pred - target||^2 - factor ||eps_hat - eps||^2 |, relative to the terms' size."""
    worst = 0.0
    for kind in PREDICTIONS:
        pred, true = (
            convert(u_out, "velocity", kind, x_p, coef),
            from_data_and_noise(data_p, noise_p, kind, coef),
        )
        err, factor = ((pred - true) ** 2).sum(1), factor_of(kind)
        terms = ((pred.abs() + true.abs()) ** 2).sum(1) + factor * eps_terms
        worst = max(worst, ((err - factor * eps_err).abs() / terms).max().item())
    return worst


worst = loss_identity_gap(lambda kind: eps_mse_factor(kind, coef))
worst_wrong = loss_identity_gap(
    lambda kind: eps_mse_factor(kind, cos(t_p))
)  # the cosine factors: wrong schedule
tol_identity = rounding_tolerance(torch.float64, 100, 1 / (coef.alpha * coef.sigma).min().item())
lam_p = lin.log_snr(t_p)
closed = {
    "data": torch.exp(-lam_p),
    "v": coef.alpha**2 * (torch.exp(-lam_p) + 1) ** 2,
    "velocity": (1 + torch.exp(-lam_p / 2)) ** 2,
}
closed_gap = max(
    (eps_mse_factor(k, coef) - f).abs().max().item() / f.abs().max().item() for k, f in closed.items()
)
print(
    f"per-sample ||pred - target||^2 = factor x ||eps_hat - eps||^2 for every kind: max gap {worst:.1e} of the terms' size "
    f"(rounding tolerance {tol_identity:.1e}; with the cosine schedule's factors {worst_wrong:.1e}); "
    f"factors vs closed forms: {closed_gap:.1e}"
)

print("\nerror amplification |d x_hat / d output| and |d eps_hat / d output| on the cosine schedule")
probe = torch.tensor([0.02, 0.5, 0.98], dtype=torch.float64)
for kind in ("eps", "data", "v", "velocity"):
    amp = [
        [
            (
                to_data_and_noise(
                    torch.full((1, 1), 1.0, dtype=torch.float64),
                    kind,
                    torch.zeros(1, 1, dtype=torch.float64),
                    cos(probe[i : i + 1]),
                )[j]
            )
            .abs()
            .item()
            for i in range(3)
        ]
        for j in (0, 1)
    ]
    print(
        f"  {kind:8s} -> data: "
        + "  ".join(f"{a:6.2f}" for a in amp[0])
        + "   -> eps: "
        + "  ".join(f"{a:6.2f}" for a in amp[1])
        + "   (t = 0.02, 0.5, 0.98)"
    )

# %% [markdown]
# **The weightings, side by side.** `implied_weighting(kind, schedule, t, time_density)` computes $w(\lambda_t)$; we put
# the usual recipes on one axis of $\lambda$ (normalised to 1 at $\lambda = 0$):

# %%
lam_axis = torch.linspace(-12, 12, 241, dtype=torch.float64)
recipes = {
    "eps-MSE, cosine (iDDPM)": ("eps", cos, None),
    "eps-MSE, DDPM betas (VP)": ("eps", VPSchedule(), None),
    "x-MSE, cosine": ("data", cos, None),
    "v-MSE, cosine": ("v", cos, None),
    "flow matching (u-MSE, linear)": ("velocity", lin, None),
    "FM + logit-normal t (SD3)": ("velocity", lin, logit_normal_density),
}
weights = {}
for name, (kind, sched, density) in recipes.items():
    t_of_lam = sched.time_at_log_snr(lam_axis)
    ends = sched.log_snr(torch.tensor([0.0, 1.0], dtype=torch.float64))
    inside = (lam_axis > ends[0]) & (lam_axis < ends[1])  # DDPM's VP schedule does not reach lambda = -12
    w = implied_weighting(kind, sched, t_of_lam[inside], density)
    w0 = implied_weighting(kind, sched, sched.time_at_log_snr(torch.zeros(1, dtype=torch.float64)), density)
    weights[name] = (lam_axis[inside], w, w / w0)

fig, ax = plt.subplots(figsize=(9, 5))
for name, (lam, _, w_norm) in weights.items():
    dashed = "v-MSE" in name  # drawn on top of flow matching's curve, which it covers exactly
    ax.semilogy(
        lam,
        w_norm,
        lw=2 if dashed or "flow" in name else 1.3,
        ls="--" if dashed else "-",
        zorder=3 if dashed else 2,
        label=name,
    )
ax.set(
    xlabel=r"log-SNR $\lambda$ (noise $\leftarrow$ $\rightarrow$ data)",
    ylabel=r"$w(\lambda) / w(0)$",
    title="every loss is an eps-MSE weighted in log-SNR",
    ylim=(1e-4, 1e3),
)
ax.legend(fontsize=9)
plt.show()

# proves C22: exact conversions, and each loss is an eps-MSE times a factor, i.e. a weighting in log-SNR
lam_fm, w_fm, _ = weights["flow matching (u-MSE, linear)"]
lam_x, w_x, _ = weights["x-MSE, cosine"]
lam_e, w_e, _ = weights["eps-MSE, cosine (iDDPM)"]
print(
    f"round trips {round_trip:.1e}; per-sample loss identity {worst:.1e}; "
    f"x-MSE weight / eps-MSE weight = e^-lambda to {(w_x / w_e / torch.exp(-lam_x) - 1).abs().max():.1e}"
)
prove("C22", round_trip, tol_trip, what="v -> a -> b -> v round trips, all 20 ordered pairs")
prove("C22", worst, tol_identity, what="per-sample kind-MSE = factor x eps-MSE, all kinds")
# control for C22: a conversion with alpha and sigma swapped, or v's sign flipped, fails the round trip; the
# factors of another schedule fail the loss identity
control("C22", round_trip_swapped, tol_trip, what="round trip, first conversion with alpha and sigma swapped")
control("C22", round_trip_sign, tol_trip, what="round trip, first conversion with the sign of v flipped")
control("C22", worst_wrong, tol_identity, what="loss identity with the cosine schedule's factors")
assert closed_gap < 1e-12
assert torch.allclose(w_fm, fm_weighting(lam_fm), rtol=1e-9)  # FM: w = e^(-lambda/2) / 2
assert torch.allclose(w_x / w_e, torch.exp(-lam_x), rtol=1e-9)  # x-MSE = e^-lambda times eps-MSE

# %% [markdown]
# ## 5. Flow matching's weighting is the $v$-MSE weighting of the cosine schedule (C23)
#
# On the linear path $\lambda = 2\log\frac{t}{1-t}$, so $\mathrm d\lambda/\mathrm dt = \frac{2}{t(1-t)}$ and
# $(1 + e^{-\lambda/2})^2 = 1/t^2$: $\;w_{\rm FM}(\lambda) = \frac{1}{t^2}\cdot\frac{t(1-t)}{2} = \tfrac12 e^{-\lambda/2}$.
# On the cosine path (Nichol & Dhariwal's schedule with offset $s = 0$) $\lambda = 2\log\tan\frac{\pi t}{2}$, $\mathrm d\lambda/\mathrm dt = \frac{\pi}{\sin\cos}$ and the
# $v$ factor is $1/\alpha^2 = 1/\sin^2$: $\;w_{v,\cos}(\lambda) = \frac{\cos}{\pi \sin} = \tfrac1\pi e^{-\lambda/2}$.
# **The same function up to the constant $\pi/2$**, which a learning rate absorbs. The diffusion network and the
# flow-matching network of section 0 were trained on the same objective.

# %%
lam_axis = torch.linspace(-10, 10, 201, dtype=torch.float64)
w_fm = implied_weighting("velocity", lin, lin.time_at_log_snr(lam_axis))
w_v = implied_weighting("v", cos, cos.time_at_log_snr(lam_axis))
w_eps = implied_weighting("eps", cos, cos.time_at_log_snr(lam_axis))
ratio, ratio_eps = w_fm / w_v, w_fm / w_eps

fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
axes[0].semilogy(lam_axis, w_fm, lw=3, alpha=0.5, label="flow matching (linear)")
axes[0].semilogy(lam_axis, w_v * math.pi / 2, "k--", label=r"v-MSE (cosine) $\times \pi/2$")
axes[0].semilogy(lam_axis, w_eps, label="eps-MSE (cosine), for contrast")
axes[0].set(xlabel=r"$\lambda$", ylabel=r"$w(\lambda)$", title="the two weightings overlap")
axes[1].plot(lam_axis, ratio, label="w_FM / w_v,cos")
axes[1].plot(lam_axis, ratio_eps, label="w_FM / w_eps,cos")
axes[1].axhline(math.pi / 2, c="k", ls=":", label=r"$\pi / 2$")
axes[1].set(xlabel=r"$\lambda$", ylabel="ratio", yscale="log", title="constant ratio = same weighting")
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()

# the constancy check: spread = max / min - 1 of the ratio over lambda in [-10, 10]; its tolerance is rounding:
# ~100 operations, with t near an end (t or 1 - t as small as 0.007) known to a relative eps / (t (1 - t))
spread, spread_eps = ((r.max() / r.min() - 1).item() for r in (ratio, ratio_eps))
t_lam = lin.time_at_log_snr(lam_axis)
tol_spread = rounding_tolerance(torch.float64, 100, 1 / (t_lam * (1 - t_lam)).min().item())
print(
    f"ratio w_FM / w_v,cos in [{ratio.min():.12f}, {ratio.max():.12f}] (pi/2 = {math.pi / 2:.12f}), spread {spread:.1e} "
    f"(rounding tolerance {tol_spread:.1e}); for eps-MSE it ranges over [{ratio_eps.min():.3g}, {ratio_eps.max():.3g}]"
)
# proves C23: w_FM(lambda) / w_v,cos(lambda) is a constant for every lambda, and that constant is pi / 2
prove("C23", spread, tol_spread, what="spread of w_FM / w_v,cos over lambda in [-10, 10]")
assert abs(ratio.mean().item() - math.pi / 2) < tol_spread
# control for C23: the same constancy check rejects the eps-MSE weighting of the same schedule
control("C23", spread_eps, tol_spread, what="spread of w_FM / w_eps,cos (eps-MSE on cosine)")

# %% [markdown]
# ## 6. The training schedule matters only through its end points (C24)
#
# Training draws $t \sim \mathcal U[0,1]$ and weights the $\epsilon$-MSE by $w(\lambda_t)\,\mathrm d\lambda/\mathrm dt$
# (`lessons.weighting.weighted_eps_loss`). Change variables from $t$ to $\lambda$:
# $$ \mathcal L = E_t\Big[w(\lambda_t)\frac{\mathrm d\lambda}{\mathrm dt}\,E\|\hat\epsilon - \epsilon\|^2\Big]
#    = \int_{\lambda_{\min}}^{\lambda_{\max}} w(\lambda)\,E\|\hat\epsilon - \epsilon\|^2\,\mathrm d\lambda . $$
# For a model that sees $x_t$ only through $(x_t/\text{scale}, \lambda)$, as the ideal model or any network used
# through `change_schedule`, the inner expectation is a function of $\lambda$ alone: the schedule $t \mapsto \lambda_t$
# drops out except for its **end points** $\lambda_{\min}, \lambda_{\max}$. We fix the flow-matching weighting
# $w = \tfrac12 e^{-\lambda/2}$ and estimate $\mathcal L$ by Monte Carlo on five schedules: linear, cosine and the
# VP-rescaled linear (all from $\lambda = -\infty$ to $+\infty$), and linear and cosine *truncated* to start at
# $\lambda_{\min} = -4$ (`TruncatedSchedule`). On the linear schedule the estimator is exactly the CFM loss; on the
# cosine one it is $\tfrac\pi2\times$ the $v$-MSE.

# %%
lam_min = torch.tensor([-4.0], dtype=torch.float64)
train_schedules = {
    "linear": lin,
    "cosine": cos,
    "VP-rescaled linear": vp_lin,
    "linear, from lambda=-4": TruncatedSchedule(lin, lin.time_at_log_snr(lam_min).item(), 1.0),
    "cosine, from lambda=-4": TruncatedSchedule(cos, cos.time_at_log_snr(lam_min).item(), 1.0),
}
n_mc = by_budget(fast=100_000, full=400_000)
MC_CHUNK = 50_000  # samples per evaluation: the float64 network on all 400,000 at once would hold over 1 GB
estimates = {}
for model_name in ("ideal model", "diffusion network"):
    for i, (name, sched) in enumerate(train_schedules.items()):
        g = torch.Generator().manual_seed(100 + i)
        data_mc = target.sample(n_mc, generator=g).double()
        t_mc, noise_mc = (
            torch.rand(n_mc, generator=g, dtype=torch.float64),
            torch.randn(n_mc, 2, generator=g, dtype=torch.float64),
        )
        eps_model = (
            ExactMixtureModel(target, sched)
            if model_name == "ideal model"
            else change_schedule(v64, cos, sched, "v", "eps")
        )
        with torch.no_grad():  # per-sample losses: chunking changes nothing but the memory
            per_sample = torch.cat(
                [
                    weighted_eps_loss(eps_model, sched, fm_weighting, d, t=tt, noise=z)
                    for d, tt, z in zip(
                        data_mc.split(MC_CHUNK), t_mc.split(MC_CHUNK), noise_mc.split(MC_CHUNK)
                    )
                ]
            )
        estimates[model_name, name] = (per_sample.mean().item(), per_sample.std().item() / n_mc**0.5)
for (model_name, name), (mean, se) in estimates.items():
    print(f"{model_name:18s} {name:24s} L = {mean:.4f} +- {se:.4f} (1 s.e.)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(15, 4.5), sharey=True)
for ax, model_name in zip(axes, ("ideal model", "diffusion network")):
    names = list(train_schedules)
    means = [estimates[model_name, n][0] for n in names]
    errs = [2 * estimates[model_name, n][1] for n in names]
    ax.bar(range(len(names)), means, yerr=errs, capsize=6, color=["C0", "C0", "C0", "C1", "C1"])
    ax.set_xticks(range(len(names)), [n.replace(", ", ",\n") for n in names], fontsize=8)
    ax.set(
        ylabel="expected loss (FM weighting), +- 2 s.e.", title=f"{model_name}: same end points, same loss"
    )
plt.tight_layout()
plt.show()


# the check: two independent Monte Carlo estimates agree if they differ by at most 4 standard errors
def z_score(model_name, a, b):
    (ma, sa), (mb, sb) = estimates[model_name, a], estimates[model_name, b]
    return abs(ma - mb) / math.hypot(sa, sb)


for model_name in ("ideal model", "diffusion network"):
    same = [
        z_score(model_name, "linear", "cosine"),
        z_score(model_name, "linear", "VP-rescaled linear"),
        z_score(model_name, "linear, from lambda=-4", "cosine, from lambda=-4"),
    ]
    other = z_score(model_name, "linear", "linear, from lambda=-4")
    print(
        f"{model_name}: same end points differ by {', '.join(f'{z:.2f}' for z in same)} s.e.; other end points by {other:.0f} s.e."
    )
    # proves C24: same end points -> the same expected loss, within 4 standard errors (three pairs of schedules)
    prove("C24", max(same), 4, what=f"{model_name}: largest z between schedules with the same end points")
    # control for C24: the same check rejects schedules with other end points (lambda_min = -4 instead of -inf)
    control("C24", other, 4, what=f"{model_name}: z between linear and linear from lambda=-4")

# %% [markdown]
# The schedule still matters for training, just not for *what* is optimised: the per-sample spread (the printed
# standard errors) depends on the schedule, and a schedule that lowers the variance of the estimator trains
# faster. For *sampling*, on the other hand, the schedule sets the discretisation error (sections 1 to 3); the two
# choices are independent, as the diffusion network shows: trained on cosine, sampled on the linear path.

# %% [markdown]
# ## 7. The SDE description and the flow description convert into each other (C25)
#
# **Diffusion side.** Noising is an SDE, in the course's time (running backwards, from $t=1$ to $0$):
# $\mathrm dx = f_t x\,\mathrm dt + g_t\,\mathrm dW$. Generation runs forwards with a family of samplers
# $$ \mathrm dx = \Big(f_t x + \tfrac{1+\eta_t^2}{2} g_t^2 \nabla\log p_t(x)\Big)\mathrm dt + \eta_t g_t\,\mathrm dW , $$
# $\eta = 0$ the probability-flow ODE (DDIM), $\eta = 1$ the reverse SDE (DDPM) (`lessons.sde`, lesson 02).
#
# **Flow side.** $\mathrm dx = u_t(x)\,\mathrm dt$ with $u_t = E[\dot\alpha\,\text{data} + \dot\sigma\,\text{noise} \mid x_t]$, and
# its stochastic versions $\mathrm dx = \big(u_t + \tfrac12\varepsilon_t^2\nabla\log p_t\big)\mathrm dt + \varepsilon_t\,\mathrm dW$
# (the extra drift cancels the spreading of the noise in the Fokker–Planck equation, so the marginals stay $p_t$).
#
# **The dictionary.** $x_t = \alpha_t\,\text{data} + \sigma_t\,\text{noise}$ solves the noising SDE iff
# $$ f_t = \frac{\mathrm d\log\alpha_t}{\mathrm dt},\qquad g_t^2 = 2\sigma_t^2 f_t - 2\sigma_t\dot\sigma_t
#    = -2\alpha_t\sigma_t\frac{\mathrm d}{\mathrm dt}\frac{\sigma_t}{\alpha_t},\qquad \varepsilon_t = \eta_t g_t , $$
# (`lessons.sde.sde_coefficients`), and back, integrating from the data end $\alpha_1 = 1$, $\sigma_1 = 0$:
# $$ \alpha_t = \exp\Big(-\!\int_t^1 f\Big),\qquad \sigma_t^2 = \alpha_t^2\int_t^1 \frac{g_r^2}{\alpha_r^2}\,\mathrm dr $$
# (`lessons.sde.SDESchedule`). With these, $u_t = f_t x + \tfrac12 g_t^2\nabla\log p_t$: the flow's
# drift *is* the probability-flow drift. We check the dictionary on DDPM's SDE, $\beta$ linear in diffusion time,
# where $f = \beta/2$ and $g^2 = \beta$ are known in closed form.

# %%
vp = VPSchedule(beta_min=0.1, beta_max=20.0)
t_chk = torch.linspace(0, 0.99, 100, dtype=torch.float64)
k = sde_coefficients(vp, t_chk)  # flow -> SDE
flow_to_sde = max(
    (k.f - 0.5 * vp.beta(t_chk)).abs().max().item(), (k.g**2 - vp.beta(t_chk)).abs().max().item()
)
tol_flow_to_sde = rounding_tolerance(
    torch.float64, 100, vp.beta_max
)  # closed forms: rounding on numbers ~ beta


def table_gap(a, b, ts):
    """max of |alpha_a - alpha_b| and |sigma_a - sigma_b| over the times ts."""
    ca, cb = a(ts), b(ts)
    return max((ca.alpha - cb.alpha).abs().max().item(), (ca.sigma - cb.sigma).abs().max().item())


def vp_sde(t, g_scale=1.0):
    """DDPM's noising SDE in the course's time: f = beta / 2, g = sqrt(beta) (times g_scale), each (B,)."""
    return SDECoefficients(f=0.5 * vp.beta(t), g=g_scale * vp.beta(t).sqrt())


vp_from_sde = SDESchedule(vp_sde)  # SDE -> flow, trapezoid rule on 20001 points
sde_to_flow = table_gap(vp_from_sde, vp, t_chk)
vp_wrong_g = SDESchedule(lambda t: vp_sde(t, g_scale=1.2))  # a wrong conversion: g too large by 20%
sde_to_flow_wrong = table_gap(vp_wrong_g, vp, t_chk)


def cos_sde(t):
    """The cosine path's (f, g), each (B,), from the dictionary."""
    return sde_coefficients(cos, t)


cos_back = SDESchedule(cos_sde, t_min=1e-3)  # cosine -> (f, g) -> back
t_far = torch.linspace(0.05, 1, 96, dtype=torch.float64)
cos_round = table_gap(cos_back, cos, t_far)
# tolerance: the trapezoid rule's error is O(h^2), so the 20001-point table errs by about a third of what changes
# when the table is halved to 10001 points; that change is the tolerance
tol_vp_table = table_gap(vp_from_sde, SDESchedule(vp_sde, points=10001), t_chk)
tol_cos_table = table_gap(cos_back, SDESchedule(cos_sde, t_min=1e-3, points=10001), t_far)
print(
    f"VP: (alpha, sigma) -> (f, g) vs beta/2, sqrt(beta): {flow_to_sde:.1e} (rounding tolerance {tol_flow_to_sde:.0e});  "
    f"(f, g) -> (alpha, sigma): {sde_to_flow:.1e} (table-halving tolerance {tol_vp_table:.1e}; with g x 1.2: {sde_to_flow_wrong:.2f})"
)
print(
    f"cosine -> (f, g) -> (alpha, sigma) round trip (trapezoid rule on 20001 points): {cos_round:.1e} "
    f"(table-halving tolerance {tol_cos_table:.1e})"
)

# the flow drift u + eps^2/2 score (eps = g) equals the diffusion drift f x + g^2 score
x_chk = torch.randn(500, 2, dtype=torch.float64) * 2
t_c = torch.rand(500, dtype=torch.float64) * 0.9 + 0.05
kk, score = sde_coefficients(vp, t_c), target.score(x_chk, vp(t_c).alpha, vp(t_c).sigma)
flow_drift = ExactMixtureModel(target, vp, "velocity")(x_chk, t_c) + 0.5 * (kk.g**2)[:, None] * score
sde_drift = kk.f[:, None] * x_chk + (kk.g**2)[:, None] * score
print(
    f"flow-side drift vs SDE-side drift: max relative gap {((flow_drift - sde_drift).abs() / (1 + sde_drift.abs())).max():.1e}"
)

# %% [markdown]
# **Same marginals from both descriptions.** Run the reverse SDE built from $(f, g)$ *alone* (the schedule
# recovered by `SDESchedule`, the ideal score of the mixture) and the flow's ODE Euler sampler built from
# $(\alpha, \sigma)$ alone, from the same starting points (the exact $t = 0$ marginal of DDPM's VP path, which is
# almost but not quite pure noise). Compare their clouds at $t = 0.5$ and $t = 1$ with fresh exact samples of $p_t$,
# by energy distance; the yardstick is the spread of the energy distance between two exact sample sets of the same
# size (20 pairs, `lessons.evaluation.data_band`: a sampler passes if it is within 4 standard deviations of their mean). As
# checks that the test can fail, two wrong SDEs are measured too: one that forgets the extra $\tfrac12 g^2\nabla\log p$ in
# the drift (keeping the noise), and the SDE of a wrong conversion, $g$ scaled by 1.2, run with its own recovered
# schedule and ideal score. The second still ends on the data at $t = 1$ (every such SDE ends where $\sigma = 0$), so
# it is caught in the middle of the path: the check takes the worse of $t = 0.5$ and $t = 1$.

# %%
n_sde, sde_steps = 2000, by_budget(fast=300, full=1000)
g = torch.Generator().manual_seed(11)
c0 = vp(torch.zeros(n_sde, dtype=torch.float64))
start_x = target.sample_noised(n_sde, c0.alpha, c0.sigma, generator=g, dtype=torch.float64)  # the exact p_0
ts_sde = torch.linspace(0, 1, sde_steps + 1, dtype=torch.float64)
sde_run = reverse_sde(
    ExactMixtureModel(target, vp_from_sde),
    start_x,
    vp_from_sde,
    ts_sde,
    generator=torch.Generator().manual_seed(12),
)
ode_run = solve_ode(ExactMixtureModel(target, vp, "velocity"), start_x, ts=ts_sde, method="euler")
wrong_g_run = reverse_sde(  # the SDE of the wrong conversion, with its own schedule and ideal score
    ExactMixtureModel(target, vp_wrong_g),
    start_x,
    vp_wrong_g,
    ts_sde,
    generator=torch.Generator().manual_seed(12),
)

wrong, x_w, gw = [start_x], start_x, torch.Generator().manual_seed(13)
for t0, t1 in zip(ts_sde[:-1].tolist(), ts_sde[1:].tolist()):  # Euler-Maruyama with half the score term
    tv = torch.full((n_sde,), t0, dtype=torch.float64)
    kk = sde_coefficients(vp, tv)
    drift = ExactMixtureModel(target, vp, "velocity")(
        x_w, tv
    )  # = f x + g^2/2 score: the extra g^2/2 score is missing
    x_w = (
        x_w
        + (t1 - t0) * drift
        + kk.g[:, None] * (t1 - t0) ** 0.5 * torch.randn(n_sde, 2, generator=gw, dtype=torch.float64)
    )
    wrong.append(x_w)


def exact_marginal(t, n, seed):
    c = vp(torch.tensor([t], dtype=torch.float64))
    return target.sample_noised(
        n, c.alpha, c.sigma, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


marg = {}
for t_show in (0.5, 1.0):
    i = int(round(t_show * sde_steps))
    ref = exact_marginal(t_show, n_sde, 20)
    null = data_band(
        energy_distance, lambda seed, t=t_show: exact_marginal(t, n_sde, seed), repeats=20, first_seed=30
    )
    marg[t_show] = dict(
        sde=energy_distance(sde_run.xs[i], ref),
        ode=energy_distance(ode_run.xs[i], ref),
        wrong=energy_distance(wrong[i], ref),
        wrong_g=energy_distance(wrong_g_run.xs[i], ref),
        tol=(null.mean() + 4 * null.std()).item(),
        i=i,
        ref=ref,
    )
    print(
        f"t = {t_show}: energy distance to exact p_t: reverse SDE {marg[t_show]['sde']:.4f}, flow ODE {marg[t_show]['ode']:.4f}, "
        f"wrong SDE {marg[t_show]['wrong']:.4f}, g x 1.2 {marg[t_show]['wrong_g']:.4f}; "
        f"exact vs exact: {null.mean():.4f} +- {null.std():.4f} (20 pairs), "
        f"tolerance mean + 4 std = {marg[t_show]['tol']:.4f}"
    )
path_gap = (sde_run.final - ode_run.final).norm(dim=1).mean().item()
print(f"same start, different paths: mean |SDE sample - ODE sample| = {path_gap:.2f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 5))
for ax, t_show in zip(axes[:2], (0.5, 1.0)):
    i = marg[t_show]["i"]
    ax.scatter(*marg[t_show]["ref"].T, s=3, c="lightgray", label="exact p_t")
    ax.scatter(*sde_run.xs[i].T, s=3, alpha=0.5, label="reverse SDE from (f, g)")
    ax.scatter(*ode_run.xs[i].T, s=3, alpha=0.5, label="flow ODE from (alpha, sigma)")
    ax.set(xlabel="x[0]", ylabel="x[1]", aspect="equal", title=f"t = {t_show}: the same marginal")
    ax.legend(markerscale=4, fontsize=8, loc="lower left")
for i in range(6):
    axes[2].plot(*sde_run.xs[:, i].T, c="C0", lw=0.6, label="reverse SDE" if i == 0 else None)
    axes[2].plot(*ode_run.xs[:, i].T, c="C1", lw=1.5, label="flow ODE" if i == 0 else None)
axes[2].set(xlabel="x[0]", ylabel="x[1]", aspect="equal", title="same start, different paths")
axes[2].legend()
plt.tight_layout()
plt.show()

# proves C25: (f, g) <-> (alpha, sigma) convert, and the SDE and flow samplers share their marginals
prove("C25", flow_to_sde, tol_flow_to_sde, what="VP (alpha, sigma) -> (f, g) vs beta/2, sqrt(beta)")
prove("C25", sde_to_flow, tol_vp_table, what="VP (f, g) -> (alpha, sigma), trapezoid table vs closed form")
prove("C25", cos_round, tol_cos_table, what="cosine -> (f, g) -> (alpha, sigma) round trip")
# control for C25: a wrong conversion (g scaled by 1.2) fails the same table check
control("C25", sde_to_flow_wrong, tol_vp_table, what="(f, 1.2 g) -> (alpha, sigma) vs the VP closed form")
# the marginals check: energy distance to exact p_t within the exact-vs-exact tolerance at t = 0.5 and t = 1
worst_ratio = {
    key: max(m[key] / m["tol"] for m in marg.values()) for key in ("sde", "ode", "wrong_g", "wrong")
}
prove(
    "C25",
    worst_ratio["sde"],
    1,
    what="reverse SDE from (f, g): energy distance / tolerance, worst of t = 0.5, 1",
)
prove("C25", worst_ratio["ode"], 1, what="flow ODE from (alpha, sigma): energy distance / tolerance, worst t")
# control for C25: the same marginals check rejects the SDE of the wrong conversion and an SDE with a wrong drift
control(
    "C25", worst_ratio["wrong_g"], 1, what="reverse SDE from (f, 1.2 g): energy distance / tolerance, worst t"
)
control("C25", worst_ratio["wrong"], 1, what="SDE missing the extra g^2/2 score drift: same ratio, worst t")
assert path_gap > 0.5  # same marginals, different paths

# %% [markdown]
# ## 8. Logit-normal time sampling (C26)
#
# Stable Diffusion 3 trains flow matching with $t$ drawn from a **logit-normal** law, $t = \mathrm{sigmoid}(m + s z)$,
# $z \sim \mathcal N(0,1)$, $m = 0$, $s = 1$ (`lessons.weighting.logit_normal_times`; SD3 writes time the other way,
# so its $m$ is our $-m$). Drawing $t$ from $p(t)$ multiplies the weighting by $p(t)$: it *is* a change of the loss,
# $w(\lambda) = \tfrac12 e^{-\lambda/2} p(t_\lambda)$, peaked at moderate noise levels (the 'FM + logit-normal' curve of section 4).
# Where does training effort go? First the share of training times in each tenth of $[0, 1]$, then two networks
# trained identically except for the time sampler, compared time by time on the excess loss
# $E\|\hat u(x_t, t) - u_t(x_t)\|^2$ (the CFM loss minus its irreducible part, measured with the exact marginal field),
# at ten checkpoints along training.

# %%
edges = torch.linspace(0, 1, 11, dtype=torch.float64)
share_exact = torch.tensor(
    [
        integrate.quad(lambda u: logit_normal_density(torch.tensor([u], dtype=torch.float64)).item(), a, b)[0]
        for a, b in zip(edges[:-1].tolist(), edges[1:].tolist())
    ]
)
draws = logit_normal_times(200_000, generator=torch.Generator().manual_seed(5)).double()
share_drawn = torch.bincount(torch.bucketize(draws, edges[1:-1]), minlength=10) / draws.numel()
print("share of training times per tenth of [0, 1]:")
print("  uniform      " + " ".join(f"{0.1:.3f}" for _ in range(10)))
print("  logit-normal " + " ".join(f"{v:.3f}" for v in share_drawn.tolist()) + "  (drawn)")
print("               " + " ".join(f"{v:.3f}" for v in share_exact.tolist()) + "  (integral of the density)")

gen = torch.Generator().manual_seed(9)  # fixed probe points x_t of the linear path, with their exact field
probe_t = torch.rand(20_000, generator=gen) * 0.999  # the exact field needs sigma > 0
probe_x = (
    GaussianPath(lin)
    .sample(torch.randn(20_000, 2, generator=gen), target.sample(20_000, generator=gen), probe_t)
    .x_t
)
probe_u = ExactMixtureModel(target, lin, "velocity")(probe_x, probe_t)
probe_bin = torch.bucketize(probe_t, edges[1:-1].float())


def excess_loss_per_time(model):
    """Mean of || u_hat - u_exact ||^2 over each tenth of t, (10,), on the probe points."""
    with torch.no_grad():
        err = ((model(x=probe_x, t=probe_t) - probe_u) ** 2).sum(1)
    return torch.stack([err[probe_bin == b].mean() for b in range(10)])


curves, start = {}, time.process_time()
time_samplers = (
    ("uniform", 0, lambda b: torch.rand(b)),
    ("logit-normal", 0, lambda b: logit_normal_times(b)),
    ("uniform, seed 1", 1, lambda b: torch.rand(b)),  # the control: the same recipe, another seed
)
for name, seed, draw_t in time_samplers:
    history = []  # the loss per time at 10 checkpoints along training
    train(
        MLP(hidden=128, depth=3),
        lambda m, b: cfm_loss(m, GaussianPath(lin), b, t=draw_t(b.shape[0])),
        lambda: target.sample(256),
        steps=train_steps,
        lr=5e-4,
        seed=seed,
        device="cpu",
        callback=lambda step, m, losses: history.append(excess_loss_per_time(m)),
        callback_every=train_steps // 10,
    )
    curves[name] = torch.stack(history)  # (checkpoints, 10 tenths of t)
print(
    f"trained two networks identical but for the time sampler, and a second uniform one with another seed, "
    f"in {time.process_time() - start:.1f} s of CPU"
)
mid = ((edges[:-1] + edges[1:]) / 2).numpy()

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
axes[0].bar(mid - 0.02, [0.1] * 10, width=0.04, label="uniform")
axes[0].bar(mid + 0.02, share_drawn, width=0.04, label="logit-normal(0, 1)")
axes[0].set(xlabel="t", ylabel="share of training times", title="where the training samples go")
lam_w, _, w_sd3 = weights["FM + logit-normal t (SD3)"]
lam_f, _, w_plain = weights["flow matching (u-MSE, linear)"]
axes[1].semilogy(lam_f, w_plain, label="flow matching, uniform t")
axes[1].semilogy(lam_w, w_sd3, label="flow matching, logit-normal t (SD3)")
axes[1].set(
    xlabel=r"$\lambda$", ylabel=r"$w(\lambda)/w(0)$", title="the weighting it implies", ylim=(1e-4, 1e3)
)
for (name, curve), c in zip(curves.items(), ("C0", "C1")):
    axes[2].semilogy(mid, curve.mean(0), "o-", c=c, label=f"{name} t: averaged over training")
    axes[2].semilogy(mid, curve[-1], ":", c=c, label=f"{name} t: at the end")
axes[2].set(xlabel="t (bin centre)", ylabel="excess loss E|u_hat - u|^2", title="the loss per time")
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()


def time_effect(a, b):
    """Excess loss of run a over run b: (mean ratio in the middle, t in [0.4, 0.7], averaged over training;
    smallest ratio at the two end tenths, averaged over training or at its end), plus the two ratio curves."""
    avg, end = curves[a].mean(0) / curves[b].mean(0), curves[a][-1] / curves[b][-1]
    return avg[4:7].mean().item(), min(avg[0], avg[-1], end[0], end[-1]).item(), avg, end


middle, ends, ratio_avg, ratio_end = time_effect("logit-normal", "uniform")
middle_ctrl, ends_ctrl, ratio_ctrl, _ = time_effect("uniform, seed 1", "uniform")
print(
    "excess loss, logit-normal / uniform, per tenth of t, averaged over training: "
    + " ".join(f"{r:.2f}" for r in ratio_avg.tolist())
)
print(
    "                                                    at the end of training: "
    + " ".join(f"{r:.2f}" for r in ratio_end.tolist())
)
print(
    "the control, uniform seed 1 / uniform seed 0, averaged over training:       "
    + " ".join(f"{r:.2f}" for r in ratio_ctrl.tolist())
)
print(
    f"middle ratio {middle:.2f} (control {middle_ctrl:.2f}), needs <= 0.85; "
    f"smallest end ratio {ends:.2f} (control {ends_ctrl:.2f}), needs >= 1.5"
)
assert (
    share_drawn - share_exact
).abs().max() < 0.005  # the sampler follows its density (s.e. of a share ~ 0.001)
assert (
    share_exact[4:6].sum() > 0.3 and share_exact[[0, -1]].sum() < 0.03
)  # middle 31%, ends 3% (uniform: 20% each)
# the check, with effect sizes fixed in advance: 15% less excess loss in the middle, 50% more at both ends
# proves C26: logit-normal sampling moves training to the middle times: learned faster there, worse at the ends
prove("C26", middle, 0.85, what="logit-normal / uniform excess loss, t in [0.4, 0.7], over training")
prove("C26", ends, 1.5, sense=">=", what="logit-normal / uniform excess loss, end tenths (smallest)")
# control for C26: two uniform runs with different seeds do not show the effect, so it is not seed noise
control("C26", middle_ctrl, 0.85, what="uniform seed 1 / seed 0 excess loss, t in [0.4, 0.7]")
control("C26", ends_ctrl, 1.5, sense=">=", what="uniform seed 1 / seed 0 excess loss, end tenths (smallest)")

# %% [markdown]
# Averaged over training (the area under each tenth's learning curve) the logit-normal network is ahead in the
# middle tenths, where the marginal field changes fastest for this target, and behind at both ends, where it sees
# about 1.4% of its samples per tenth instead of 10%. At the end of training the ends are still clearly worse;
# in the middle both networks approach the noise floor of their optimiser, so there the final numbers are close
# (and vary from run to run). Two uniform runs that differ only in their seed show neither effect: the shift is
# the time sampler's, not the noise of training. That trade is SD3's bet: for images, the middle noise levels are
# the hard and valuable ones.

# %% [markdown]
# ## Exercises
#
# **Checked exercises.** Each is a function to write. Replace the line `raise NotImplementedError(...)` by your code
# and run the cell: `check` runs your function on random inputs against the library and says what is right, what is
# off and by how much, and which common slip your answer matches. Until you fill it in, it says "not done yet" and
# the rest of the notebook runs as before. The solutions are in `solutions/06_two_sides.py` (a handout for learners
# leaves that folder out).
#
# **Checked 1: any diffusion network as a flow on the linear path.** Section 1 turned the cosine $v$-network into a
# velocity field of the linear path by hand. Do the same for an $\epsilon$-network made for any schedule, called as
# `eps_model(x=..., t=...)`: at a point `x` `(B, D)` and time `t` `(B,)` of the linear path, find the source
# schedule's time $t'$ of the same log-SNR (`schedule.time_at_log_snr`) and the point $x'$ of the source path that
# corresponds to $x$ (the two differ by the scale $\alpha + \sigma$, which is 1 on the linear path), ask the network
# there, and return the linear path's velocity $\hat u = \hat x - \hat\epsilon$ `(B, D)`. The check uses three
# source schedules, cosine, VP and the VP-rescaled linear: with the exact $\epsilon$-model of the mixture your field
# must be the linear path's own exact marginal field (`ExactMixtureModel(target, lin, "velocity")`), and with a
# fixed network what `lessons.conversions.change_schedule` gives.

# %%
from lessons.exercises import check


def linear_velocity_from_eps(eps_model, schedule, x, t):
    """The linear path's velocity (B, D) at x (B, D), t (B,), from an eps_model made for schedule."""
    raise NotImplementedError("hint: the network has its own clock and scale: t' of the same log-SNR, and x'")


check("linear_velocity_from_eps", linear_velocity_from_eps)

# %% [markdown]
# **Checked 2: the weighting of the velocity loss, on any schedule.** Section 4 writes every loss as an
# $\epsilon$-MSE with the weighting $w(\lambda_t) = p(t)\,\text{factor}(t) / (\mathrm d\lambda/\mathrm dt)$. For the
# velocity MSE with $t \sim \mathcal U[0, 1]$, write $w$ from $\alpha_t$, $\sigma_t$ and their time derivatives
# (each `(B,)`): first the factor in $\|\hat u - u\|^2 = \text{factor}\,\|\hat\epsilon - \epsilon\|^2$ at a fixed
# $x_t$ (use $\hat x - x = -\frac{\sigma}{\alpha}(\hat\epsilon - \epsilon)$), then $\mathrm d\lambda/\mathrm dt$.
# The check compares your $w$ with `lessons.weighting.implied_weighting("velocity", ...)` on the linear, cosine and
# VP schedules and on a rescaled linear schedule that is not variance preserving, so flow matching's $\tfrac12
# e^{-\lambda/2}$ is right on one of the four only. (On the cosine schedule you should find $\tfrac\pi4
# e^{-\lambda/2}$: why is it proportional to the $v$-MSE's weighting of section 5?)


# %%
def velocity_loss_weighting(alpha, sigma, d_alpha, d_sigma):
    """w(lambda_t), (B,), of the velocity MSE with t ~ U[0, 1]; alpha, sigma, d_alpha and d_sigma are (B,)."""
    raise NotImplementedError("hint: u_hat - u = factor (eps_hat - eps) at a fixed x_t; then dt -> d lambda")


check("velocity_loss_weighting", velocity_loss_weighting)

# %% [markdown]
# **Checked 3: from the SDE back to the flow.** Section 7's dictionary the other way: given the noising SDE's drift
# rate `f` and diffusion `g` (each `(N,)`) on an increasing grid `ts` `(N,)` that ends at $t = 1$, return the pair
# `(alpha, sigma)` on that grid, each `(N,)`, from $\alpha_t = \exp(-\int_t^1 f)$ and $\sigma_t^2 = \alpha_t^2
# \int_t^1 g^2/\alpha^2$, both integrals by the trapezoid rule (what `lessons.sde.SDESchedule` tabulates). The check
# gives you the $(f, g)$ of the VP, cosine and VP-rescaled linear schedules (`sde_coefficients`) on 1001 times and
# compares your table with each schedule's own closed-form $\alpha$ and $\sigma$: the trapezoid rule errs by about
# $2\cdot10^{-5}$ there, and $10^{-4}$ is allowed.


# %%
def schedule_from_sde(ts, f, g):
    """(alpha, sigma), each (N,), on the grid ts (N,) that ends at t = 1, from the noising SDE's f and g (N,)."""
    raise NotImplementedError("hint: integrate from each grid point to t = 1, where alpha = 1 and sigma = 0")


check("schedule_from_sde", schedule_from_sde)

# %% [markdown]
# **Open questions** (no automatic check: each asks for an experiment or a derivation; what a good answer contains
# is said under it).
#
# 1. **DDIM on another grid.** Run DDIM with the diffusion network on a grid uniform in log-SNR instead of uniform
#    in $t$. Which flow-matching Euler grid $\tau_i$ does it correspond to? Check your answer numerically.
#    *A good answer* derives $\tau_i = \alpha/(\alpha+\sigma) = 1/(1 + e^{-\lambda_i/2})$, the linear path's own
#    time of the log-SNR $\lambda_i$, so the Euler grid is uniform in $\operatorname{logit}\tau = \lambda/2$ too
#    (with finite end points, since $\lambda = \pm\infty$ at the ends cannot be spaced evenly); it then runs `ddim`
#    on the cosine grid and `solve_ode` with Euler on `v_as_velocity` over $\tau_i$ from the same noise, and finds
#    the paths equal after dividing by $\alpha + \sigma$ within the rounding tolerance of section 1, while the same
#    check with the uniform $\tau$ grid fails.
# 2. **Scaling by a constant.** Use `RescaledSchedule(lin, scale=lambda t: (2 + 0 * t, 0 * t))`. What happens to the
#    noise you must start from, and to DDIM's and Euler's samples?
#    *A good answer* says that $x_0 = 2\,\text{noise}$ (start from noise of std 2) and $\alpha_1 = 2$, so the flow
#    ends at twice the data; it runs both samplers with the exact model of the rescaled schedule and finds each
#    one's samples equal to twice its samples on `lin` from the same noise, to rounding, at every step count. The
#    reason: with $\dot c = 0$ the term $\tfrac{\dot c}{c}x'$ that breaks Euler's invariance in section 2 vanishes,
#    and $x'_t + h\,2\hat u(x'_t/2) = 2(x_t + h\,\hat u(x_t))$; a constant scale only changes the units.
# 3. **Straightness and time.** Re-run the straightness comparison of section 3 with `RescaledSchedule(lin)`, a
#    variance-preserving path with exactly the linear schedule's log-SNR (so, by section 2, the same flow up to the
#    scale $c_t$). How does its straightness compare with the cosine path's and the linear path's, and what does
#    that say about the metric: a property of the *curve*, or of the curve *and* its scale and timing?
#    *A good answer* tabulates $S$ for the three targets on the three paths and explains two entries: for $\mathcal
#    N(0, I)$ the rescaled path, being variance preserving, leaves the cloud in place ($S = 0$, as on the cosine
#    path, while the linear path's $S > 0.5$); for the point, scaling the straight line by $c_t$ (from 1 up to
#    $\sqrt2$ at $t = \tfrac12$ and back) bends it, so $S$ is far above the linear path's 0.008. One flow, several
#    straightnesses: the metric measures the curve together with its scale and its clock, which is also what Euler's
#    error depends on.
# 4. **Your own weighting.** Write the EDM weighting (Karras et al.) as $w(\lambda)$ and add it to the plot of
#    section 4. Which recipe does it resemble?
#    *A good answer* derives $w(\lambda) = \mathcal N(\lambda; 2.4, 2.4^2)\,(e^{-\lambda} +
#    \sigma_\text{data}^2)/\sigma_\text{data}^2$ with $\sigma_\text{data} = 0.5$: EDM weights the data-prediction
#    error by $(\sigma^2 + \sigma_\text{data}^2)/(\sigma\, \sigma_\text{data})^2$, that error is $\sigma^2 =
#    e^{-\lambda}$ times the $\epsilon$ error, and its noise levels $\ln\sigma \sim \mathcal N(-1.2, 1.2^2)$ give
#    $\lambda = -2\ln\sigma \sim \mathcal N(2.4, 2.4^2)$. On the plot (normalised at $\lambda = 0$) it is a bell
#    peaked near $\lambda \approx -3.3$, like flow matching with logit-normal times (SD3, peak near $-3.4$), with a
#    heavier tail towards the data, and unlike the monotone uniform-$t$ recipes.
# 5. **Variance, not mean.** In section 6, find a schedule with the same end points whose Monte Carlo estimator has
#    a clearly larger standard error. What does that predict for training speed?
#    *A good answer* gives a schedule from $\lambda = -\infty$ to $+\infty$ with another clock, for instance a small
#    `Schedule` subclass with $\alpha = t^{1/3}$, $\sigma = 1 - t^{1/3}$ (and their derivatives), reports its mean
#    and standard error next to the linear schedule's with the same $n$ (means within 4 standard errors, as C24
#    says; a standard error several times larger), and explains it as importance sampling: the estimator draws
#    $\lambda$ with density $1/(\mathrm d\lambda/\mathrm dt)$, and its variance is smallest when that density
#    follows $w(\lambda)\,E\|\hat\epsilon-\epsilon\|^2$. Prediction: the same optimum, but noisier gradients at a
#    given batch size, so slower training (or a larger batch for the same progress).
# 6. **Shifted logit-normal.** Train with $m = 1$ (in the course's time: more data-side samples). How does the loss
#    per time change? Where do the samples of the two networks differ most?
#    *A good answer* trains with `logit_normal_times(b, mean=1.0)` beside the $m = 0$ run, with a second seed as the
#    control as in C26, and shows the excess loss per tenth of $t$: lower on the data side and higher on the noise
#    side for $m = 1$. It compares the samples with the target (energy distance against a data band) and measures
#    two things separately, each with its standard error: the share of samples in each mixture component, which is
#    decided near the noise end, and the spread within each component, decided near the data end; the noise-side
#    undertraining of $m = 1$ predicts that the shares move first.

# %% [markdown]
# ## What to remember
#
# - **One model family.** A Gaussian flow-matching model is a diffusion model with the schedule $\alpha_t = t$,
#   $\sigma_t = 1-t$ and a velocity output; any diffusion network becomes a flow-matching field by the change of
#   variables $x/(\alpha+\sigma)$, $\tau = \alpha/(\alpha+\sigma)$.
# - **DDIM = flow Euler** (C20), on the linear path literally and on any schedule after the change of variables.
#   DDIM depends on the schedule only through $\lambda$ at the grid points, so it ignores scaling; Euler does not (C21).
# - **Straightness is not a property of flow matching**: straight to a point, not to a distribution; for broad
#   targets a VP path can be straighter.
# - **Outputs are interchangeable, losses are weightings**: $\epsilon$, $x$, $v$, $u$, score convert exactly (C22); each
#   loss is $\int w(\lambda) E\|\hat\epsilon-\epsilon\|^2 \mathrm d\lambda$; flow matching's $w$ is the cosine $v$-MSE's (C23).
#   The output still matters for how errors are amplified and for higher-order samplers.
# - **The training schedule only sets the end points** of the $\lambda$ integral (C24) and the variance of its estimate;
#   the weighting $w(\lambda)$ and the time density are the real design choices (C26).
# - **SDE and flow are dictionaries of each other**: $f = \mathrm d\log\alpha/\mathrm dt$,
#   $g^2 = -2\alpha\sigma\,\mathrm d(\sigma/\alpha)/\mathrm dt$, and stochastic and deterministic samplers share the marginals (C25).
