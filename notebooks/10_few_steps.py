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
# # Lesson 10 — Few steps: higher-order solvers, distillation and reflow, in one harness
#
# Every model of this course samples by solving an ODE (or an SDE) with many small steps, one network call each.
# Practitioners cut that cost three ways: a better **solver** for the same network, a network **distilled** so that one
# call covers the whole interval, or a flow **retrained on its own pairs** (reflow, lesson 05) so that its paths are
# straighter. This lesson measures all three on the same trained 2D models, the same noise and the same data.
#
# **What you will learn**
# - DPM-Solver++(2M): DDIM's exact step of the linear part, plus a line through the last two data predictions;
#   written out in a few lines, then checked against the library's `lessons.dpm_solver`;
# - EDM's Heun sampler and its noise-level grid (Karras et al. 2022), written out and checked against
#   `lessons.edm_sampler`;
# - how to measure a solver: its distance to the *same network's* exact ODE solution from the *same noise*, which
#   separates the solver's error from the network's; on that scale a second-order multistep solver needs at most half
#   of DDIM's steps (C38);
# - MeanFlow (Geng et al. 2025): a network of two times that learns the *average* velocity over an interval, so that
#   one call jumps from noise to data; distilled here from the lesson's flow model, and compared with 2-rectified
#   flow trained for the same number of steps (C39);
# - one table and one figure: quality against NFE and against training compute, every method on identical work.
#
# **Claims proven here:** C38 (a second-order multistep solver reaches DDIM's 50-step quality in at most half the
# steps on the same trained model), C39 (a one-step distilled model beats its teacher's one-step Euler sample, and is
# compared with reflow at 1 and 2 NFE on identical work).
#
# Sections: 0. Setup · 1. DPM-Solver++(2M) by hand · 2. EDM's Heun sampler by hand · 3. Steps to a given accuracy
# (C38) · 4. MeanFlow: one step by learning the average velocity · 5. One step against reflow (C39) · 6. Quality
# against NFE and against compute · Exercises · What to remember

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
import time

import matplotlib.pyplot as plt
import torch

from lessons.budget import budget, by_budget
from lessons.checkpoints import checkpoint_path, load_model
from lessons.claims import control, prove
from lessons.data2d import sample_target
from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.evaluation import data_band
from lessons.models import MLP
from lessons.optimal_transport import w2

torch.manual_seed(0)
torch.set_num_threads(min(2, torch.get_num_threads()))
print(f"budget: {budget()}  (set COURSE_BUDGET=fast for a quick run)")

# %% [markdown]
# ## 0. Setup
#
# Time runs as everywhere in the course: $t = 0$ is noise, $t = 1$ is data, $x_t = \alpha_t\,\text{data} +
# \sigma_t\,\text{noise}$. We load two of the course's trained 2D models of the 8-Gaussians target (made by
# `scripts/train_2d_checkpoints.py`, the same ones the lecture app shows): an $\epsilon$-network trained with DDPM's
# loss on its 1000-step schedule, for the solvers of sections 1 to 3, and a velocity network trained with I-CFM on the
# straight path (lesson 04), the *teacher* of sections 4 to 6. Every sampler below starts from the same
# `noise`; quality against data is the $W_2$ distance to one fixed set of target samples, with the data-vs-data
# band (20 pairs of independent target samples of the same size) as its scale.

# %%
N = 2000  # samples per cloud
build = lambda settings: MLP(**settings["model"])  # noqa: E731
eps_model, eps_settings = load_model(checkpoint_path("2d", "ddpm.pt"), build)
teacher, teacher_settings = load_model(checkpoint_path("2d", "icfm.pt"), build)
ddpm = DDPM(eps_settings["ddpm_steps"], eps_settings["beta_start"], eps_settings["beta_end"])
schedule = DiscreteVPSchedule(ddpm)  # the eps-network's alpha_t, sigma_t as functions of course time
noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(0))
data = sample_target("8gaussians", N, seed=99)
band = data_band(
    lambda a, b: w2(a, b, solver="emd"), lambda seed: sample_target("8gaussians", N, seed=100 + seed)
)


def w2_to_data(x):
    """W2 between a cloud of N samples and the fixed data set (exact, by POT's network simplex)."""
    return w2(x, data, solver="emd")


print(
    f"eps-network: DDPM, T = {ddpm.num_steps}, trained {eps_settings['train_steps']} steps; teacher: I-CFM, "
    f"trained {teacher_settings['train_steps']} steps (both in the {teacher_settings['budget']} budget)"
)
print(f"W2 data vs data, n = {N}: {band.min():.3f} to {band.max():.3f} (mean {band.mean():.3f})")

# %% [markdown]
# $W_2$ between two finite samples of the *same* law is far from 0 at this size: that is the floor every sampler's
# $W_2$ sits on, and the spread of the band is how much two equally good samplers can differ by chance.
#
# ## 1. DPM-Solver++(2M) by hand
#
# The probability-flow ODE of a diffusion model is easiest in the half log-SNR $\ell = \log(\alpha/\sigma)$. Written
# for $x/\sigma$ it has the exact solution
# $$ \frac{x_s}{\sigma_s} = \frac{x_t}{\sigma_t} + \int_{\ell_t}^{\ell_s} e^{\ell}\, D(x_\ell)\, \mathrm d\ell, $$
# where $D(x_t) = (x_t - \sigma_t\hat\epsilon)/\alpha_t$ is the network's data prediction. Only the integral needs
# approximating. Hold $D$ constant at $D(x_t)$ and you get, with $h = \ell_s - \ell_t$,
# $$ x_s = \frac{\sigma_s}{\sigma_t} x_t + \alpha_s (1 - e^{-h})\, D, $$
# which is **DDIM** (lesson 02), a first-order method. DPM-Solver++(2M) (Lu et al. 2022) replaces $D$ by the line
# through the last two data predictions, read at the middle of the step:
# $$ D = \Big(1 + \frac{1}{2r}\Big) D(x_t) - \frac{1}{2r} D(x_{t_\text{prev}}), \qquad r = h_\text{prev}/h. $$
# It needs no extra network call: the previous prediction is kept from the step before. The first step has no
# previous prediction and the last one goes to $\sigma = 0$ (where $h$ is infinite), so both are DDIM steps.
# The argument `correction` multiplies the line's slope: 1 is the method, 0 is DDIM, and $-1$ is a deliberately wrong
# solver that leans the wrong way, the control of section 3.


