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
# # Lesson 04 — Flow matching
#
# Lesson 03 trained a continuous normalizing flow (CNF) $\frac{dx}{dt} = v_\theta(x, t)$ by maximum
# likelihood: every training step solved an ODE and back-propagated through it. Flow matching
# (Lipman et al., 2023) trains the very same kind of model **without simulating anything**: it
# regresses $v_\theta$ onto a velocity field that is known in closed form.
#
# **What you will learn**
# - the flow-matching (FM) objective, and why it cannot be computed for real data;
# - Gaussian *conditional* paths $x_t = \alpha_t\,\text{data} + \sigma_t\,\text{noise}$ and their target
#   fields $u_t(x \mid \text{data})$; the VE, VP and OT paths as instances;
# - the *marginal* field as a posterior-weighted average of conditional fields, exactly computable
#   for a Gaussian-mixture target;
# - conditional flow matching (CFM): why its gradient equals FM's;
# - a CFM-trained network *is* a CNF: its likelihood, and how much faster it trains than lesson 03's.
#
# **Claims proven here:** C10 (marginal field = posterior-weighted average; the learned field
# approaches it), C11 (CFM and FM have the same gradient), C12 (Gaussian conditional fields are the
# time derivative of the flow map; VE, VP, OT are instances), C13 (CFM trains a CNF far faster than
# maximum likelihood, measured at equal quality).
#
# Sections: 1. The FM objective · 2. Gaussian conditional paths · 3. The marginal field ·
# 4. Training with CFM · 5. CFM and FM have the same gradient · 6. Likelihood and speed against
# lesson 03 · Exercises · What to remember
#
# Convention (as everywhere in the course): $t = 0$ is noise, $t = 1$ is data. Lipman et al. and Meta's
# `flow_matching` library use the same direction (they write $x_1$ for data and $x_0$ for noise); Stable
# Diffusion 3 (Esser et al., 2024) and Gao et al. (2024, lesson 06) use the opposite one, $t = 0$ data and
# $t = 1$ noise. To translate, their $t$ is our $1 - t$ and their velocity is minus ours:
# $v^\text{theirs}(x, t) = -v(x, 1 - t)$.

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
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import display

from lessons.budget import budget, by_budget
from lessons.claims import control, prove
from lessons.cnf import log_likelihood, train_max_likelihood
from lessons.data2d import sample_target, target_density
from lessons.flow_matching import cfm_loss, conditional_velocity, empirical_marginal_velocity, fm_loss
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.models import MLP
from lessons.paths import GaussianPath
from lessons.schedules import CosineSchedule, LinearSchedule, VESchedule, VPSchedule
from lessons.solvers import solve_ode
from lessons.training import train
from widgets.training_monitor import TrainingMonitor

torch.manual_seed(0)
print(f"budget: {budget()}  (set COURSE_BUDGET=fast for a quick run)")

TARGET = "mixture"  # three unequal Gaussians: closed-form density, entropy and marginal field
mixture = target_density(TARGET)
print(
    f"target {TARGET!r}: means {mixture.means.tolist()}, stds {mixture.stds.tolist()}, "
    f"weights {[round(w, 2) for w in mixture.weights.tolist()]}"
)

# %% [markdown]
# ## 1. The flow-matching objective, and why it is intractable
#
# Pick a **probability path** $p_t$, $t\in[0,1]$, from the noise law $p_0 = \mathcal N(0, I)$ to the data
# law $p_1 = q$, and a velocity field $u_t$ that *generates* it: moving samples of $p_t$ along
# $\frac{dx}{dt} = u_t(x)$ keeps them distributed as $p_t$. Equivalently $u_t$ satisfies the continuity
# equation
# $$\partial_t p_t(x) + \nabla\!\cdot\!\big(p_t(x)\,u_t(x)\big) = 0 .$$
# Then a network that reproduces $u_t$ is a CNF that carries noise to data, and we can train it by plain
# regression, the **flow-matching loss**
# $$\mathcal L_\text{FM}(\theta) = \mathbb E_{t\sim U[0,1],\; x\sim p_t}\,\big\|v_\theta(x, t) - u_t(x)\big\|^2 .$$
# No ODE is solved. The catch: for real data we know neither $p_t$ nor $u_t$, only samples of $q$.
# Flow matching gets around this in two moves: build $p_t$ out of simple *conditional* paths, one per
# data point (section 2), and regress on their fields instead (section 5). For our 2D Gaussian-mixture
# target, and only because it is one, we *can* compute $u_t$ exactly (section 3), which lets us check
# every step.

# %% [markdown]
# ## 2. Gaussian conditional paths: VE, VP and OT (C12)
#
# Fix one data point. The conditional path $p_t(x\mid\text{data}) = \mathcal N(\alpha_t\,\text{data},\,\sigma_t^2 I)$
# is generated by the **flow map**
# $$\psi_t(\text{noise}) = \alpha_t\,\text{data} + \sigma_t\,\text{noise},$$
# which sends $\mathcal N(0, I)$ to $p_t(\cdot\mid\text{data})$. Its time derivative is the velocity of each
# particle, $\frac{d}{dt}\psi_t = \dot\alpha_t\,\text{data} + \dot\sigma_t\,\text{noise}$. Written at the point
# $x = \psi_t(\text{noise})$, i.e. with $\text{noise} = (x - \alpha_t\,\text{data})/\sigma_t$, it is a field in $x$
# (Lipman et al.'s Theorem 3):
# $$u_t(x\mid\text{data}) = \dot\alpha_t\,\text{data} + \frac{\dot\sigma_t}{\sigma_t}\,\big(x - \alpha_t\,\text{data}\big).$$
# Three schedules of the course, and the fields they give (dots are $d/dt$):
#
# | path | $\alpha_t$ | $\sigma_t$ | $u_t(x\mid\text{data})$ |
# |---|---|---|---|
# | OT (Lipman et al.) | $t$ | $1-(1-\sigma_\min)t$ | $\dfrac{\text{data} - (1-\sigma_\min)\,x}{1-(1-\sigma_\min)t}$ |
# | VP (DDPM in continuous time) | $e^{-\frac12\int_0^{1-t}\beta}$ | $\sqrt{1-\alpha_t^2}$ | $\dot\alpha_t\,\dfrac{\text{data} - \alpha_t x}{1-\alpha_t^2}$ |
# | VE (score SDE) | $1$ | $\sigma_\max(\sigma_\min/\sigma_\max)^t$ | $\ln(\sigma_\min/\sigma_\max)\,(x - \text{data})$ |
#
# (For VP use $\sigma\dot\sigma = -\alpha\dot\alpha$; for VE $\dot\sigma/\sigma$ is the constant
# $\ln(\sigma_\min/\sigma_\max)$.) VE's "noise" end is the data plus noise of std $\sigma_\max$, not
# $\mathcal N(0, I)$; VP reaches $\sigma = 0$ only at $t = 1$, where its $\dot\sigma$ blows up.
#
# The check: the field is the derivative of the flow map, so a central finite difference of
# $\psi_t$, which uses only $\alpha$ and $\sigma$, must reproduce it; and each row of the table must agree
# with the library's `conditional_velocity`, which uses the schedule's own derivatives.

# %%
paths = {
    "VE": GaussianPath(VESchedule(sigma_min=0.01, sigma_max=10.0)),
    "VP": GaussianPath(VPSchedule()),
    "OT": GaussianPath(LinearSchedule(sigma_min=0.01)),
}
n_pts, h = 500, 1e-6
point = torch.tensor([[2.0, 1.0]], dtype=torch.float64).expand(n_pts, 2)  # one data point, repeated
noise = torch.randn(n_pts, 2, dtype=torch.float64)
t = torch.linspace(0.02, 0.95, n_pts, dtype=torch.float64)