# %%
@torch.no_grad()
def my_dpm_solver_2m(model, noise, schedule, ts, correction=1.0):
    c = schedule(ts.to(torch.float64))  # alpha and sigma at every time of the grid
    x, d_prev, h_prev = noise, None, None
    for i in range(len(ts) - 1):
        a_t, s_t, a_s, s_s = c.alpha[i], c.sigma[i], c.alpha[i + 1], c.sigma[i + 1]
        eps_hat = model(x=x, t=ts[i].expand(x.shape[0]))
        d_now = (x - s_t * eps_hat) / a_t  # the data prediction D(x_t)
        if s_s == 0:  # the last step, into the data
            x = a_s * d_now
            break
        h = torch.log(a_s / s_s) - torch.log(a_t / s_t)
        d = d_now
        if d_prev is not None:
            slope = correction * h / (2 * h_prev)  # 1 / (2 r)
            d = (1 + slope) * d_now - slope * d_prev
        x = ((s_s / s_t) * x + a_s * (1 - torch.exp(-h)) * d).to(noise.dtype)
        d_prev, h_prev = d_now, h
    return x


# %%
from lessons.dpm_solver import dpm_solver_2m  # the library's version

ts20 = ddim_times(ddpm, 20)  # DDIM's grid: 20 evenly spaced steps of the 1000
mine = my_dpm_solver_2m(eps_model, noise, schedule, ts20)
library = dpm_solver_2m(eps_model, noise, schedule, ts20)
gap_2m = (mine - library.final).abs().max().item()
as_ddim = my_dpm_solver_2m(eps_model, noise, schedule, ts20, correction=0.0)
gap_ddim = (as_ddim - ddim(eps_model, noise, schedule, ts20).final).abs().max().item()
print(f"by hand vs lessons.dpm_solver, 20 steps: largest difference {gap_2m:.1e} (NFE {library.nfe})")
print(f"by hand with correction = 0 vs lessons.ddim.ddim: largest difference {gap_ddim:.1e}")
assert (
    gap_2m < 1e-4 and gap_ddim < 1e-4
)  # float32 rounding; a wrong coefficient moves points by ~0.01 or more

# %% [markdown]
# The library's version takes any schedule and any prediction type (through `lessons.conversions`), and, like
# diffusers' `DPMSolverMultistepScheduler`, it takes the last step at first order on grids of fewer than 15 steps
# (`lower_order_final`); `tests/test_dpm_solver.py` checks it against diffusers step by step.
#
# ## 2. EDM's Heun sampler by hand
#
# Karras et al. (2022) write the same ODE in the variables $y = x/\alpha$ and $\tilde\sigma = \sigma/\alpha$, where it
# is simply $\mathrm dy/\mathrm d\tilde\sigma = \hat\epsilon$ (the noise prediction is the slope). They solve it with
# **Heun's method**, an Euler step followed by a correction with the slope at its end (two network calls per step, one
# on the last step into $\tilde\sigma = 0$), on a grid of noise levels dense near the data,
# $\tilde\sigma_i = \big(\tilde\sigma_\max^{1/\rho} + \tfrac{i}{n-1}(\tilde\sigma_\min^{1/\rho} -
# \tilde\sigma_\max^{1/\rho})\big)^\rho$ with $\rho = 7$, then $\tilde\sigma = 0$. Their image settings are
# $\tilde\sigma \in [0.002, 80]$; here we take the range of this schedule, so that the grid starts where DDIM starts
# (at $t = 0$) and every sampler maps the same noise, and ends one DDPM step before the data ($k = 1$, the cleanest
# level the network was trained at). We build that grid once by hand; from then on `ddpm_karras_times` builds it.


# %%
@torch.no_grad()
def my_edm_heun(model, noise, schedule, ts):
    c = schedule(ts.to(torch.float64))
    level = c.sigma / c.alpha  # sigma-tilde at each time of the grid
    y = noise / c.alpha[0]
    for i in range(len(ts) - 1):
        slope = model(x=(c.alpha[i] * y).to(noise.dtype), t=ts[i].expand(y.shape[0]))
        y_next = y + (level[i + 1] - level[i]) * slope  # Euler
        if level[i + 1] > 0:  # Heun's correction: the average of the slopes at both ends
            slope_next = model(x=(c.alpha[i + 1] * y_next).to(noise.dtype), t=ts[i + 1].expand(y.shape[0]))
            y_next = y + (level[i + 1] - level[i]) * (slope + slope_next) / 2
        y = y_next
    return (c.alpha[-1] * y).to(noise.dtype)


# %%
from lessons.edm_sampler import ddpm_karras_times, edm_heun, edm_sigma, karras_times  # the library's version

sigma_max = edm_sigma(schedule, torch.zeros(1)).item()  # sigma-tilde at t = 0, where DDIM starts
sigma_min = edm_sigma(schedule, ddim_times(ddpm, ddpm.num_steps)[-2:-1]).item()  # one DDPM step from the data
grid_by_hand = karras_times(schedule, 10, sigma_min=sigma_min, sigma_max=sigma_max)
assert torch.equal(
    grid_by_hand, ddpm_karras_times(ddpm, 10)
)  # the library's grid over this range, bit for bit

mine = my_edm_heun(eps_model, noise, schedule, grid_by_hand)
library = edm_heun(eps_model, noise, schedule, ddpm_karras_times(ddpm, 10))
gap_heun = (mine - library.final).abs().max().item()
print(f"sigma-tilde from {sigma_max:.1f} down to {sigma_min:.3f}, then 0")
print(f"by hand vs lessons.edm_sampler, 10 levels: largest difference {gap_heun:.1e} (NFE {library.nfe})")
assert gap_heun < 1e-4

# %% [markdown]
# The library's `edm_heun` also has EDM's stochastic variant (churn: noise added before each step, Algorithm 2), and
# its tests compare it with EDM's published sampler settings.
#
# ## 3. Steps to a given accuracy (C38)
#
# What should "quality" mean when we compare solvers? A solver is only as good as the network allows: with enough
# steps every solver converges to the same point, the network's exact ODE solution from this noise. So the honest
# measure of a *solver* is its **distance to that solution**, the mean $\|x - x_\text{exact}\|$ over the same noise.
# We compute $x_\text{exact}$ with 1000 steps of DPM-Solver++(2M) and check it against 1000 steps of DDIM, a
# different, first-order method: if both agree far better than any few-step sampler below, neither is far from the
# exact solution.

# %%
exact = dpm_solver_2m(eps_model, noise, schedule, ddim_times(ddpm, 1000)).final


def error(x):
    return (x - exact).norm(dim=1).mean().item()


reference_gap = error(ddim(eps_model, noise, schedule, ddim_times(ddpm, 1000)).final)
step_counts = [1, 2, 3, 4, 5, 6, 8, *range(10, 31), 40, 50]
errors = {"DDIM": {}, "DPM-Solver++(2M)": {}, "2M with the wrong sign": {}}
for n in step_counts:
    ts = ddim_times(ddpm, n)
    errors["DDIM"][n] = error(ddim(eps_model, noise, schedule, ts).final)
    errors["DPM-Solver++(2M)"][n] = error(dpm_solver_2m(eps_model, noise, schedule, ts).final)
    errors["2M with the wrong sign"][n] = error(
        my_dpm_solver_2m(eps_model, noise, schedule, ts, correction=-1.0)
    )
heun = {}  # NFE -> error, EDM's grid, and on DDIM's grid
heun_ddim_grid = {}
for levels in (2, 3, 4, 6, 8, 10, 13, 16, 20, 25):
    run = edm_heun(eps_model, noise, schedule, ddpm_karras_times(ddpm, levels))
    heun[run.nfe] = error(run.final)
    run = edm_heun(eps_model, noise, schedule, ddim_times(ddpm, levels))
    heun_ddim_grid[run.nfe] = error(run.final)
goal = errors["DDIM"][50]
print(
    f"exact solution: 2M vs DDIM at 1000 steps differ by {reference_gap:.4f}; DDIM's 50-step error is {goal:.4f}"
)
assert reference_gap < 0.1 * goal  # the reference is converged far beyond the accuracy we compare at


def steps_to_goal(table):
    """The fewest steps (on our list) whose error is at most DDIM's 50-step error; 51 (more than 50) if none."""
    return min((n for n, e in table.items() if e <= goal), default=max(table) + 1)


needed = {name: steps_to_goal(table) for name, table in errors.items()}
print("steps   " + "  ".join(f"{name:>24s}" for name in errors))
for n in (1, 2, 4, 8, 10, 15, 20, 25, 30, 50):
    print(f"{n:5d}   " + "  ".join(f"{errors[name][n]:24.4f}" for name in errors))
print("steps to DDIM's 50-step error: " + ", ".join(f"{name} {v}" for name, v in needed.items()))
print("EDM Heun (NFE: error), EDM's grid: " + ", ".join(f"{k}: {v:.3f}" for k, v in heun.items()))
print("EDM Heun (NFE: error), DDIM's grid: " + ", ".join(f"{k}: {v:.3f}" for k, v in heun_ddim_grid.items()))

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.5))
styles = {"DDIM": "C0o-", "DPM-Solver++(2M)": "C1s-", "2M with the wrong sign": "C3x--"}
for name, table in errors.items():
    ax.loglog(list(table), list(table.values()), styles[name], ms=4, label=name)
ax.loglog(list(heun), list(heun.values()), "C2^-", ms=4, label="EDM Heun, EDM's grid (rho = 7)")
ax.loglog(list(heun_ddim_grid), list(heun_ddim_grid.values()), "C2v:", ms=4, label="EDM Heun, DDIM's grid")
ax.axhline(goal, color="grey", lw=0.8)
ax.text(1.1, goal * 1.1, "DDIM at 50 steps", color="grey", fontsize=8)
ax.set(xlabel="network calls (NFE)", ylabel="mean distance to the exact ODE solution", ylim=(1e-3, None))
ax.set_title("the same eps-network, the same noise: solver error against NFE")
ax.legend(fontsize=8)
plt.show()