def flow_map(path, s):
    """psi_s(noise) = alpha(s) data + sigma(s) noise, from alpha and sigma only."""
    c = path.schedule(s)
    return c.alpha[:, None] * point + c.sigma[:, None] * noise


def wrong_velocity(path, x, t):
    """A plausible slip: d_alpha / alpha in place of d_sigma / sigma in u_t(x | data) (the control)."""
    c = path.schedule(t)
    return c.d_alpha[:, None] * point + (c.d_alpha / c.alpha)[:, None] * (x - c.alpha[:, None] * point)


fd_error, table_error, wrong_fd_error = {}, {}, {}
for name, path in paths.items():
    x = flow_map(path, t)
    by_fd = (flow_map(path, t + h) - flow_map(path, t - h)) / (2 * h)  # d psi / dt, central difference
    u = conditional_velocity(path, x, point, t)  # the library's u_t(x | data)
    c = path.schedule(t)
    closed_form = {  # the table above
        "OT": (point - 0.99 * x) / (1 - 0.99 * t[:, None]),
        "VP": c.d_alpha[:, None] * (point - c.alpha[:, None] * x) / (1 - c.alpha[:, None] ** 2),
        "VE": math.log(0.01 / 10.0) * (x - point),
    }[name]
    scale = u.norm(dim=1).max()
    fd_error[name] = ((u - by_fd).norm(dim=1).max() / scale).item()
    table_error[name] = ((u - closed_form).norm(dim=1).max() / scale).item()
    wrong_fd_error[name] = ((wrong_velocity(path, x, t) - by_fd).norm(dim=1).max() / scale).item()
    print(
        f"{name}: |u| up to {scale:8.2f}; max error vs finite differences {fd_error[name]:.1e}, "
        f"vs the closed form {table_error[name]:.1e}; the wrong field vs finite differences "
        f"{wrong_fd_error[name]:.2f}"
    )

# %%
fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
t_draw = torch.linspace(0.0, 0.995, 300, dtype=torch.float64)
few = torch.randn(12, 2, dtype=torch.float64)
for col, (name, path) in enumerate(paths.items()):
    c = path.schedule(t_draw)
    traj = c.alpha[:, None, None] * point[:1] + c.sigma[:, None, None] * few  # (T, 12, 2)
    speed = (c.d_alpha[:, None, None] * point[:1] + c.d_sigma[:, None, None] * few).norm(dim=-1)  # (T, 12)
    top, bottom = axes[0, col], axes[1, col]
    top.fill_between(
        t_draw,
        2 * c.alpha - 2 * c.sigma,
        2 * c.alpha + 2 * c.sigma,
        color="tab:blue",
        alpha=0.15,
        label=r"$\alpha_t\,$data $\pm 2\sigma_t$",
    )
    top.plot(t_draw, traj[:, :, 0], color="tab:gray", lw=0.8)
    top.plot(t_draw, 2 * c.alpha, color="tab:red", lw=2, label=r"mean $\alpha_t\,$data")
    top.set(title=f"{name}: conditional paths to data = (2, 1)", ylabel="first coordinate of $x_t$")
    top.legend(fontsize=8, loc="upper left")
    bottom.semilogy(t_draw, speed, color="tab:gray", lw=0.8)
    bottom.set(
        title=f"{name}: speed $|u_t(x_t\\mid$data$)|$ along them",
        xlabel="t (0 = noise, 1 = data)",
        ylabel="speed",
    )
fig.tight_layout()
plt.show()

# proves C12: for VE, VP and OT the target field u_t(x | data) is the time derivative of the flow map, and
# each is the table's closed form. The band is stated: float64 central differences with h = 1e-6 are
# accurate to about 1e-9 relative (truncation h^2 ~ 1e-12, rounding 1e-16 / h ~ 1e-10), so we allow 1e-7.
FD_BAND = 1e-7
for name in paths:
    prove("C12", fd_error[name], FD_BAND, what=f"{name}: u_t(x | data) vs d psi_t / dt, max rel. error")
    assert table_error[name] < 1e-10, (name, table_error[name])
# control for C12: the same check on a field with d_alpha / alpha where d_sigma / sigma belongs is off by O(1)
# (for VE, where alpha = 1, it is the zero field).
for name in paths:
    control(
        "C12", wrong_fd_error[name], FD_BAND, what=f"{name}: d_alpha/alpha for d_sigma/sigma (wrong field)"
    )

# %% [markdown]
# OT paths are straight lines at constant speed (bottom right is flat); VP paths bend and accelerate
# near the data, VE paths shrink exponentially from a huge spread. All three are Gaussian paths, and
# everything below works for each of them: only $\alpha$, $\sigma$ and their derivatives change. From here
# on we use the OT path with $\sigma_\min = 0$, the one used for the rest of the course.

# %% [markdown]
# ## 3. The marginal field is a posterior-weighted average of conditional fields (C10)
#
# Mixing the conditional paths over the data gives the **marginal path**
# $p_t(x) = \int p_t(x\mid\text{data})\,q(\text{data})\,d\,\text{data}$, which goes from $\mathcal N(0,I)$ to
# (nearly) $q$. Which field generates it? Try the average of the conditional fields, weighted by how likely
# each data point is to have produced $x$:
# $$u_t(x) = \int u_t(x\mid\text{data})\,\underbrace{\frac{p_t(x\mid\text{data})\,q(\text{data})}{p_t(x)}}_{\text{posterior of data given }x_t = x}\,d\,\text{data}
#   = \mathbb E\big[u_t(x\mid\text{data}) \,\big|\, x_t = x\big].$$
# It works: each conditional pair satisfies the continuity equation
# $\partial_t p_t(x\mid\text{data}) = -\nabla\cdot(p_t(x\mid\text{data})\,u_t(x\mid\text{data}))$; integrate it against
# $q(\text{data})$ and swap integral and derivatives:
# $\partial_t p_t(x) = -\nabla\cdot\!\int p_t(x\mid\text{data})\,u_t(x\mid\text{data})\,q(\text{data})\,d\,\text{data}
# = -\nabla\cdot\big(p_t(x)\,u_t(x)\big)$.
#
# **Exact for a Gaussian mixture.** Condition on the *component* $k$ instead of the data point. Given $k$, data
# $\sim\mathcal N(\mu_k, s_k^2 I)$, so $x_t \mid k \sim \mathcal N(\alpha_t\mu_k,\, S_k^2 I)$ with $S_k^2 = \alpha_t^2 s_k^2 + \sigma_t^2$:
# a Gaussian path of its own, whose field is Theorem 3 again with mean $\alpha_t\mu_k$ and std $S_k$,
# $$u_t(x\mid k) = \dot\alpha_t\,\mu_k + \frac{\dot S_k}{S_k}\,(x - \alpha_t\mu_k), \qquad
#   \dot S_k = \frac{\alpha_t\dot\alpha_t s_k^2 + \sigma_t\dot\sigma_t}{S_k},$$
# and the posterior weights are those of the noised mixture,
# $w_k(x) = \pi_k\,\mathcal N(x;\alpha_t\mu_k, S_k^2 I) \big/ \sum_j \pi_j\,\mathcal N(x;\alpha_t\mu_j, S_j^2 I)$. So
# $$u_t(x) = \sum_k w_k(x)\,u_t(x\mid k).$$

# %%
path = GaussianPath(LinearSchedule())  # OT path, sigma_min = 0


def field_by_components(x, t):
    """u_t(x) = sum_k w_k(x) u_t(x | k), written out for the mixture."""
    c = path.schedule(t)
    a, s, da, ds = (v[:, None] for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma))  # (B, 1)
    mu, s_k, pi = mixture.means, mixture.stds[None], mixture.weights[None]  # (K, 2), (1, K), (1, K)
    S2 = a**2 * s_k**2 + s**2  # (B, K) variance of x_t given component k
    dS_over_S = (a * da * s_k**2 + s * ds) / S2  # (B, K)
    diff = x[:, None, :] - a[:, :, None] * mu[None]  # (B, K, 2)
    log_w = torch.log(pi) - (diff**2).sum(-1) / (2 * S2) - torch.log(S2)  # log pi_k N(x; a mu_k, S2), 2D
    w = torch.softmax(log_w, dim=1)  # (B, K) posterior weights
    u_k = da[:, :, None] * mu[None] + dS_over_S[:, :, None] * diff  # (B, K, 2) component fields
    return (w[:, :, None] * u_k).sum(1), w


probe_t = torch.full((2000,), 0.6)
probe_x = path.sample(torch.randn(2000, 2), mixture.sample(2000), probe_t).x_t  # points of p_t
u_mine, w_mine = field_by_components(probe_x, probe_t)
exact_field = ExactMixtureModel(mixture, path.schedule, prediction="velocity")  # the library's ideal model
u_lib = exact_field(x=probe_x, t=probe_t)  # via the posterior means of the data and the noise
c = path.schedule(probe_t)
weights_gap = (w_mine - mixture.posterior_weights(probe_x, c.alpha, c.sigma)).abs().max().item()
field_gap = ((u_mine - u_lib).norm(dim=1).max() / u_lib.norm(dim=1).max()).item()
print(f"posterior weights: largest difference from the library's {weights_gap:.1e}")
print(f"marginal field: largest relative difference from the library's {field_gap:.1e}")
assert weights_gap < 1e-5 and field_gap < 1e-5

# %% [markdown]
# The library (`lessons.mixture.ExactMixtureModel`, the ideal model of a mixture target for any prediction type)
# reaches the same field another way: the conditional velocity $\dot\alpha_t\,\text{data} + \dot\sigma_t\,\text{noise}$
# is affine in (data, noise), so its posterior average is
# $\dot\alpha_t\,\mathbb E[\text{data}\mid x_t = x] + \dot\sigma_t\,\mathbb E[\text{noise}\mid x_t = x]$, two posterior means
# in closed form.
#
# Neither computation used the definition itself. The Monte Carlo check does: draw $N$ data points from $q$ and
# weight each one's conditional field by $p_t(x\mid\text{data}_i)$, normalised (self-normalised importance sampling),
# $$\hat u_t(x) = \sum_{i=1}^N \frac{\mathcal N(x;\alpha_t\,\text{data}_i,\sigma_t^2 I)}{\sum_j \mathcal N(x;\alpha_t\,\text{data}_j,\sigma_t^2 I)}\;u_t(x\mid\text{data}_i).$$
# This is also the *exact* marginal field of the empirical target made of those $N$ points (which is what a network
# would chase if it saw only $N$ training points forever). Its error must shrink like $1/\sqrt N$. The control is
# the plain average with uniform weights, which ignores which data point is likely to have produced $x$: the
# same checks must reject it.


# %%
def field_by_monte_carlo(x, t, data):
    """Posterior-weighted average of the conditional fields of N data points (N, 2), at x (B, 2)."""
    c = path.schedule(t)
    a, s, da, ds = (v[:, None, None] for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma))  # (B, 1, 1)
    diff = x[:, None, :] - a * data[None]  # (B, N, 2): x - alpha data_i
    w = torch.softmax(-(diff**2).sum(-1) / (2 * s[:, :, 0] ** 2), dim=1)  # (B, N) posterior of data_i given x
    u_i = da * data[None] + ds / s * diff  # (B, N, 2) conditional fields u_t(x | data_i)
    return (w[:, :, None] * u_i).sum(1)


mc_ts = [0.25, 0.5, 0.75]
mc_sizes = [256, 1024, 4096, 16384]
mc_x = {tv: path.sample(torch.randn(200, 2), mixture.sample(200), torch.full((200,), tv)).x_t for tv in mc_ts}
exact = {tv: exact_field(x=mc_x[tv], t=torch.full((200,), tv)) for tv in mc_ts}


def relative_error(u, ref):
    """Root mean square of |u - ref| over the points, relative to that of |ref|."""
    return (((u - ref) ** 2).sum(1).mean() / (ref**2).sum(1).mean()).sqrt().item()


# the control: the same data with uniform weights, ignoring which point likely produced x. As u_t(x | data)
# is affine in the data, that plain average is the conditional field of the data's mean.
mc_error, uniform_error = {tv: [] for tv in mc_ts}, {tv: [] for tv in mc_ts}
for n in mc_sizes:
    for tv in mc_ts:
        tt, data_n = torch.full((200,), tv), mixture.sample(n)
        mc_error[tv].append(relative_error(field_by_monte_carlo(mc_x[tv], tt, data_n), exact[tv]))
        uniform = conditional_velocity(path, mc_x[tv], data_n.mean(0).expand(200, 2), tt)
        uniform_error[tv].append(relative_error(uniform, exact[tv]))
    print(f"N = {n:6d}: relative error " + ", ".join(f"t={tv}: {mc_error[tv][-1]:.4f}" for tv in mc_ts))

# the library's version of the estimator, and a second independent estimate to measure the Monte Carlo noise
big = mixture.sample(mc_sizes[-1])
tt = torch.full((200,), 0.5)
mine, lib = field_by_monte_carlo(mc_x[0.5], tt, big), empirical_marginal_velocity(path, big, mc_x[0.5], tt)
print(f"by hand vs library estimator: {relative_error(mine, lib):.1e}")
assert relative_error(mine, lib) < 1e-4
mc_noise = {
    tv: relative_error(
        field_by_monte_carlo(mc_x[tv], torch.full((200,), tv), mixture.sample(mc_sizes[-1])),
        field_by_monte_carlo(mc_x[tv], torch.full((200,), tv), mixture.sample(mc_sizes[-1])),
    )
    / math.sqrt(2)
    for tv in mc_ts
}
print(
    "one estimate's own noise at the largest N (from two independent ones): "
    + ", ".join(f"t={tv}: {mc_noise[tv]:.4f}" for tv in mc_ts)
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
ax = axes[0]
axis = torch.linspace(-4, 4, 21)
grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)  # (441, 2)
u_grid, w_grid = field_by_components(grid, torch.full((grid.shape[0],), 0.6))
ax.scatter(*probe_x.T, s=3, c=w_mine.argmax(1), cmap="viridis", alpha=0.4)
ax.quiver(
    *grid.T, *u_grid.T, w_grid.argmax(1), cmap="viridis", angles="xy", scale_units="xy", scale=8, width=0.004
)
ax.set(
    title="exact marginal field at t = 0.6\n(colour: most likely component; points: samples of $p_t$)",
    xlabel="$x_1$",
    ylabel="$x_2$",
    aspect="equal",
    xlim=(-4, 4),
    ylim=(-4, 4),
)
ax = axes[1]
for tv in mc_ts:
    ax.loglog(mc_sizes, mc_error[tv], "o-", label=f"t = {tv}")
ref = mc_error[0.5][0] * (torch.tensor(mc_sizes, dtype=torch.float64) / mc_sizes[0]) ** -0.5
ax.loglog(mc_sizes, ref, "k--", label=r"slope $-1/2$")
ax.set(
    title="Monte Carlo average of conditional fields vs exact field",
    xlabel="number of data samples N",
    ylabel="relative RMS error",
)
ax.legend()
fig.tight_layout()
plt.show()