# proves C38: DPM-Solver++(2M) reaches DDIM's 50-step error in at most 25 steps (half)
prove("C38", needed["DPM-Solver++(2M)"], 25, what="DPM-Solver++(2M) steps to DDIM's 50-step error")
# control for C38: the same check rejects a 2M solver whose correction leans the wrong way, and DDIM itself
control(
    "C38", needed["2M with the wrong sign"], 25, what="2M with the slope's sign flipped, steps to that error"
)
control("C38", needed["DDIM"], 25, what="DDIM (first order), steps to its own 50-step error")

# %% [markdown]
# The line through two predictions is worth about half the steps: read the 2M curve where it crosses DDIM's
# 50-step error, and compare the slopes of the two curves at the right, where the steps are small. Flip the sign of the
# correction and the solver is *worse* than DDIM from 4 steps on (the first two steps are DDIM steps in both): the
# correction is not a small decoration but the whole second-order term, and getting it wrong costs more than leaving it
# out.
#
# EDM's Heun sampler pays two network calls per step, and here it is far behind both DDIM and 2M at few calls, on EDM's
# grid and on DDIM's alike; it passes DDIM only near 50 calls. Its first step is an Euler step across an enormous range
# of noise levels (from $\tilde\sigma \approx 157$, where DDPM's schedule starts, while EDM's images start at 80), in
# variables where that step is poor. A sampler's settings are tuned on the data and schedule they were made for:
# measure before you adopt one.
#
# What does this mean for samples? Against the data, at this sample size, the solvers' differences at 25 or 50 steps
# are below what chance alone moves $W_2$ by:

# %%
for name, run in (
    ("DDIM, 50 steps", ddim(eps_model, noise, schedule, ddim_times(ddpm, 50)).final),
    ("DDIM, 25 steps", ddim(eps_model, noise, schedule, ddim_times(ddpm, 25)).final),
    ("2M, 25 steps", dpm_solver_2m(eps_model, noise, schedule, ddim_times(ddpm, 25)).final),
    ("2M, 10 steps", dpm_solver_2m(eps_model, noise, schedule, ddim_times(ddpm, 10)).final),
    ("DDIM, 10 steps", ddim(eps_model, noise, schedule, ddim_times(ddpm, 10)).final),
):
    print(f"{name:16s} W2 to data {w2_to_data(run):.3f}")
print(f"data vs data    W2 {band.min():.3f} to {band.max():.3f}")

# %% [markdown]
# That is why solvers are compared on the distance to the exact solution: it is measured without sampling noise (the
# same noise goes in), so it resolves differences that a distance between clouds of samples cannot.
#
# ## 4. MeanFlow: one step by learning the average velocity
#
# Now the flow side. The teacher is a velocity field $v(x, t)$; its one-step Euler sample is $x_1 = x_0 + v(x_0, 0)$.
# At $t = 0$ with independent noise and data, the marginal velocity is $v(x, 0) = E[\text{data}] - x$, so one exact Euler
# step sends *every* noise point to the data mean: one step of a velocity field is as bad as a sampler can be.

# %%
from lessons.solvers import solve_ode

teacher_one = solve_ode(teacher, noise, steps=1).final
print(
    f"teacher, one Euler step: W2 to data {w2_to_data(teacher_one):.3f}; the samples' spread "
    f"{teacher_one.std(0).mean():.3f} (data: {data.std(0).mean():.3f})"
)

# %% [markdown]
# A step from $s$ to $t$ would be exact if it used the **average velocity** over the interval instead of the velocity
# at its start,
# $$ u(x_s, s, t) = \frac{1}{t - s}\int_s^t v(x_\tau, \tau)\,\mathrm d\tau = \frac{x_t - x_s}{t - s}, $$
# along the ODE's path through $x_s$. MeanFlow (Geng et al. 2025) trains a network of *two* times to output $u$. It
# never integrates the ODE: differentiate $(t - s)\,u(x_s, s, t) = x_t - x_s$ in $s$ along the path ($x_t$ does
# not move) and you get an identity that involves only $u$ and $v$ at time $s$,
# $$ u(x_s, s, t) = v(x_s, s) + (t - s)\,\frac{\mathrm d}{\mathrm ds} u(x_s, s, t), \qquad
#    \frac{\mathrm d}{\mathrm ds} u = \partial_x u \; v + \partial_s u . $$
# The total derivative is one forward-mode Jacobian-vector product (`torch.func.jvp` with tangent $(v, 1, 0)$ on
# $(x, s, t)$), about the cost of a forward pass. The loss regresses $u_\theta(x_s, s, t)$ on the right-hand side with
# the gradient stopped there. With $s = t$ it is flow matching; with $s = 0$, $t = 1$ the network is a one-step
# sampler, $x_1 = x_0 + u(x_0, 0, 1)$.
#
# For $v$ we can use the conditional velocity $\text{data} - \text{noise}$ (MeanFlow from scratch) or the teacher's
# marginal velocity $v(x_s, s)$ (distillation). We distil: the teacher's $v$ has no sampling noise, so the target of
# the identity is exact up to the teacher's own error, and the student learns in a few thousand steps. We prefer it to
# consistency distillation, the other common one-step recipe, because it has one network and one loss, with no
# target network, no discretisation of the ODE and no schedule of step sizes; and because its identity can be checked
# against a closed form (`tests/test_mean_flow.py` does, for a Gaussian target whose flow map is affine).
#
# Against it we put **2-rectified flow** (lesson 05): the teacher retrained on its own (noise, sample) pairs, so that
# its paths straighten and Euler's one step improves. Both start from the same teacher, train for the same number of
# steps on batches of the same size, and are timed here; reflow also pays for its pairs (50 RK4 steps of the teacher
# per pair). Every few hundred steps we measure both one-step samples, for the quality-against-compute curve of
# section 6.