def slope_of(errors, sizes):
    """The slope of log error against log N, from the first and the last size."""
    return math.log(errors[-1] / errors[0]) / math.log(sizes[-1] / sizes[0])


# proves C10 (first half): the marginal field is the posterior-weighted average of conditional fields.
# The exact field (component form = library) is what the Monte Carlo average over data converges to: the
# error falls like 1/sqrt(N) (slope at most -0.3 at every t) and at the largest N is within 3 times the
# estimator's own noise, measured by the disagreement of two independent estimates.
slopes = {tv: slope_of(mc_error[tv], mc_sizes) for tv in mc_ts}
uniform_slopes = {tv: slope_of(uniform_error[tv], mc_sizes) for tv in mc_ts}
for tv in mc_ts:
    print(
        f"t = {tv}: fitted slope {slopes[tv]:.2f}, final error {mc_error[tv][-1]:.4f} vs noise "
        f"{mc_noise[tv]:.4f}; uniform weights: slope {uniform_slopes[tv]:.2f}, final error {uniform_error[tv][-1]:.3f}"
    )
    assert slopes[tv] > -0.8 and mc_error[tv][-1] < 0.05
prove("C10", max(slopes.values()), -0.3, what="posterior-weighted MC average: slope of error vs N (worst t)")
noise_ratio = max(mc_error[tv][-1] / mc_noise[tv] for tv in mc_ts)
prove("C10", noise_ratio, 3.0, what="posterior-weighted MC average: error / own noise at N = 16384 (worst t)")
# control for C10 (first half): the same checks reject the average with uniform weights: its error stays
# at a floor, many times the noise, however many data points it averages.
control(
    "C10", max(uniform_slopes.values()), -0.3, what="uniform weights (wrong): slope of error vs N (worst t)"
)
uniform_ratio = min(uniform_error[tv][-1] / mc_noise[tv] for tv in mc_ts)
control("C10", uniform_ratio, 3.0, what="uniform weights (wrong): error / noise at N = 16384 (best t)")

# %% [markdown]
# ## 4. Training with conditional flow matching, and the learned field (C10)
#
# The **conditional flow-matching loss** replaces the unknown $u_t(x)$ by the conditional field of the data point
# that produced $x_t$:
# $$\mathcal L_\text{CFM}(\theta) = \mathbb E_{t,\;\text{data}\sim q,\;\text{noise}\sim\mathcal N(0,I)}
#   \big\|v_\theta(x_t, t) - u_t(x_t\mid\text{data})\big\|^2,\qquad x_t = \alpha_t\,\text{data} + \sigma_t\,\text{noise}.$$
# On the OT path $u_t(x_t\mid\text{data}) = \text{data} - \text{noise}$: one line of code and no ODE. Written by hand it
# is three lines; the library's `cfm_loss` is the same for every Gaussian path:

# %%
data_batch, noise_batch, t_batch = mixture.sample(256), torch.randn(256, 2), torch.rand(256)
net = MLP(hidden=64, depth=3)
x_t = t_batch[:, None] * data_batch + (1 - t_batch[:, None]) * noise_batch  # OT path, sigma_min = 0
by_hand = ((net(x=x_t, t=t_batch) - (data_batch - noise_batch)) ** 2).mean()
library = cfm_loss(net, path, data_batch, noise=noise_batch, t=t_batch)
print(f"CFM loss by hand {by_hand.item():.6f}, library {library.item():.6f}")
assert torch.allclose(by_hand, library)

# %% [markdown]
# Now train: an MLP of 3 hidden layers of width 64 (the same network lesson 03 trains by maximum likelihood),
# batches of 256 fresh samples of the mixture, AdamW. We keep a copy of the untrained network as a baseline.
# For section 6 we also record, every 50 steps at first and then 15 times over the run, the test negative
# log-likelihood (NLL) of the network seen as a CNF (lesson 03's `log_likelihood`, RK4 with 20 steps, on 500
# held-out points), leaving the time spent on these evaluations out of the training time. Every fifteenth of
# the run the training monitor redraws the loss and 500 samples of the network so far (RK4, 40 steps, from
# the same noise each time); its time is left out too.


# %%
def nll_tracker(points, at_steps):
    """A training callback recording (step, test NLL) at the steps in at_steps, and the seconds it spends."""
    record = {"steps": [], "nll": [], "eval_seconds": 0.0}

    def callback(step, model, losses):
        if step not in at_steps:
            return
        begin = time.perf_counter()
        with torch.no_grad():
            nll = -log_likelihood(model, points, method="rk4", steps=20).log_prob.mean().item()
        record["steps"].append(step)
        record["nll"].append(nll)
        record["eval_seconds"] += time.perf_counter() - begin

    return record, callback


def tracked_steps(steps, early_every, early_until):
    """Every early_every steps up to early_until (where the NLL falls fastest), then 15 times over the run."""
    every = steps // 15
    return (
        set(range(early_every, early_until + 1, early_every)) | set(range(every, steps + 1, every)) | {steps}
    )


track_points = sample_target(TARGET, 500, seed=321)
CFM_STEPS = by_budget(fast=3000, full=10_000)
BATCH = 256  # 2D toys train on the CPU (as fast as a GPU at this size, and the timings stay comparable)
torch.manual_seed(0)
untrained = MLP(hidden=64, depth=3)
cfm_model = copy.deepcopy(untrained)
g_train = torch.Generator().manual_seed(1)
cfm_track, track_nll = nll_tracker(track_points, tracked_steps(CFM_STEPS, 50, 500))
watch_noise = torch.randn(500, 2, generator=torch.Generator().manual_seed(100))
monitor = TrainingMonitor(
    sample=lambda m: solve_ode(m, watch_noise, steps=40, method="rk4").final,
    target=track_points,
    view=6,
    title="CFM training (velocity MSE)",
)
display(monitor)