# %%
from lessons.couplings import pair_batches, reflow_pairs
from lessons.flow_matching import cfm_batch_loss
from lessons.mean_flow import AverageVelocityMLP, mean_flow_batch_loss, mean_flow_sample
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule
from lessons.training import train

STEPS = by_budget(fast=1500, full=6000)
BATCH = 256
train_data = sample_target("8gaussians", 20_000, seed=1)  # the teacher's training data
curves = {"MeanFlow": [], "2-rectified flow": []}  # (training seconds, W2 at one step)


def one_step(name, model):
    if name == "MeanFlow":
        return mean_flow_sample(model, noise, steps=1).final
    return solve_ode(model, noise, steps=1).final


def train_watched(name, model, loss, batches):
    """Train for STEPS steps (the same learning rate and seed for every model), recording (seconds of training so
    far, one-step W2) six times on the way; the time spent measuring is left out of the seconds."""
    clock = {"start": time.perf_counter(), "spent": 0.0}

    def callback(step, model, losses):
        start = time.perf_counter()
        model.eval()
        curves[name].append((start - clock["start"] - clock["spent"], w2_to_data(one_step(name, model))))
        model.train()
        clock["spent"] += time.perf_counter() - start

    run = train(
        model,
        loss,
        batches,
        STEPS,
        lr=2e-3,
        seed=0,
        device="cpu",
        callback=callback,
        callback_every=STEPS // 6,
    )
    model.eval()
    return run


student = AverageVelocityMLP(dim=2, hidden=128, depth=3)
batches = pair_batches(train_data, BATCH, "independent", seed=5)
meanflow_run = train_watched("MeanFlow", student, mean_flow_batch_loss(teacher=teacher), batches)

start = time.perf_counter()
pair_noise = torch.randn(by_budget(fast=5_000, full=20_000), 2, generator=torch.Generator().manual_seed(7))
pair_noise, pair_samples = reflow_pairs(teacher, pair_noise, steps=50, method="rk4")
pairs_seconds = time.perf_counter() - start
rectified = copy.deepcopy(teacher).train()
batches = pair_batches(pair_samples, BATCH, "paired", source=pair_noise, seed=6)
reflow_run = train_watched(
    "2-rectified flow", rectified, cfm_batch_loss(GaussianPath(LinearSchedule())), batches
)
curves["2-rectified flow"] = [(s + pairs_seconds, q) for s, q in curves["2-rectified flow"]]
cost = {
    "MeanFlow": curves["MeanFlow"][-1][0],
    "2-rectified flow": curves["2-rectified flow"][-1][0],
}
print(f"{STEPS} steps each, batches of {BATCH}")
print(
    f"MeanFlow: {cost['MeanFlow']:.1f} s of training; last 100 losses {sum(meanflow_run.losses[-100:]) / 100:.4f}"
)
print(
    f"2-rectified flow: {len(pair_noise)} pairs in {pairs_seconds:.1f} s, then {cost['2-rectified flow'] - pairs_seconds:.1f} s "
    f"of training; last 100 losses {sum(reflow_run.losses[-100:]) / 100:.4f}"
)

# %% [markdown]
# ## 5. One step against reflow (C39)
#
# All three flow models now sample the same noise at 1, 2, 4 and 8 network calls: the teacher and the rectified flow
# with Euler steps, the MeanFlow student with its own jumps $x_{t_{i+1}} = x_{t_i} + (t_{i+1} - t_i)\,u(x_{t_i},
# t_i, t_{i+1})$. The check: the student's one-step $W_2$ lies inside the data-vs-data band (its samples are as close
# to the data as another sample of the data is). The controls run the same check on the teacher's one Euler step and
# on the student's *instantaneous* velocity $u(x, 0, 0)$ taken as one Euler step: the same network, asked for the wrong
# interval.

# %%
flow_nfes = (1, 2, 4, 8)
flow_w2 = {
    "teacher (Euler)": {k: w2_to_data(solve_ode(teacher, noise, steps=k).final) for k in flow_nfes},
    "2-rectified flow (Euler)": {
        k: w2_to_data(solve_ode(rectified, noise, steps=k).final) for k in flow_nfes
    },
    "MeanFlow": {k: w2_to_data(mean_flow_sample(student, noise, steps=k).final) for k in flow_nfes},
}
with torch.no_grad():
    zero = torch.zeros(N)
    instantaneous = noise + student(noise, zero, zero)  # u(x, 0, 0) = v(x, 0): one Euler step of the student
instantaneous_w2 = w2_to_data(instantaneous)
print(f"W2 to data (data vs data {band.min():.3f} to {band.max():.3f})")
print("NFE   " + "  ".join(f"{name:>26s}" for name in flow_w2))
for k in flow_nfes:
    print(f"{k:3d}   " + "  ".join(f"{flow_w2[name][k]:26.3f}" for name in flow_w2))
print(f"the student's instantaneous velocity, one Euler step: {instantaneous_w2:.3f}")

fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), sharex=True, sharey=True)
teacher_long = solve_ode(teacher, noise, steps=100).final
clouds = (
    ("teacher, 1 Euler step", teacher_one, flow_w2["teacher (Euler)"][1]),
    (
        "2-rectified flow, 1 step",
        solve_ode(rectified, noise, steps=1).final,
        flow_w2["2-rectified flow (Euler)"][1],
    ),
    ("MeanFlow, 1 step", mean_flow_sample(student, noise, steps=1).final, flow_w2["MeanFlow"][1]),
    ("teacher, 100 Euler steps", teacher_long, w2_to_data(teacher_long)),
)
for ax, (title, x, distance) in zip(axes, clouds):
    ax.scatter(data[:, 0], data[:, 1], s=2, c="lightgrey")
    ax.scatter(x[:, 0], x[:, 1], s=2, c="C0")
    ax.set_title(f"{title}\nW2 {distance:.2f}", fontsize=9)
    ax.set_aspect("equal")
plt.show()

# proves C39: the distilled model's one step is as close to the data as another sample of the data (inside the band)
prove(
    "C39", flow_w2["MeanFlow"][1], band.max(), what="MeanFlow, one step, W2 to data (data-vs-data band's top)"
)
# control for C39: the same check rejects the teacher's one Euler step, and the student's own instantaneous velocity
control("C39", flow_w2["teacher (Euler)"][1], band.max(), what="the teacher, one Euler step, W2 to data")
control("C39", instantaneous_w2, band.max(), what="the student's u(x, 0, 0) as one Euler step, W2 to data")

# %% [markdown]
# The teacher's one step collapses; both few-step models draw the eight modes. The check on the student's own
# instantaneous velocity fails as it must: what makes one step work is the interval the network was asked about,
# not the network.
#
# Which of the two few-step models is better? Their $W_2$ differ by far less than the width of the
# data-vs-data band, so $W_2$ cannot tell. Section 3's idea resolves it: both models were trained to reproduce
# the *teacher's* map from noise to data (the student through the teacher's velocity, the rectified flow through the
# teacher's pairs), so measure each one's distance to that map, point by point from the same noise. The difference
# of two such distances is a mean over $N$ paired points, with a standard error computed from them.

# %%
teacher_map = solve_ode(
    teacher, noise, steps=200, method="rk4"
).final  # the teacher's ODE solution of this noise
samples = {
    "2-rectified flow (Euler)": lambda k: solve_ode(rectified, noise, steps=k).final,
    "MeanFlow": lambda k: mean_flow_sample(student, noise, steps=k).final,
}
map_error = {  # per point: distance to the teacher's ODE solution from the same noise, (N,)
    name: {k: (sample(k) - teacher_map).norm(dim=1) for k in flow_nfes} for name, sample in samples.items()
}
print("NFE   mean distance to the teacher's map: " + ", ".join(samples))
for k in flow_nfes:
    print(f"{k:3d}   " + "  ".join(f"{map_error[name][k].mean():26.3f}" for name in samples))
for k in (1, 2):
    gap = map_error["MeanFlow"][k] - map_error["2-rectified flow (Euler)"][k]  # paired, (N,)
    se = gap.std() / N**0.5
    closer = "MeanFlow" if gap.mean() < 0 else "2-rectified flow"
    print(
        f"at {k} NFE {closer} is closer to the teacher's map by {gap.mean().abs():.3f} "
        f"(standard error {se:.3f}, {gap.mean().abs() / se:.1f} standard errors)"
    )

# %% [markdown]
# In both budgets the answer depends on the number of calls, each time by many standard errors: at one call the
# rectified flow follows the teacher's map more closely, at two and four calls MeanFlow does, and at eight they are
# level. Reflow's pairs *are* the teacher's map, and a straightened flow gets most of it in one Euler step; MeanFlow
# meets the map only through the identity's derivative, which is hardest to learn for the longest jump, from $s = 0$
# to $t = 1$, and easier over the shorter intervals of two or four jumps. None of this shows in $W_2$ at $N = 2000$.
# The next section adds what each cost.
#
# ## 6. Quality against NFE and against compute
#
# One figure for all of the lesson's samplers, on the same noise and data: on the left, $W_2$ against the number of
# network calls, the diffusion solvers of section 3 beside the flow models; on the right, the one-step $W_2$ of the
# student and of the rectified flow against the seconds of training measured above (reflow's curve starts at the
# cost of its pairs), with the teacher at zero extra cost.

# %%
diffusion_nfes = (1, 2, 4, 8, 15, 25, 50)
diffusion_w2 = {
    "DDIM": {
        n: w2_to_data(ddim(eps_model, noise, schedule, ddim_times(ddpm, n)).final) for n in diffusion_nfes
    },
    "DPM-Solver++(2M)": {
        n: w2_to_data(dpm_solver_2m(eps_model, noise, schedule, ddim_times(ddpm, n)).final)
        for n in diffusion_nfes
    },
}
colors = {"DDIM": "C0", "DPM-Solver++(2M)": "C1", "teacher (Euler)": "C2", "MeanFlow": "C4"}
colors["2-rectified flow"] = colors["2-rectified flow (Euler)"] = "C3"
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
for name, table in {**diffusion_w2, **flow_w2}.items():
    style = "o-" if name in flow_w2 else "s--"
    left.loglog(list(table), list(table.values()), style, color=colors[name], ms=4, label=name)
left.axhspan(band.min().item(), band.max().item(), color="grey", alpha=0.2, label="data vs data")
left.set(xlabel="network calls (NFE)", ylabel="W2 to data", title="quality against NFE")
left.legend(fontsize=8)
for name, curve in curves.items():
    seconds, quality = zip(*curve)
    right.semilogy(seconds, quality, "o-", color=colors[name], ms=4, label=f"{name}, one step")