def track_and_watch(step, model, losses):
    track_nll(step, model, losses)
    if step % (CFM_STEPS // 15) == 0 or step == CFM_STEPS:
        monitor(step, model, losses)
        cfm_track["eval_seconds"] += monitor.last_update_seconds  # drawing is not training either


cfm_result = train(
    cfm_model,
    lambda m, data: cfm_loss(m, path, data),
    lambda: mixture.sample(BATCH, generator=g_train),
    steps=CFM_STEPS,
    lr=2e-3,
    device="cpu",
    progress=False,
    callback=track_and_watch,
    callback_every=1,
)
cfm_seconds = cfm_result.seconds - cfm_track["eval_seconds"]  # training only
print(
    f"CFM: {cfm_result.steps_done} steps in {cfm_seconds:.1f} s of training "
    f"({1000 * cfm_seconds / cfm_result.steps_done:.2f} ms per step); "
    f"last 100 losses average {sum(cfm_result.losses[-100:]) / 100:.3f}"
)

# %% [markdown]
# How close is the learned $v_\theta$ to the exact marginal $u_t$? At each $t$ we draw points of $p_t$ and measure
# the relative error $\mathbb E_{x\sim p_t}\|v_\theta(x,t) - u_t(x)\|^2 / \mathbb E_{x\sim p_t}\|u_t(x)\|^2$; this is the
# FM loss at that $t$, divided by the field's size. (The CFM loss itself never goes to zero: section 5 shows why.)
# The same band must reject the untrained network and two exact fields of the wrong thing: that of the mixture
# with equal weights (another target), and that of the cosine path (Nichol & Dhariwal's schedule with offset
# $s = 0$), which carries noise to the same target along another path.

# %%
err_ts = torch.linspace(0.0, 0.98, 15)
g_eval = torch.Generator().manual_seed(7)
eval_data, eval_noise = mixture.sample(4000, generator=g_eval), torch.randn(4000, 2, generator=g_eval)


@torch.no_grad()
def field_error_per_t(model):
    """Relative mean squared error of model against the exact marginal field, one value per time in err_ts."""
    errors = []
    for tv in err_ts.tolist():
        tt = torch.full((4000,), tv)
        u = exact_field(x=path.sample(eval_noise, eval_data, tt).x_t, t=tt)
        errors.append(fm_loss(model, path, mixture, eval_data, eval_noise, tt).item() / (u**2).mean().item())
    return torch.tensor(errors)


err_trained, err_untrained = field_error_per_t(cfm_model), field_error_per_t(untrained)
for tv, a, b in zip(err_ts.tolist(), err_trained.tolist(), err_untrained.tolist()):
    print(f"t = {tv:.2f}: relative error trained {a:.4f}, untrained {b:.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
ax = axes[0]
ax.semilogy(err_ts, err_untrained, "o-", color="tab:gray", label="untrained network")
ax.semilogy(err_ts, err_trained, "o-", color="tab:red", label=f"CFM-trained ({CFM_STEPS} steps)")
ax.set(
    title="learned field vs exact marginal field",
    xlabel="t (0 = noise, 1 = data)",
    ylabel=r"$E\|v_\theta - u_t\|^2 \,/\, E\|u_t\|^2$",
)
ax.legend()
ax = axes[1]
tq = 0.8
tt = torch.full((grid.shape[0],), tq)
with torch.no_grad():
    u_exact, v_learned = exact_field(x=grid, t=tt), cfm_model(x=grid, t=tt)
ax.quiver(
    *grid.T,
    *u_exact.T,
    color="black",
    angles="xy",
    scale_units="xy",
    scale=8,
    width=0.005,
    label="exact $u_t$",
)
ax.quiver(
    *grid.T,
    *v_learned.T,
    color="tab:red",
    angles="xy",
    scale_units="xy",
    scale=8,
    width=0.003,
    label=r"learned $v_\theta$",
)
ax.set(
    title=f"fields at t = {tq}",
    xlabel="$x_1$",
    ylabel="$x_2$",
    aspect="equal",
    xlim=(-4.5, 4.5),
    ylim=(-4.5, 4.5),
)
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()

# proves C10 (second half): the CFM-trained field approaches the exact marginal field. The band is stated
# before training: averaged over t, its squared error is at most 5% of the field's squared size (an RMS
# error under about 22%); and at every t it is many times smaller than the untrained network's (whose
# error is about the field's whole size).
FIELD_BAND = 0.05
wrong_fields = {  # controls: exact fields, but of another target (equal weights) or another path (cosine, s = 0)
    "the equal-weight mixture": ExactMixtureModel(
        GaussianMixture(mixture.means, mixture.stds), path.schedule, prediction="velocity"
    ),
    "the cosine path": ExactMixtureModel(mixture, CosineSchedule(), "velocity"),
}
err_wrong = {name: field_error_per_t(field).mean().item() for name, field in wrong_fields.items()}
print(
    f"mean relative error: trained {err_trained.mean():.4f}, untrained {err_untrained.mean():.3f}, "
    + ", ".join(f"{name} {value:.3f}" for name, value in err_wrong.items())
    + f"; largest ratio trained/untrained {(err_trained / err_untrained).max():.3f}"
)
prove(
    "C10", err_trained.mean(), FIELD_BAND, what="CFM-trained field vs exact marginal field, rel. MSE over t"
)
assert (err_trained < 0.1 * err_untrained).all()
# control for C10 (second half): the same band rejects the untrained network, the exact field of another
# target and that of another path.
control("C10", err_untrained.mean(), FIELD_BAND, what="untrained network vs exact marginal field, rel. MSE")
for name, value in err_wrong.items():
    control("C10", value, FIELD_BAND, what=f"exact field of {name} (wrong), rel. MSE over t")

# %% [markdown]
# ## 5. CFM and FM have the same gradient (C11)
#
# Expand both squares. With $v = v_\theta(x_t, t)$,
# $$\mathcal L_\text{FM} = \mathbb E\|v\|^2 - 2\,\mathbb E\langle v, u_t(x_t)\rangle + \mathbb E\|u_t(x_t)\|^2, \qquad
#   \mathcal L_\text{CFM} = \mathbb E\|v\|^2 - 2\,\mathbb E\langle v, u_t(x_t\mid\text{data})\rangle + \mathbb E\|u_t(x_t\mid\text{data})\|^2 .$$
# The first terms are the same ($x_t$ has law $p_t$ in both). In the middle terms, condition on $x_t$: $v$ depends on
# $x_t$ only, and $\mathbb E[u_t(x_t\mid\text{data})\mid x_t] = u_t(x_t)$ (section 3), so they agree too. Hence
# $$\mathcal L_\text{CFM}(\theta) - \mathcal L_\text{FM}(\theta) = \mathbb E\|u_t(x_t\mid\text{data})\|^2 - \mathbb E\|u_t(x_t)\|^2
#   = \mathbb E\,\|u_t(x_t\mid\text{data}) - u_t(x_t)\|^2,$$
# a constant that does not depend on $\theta$: the two losses have the same gradient and the same minimiser,
# $v_\theta = u_t$. The constant is why the CFM loss stalls well above zero even for a perfect network.
#
# The library's `fm_loss` is the MSE to the exact field at the same $x_t$ as `cfm_loss` (same data, noise, $t$),
# so the two differ only in the target. We check the claim on a fixed batch of $N$ triples (data, noise, $t$):
# the losses' difference must not depend on the network, and their gradients must agree up to Monte Carlo
# noise that shrinks like $1/\sqrt N$. A **wrong** target, the conditional field of a data point that did *not*
# produce $x_t$ (the batch's data shifted by one), must give a gradient that stays away.


# %%
def flat_grad(loss, model):
    """All parameter gradients of loss, flattened into one vector."""
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])


def three_gradients(model, data, noise, t):
    """Gradients of the CFM loss, the FM loss and a wrong-target loss on one batch."""
    x_t = path.sample(noise, data, t).x_t
    by_hand_fm = F.mse_loss(model(x=x_t, t=t), exact_field(x=x_t, t=t))
    fm = fm_loss(model, path, mixture, data, noise, t)
    assert torch.allclose(by_hand_fm, fm)
    wrong = F.mse_loss(model(x=x_t, t=t), path.sample(noise, data.roll(1, 0), t).velocity)
    return (
        flat_grad(cfm_loss(model, path, data, noise, t), model),
        flat_grad(fm, model),
        flat_grad(wrong, model),
    )


g_batch = torch.Generator().manual_seed(3)
N_MAX, CHUNKS = 2**16, 16
big_data = mixture.sample(N_MAX, generator=g_batch)
big_noise, big_t = torch.randn(N_MAX, 2, generator=g_batch), torch.rand(N_MAX, generator=g_batch)
grad_sizes = [2**10, 2**12, 2**14, 2**16]
rel_gap = {"cfm": [], "wrong": []}
for n in grad_sizes:
    g_cfm, g_fm, g_wrong = three_gradients(untrained, big_data[:n], big_noise[:n], big_t[:n])
    rel_gap["cfm"].append(((g_cfm - g_fm).norm() / g_fm.norm()).item())
    rel_gap["wrong"].append(((g_wrong - g_fm).norm() / g_fm.norm()).item())
    print(
        f"N = {n:6d}: |g_CFM - g_FM| / |g_FM| = {rel_gap['cfm'][-1]:.4f},  wrong target: {rel_gap['wrong'][-1]:.3f}"
    )