right.axhline(
    flow_w2["teacher (Euler)"][1], color=colors["teacher (Euler)"], ls=":", label="teacher, one Euler step"
)
right.axhspan(band.min().item(), band.max().item(), color="grey", alpha=0.2, label="data vs data")
right.set(xlabel="seconds of training after the teacher (this machine)", ylabel="W2 to data, one step")
right.set_title("quality against training compute")
for ax in (left, right):  # plain numbers on the log axes
    ax.minorticks_off()
    ax.set_yticks([0.4, 0.6, 1, 2, 4], ["0.4", "0.6", "1", "2", "4"])
left.set_xticks(diffusion_nfes, [str(n) for n in diffusion_nfes])
right.legend(fontsize=8)
plt.show()

rows = [
    (
        "teacher (I-CFM)",
        f"{teacher_settings['train_steps']} steps (shipped)",
        "-",
        flow_w2["teacher (Euler)"],
    ),
    (
        "2-rectified flow",
        f"+ {len(pair_noise)} pairs, {STEPS} steps",
        f"{cost['2-rectified flow']:.0f}",
        flow_w2["2-rectified flow (Euler)"],
    ),
    ("MeanFlow", f"+ {STEPS} steps", f"{cost['MeanFlow']:.0f}", flow_w2["MeanFlow"]),
]
print(f"{'model':18s} {'training':34s} {'seconds':>8s}   W2 at 1, 2, 4, 8 NFE")
for name, work, seconds, table in rows:
    print(f"{name:18s} {work:34s} {seconds:>8s}   " + ", ".join(f"{table[k]:.3f}" for k in flow_nfes))
for name, table in diffusion_w2.items():
    print(
        f"{name:18s} {'(the eps-network, no training)':34s} {'-':>8s}   "
        + ", ".join(f"{table[k]:.3f}" for k in flow_nfes)
    )
print(f"reflow / MeanFlow training seconds: {cost['2-rectified flow'] / cost['MeanFlow']:.2f}")

# %% [markdown]
# Read the left panel from the right. From 15 calls on every sampler is inside the band: for samples the choice
# of solver has stopped mattering there (the distance to the exact solution of section 3 still sees it).
# DPM-Solver++(2M) enters the band at 8 calls, where DDIM needs 15. Below 8 calls the methods that changed the
# *model* are far ahead of the methods that only changed the *solver*: at one call the solvers' $W_2$ is above 4, the
# two one-step models' about 0.5. A better solver cannot undo the curvature of the paths it integrates; a one-step
# model skips it.
#
# The price is in the right panel and in the table: training after the teacher, which the solvers never need. For
# the same number of steps on batches of the same size, reflow took less than half of MeanFlow's seconds, its pairs
# included (the ratio is printed last): a reflow step is one network call, a MeanFlow step a Jacobian-vector product
# plus a call of the teacher. At one call reflow is the better buy on both counts; at two, MeanFlow's closer fit to
# the teacher's map (section 5) costs more than twice the training. What MeanFlow buys besides is one network for
# every interval $(s, t)$ and no pairs to make or store: that pays where pairs are expensive (a slow teacher, large
# data), which a 2D example cannot show.
#
# ## Exercises
#
# **Checked exercises.** Each is a function to write. Replace the line `raise NotImplementedError(...)` by your
# code and run the cell: `check` runs your function on random inputs against the library and says what is
# right, what is off and by how much, and which common slip your answer matches. Until you fill it in, it
# says "not done yet" and the rest of the notebook runs as before. The solutions are in
# `solutions/10_few_steps.py` (a handout for learners leaves that folder out).
#
# **Checked 1: one DPM-Solver++(2M) step.** Write the update of section 1 from what `my_dpm_solver_2m` has at hand
# before a middle step: the state `x` $= x_t$, the data predictions `d_now` $= D(x_t)$ and `d_prev` $=
# D(x_{t_\text{prev}})$ of this step and the one before (all `(B, D)`), and the numbers $\alpha_s$, $\sigma_s$,
# $\sigma_t$, $h = \ell_s - \ell_t$ and $h_\text{prev}$ (0-dim float64 tensors). The check runs a 20-step sampler,
# the loop of `my_dpm_solver_2m` with your function for every step but the first and the last (DDIM's), on the
# exact $\epsilon$-model of a Gaussian mixture, and compares its samples with `lessons.dpm_solver.dpm_solver_2m` on
# the same grid; then it tries three random steps with unequal $h$ and $h_\text{prev}$, so that a wrong $r$ shows.

# %%
from lessons.exercises import check


def dpm_solver_2m_update(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev):
    """x_s (B, D): one DPM-Solver++(2M) step from x = x_t; d_now, d_prev (B, D); the others 0-dim tensors."""
    raise NotImplementedError("hint: DDIM's step of section 1, with D the line through d_now and d_prev")


check("dpm_solver_2m_update", dpm_solver_2m_update)

# %% [markdown]
# **Checked 2: MeanFlow's target.** Write the regression target of section 4, $v + (t - s)\,\frac{\mathrm d}{\mathrm
# ds} u(x, s, t)$, for a network called as `model(x, s, t)` (an `AverageVelocityMLP`), points `x` `(B, D)` at the
# times `s`, intervals' ends `t` (both `(B,)`, $s \le t$) and the velocity `velocity` $= v(x, s)$ `(B, D)`. Take the
# total derivative along the flow with one `torch.func.jvp`. The check compares your target with the one
# `lessons.mean_flow.mean_flow_jvp` gives, on two random batches with a fixed network; a wrong tangent is named.


# %%
def mean_flow_target(model, x, s, t, velocity):
    """v + (t - s) du/ds, (B, D), du/ds the derivative of model(x, s, t) along dx/ds = velocity at fixed t."""
    raise NotImplementedError("hint: which of x, s and t move when x_s slides along the flow, and how fast?")