# the gradient gap at N_MAX is the mean of CHUNKS independent chunk gaps: their spread predicts its size
chunk_gaps = torch.stack(
    [
        torch.sub(*three_gradients(untrained, d, z, tc)[:2])
        for d, z, tc in zip(big_data.chunk(CHUNKS), big_noise.chunk(CHUNKS), big_t.chunk(CHUNKS))
    ]
)
predicted = (
    chunk_gaps.var(0).sum() / CHUNKS
).sqrt() / g_fm.norm()  # expected |g_CFM - g_FM| / |g_FM| if equal in mean
print(
    f"at N = {N_MAX}: gap {rel_gap['cfm'][-1]:.4f}, Monte Carlo noise level {predicted:.4f}, "
    f"wrong target {rel_gap['wrong'][-1]:.3f}"
)


def offset_from_constant(model, u_target, x_t, u_marg):
    """Loss to u_target minus FM loss minus E|u_target - u_marg|^2 / 2, in standard errors; and the losses.

    On a finite batch, loss - FM - constant = -mean <v - u_marg, u_target - u_marg>: zero-mean noise when
    E[u_target | x_t] = u_marg, as for the conditional field (the MSE averages 2 coordinates, hence the / 2).
    """
    v = model(x=x_t, t=big_t)
    loss, fm = F.mse_loss(v, u_target).item(), F.mse_loss(v, u_marg).item()
    constant = F.mse_loss(u_target, u_marg).item()
    standard_error = (((v - u_marg) * (u_target - u_marg)).sum(1).std() / math.sqrt(len(v))).item()
    return abs(loss - fm - constant) / standard_error, loss, fm, constant, standard_error


# the losses differ by the same constant for very different networks; the wrong target's do not
loss_rows, wrong_offsets = [], []
with torch.no_grad():
    big = path.sample(big_noise, big_data, big_t)
    x_big, u_cond = big.x_t, big.velocity
    u_marg = exact_field(x=x_big, t=big_t)
    u_wrong = path.sample(big_noise, big_data.roll(1, 0), big_t).velocity
    for name, model in [("untrained", untrained), ("CFM-trained", cfm_model)]:
        offset, cfm_value, fm_value, constant, se = offset_from_constant(model, u_cond, x_big, u_marg)
        assert math.isclose(cfm_value, cfm_loss(model, path, big_data, big_noise, big_t).item(), rel_tol=1e-5)
        assert math.isclose(
            fm_value, fm_loss(model, path, mixture, big_data, big_noise, big_t).item(), rel_tol=1e-5
        )
        wrong_offsets.append(offset_from_constant(model, u_wrong, x_big, u_marg)[0])
        loss_rows.append((cfm_value, fm_value, offset, se))
        print(
            f"{name:12s}: CFM {cfm_value:.4f}  FM {fm_value:.4f}  CFM - FM {cfm_value - fm_value:.4f}; "
            f"off the constant by {offset:.1f} standard errors (the wrong target: {wrong_offsets[-1]:.1f})"
        )
print(f"the constant E|u(x_t | data) - u(x_t)|^2 / 2 on the same batch: {constant:.4f}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4.5))
ax.loglog(grad_sizes, rel_gap["cfm"], "o-", color="tab:red", label="CFM vs FM")
ax.loglog(grad_sizes, rel_gap["wrong"], "s-", color="tab:gray", label="wrong target vs FM")
ax.loglog(
    grad_sizes,
    [rel_gap["cfm"][0] * (n / grad_sizes[0]) ** -0.5 for n in grad_sizes],
    "k--",
    label=r"slope $-1/2$",
)
ax.set(
    title="parameter gradients on a fixed batch of N samples",
    xlabel="N",
    ylabel=r"$\|g - g_{FM}\| \,/\, \|g_{FM}\|$",
)
ax.legend()
fig.tight_layout()
plt.show()

# proves C11: the CFM and FM gradients agree up to Monte Carlo noise: the gap shrinks like 1/sqrt(N) (slope at
# most -0.3) and at the largest N is within 3 times the noise level predicted from independent chunks. The
# losses differ by a constant: for the untrained and the trained network alike, CFM - FM equals
# E|u(x|data) - u(x)|^2 / 2 within 3 standard errors, while the FM loss itself changes by over 100 of them.
slope, wrong_slope = slope_of(rel_gap["cfm"], grad_sizes), slope_of(rel_gap["wrong"], grad_sizes)
print(f"fitted slope of the CFM gap {slope:.2f}, of the wrong target's {wrong_slope:.2f}")
assert slope > -0.8
prove("C11", slope, -0.3, what="CFM vs FM gradient gap: slope vs N")
prove(
    "C11", rel_gap["cfm"][-1] / predicted, 3.0, what="CFM vs FM gradient gap / Monte Carlo noise, N = 65536"
)
prove(
    "C11", max(row[2] for row in loss_rows), 3.0, what="CFM - FM - constant, standard errors (worst network)"
)
assert abs(loss_rows[0][1] - loss_rows[1][1]) > 100 * max(row[3] for row in loss_rows)
# control for C11: the same checks reject the wrong target (the conditional field of the data point before
# in the batch): its gradient gap does not shrink and stays many times the noise, and its loss minus FM
# is not a constant.
assert min(rel_gap["wrong"]) > 0.15
control("C11", wrong_slope, -0.3, what="wrong target (data shifted by one): gradient gap slope vs N")
control("C11", rel_gap["wrong"][-1] / predicted, 3.0, what="wrong target: gradient gap / Monte Carlo noise")
control("C11", max(wrong_offsets), 3.0, what="wrong target: loss - FM - constant, standard errors (worst)")

# %% [markdown]
# ## 6. A CFM-trained network is a CNF: likelihood and training time against lesson 03 (C13)
#
# Nothing in CFM's network is special: $v_\theta$ is a velocity field, so lesson 03's instantaneous change of
# variables gives its exact log-likelihood,
# $$\log p_1(\text{data}) = \log \mathcal N(\text{noise}; 0, I) - \int_0^1 \nabla\!\cdot v_\theta(x_t, t)\,dt,$$
# by solving the ODE backwards from the data to the noise (`lessons.cnf.log_likelihood`). We can therefore
# set the CFM model beside a CNF trained the lesson-03 way, by **maximum likelihood**
# (`lessons.cnf.train_max_likelihood`: every step solves this ODE with an adaptive solver, dopri5, and
# back-propagates through it), with the same network, initial weights, target, batch size and learning rate.
# Both are scored the same way on the same held-out points; for our mixture the best possible score, the
# entropy of the target, is known exactly.
#
# "Faster" is measured **at equal quality**: the training time each method needs to reach the same test NLL.
# The goal is fixed before training: a quarter of the way (in nats) from the best single Gaussian (the
# mixture's own mean and covariance: a model that has learned nothing beyond two moments) to the exact
# density, a level that marks a model which has begun to separate the modes, and that both methods reach
# in either budget (maximum likelihood's fast budget is only 250 steps: its learning rate decays over the run,
# and with 150 steps it levelled off at 3.72 nats on one of our machines, short of this goal). The NLL is
# tracked at a few steps only, so we bound the times: CFM's is at
# most its steps to the first tracked point at the goal, maximum likelihood's at least its steps to the last
# tracked point above it, each times the method's training seconds per step.

# %%
CNF_STEPS = by_budget(fast=250, full=450)  # each step solves an ODE: 0.2-0.8 s on 2 CPU cores
cnf_model = copy.deepcopy(untrained)
g_train = torch.Generator().manual_seed(1)
cnf_track, callback = nll_tracker(track_points, tracked_steps(CNF_STEPS, 10, 150))
cnf_result = train_max_likelihood(
    cnf_model,
    lambda: mixture.sample(BATCH, generator=g_train),
    CNF_STEPS,
    method="dopri5",
    rtol=1e-3,
    atol=1e-3,
    lr=2e-3,
    device="cpu",
    callback=callback,
    callback_every=1,
)
cnf_seconds = cnf_result.seconds - cnf_track["eval_seconds"]
print(f"CNF (maximum likelihood): {cnf_result.steps_done} steps in {cnf_seconds:.1f} s of training")

test_points = sample_target(TARGET, 1000, seed=123)
with torch.no_grad():
    true_nll = -mixture.log_prob(test_points)  # (1000,) the exact density
    nll = {
        name: -log_likelihood(model, test_points, method="rk4", steps=40).log_prob
        for name, model in [("CFM", cfm_model), ("CNF", cnf_model)]
    }
    best_track = -mixture.log_prob(track_points).mean().item()
    untrained_track = -log_likelihood(untrained, track_points, method="rk4", steps=20).log_prob.mean().item()
# the best single Gaussian: the mixture's mean and covariance, sum_k pi_k (s_k^2 I + mu_k mu_k^T) - mean mean^T
mean = mixture.weights @ mixture.means
second_moment = sum(
    pi * (s**2 * torch.eye(2) + torch.outer(mu, mu))
    for pi, mu, s in zip(mixture.weights, mixture.means, mixture.stds)
)
best_gaussian = torch.distributions.MultivariateNormal(mean, second_moment - torch.outer(mean, mean))
gaussian_track = -best_gaussian.log_prob(track_points).mean().item()
goal = gaussian_track - (gaussian_track - best_track) / 4  # a quarter of the way from the best Gaussian
total = {"CFM": cfm_seconds, "CNF": cnf_seconds}
steps_done = {"CFM": cfm_result.steps_done, "CNF": cnf_result.steps_done}
per_step = {name: total[name] / steps_done[name] for name in total}
tracks = {"CFM": cfm_track, "CNF": cnf_track}
first_at_goal = {  # the first tracked step at or below the goal (inf: never)
    name: next((step for step, v in zip(track["steps"], track["nll"]) if v <= goal), math.inf)
    for name, track in tracks.items()
}
last_above_goal = {  # the last tracked step before it (0: already at the first one)
    name: max([step for step in track["steps"] if step < first_at_goal[name]], default=0)
    for name, track in tracks.items()
}
cfm_time_at_most = first_at_goal["CFM"] * per_step["CFM"]
cnf_time_at_least = last_above_goal["CNF"] * per_step["CNF"]
print(f"{'':4s} {'steps':>6s} {'seconds':>8s} {'ms/step':>8s} {'test NLL':>9s} {'steps to goal':>14s}")
for name in ("CFM", "CNF"):
    print(
        f"{name:4s} {steps_done[name]:6d} {total[name]:8.1f} {1000 * per_step[name]:8.2f} "
        f"{nll[name].mean():9.3f} {last_above_goal[name]:6d} to {first_at_goal[name]}"
    )
print(
    f"exact NLL (entropy of the target on these points): {true_nll.mean():.3f}; on the tracking points: exact "
    f"{best_track:.3f}, best Gaussian {gaussian_track:.3f}, untrained network {untrained_track:.3f}, "
    f"goal {goal:.3f}"
)
print(
    f"time to the goal: CFM at most {cfm_time_at_most:.1f} s, maximum likelihood at least "
    f"{cnf_time_at_least:.1f} s, {cnf_time_at_least / cfm_time_at_most:.0f} times longer"
)
paired = nll["CFM"] - nll["CNF"]  # the same test points: compare point by point
paired_se = (paired.std() / math.sqrt(len(paired))).item()
print(
    f"CFM - CNF test NLL: {paired.mean():.3f} (standard error {paired_se:.3f}); "
    f"CNF is {per_step['CNF'] / per_step['CFM']:.0f} times slower per step"
)

# %%
with torch.no_grad():
    start = torch.randn(2000, 2, generator=torch.Generator().manual_seed(11))
    samples = {
        name: solve_ode(model, start, steps=40, method="rk4").final
        for name, model in [("CFM", cfm_model), ("CNF", cnf_model)]
    }
fig, axes = plt.subplots(1, 4, figsize=(17, 4.3))
target_points = sample_target(TARGET, 2000, seed=5)
for ax, name in zip(axes[:2], ("CFM", "CNF")):
    ax.scatter(*target_points.T, s=3, color="tab:gray", alpha=0.3, label="target")
    ax.scatter(*samples[name].T, s=3, color="tab:red", alpha=0.5, label=f"{name} samples")
    ax.set(
        title=f"{name}: {steps_done[name]} steps, {total[name]:.0f} s",
        xlabel="$x_1$",
        ylabel="$x_2$",
        aspect="equal",
        xlim=(-5, 5),
        ylim=(-5, 5),
    )
    ax.legend(loc="lower right", fontsize=8, markerscale=3)
axes[2].bar(
    ["CFM", "CNF (max. lik.)"],
    [1000 * per_step["CFM"], 1000 * per_step["CNF"]],
    color=["tab:red", "tab:blue"],
)
axes[2].set(yscale="log", title="training time per step", ylabel="milliseconds (log scale)")
ax = axes[3]
for name, style, colour, label in [
    ("CFM", "o-", "tab:red", "CFM"),
    ("CNF", "s-", "tab:blue", "CNF (max. lik.)"),
]:
    seconds = [step * per_step[name] for step in tracks[name]["steps"]]  # training seconds, steps x cost
    ax.plot(seconds, tracks[name]["nll"], style, color=colour, label=label)
ax.axhline(best_track, color="black", ls="--", label="exact (target entropy)")
ax.axhline(gaussian_track, color="tab:gray", ls="-.", label="best single Gaussian")
ax.axhline(goal, color="gray", ls=":", label="goal: a quarter of the way down")
ax.set(
    xscale="log",
    ylim=(best_track - 0.2, best_track + 2.5),
    title="test NLL during training",
    xlabel="training seconds (log scale)",
    ylabel="nats per point",
)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# proves C13: CFM trains a CNF without simulation, far faster than maximum likelihood, at equal quality. Both
# reach the goal; per step CFM is over 10 times faster, and it reaches the goal in at most a tenth of the
# time maximum likelihood needs (bounds from the tracked steps). Its final test NLL is comparable: within
# 0.1 nats per point of the CNF's (0.1 nats: a density off by about 10% on average).
SPEEDUP = 10
for name in ("CFM", "CNF"):
    prove("C13", min(tracks[name]["nll"]), goal, what=f"{name}: best tracked test NLL vs the goal (nats)")
prove("C13", per_step["CNF"] / per_step["CFM"], SPEEDUP, ">=", what="training time per step, ML / CFM")
prove(
    "C13", cnf_time_at_least / cfm_time_at_most, SPEEDUP, ">=", what="time to the NLL goal, ML / CFM (bounds)"
)
assert paired.mean() < 0.1
# control for C13: the same goal check rejects models that have not got there: the untrained network, and
# maximum likelihood cut short at its first tracked step.
control("C13", untrained_track, goal, what="untrained network: test NLL vs the goal (nats)")
cut = cnf_track["steps"][0]
control("C13", cnf_track["nll"][0], goal, what=f"ML cut short at step {cut}: test NLL vs the goal (nats)")

# %% [markdown]
# Why the gap? A maximum-likelihood step runs an adaptive ODE solver (dopri5, a few dozen evaluations of
# the network *and* of its divergence, each needing extra backward passes) and back-propagates through all
# of it. (A cheap fixed-step solver, say 8 RK4 steps, is no way out: the network learns to exploit the
# solver's error, its training "NLL" drops below the exact entropy while an accurate solver scores it far
# worse. Try it: open question 6.) A CFM step evaluates the network once on a batch of points drawn in closed
# form. The price of CFM is that it learns the field of one particular path (here the OT path), not the
# field that is best for likelihood; the scores above show that this costs little.
#
# ## Exercises
#
# **Checked exercises.** Each is a function to write. Replace the line `raise NotImplementedError(...)` by your
# code and run the cell: `check` runs your function on random inputs against the library and says what is
# right, what is off and by how much, and which common slip your answer matches. Until you fill it in, it
# says "not done yet" and the rest of the notebook runs as before. The solutions are in
# `solutions/04_flow_matching.py` (a handout for learners leaves that folder out).
#
# **Checked 1: the velocity of any Gaussian path.** Write $u_t(x\mid\text{data})$ (section 2) from $\alpha_t$,
# $\sigma_t$ and their time derivatives, given as columns `(B, 1)` so that they broadcast against `x` `(B, D)`.
# The check compares it with the velocity that `lessons.paths.GaussianPath.sample` returns, on the OT, VP and
# VE paths: a formula that holds for OT only is caught.

# %%
from lessons.exercises import check


def gaussian_path_velocity(x, data, alpha, sigma, d_alpha, d_sigma):
    """u_t(x | data), (B, D), at x and data (B, D); alpha, sigma, d_alpha and d_sigma are (B, 1)."""
    raise NotImplementedError("hint: write the noise that takes data to x, then differentiate the flow map")


check("gaussian_path_velocity", gaussian_path_velocity)

# %% [markdown]
# **Checked 2: the CFM loss by hand.** Write the conditional flow-matching loss on the OT path ($\sigma_\min = 0$)
# for a batch of data, noise and times, as section 4 does in three lines, returning a tensor that training can
# differentiate. The check compares it with `lessons.flow_matching.cfm_loss` on two batches with a fixed network.


# %%
def ot_cfm_loss(model, data, noise, t):
    """The CFM loss (a 0-dim tensor) on the OT path; data and noise (B, D), t (B,); call model(x=..., t=...)."""
    raise NotImplementedError("hint: t = 0 is noise, t = 1 is data; the target is the path's velocity")


check("ot_cfm_loss", ot_cfm_loss)

# %% [markdown]
# **Checked 3: the constant between CFM and FM.** Estimate, from `n` samples, the constant of section 5,
# $\mathbb E\,\|u_t(x_t\mid\text{data}) - u_t(x_t)\|^2$ at one time `t` (a float), for a mixture target: the exact
# marginal field is `ExactMixtureModel(mixture, path.schedule, "velocity")`. Your answer is random, so the check
# compares it with its own estimate from ten times as many samples, in standard errors of the difference.


# %%
def cfm_fm_constant(mixture, path, t, n):
    """A Monte Carlo estimate from n samples of E||u_t(x_t | data) - u_t(x_t)||^2 at the time t; a float."""
    raise NotImplementedError("hint: x_t and its velocity from path.sample, then the squared norms")


check("cfm_fm_constant", cfm_fm_constant)

# %% [markdown]
# **Open questions** (no automatic check: each asks for an experiment or a derivation; what a good answer
# contains is said under it).
#
# 1. **Another path.** Train the same network with `cfm_loss` on `GaussianPath(VPSchedule())` (draw
#    $t$ with `lessons.flow_matching.sample_times(B, t_max=0.99)`: VP's field blows up at $t = 1$) and redo the
#    error-per-$t$ plot against `ExactMixtureModel(mixture, VPSchedule(), "velocity")`. Where is the error largest,
#    and why?
#    *A good answer* shows the plot, locates the largest error in $t$, and ties it to the size of the target:
#    VP's conditional velocity grows without bound as $t \to 1$ ($\dot\sigma_t \to -\infty$), so the regression
#    target is largest and noisiest near the data end.
# 2. **$\sigma_\min$.** Use `LinearSchedule(sigma_min=0.1)`. What is $p_1$ now? Check that the samples are
#    the target blurred by noise of std 0.1 (compare variances per component).
#    *A good answer* states $p_1 = q * \mathcal N(0, \sigma_\min^2 I)$ (each component's variance grows by
#    $\sigma_\min^2$), and compares measured per-component variances with $s_k^2 + 0.01$, with standard errors.
# 3. **Train with FM itself.** Our target has an exact field, so you can train with `fm_loss` directly.
#    Compare the loss curves of FM and CFM (noise, final value) and the learned fields. Which would you
#    use for real data, and why?
#    *A good answer* shows both curves (FM's goes towards zero and is less noisy; CFM's stalls at the constant of
#    checked exercise 3), compares the learned fields with the exact one, and says CFM for real data, whose
#    marginal field is unknown.
# 4. **The wrong target.** Train with the wrong target of section 5 (data shifted by one in the batch).
#    Derive the field it learns, $\mathbb E[u_t(x\mid\text{data}')\mid x_t=x]$ with data$'$ independent of $x_t$,
#    and predict what its samples look like; then check.
#    *A good answer* uses that $u_t(x\mid\text{data}')$ is affine in data$'$, so the learned field is the conditional
#    field of the data's mean, $u_t(x\mid\mathbb E[\text{data}])$, whose flow carries every noise to that one point;
#    the samples then sit on the mean of the target.
# 5. **Longer.** Run with `COURSE_BUDGET=full`. Does CFM's NLL keep improving? What limits it (hint:
#    the learning rate is constant; try a decay)?
#    *A good answer* plots the test NLL against steps for both runs, with the entropy as the floor, and
#    compares a constant learning rate with a decaying one at equal steps.
# 6. **Cheating the solver.** Train the CNF with `method="rk4", solver_steps=8` for a few hundred steps and
#    print its training loss next to the test NLL from an accurate solve (`method="dopri5"`). What happens?
#    *A good answer* finds the training loss falling below the entropy while the accurate test NLL gets worse,
#    and explains it: the network learns a field whose 8-step discretisation is not the flow it defines, so the
#    training "NLL" is not the likelihood of any density.
#
# ## What to remember
# - FM regresses a network on a field $u_t$ that generates a path from noise to data; $u_t$ is unknown for
#   real data.
# - A Gaussian conditional path $x_t = \alpha_t\,\text{data} + \sigma_t\,\text{noise}$ has the target field
#   $u_t(x\mid\text{data}) = \dot\alpha_t\,\text{data} + \frac{\dot\sigma_t}{\sigma_t}(x - \alpha_t\,\text{data})$, the time
#   derivative of its flow map; VE, VP (diffusion) and OT (straight lines) are three choices of
#   $(\alpha_t, \sigma_t)$.
# - The marginal field is the posterior-weighted average of conditional fields,
#   $u_t(x) = \mathbb E[u_t(x\mid\text{data})\mid x_t = x]$; for a Gaussian mixture it is exact.
# - CFM and FM differ by a constant, $\mathbb E\|u_t(x_t\mid\text{data}) - u_t(x_t)\|^2$, so they share gradients and
#   minimiser; that constant is why the CFM loss never reaches zero.
# - A CFM-trained network is a CNF with an exact likelihood, trained with one network evaluation per step
#   instead of an ODE solve: here about a hundred times faster per step than maximum likelihood, and, measured
#   at equal quality, tens of times less training time to reach the same test NLL.