check("mean_flow_target", mean_flow_target)

# %% [markdown]
# **Checked 3: the exact average velocity of a Gaussian.** What should a perfect MeanFlow student output? For data
# $\mathcal N(m, \text{std}^2 I)$ on the straight path the answer is a closed form. The marginal at time $\tau$ is
# $\mathcal N(\tau m, \sigma_\tau^2 I)$ with $\sigma_\tau^2 = \tau^2\,\text{std}^2 + (1 - \tau)^2$ (data and noise
# are independent), and the flow between two such Gaussians is affine: it moves the centre and scales the deviation
# from it by the ratio of the spreads. Write $u(x_s, s, t) = (x_t - x_s)/(t - s)$ for points `x` `(B, D)` at times
# `s` and ends `t` `(B,)` with $s < t$, `mean` `(D,)` and `std` a float. The check does not use the closed form:
# it integrates the exact marginal velocity of that Gaussian (`lessons.mixture.ExactMixtureModel` of a
# one-component mixture) from $s$ to $t$ with RK4, on three targets.


# %%
def gaussian_average_velocity(x, s, t, mean, std):
    """u(x_s, s, t) = (x_t - x_s) / (t - s), (B, D), on the straight path to the data N(mean, std^2 I)."""
    raise NotImplementedError("hint: x_t - t mean is x_s - s mean scaled by sigma_t / sigma_s")


check("gaussian_average_velocity", gaussian_average_velocity)

# %% [markdown]
# **Open questions** (no automatic check: each asks for an experiment; what a good answer contains is said under
# it).
#
# 1. **DPM-Solver++ on its own grid.** Run `dpm_solver_2m` on `log_snr_times` (even in log-SNR; end it one DDPM step
#    before the data and append $t = 1$) instead of DDIM's grid. How many steps does it need for DDIM's 50-step error
#    now?
#    *A good answer* redraws section 3's error curve for both grids on the same noise, reads the steps at DDIM's
#    50-step error from each, and explains the change by where each grid puts its steps in log-SNR (DDIM's even
#    grid in $t$ spends few of them where the data prediction changes fastest).
# 2. **Heun on a better grid.** Try `karras_times` with $\rho = 1, 3, 7$ and with the image range $[0.002, 80]$ (start
#    the noise at the matching time, `times_at_sigmas`). Which grid makes Heun competitive at 15 calls?
#    *A good answer* tabulates the error to the exact solution at 15 calls for each grid, remembers that a range
#    starting at 80 is a different start (the exact solution must then come from the same starting time), and
#    names the grid's property that matters: a first step that does not cross most of the noise levels at once.
# 3. **MeanFlow from scratch.** Train the student with `mean_flow_batch_loss()` (no teacher: the conditional velocity
#    data - noise) for the same steps. How much worse is one step, and why is the target noisier?
#    *A good answer* compares the one-step $W_2$ and the distance to the teacher's map of both students on the
#    same noise, and says why: data - noise is one draw of the velocity given $x_s$, whose average is the
#    teacher's $v$, so the target carries that draw's variance (through its $\mathrm du/\mathrm ds$ term too).
# 4. **How often $s = t$?** `equal_fraction` sets the share of flow-matching rows in each batch. Train with 0.25 and
#    0.75. Which one-step and four-step $W_2$ change, and in which direction?
#    *A good answer* reports both measures (W2 and the distance to the teacher's map) at 1 and 4 NFE for the three
#    fractions with the band's width in mind, and links the direction to which intervals the batches teach: rows
#    with $s < t$ train the jumps, rows with $s = t$ only the instantaneous velocity.
# 5. **Reflow's pairs.** Make the pairs with 5 Euler steps of the teacher instead of 50 RK4 steps. What happens to the
#    rectified flow's one-step sample, and what does that say about what reflow learns?
#    *A good answer* shows that the rectified flow then reproduces the 5-step Euler sampler's (biased) map rather
#    than the teacher's ODE: its one-step distance to the teacher's map grows towards that of 5 Euler steps, because
#    reflow learns the coupling it is given, errors included.

# %% [markdown]
# ## What to remember
#
# - **Measure a solver against the same network's exact solution**, from the same noise: it removes the sampling
#   noise that hides solver differences in distances between sample clouds.
# - **DPM-Solver++(2M)** is DDIM plus a line through the last two data predictions, at no extra network call; it
#   reaches DDIM's 50-step accuracy in at most half the steps (C38). Its correction is the second-order term: with the
#   wrong sign the solver is worse than DDIM.
# - **EDM's Heun sampler** pays two calls per step; its grid and noise range were tuned on images and, on this 2D
#   target and schedule, it needs many calls to pay off. Settings travel badly: measure.
# - **MeanFlow** learns the average velocity $u(x, s, t)$ through the identity $u = v + (t - s)\,\mathrm du/\mathrm ds$,
#   one Jacobian-vector product per batch; distilled from a flow, its one step lands inside the data-vs-data band
#   where the teacher's one Euler step collapses (C39). **2-rectified flow**, which instead straightens the
#   teacher's paths, follows the teacher's map more closely at one call, MeanFlow at two, and reflow trains in less
#   than half the seconds.
# - **Compare few-step models on a paired measure**: the distance to the teacher's map from the same noise resolves
#   what $W_2$ between sample clouds cannot.
# - Fewer steps cost training: the solvers are free, the student and the rectified flow are not. The table of
#   section 6 gives the price of each on identical work.
