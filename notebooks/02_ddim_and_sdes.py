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
# # Lesson 02 — DDIM, the score-SDE view and the probability-flow ODE
#
# **What you will learn**
# - DDIM: a whole family of samplers for the *same* trained DDPM network, indexed by a noise level
#   $\eta$; $\eta = 0$ is deterministic, $\eta = 1$ is DDPM, and any sub-sequence of steps may be used;
# - the continuous-time view of Song et al.: the noising process as a stochastic differential
#   equation (SDE) with drift $f_t$ and diffusion $g_t$, for variance-preserving (VP) and
#   variance-exploding (VE) schedules, with time running in the course's direction;
# - the score $\nabla_x \log p_t(x) = -\hat\epsilon/\sigma_t$ from an $\epsilon$-prediction network;
#   the reverse SDE (stochastic) and the probability-flow ODE (deterministic), which share every
#   marginal but not their paths;
# - *churn*: a DDPM step is a deterministic DDIM step that goes too far, followed by adding noise back.
#
# **Claims proven here:** C4 (DDIM: $\eta=0$ deterministic, $\eta=1$ is DDPM, few steps degrade
# gracefully), C5 (reverse SDE and probability-flow ODE: same marginals, different paths),
# C6 (DDPM step = DDIM step to a further time + renoising).
#
# Sections: 0. Setup · 1. DDIM · 2. DDIM versus DDPM (C4) · 3. The score-SDE view ·
# 4. Reverse SDE versus probability-flow ODE (C5) · 5. Churn (C6) · Exercises · What to remember

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

from lessons.budget import budget, by_budget
from lessons.claims import control, prove
from lessons.data2d import sample_target, target_density
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.evaluation import data_band
from lessons.metrics import energy_distance
from lessons.mixture import ExactMixtureModel
from lessons.models import MLP
from lessons.schedules import VESchedule, VPSchedule
from lessons.solvers import solve_ode
from lessons.training import random_batches, train

torch.manual_seed(0)
print(f"budget: {budget()}  (set COURSE_BUDGET=fast for a quick run)")

# %% [markdown]
# ## 0. Setup: one schedule, one target, two models
#
# Time runs as everywhere in the course: $t = 0$ is noise, $t = 1$ is data. DDPM papers count steps
# $k$ with $k = T$ noise; Song et al.'s SDE papers use a *diffusion time* $\tau$ with $\tau = 1$ noise.
#
# | | noise end | data end | to course time |
# |---|---|---|---|
# | DDPM (Ho et al.) | $k = T$ | $k = 0$ | $t = 1 - k/T$ |
# | score SDE (Song et al.) | $\tau = 1$ | $\tau = 0$ | $t = 1 - \tau$ |
# | this course | $t = 0$ | $t = 1$ | — |
#
# We use DDPM's own schedule ($T = 1000$ linear betas), read as a continuous schedule
# $x_t = \alpha_t\,\text{data} + \sigma_t\,\text{noise}$ with $\alpha_t^2 = \bar\alpha_k$ at $t = 1 - k/T$
# (`DiscreteVPSchedule`). The target is the 8-Gaussians mixture. Because it is a Gaussian mixture, its
# noised densities $p_t$ are known in closed form, and so is the **ideal** noise predictor
# $\hat\epsilon(x, t) = \mathbb E[\text{noise} \mid x_t = x] = -\sigma_t \nabla_x \log p_t(x)$ (`ExactMixtureModel`).
# With it, every gap we measure is the sampler's doing, not the network's. We also train a real
# $\epsilon$-prediction network with DDPM's loss (lesson 01), to see what changes with model error.

# %%
ddpm = DDPM(num_steps=1000)
schedule = DiscreteVPSchedule(ddpm)
mixture = target_density("8gaussians")
exact = ExactMixtureModel(mixture, schedule)  # prediction="eps"

net = MLP(dim=2, hidden=128, depth=3)
pool = sample_target("8gaussians", 20_000, seed=1)
steps = by_budget(fast=3000, full=20_000)
result = train(net, ddpm.loss, random_batches(pool, 256), steps=steps, lr=2e-3, seed=0, device="cpu")
print(
    f"trained {result.steps_done} steps in {result.seconds:.1f} s; "
    f"loss over the last 200 steps {sum(result.losses[-200:]) / 200:.3f}"
)

# %% [markdown]
# **How far is "close"?** We compare point clouds with the energy distance (`lessons.metrics.energy_distance`),
# an unbiased estimate that is zero on average for two samples of the same law. Even then it is not
# exactly zero: two independent samples of the target itself already differ by chance. The band of
# these data-versus-data distances, on the same sample size, is what chance alone produces; we
# accept a distance as "the same law" when it stays below **twice the largest of 20 such values**
# (`lessons.evaluation.data_band`: the metric between draws with seeds 0 and 1, 2 and 3, ...).

# %%
N = 2000  # samples per cloud throughout the lesson

band = data_band(energy_distance, lambda seed: sample_target("8gaussians", N, seed=100 + seed))
tol = 2 * band.max().item()
print(
    f"data vs data, n={N}: energy distance in [{band.min():.4f}, {band.max():.4f}]  ->  tolerance {tol:.4f}"
)
data = sample_target("8gaussians", N, seed=7)

# %% [markdown]
# ## 1. DDIM: many samplers for one network
#
# Take two times $t < s$ ($s$ is less noisy). DDPM's ancestral step samples from the posterior
# $q(x_s \mid x_t, \text{data})$ with the data replaced by the network's guess
# $\hat x = (x_t - \sigma_t \hat\epsilon)/\alpha_t$. Song, Meng and Ermon noticed that a whole family of
# conditionals has the *same* marginals $q(x_s \mid \text{data}) = \mathcal N(\alpha_s\,\text{data}, \sigma_s^2 I)$:
# $$ x_s = \alpha_s \hat x + \sqrt{\sigma_s^2 - c^2}\;\hat\epsilon + c\, z, \qquad z \sim \mathcal N(0, I),
# \qquad 0 \le c \le \sigma_s, $$
# because if $x_t = \alpha_t\,\text{data} + \sigma_t \epsilon$ exactly, the two noises combine into one of
# variance $(\sigma_s^2 - c^2) + c^2 = \sigma_s^2$. DDPM's posterior is the member with
# $$ c^2_{\text{DDPM}} = \frac{\sigma_s^2}{\sigma_t^2}\Big(\sigma_t^2 - \frac{\alpha_t^2}{\alpha_s^2}\sigma_s^2\Big), $$
# and DDIM sets $c = \eta\, c_{\text{DDPM}}$. With $\eta = 0$ the only randomness left is the starting
# noise. Nothing in the training depended on $c$, so one network serves every $\eta$ and every grid of
# times $0 = t_0 < t_1 < \dots < t_K = 1$ (a sub-sequence of DDPM's 1000 steps).
#
# The DDIM paper writes all this in DDPM's notation, and lesson 06 reuses the letter $\eta$ for something else.
# One table, once:
#
# | quantity | this course | DDIM paper (Song, Meng, Ermon) | DDPM paper (Ho et al.) | lesson 06 |
# |---|---|---|---|---|
# | data end, noise end | $t = 1$, $t = 0$ | $x_0$, $x_T$ | $x_0$, $x_T$ | $t = 1$, $t = 0$ |
# | signal level (squared) | $\alpha_t^2$ | $\alpha_t$ | $\bar\alpha_t$ | $\alpha_t^2$ |
# | noise level | $\sigma_t$ | $\sqrt{1 - \alpha_t}$ | $\sqrt{1 - \bar\alpha_t}$ | $\sigma_t$ |
# | noise-to-signal ratio $\sigma_t/\alpha_t$ | $\rho_t$ (section 5) | — | — | $\eta$ |
# | fresh noise per step | $c = \eta\, c_{\text{DDPM}}$ | $\sigma_t(\eta)$ | $\sigma_t$ | — |
# | $\eta$ | DDIM's noise fraction ($0$ DDIM, $1$ DDPM) | the same | — | $\sigma/\alpha$, and (section on SDEs) the SDE's noise scale |
#
# Written out, one step is a handful of lines:


# %%
def my_ddim(model, noise, ts, eta, generator):
    x, xs = noise, [noise]
    for t, s in zip(ts[:-1].tolist(), ts[1:].tolist()):
        c_t, c_s = schedule(torch.tensor([t])), schedule(torch.tensor([s]))
        a_t, s_t, a_s, s_s = c_t.alpha.item(), c_t.sigma.item(), c_s.alpha.item(), c_s.sigma.item()
        eps = model(x=x, t=torch.full((len(x),), t))
        x_hat = (x - s_t * eps) / a_t  # the network's guess of the data
        c2 = eta**2 * (s_s**2 / s_t**2) * max(s_t**2 - (a_t / a_s) ** 2 * s_s**2, 0.0)
        x = a_s * x_hat + math.sqrt(max(s_s**2 - c2, 0.0)) * eps
        if c2 > 0:
            x = x + math.sqrt(c2) * torch.randn(x.shape, generator=generator)
        xs.append(x)
    return torch.stack(xs)


def ddpm_grid(k_steps):
    """k_steps + 1 times t = 1 - k/T on an evenly spaced sub-sequence of DDPM's steps (lessons.ddpm.ddim_times)."""
    return ddim_times(ddpm, k_steps)


# %%
from lessons.ddim import ddim  # the library's version, imported after deriving it

noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(1))
ts50 = ddpm_grid(50)
with torch.no_grad():
    for eta in (0.0, 1.0):
        mine = my_ddim(net, noise, ts50, eta, torch.Generator().manual_seed(2))
        lib = ddim(net, noise, schedule, ts50, eta=eta, generator=torch.Generator().manual_seed(2))
        gap = (mine - lib.xs).abs().max().item()
        print(f"eta={eta}: my DDIM vs lessons.ddim.ddim, largest difference {gap:.2e}; nfe={lib.nfe}")
        assert gap < 1e-4 and lib.nfe == 50

# %% [markdown]
# ## 2. DDIM versus DDPM (C4)
#
# Three statements: (a) with $\eta = 0$ the sampler is a deterministic map from noise to data, so the
# same noise gives the same sample, bit for bit, whatever the sampler's generator (the control: at $\eta = 1$ the
# same comparison must find different samples); (b) with $\eta = 1$ on all
# 1000 steps it samples the same law as DDPM's ancestral sampler (`DDPM.sample`, lesson 01);
# (c) with fewer steps DDIM's quality degrades gradually rather than collapsing.
#
# For (b) two tests. The whole output cloud, from independent noise, must agree with DDPM's.
# That test alone is weak: every good sampler lands near the target. So we also start *every* sample
# from the **same** noise point: DDPM then spreads its outputs over the modes the point can reach, and
# only a sampler with exactly DDPM's randomness reproduces that spread ($\eta = 0$ gives a single point).
# That spread is not the target, so its chance band comes from DDPM's own outputs: we draw twice as
# many and measure the energy distance between random halves, 20 times.

# %%
# proves C4 (a): eta = 0 is deterministic
# control for C4 (a): the same comparison at eta = 1 finds different samples
ts100 = ddpm_grid(100)


def rerun_gap(eta):
    """Largest difference between two runs from the SAME noise with DIFFERENT sampler generators and global state."""
    first = ddim(net, noise, schedule, ts100, eta=eta, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(123)  # a different global random state, a different generator
    second = ddim(net, noise, schedule, ts100, eta=eta, generator=torch.Generator().manual_seed(99))
    return (first.xs - second.xs).abs().max().item(), first


gap_eta0, first = rerun_gap(0.0)
gap_eta1, _ = rerun_gap(1.0)
other = ddim(net, torch.randn(N, 2), schedule, ts100, eta=0.0)
print(f"same noise, other generator: largest difference eta=0 {gap_eta0:.1e}, eta=1 {gap_eta1:.3f}")
print(
    f"different noise, eta=0: mean distance between samples {(first.final - other.final).norm(dim=1).mean():.3f}"
)
prove("C4", gap_eta0, 0.0, what="(a) eta=0, same noise, other generator: largest difference")
control("C4", gap_eta1, 0.0, what="(a) eta=1 (stochastic), same noise, other generator: largest difference")
assert (first.final - other.final).norm(dim=1).mean() > 1.0  # the map does depend on the noise

# %%
ts_full = ddpm_grid(1000)
gen = torch.Generator().manual_seed(3)
ddpm_samples = ddpm.sample(net, torch.randn(N, 2, generator=gen), generator=gen, keep_path=False).final
eta1_samples = ddim(net, noise, schedule, ts_full, eta=1.0, generator=torch.Generator().manual_seed(4)).final

# the same start for every sample: one noise point repeated
M = N // 2  # points per cloud from the shared start
start = torch.randn(1, 2, generator=torch.Generator().manual_seed(5)).repeat(M, 1)
reference = ddpm.sample(net, start.repeat(2, 1), generator=gen, keep_path=False).final  # N DDPM outputs
cond = {"DDPM": reference[:M]}
cond["DDIM eta=0.0"] = ddim(net, start[:1], schedule, ts_full, eta=0.0).final.repeat(M, 1)  # one point
for eta in (0.5, 1.0):
    cond[f"DDIM eta={eta}"] = ddim(net, start, schedule, ts_full, eta=eta, generator=gen).final
# chance band of DDPM's own outputs from this start: random halves of the N reference points
band_half = torch.tensor(
    [energy_distance(*reference[torch.randperm(2 * M, generator=gen)].chunk(2)) for _ in range(20)]
)
tol_half = 2 * band_half.max().item()

# %%
# proves C4 (b): eta = 1 samples DDPM's law
# control for C4 (b): eta = 0 and eta = 0.5 from the same start are rejected
fig, axes = plt.subplots(1, 5, figsize=(20, 4.2), sharex=True, sharey=True)
axes[0].scatter(*ddpm_samples.T, s=2, alpha=0.4, label="DDPM (ancestral)")
axes[0].scatter(*eta1_samples.T, s=2, alpha=0.4, label="DDIM eta=1")
axes[0].set_title("independent noise: whole clouds")
axes[0].legend(loc="upper right", markerscale=4)
for ax, (name, pts) in zip(axes[1:], cond.items()):
    ax.scatter(
        *pts.T,
        s=40 if name == "DDIM eta=0.0" else 3,
        alpha=0.3,
        color="C2" if name == "DDPM" else "C1",
        label=name + (" (all at one point)" if name == "DDIM eta=0.0" else ""),
    )
    ax.scatter(*start[0], marker="x", color="k", s=60, label="shared start (noise)")
    ed = energy_distance(pts, cond["DDPM"]) if name != "DDPM" else 0.0
    ax.set_title(f"one start point: {name}\nenergy distance to DDPM {ed:.4f}")
    ax.legend(loc="lower left", fontsize=8)
for ax in axes:
    ax.set_aspect("equal")
    ax.set_xlabel("x[0]")
axes[0].set_ylabel("x[1]")
fig.suptitle("C4: DDIM with eta = 1 has DDPM's randomness; eta = 0 has none, eta = 0.5 less")
plt.tight_layout(rect=(0, 0, 1, 0.92))
plt.show()

ed_whole = energy_distance(eta1_samples, ddpm_samples)
ed_cond = {name: energy_distance(pts, cond["DDPM"]) for name, pts in cond.items() if name != "DDPM"}
print(f"whole clouds: energy distance(DDIM eta=1, DDPM) = {ed_whole:.4f}  (tolerance {tol:.4f})")
for name, ed in ed_cond.items():
    print(f"one start point: energy distance({name}, DDPM) = {ed:.4f}  (tolerance {tol_half:.4f})")
assert ed_whole < tol  # a side fact: the whole-cloud test is weak (every good sampler passes it)
prove(
    "C4", ed_cond["DDIM eta=1.0"], tol_half, what="(b) eta=1 vs DDPM from one shared start, energy distance"
)
control("C4", ed_cond["DDIM eta=0.0"], tol_half, what="(b) eta=0 vs DDPM from one shared start (no noise)")
control(
    "C4",
    ed_cond["DDIM eta=0.5"],
    tol_half,
    what="(b) eta=0.5 vs DDPM from one shared start (too little noise)",
)

# %% [markdown]
# **Fewer steps.** DDPM with $K$ steps means $\eta = 1$ on a sub-sequence of $K$ of its 1000 steps; DDIM
# means $\eta = 0$ on the same grid. Every sampler here uses one network evaluation per step, so $K$ is
# also the cost (NFE). We use the same starting noise for every $K$, and both models: the exact
# denoiser (sampler error only) and the trained network (sampler and model error).
#
# "Graceful" needs a rule that could fail. DDIM with $\eta = 0$ is a first-order method (lesson 06 shows it is an
# Euler step), so from the same noise the distance $e_K$ between the $K$-step sample and the 1000-step sample should
# fall like $1/K$. We require (i) $e_K$ to decrease at every $K$, (ii) the observed order
# $p = \log(e_{10}/e_{100})/\log 10$ to be at least $0.5$ (half of first order), and (iii) 50 steps to be as good as
# 1000 in distribution: energy distance to data at $K = 50$ at most the data-vs-data tolerance above the one at
# $K = 1000$. A sampler with a bug (below: it rescales the data guess by $\alpha_t$ where $\alpha_s$ belongs) must fail.

# %%
Ks = [2, 5, 10, 20, 50, 100, 1000]
finals = {}  # (model, sampler) -> the K-step samples from the same noise, for each K
for model_name, model in (("exact", exact), ("net", net)):
    for sampler, eta in (("DDPM", 1.0), ("DDIM", 0.0)):
        finals[model_name, sampler] = [
            eta1_samples
            if (model is net and eta == 1.0 and k == 1000)  # computed above
            else ddim(
                model, noise, schedule, ddpm_grid(k), eta=eta, generator=torch.Generator().manual_seed(4)
            ).final
            for k in Ks
        ]
quality = {
    key: [energy_distance(x, data) for x in xs] for key, xs in finals.items()
}  # energy distance to data
print(
    f"{'steps':>6} | {'DDPM exact':>10} {'DDIM exact':>10} | {'DDPM net':>9} {'DDIM net':>9}   (energy distance to data)"
)
for i, k in enumerate(Ks):
    row = [quality[m, s][i] for m in ("exact", "net") for s in ("DDPM", "DDIM")]
    print(f"{k:>6} | {row[0]:>10.4f} {row[1]:>10.4f} | {row[2]:>9.4f} {row[3]:>9.4f}")
print(f"data vs data band: [{band.min():.4f}, {band.max():.4f}]")
# the network's share of the error: energy distance with the network minus with the exact denoiser, same sampler
excess = {s: [n - e for n, e in zip(quality["net", s], quality["exact", s])] for s in ("DDPM", "DDIM")}
print("network's excess error (net minus exact):")
for i, k in enumerate(Ks):
    gap = excess["DDIM"][i] - excess["DDPM"][i]
    print(
        f"{k:>6} | DDPM {excess['DDPM'][i]:>8.4f}  DDIM {excess['DDIM'][i]:>8.4f}  | DDIM - DDPM {gap:>8.4f}"
        f"  {'(within tolerance)' if abs(gap) < tol else '(beyond tolerance)'}"
    )
print(
    f"whole clouds, 1000 steps: energy distance(DDIM eta=0, DDPM) = {energy_distance(finals['net', 'DDIM'][-1], ddpm_samples):.4f}"
)


# %%
def broken_ddim(model, noise, ts):
    """A deliberately wrong DDIM (eta = 0): the data guess is rescaled by alpha_t where alpha_s belongs."""
    x = noise
    for t, s in zip(ts[:-1].tolist(), ts[1:].tolist()):
        c_t, c_s = schedule(torch.tensor([t])), schedule(torch.tensor([s]))
        eps = model(x=x, t=torch.full((len(x),), t))
        x_hat = (x - c_t.sigma * eps) / c_t.alpha
        x = c_t.alpha * x_hat + c_s.sigma * eps  # the bug: alpha_t instead of alpha_s
    return x


def path_errors(samples, reference):
    """Mean distance of each K-step sample to the 1000-step sample from the same noise."""
    return [(x - reference).norm(dim=1).mean().item() for x in samples]


def observed_order(errors):
    return math.log(errors[Ks.index(10)] / errors[Ks.index(100)]) / math.log(10)


path_err = {m: path_errors(finals[m, "DDIM"], finals[m, "DDIM"][-1]) for m in ("exact", "net")}
with torch.no_grad():
    broken = [broken_ddim(net, noise, ddpm_grid(k)) for k in Ks[:-1]]
path_err["net, broken DDIM"] = path_errors(broken, finals["net", "DDIM"][-1]) + [float("nan")]
broken_q50 = energy_distance(broken[Ks.index(50)], data)
print(
    f"{'steps':>6} | " + " ".join(f"{k:>7}" for k in Ks[:-1]) + "   (e_K: distance to the 1000-step sample)"
)
for name, errs in path_err.items():
    print(
        f"{name:>16}: "
        + " ".join(f"{e:>7.4f}" for e in errs[:-1])
        + f"   order p = {observed_order(errs):.2f}"
    )

# %%
# proves C4 (c): fewer DDIM steps degrade gracefully
# control for C4 (c): a broken DDIM step (alpha_t for alpha_s) fails the same rule
fig, ax = plt.subplots(figsize=(7, 4.5))
for (model_name, sampler), values in quality.items():
    ax.plot(
        Ks,
        [max(v, 1e-4) for v in values],
        "o-" if sampler == "DDIM" else "s--",
        color="C0" if sampler == "DDIM" else "C3",
        alpha=1.0 if model_name == "net" else 0.5,
        label=f"{sampler}, {model_name} model",
    )
ax.axhspan(1e-4, tol, color="grey", alpha=0.2, label="within data-vs-data tolerance")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("number of steps K (= network evaluations)")
ax.set_ylabel("energy distance to data (log; values < 1e-4 drawn at 1e-4)")
ax.set_title("C4: sample quality versus steps, DDPM (eta=1) and DDIM (eta=0)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

for model_name in ("exact", "net"):
    ddim_q = quality[model_name, "DDIM"]
    enough = next(k for k, v in zip(Ks, ddim_q) if v < ddim_q[-1] + tol)
    print(
        f"{model_name}: DDIM reaches its 1000-step quality (within tolerance) from K = {enough} steps;"
        f" quality at K = 2, 5, 10: {ddim_q[0]:.3f}, {ddim_q[1]:.3f}, {ddim_q[2]:.3f}"
    )
    errs = path_err[model_name]
    assert all(a > b for a, b in zip(errs, errs[1:])), "e_K should decrease with every increase of K"
    prove("C4", observed_order(errs), 0.5, ">=", what=f"(c) DDIM {model_name} model: observed order of e_K")
    prove(
        "C4",
        ddim_q[Ks.index(50)] - ddim_q[-1],
        tol,
        what=f"(c) DDIM {model_name} model: energy distance at 50 steps minus at 1000",
    )
control(
    "C4",
    observed_order(path_err["net, broken DDIM"]),
    0.5,
    ">=",
    what="(c) broken DDIM (alpha_t for alpha_s): order",
)
control(
    "C4",
    broken_q50 - quality["net", "DDIM"][-1],
    tol,
    what="(c) broken DDIM (alpha_t for alpha_s): energy distance at 50 steps minus DDIM at 1000",
)
print(f"broken DDIM: energy distance to data at 50 steps {broken_q50:.4f}")

# %% [markdown]
# What the tables show: with the exact denoiser both samplers reach the target (within the
# data-vs-data band) after 10 to 20 steps, and both fall apart at 2 steps, where a single
# prediction has to do nearly everything. DDIM's distance to its own 1000-step sample falls like $1/K$
# (order close to 1) for both models, while the broken step does not converge at all. With the trained
# network, what remains at many steps is the network's error.
#
# Does a stochastic sampler forgive that error better? One often reads so (DDPM's fresh noise at every step
# could let it forget part of an early mistake, where DDIM carries every mistake to the end). The excess
# table measures it: the network's extra distance is of the same size for both samplers, and their
# difference stays within the data-vs-data tolerance from about 10 steps on. Below that, where both are far from
# the target, the difference exceeds the tolerance; read its sign in the table (in the fast run it favours DDIM,
# the deterministic sampler). On this 2D target and network, the numbers do not show that stochastic sampling
# forgives model error better. The whole-cloud distance
# between DDIM ($\eta = 0$) and DDPM after 1000 steps is also inside the tolerance: which is why C4 (b) is
# carried by the shared-start test, not by whole clouds. The DDIM paper's striking few-step advantage was
# measured on images; on this 2D target the two are close at every $K$.

# %% [markdown]
# ## 3. The score-SDE view
#
# **Noising as an SDE.** In course time, noising runs *backwards*, from $t = 1$ (data) to $t = 0$
# (noise). One small step from $t$ to $t - h$ is the Gaussian kernel of the schedule,
# $$ x_{t-h} = \frac{\alpha_{t-h}}{\alpha_t}\, x_t + \sqrt{\sigma_{t-h}^2 - \frac{\alpha_{t-h}^2}{\alpha_t^2}\sigma_t^2}\; z . $$
# To first order in $h$, $\alpha_{t-h}/\alpha_t = 1 - h f_t$ with $f_t = \frac{d}{dt}\log\alpha_t$, and the
# added variance is $h\,(2 f_t \sigma_t^2 - 2\sigma_t \dot\sigma_t) = h\, g_t^2$. So noising is
# $$ dx = f_t\, x\, dt + g_t\, dW \quad (dt < 0), \qquad f_t = \frac{\dot\alpha_t}{\alpha_t}, \qquad
# g_t^2 = 2\sigma_t^2 f_t - 2\sigma_t\dot\sigma_t = -2\alpha_t\sigma_t \frac{d}{dt}\frac{\sigma_t}{\alpha_t}. $$
# - **VP** (DDPM's schedule, Song's $\beta(\tau) = \beta_{\min} + (\beta_{\max} - \beta_{\min})\tau$ at $\tau = 1 - t$):
#   $\alpha_t^2 + \sigma_t^2 = 1$ gives $f_t = \beta/2$ and $g_t^2 = \beta$.
# - **VE** ($\alpha_t = 1$, $\sigma_t = \sigma_{\max}(\sigma_{\min}/\sigma_{\max})^t$): no drift, $f_t = 0$, and
#   $g_t^2 = -\frac{d}{dt}\sigma_t^2 = 2\sigma_t^2\log(\sigma_{\max}/\sigma_{\min})$.
#
# **The score from an $\epsilon$-network.** Given $x_t = x$, the noise that produced it has mean $\hat\epsilon$,
# and (Tweedie) $\nabla_x \log p_t(x) = -\hat\epsilon(x, t)/\sigma_t$.
#
# **Generating.** Anderson's theorem reverses a diffusion in time; in course time ($dt > 0$, noise to data)
# $$ \text{reverse SDE:}\quad dx = \big(f_t x + g_t^2 \nabla\log p_t(x)\big)\,dt + g_t\, dW, \qquad
# \text{probability-flow ODE:}\quad \frac{dx}{dt} = f_t x + \tfrac12 g_t^2 \nabla\log p_t(x). $$
# Both have the same Fokker-Planck equation, hence the same marginals $p_t$ at every $t$: the ODE
# removes the noise term and compensates with half the score push. Substituting
# $x = \alpha_t\hat x + \sigma_t\hat\epsilon$ the ODE field becomes $\dot\alpha_t \hat x + \dot\sigma_t \hat\epsilon$,
# flow matching's marginal velocity (lesson 04; lesson 06 builds on this).

# %%
vp, ve = VPSchedule(beta_min=0.1, beta_max=20.0), VESchedule(sigma_min=0.01, sigma_max=20.0)
t = torch.linspace(0.0, 0.99, 100, dtype=torch.float64)


def my_coefficients(sched, t):
    c = sched(t)
    f = c.d_alpha / c.alpha
    return f, 2 * c.sigma**2 * f - 2 * c.sigma * c.d_sigma  # f and g^2


beta = 0.1 + (20.0 - 0.1) * (1 - t)
f_vp, g2_vp = my_coefficients(vp, t)
f_ve, g2_ve = my_coefficients(ve, t)
print("VP: f = beta/2:", torch.allclose(f_vp, beta / 2), "  g^2 = beta:", torch.allclose(g2_vp, beta))
print(
    "VE: f = 0:",
    bool((f_ve == 0).all()),
    "  g^2 = 2 sigma^2 log(smax/smin):",
    torch.allclose(g2_ve, 2 * ve(t).sigma ** 2 * math.log(20.0 / 0.01)),
)

# %%
from lessons.sde import probability_flow, reverse_sde, sde_coefficients

for sched in (vp, ve):
    k = sde_coefficients(sched, t)
    f, g2 = my_coefficients(sched, t)
    assert torch.allclose(k.f, f) and torch.allclose(k.g**2, g2)

# the probability-flow field from the exact eps-model equals the marginal velocity of flow matching
exact_vp = ExactMixtureModel(mixture, vp)
x_probe, t_probe = 3 * torch.randn(500, 2), 0.05 + 0.9 * torch.rand(500)
c = vp(t_probe)
eps = exact_vp(x=x_probe, t=t_probe)
k = sde_coefficients(vp, t_probe)
my_field = k.f[:, None] * x_probe + 0.5 * k.g[:, None] ** 2 * (-eps / c.sigma[:, None])
lib_field = probability_flow(exact_vp, vp)(x=x_probe, t=t_probe)
fm_field = ExactMixtureModel(mixture, vp, prediction="velocity")(x=x_probe, t=t_probe)
print(
    f"PF-ODE field: mine vs library {(my_field - lib_field).abs().max():.1e}, "
    f"vs flow matching's marginal velocity {(lib_field - fm_field).abs().max():.1e}"
)
assert torch.allclose(my_field, lib_field, atol=1e-4) and torch.allclose(
    lib_field, fm_field, rtol=1e-3, atol=1e-3
)

# %% [markdown]
# The reverse SDE is simulated by **Euler-Maruyama**: $x \leftarrow x + (f_t x + g_t^2\,\text{score})\,\Delta t + g_t\sqrt{\Delta t}\, z$,
# one network call per step. The probability-flow ODE is an ordinary ODE: we hand its field to the
# course's ODE solver (`lessons.solvers.solve_ode`, here Heun's method, 2 calls per step).


# %%
def my_euler_maruyama(model, sched, x, ts, generator):
    for t, s in zip(ts[:-1].tolist(), ts[1:].tolist()):
        tt = torch.full((len(x),), t)
        k, c = sde_coefficients(sched, tt), sched(tt)
        score = -model(x=x, t=tt) / c.sigma[:, None]
        z = torch.randn(x.shape, generator=generator)
        x = x + (s - t) * (k.f[:, None] * x + k.g[:, None] ** 2 * score) + k.g[:, None] * math.sqrt(s - t) * z
    return x


ts_probe = torch.linspace(0.0, 0.999, 41)
mine = my_euler_maruyama(exact_vp, vp, noise[:200], ts_probe, torch.Generator().manual_seed(8))
lib = reverse_sde(exact_vp, noise[:200], vp, ts_probe, generator=torch.Generator().manual_seed(8))
print(f"Euler-Maruyama: mine vs lessons.sde.reverse_sde {(mine - lib.final).abs().max():.1e}, nfe={lib.nfe}")
assert torch.allclose(mine, lib.final, atol=1e-4) and lib.nfe == 40

# %% [markdown]
# ## 4. Reverse SDE versus probability-flow ODE (C5)
#
# To isolate the claim we use the exact score and start both generators from the **exact** marginal
# $p_0$ (data mixed with noise, $\alpha_0 \approx 0.007$ for VP). Both then run to $t = 0.999$ on the
# continuous VP schedule, the SDE with 500 Euler-Maruyama steps, the ODE with 100 Heun steps.
# At several times we compare each cloud with a fresh sample of the exact marginal $p_t$, using as
# tolerance the data-vs-data band of $p_t$ itself (its spread changes a lot with $t$).


# %%
def marginal_sampler(sched, t_value, n):
    """draw(seed): n points of the exact p_t, alpha_t data + sigma_t noise, seeded."""
    c = sched(torch.tensor([t_value]))
    return lambda seed: mixture.sample_noised(
        n, c.alpha, c.sigma, generator=torch.Generator().manual_seed(1000 + seed)
    )


def sde_vs_ode(sched, model, start, t_end, checks, sde_steps=500, ode_steps=100, seed=9):
    ts_sde = torch.linspace(0.0, t_end, sde_steps + 1)
    sde = reverse_sde(model, start, sched, ts_sde, generator=torch.Generator().manual_seed(seed))
    ode = solve_ode(
        probability_flow(model, sched),
        start,
        ts=ts_sde[:: sde_steps // ode_steps].contiguous(),
        method="heun",
    )
    rows = []
    for t_check in checks:
        i_sde = int(round(t_check / t_end * sde_steps))
        i_ode = int(round(t_check / t_end * ode_steps))
        draw = marginal_sampler(sched, ts_sde[i_sde].item(), len(start))
        tol_t = 2 * data_band(energy_distance, draw, repeats=10).max().item()
        fresh = draw(999)
        rows.append(
            (
                ts_sde[i_sde].item(),
                energy_distance(sde.xs[i_sde], fresh),
                energy_distance(ode.xs[i_ode], fresh),
                tol_t,
            )
        )
    return sde, ode, rows


start_vp = marginal_sampler(vp, 0.0, N)(5000)
sde_vp, ode_vp, rows_vp = sde_vs_ode(vp, exact_vp, start_vp, 0.999, [0.25, 0.5, 0.75, 0.9, 0.999])
print(f"VP, exact score (nfe: SDE {sde_vp.nfe}, ODE {ode_vp.nfe})")
print(f"{'t':>6} | {'ED(SDE, p_t)':>12} {'ED(ODE, p_t)':>12} | {'tolerance':>9}")
for t_check, e_sde, e_ode, tol_t in rows_vp:
    print(f"{t_check:>6.3f} | {e_sde:>12.4f} {e_ode:>12.4f} | {tol_t:>9.4f}")

# %% [markdown]
# Two controls use the same checks on something wrong. For the marginals: an SDE with the score term halved,
# $dx = (f_t x + \tfrac12 g_t^2\nabla\log p_t)\,dt + g_t\,dW$, the ODE's drift plus the SDE's noise, whose
# marginals are too wide. For the paths, measured as the mean distance between the two ends from the same start
# divided by the same distance between unrelated samples (1 when the end forgets the start, 0 when the paths
# coincide), we require at least $0.5$; the control is two ODE solvers (Heun and Euler on the same grid), whose
# paths are the same up to discretisation error.


# %%
def worst_ratio(traj, rows):
    """max over the checked times of ED(traj at t, p_t) / tolerance, on the same fresh p_t samples as sde_vs_ode."""
    return max(
        energy_distance(traj.xs[(traj.ts - t_c).abs().argmin()], marginal_sampler(vp, t_c, N)(999)) / tol_t
        for t_c, _, _, tol_t in rows
    )


def half_score(x, t, cond=None):
    return 0.5 * exact_vp(x=x, t=t)  # eps halved = score halved


wrong_sde = reverse_sde(half_score, start_vp, vp, sde_vp.ts, generator=torch.Generator().manual_seed(9))
ode_euler = solve_ode(probability_flow(exact_vp, vp), start_vp, ts=ode_vp.ts, method="euler")


def end_distance_ratio(a, b):
    """Mean |a_i - b_i| (same start) over mean |a_i - b_j| (unrelated samples): 0 same paths, about 1 unrelated."""
    shuffled = (a - b[torch.randperm(len(b), generator=torch.Generator().manual_seed(0))]).norm(dim=1).mean()
    return ((a - b).norm(dim=1).mean() / shuffled).item()


# %%
# proves C5: same marginals at every checked t, different paths
# control for C5: an SDE with the score halved (marginals), two ODE solvers (paths)
paired = (sde_vp.final - ode_vp.final).norm(dim=1).mean().item()
shuffled = (sde_vp.final - ode_vp.final[torch.randperm(N)]).norm(dim=1).mean().item()
ode_again = solve_ode(probability_flow(exact_vp, vp), start_vp, ts=ode_vp.ts, method="heun")
sde_again = reverse_sde(exact_vp, start_vp, vp, sde_vp.ts, generator=torch.Generator().manual_seed(10))
worst = {"SDE": max(r[1] / r[3] for r in rows_vp), "ODE": max(r[2] / r[3] for r in rows_vp)}
worst["SDE, half score"] = worst_ratio(wrong_sde, rows_vp)
paths = {"SDE vs ODE": end_distance_ratio(sde_vp.final, ode_vp.final)}
paths["ODE Heun vs ODE Euler"] = end_distance_ratio(ode_vp.final, ode_euler.final)

fig, axes = plt.subplots(1, 3, figsize=(16, 5))
for ax, traj, name in (
    (axes[0], sde_vp, "reverse SDE (Euler-Maruyama)"),
    (axes[1], ode_vp, "probability-flow ODE (Heun)"),
):
    for j in range(12):
        ax.plot(*traj.xs[:, j].T, lw=0.8, color=f"C{j % 10}")
    ax.scatter(*traj.xs[0, :12].T, color="k", s=15, label="shared start (t=0)", zorder=3)
    ax.scatter(*traj.final[:12].T, marker="*", color="r", s=60, label="end (t=0.999)", zorder=3)
    ax.scatter(*mixture.means.T, marker="+", color="grey", s=80, label="mixture means")
    ax.set_title(name)
    ax.set_aspect("equal")
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.legend(fontsize=8, loc="lower left")
checks = [r[0] for r in rows_vp]
axes[2].plot(checks, [r[1] for r in rows_vp], "o-", label="reverse SDE vs exact $p_t$")
axes[2].plot(checks, [r[2] for r in rows_vp], "s-", label="PF-ODE vs exact $p_t$")
axes[2].plot(checks, [r[3] for r in rows_vp], "k:", label="tolerance (2 x data-vs-data max)")
axes[2].set_xlabel("t")
axes[2].set_ylabel("energy distance")
axes[2].set_title("marginals agree at every checked time")
axes[2].legend(fontsize=8)
fig.suptitle("C5: same marginals, different paths (same 12 starting points on the left)")
plt.tight_layout(rect=(0, 0, 1, 0.94))
plt.show()

print(f"mean |x_SDE - x_ODE| at the end, same start: {paired:.3f}; between unrelated samples: {shuffled:.3f}")
print(
    "ODE rerun from the same start is identical:",
    torch.equal(ode_again.xs, ode_vp.xs),
    f"| SDE rerun moves the ends by {(sde_again.final - sde_vp.final).norm(dim=1).mean():.3f} on average",
)
print("worst ED / tolerance over the checked times:", {k: round(v, 2) for k, v in worst.items()})
print("end distance, same start / unrelated:", {k: round(v, 3) for k, v in paths.items()})
for name in ("SDE", "ODE"):
    prove("C5", worst[name], 1.0, what=f"VP {name}, exact score: worst ED to p_t / tolerance over t")
control("C5", worst["SDE, half score"], 1.0, what="VP SDE with the score halved: worst ED to p_t / tolerance")
prove(
    "C5", paths["SDE vs ODE"], 0.5, ">=", what="paths differ: end distance SDE vs ODE, same start / unrelated"
)
control(
    "C5",
    paths["ODE Heun vs ODE Euler"],
    0.5,
    ">=",
    what="same paths: ODE Heun vs Euler, same start / unrelated",
)
assert torch.equal(ode_again.xs, ode_vp.xs)  # the ODE is a deterministic map

# %% [markdown]
# The same holds for the **VE** SDE, whose "noise" at $t = 0$ is the data plus noise of standard deviation
# $\sigma_{\max} = 20$ (four times the radius of the target), and whose paths have no drift at all:

# %%
exact_ve = ExactMixtureModel(mixture, ve)
start_ve = marginal_sampler(ve, 0.0, N)(6000)
sde_ve, ode_ve, rows_ve = sde_vs_ode(ve, exact_ve, start_ve, 1.0, [0.5, 0.8, 1.0])
for t_check, e_sde, e_ode, tol_t in rows_ve:
    print(f"VE t={t_check:.2f}: ED(SDE, p_t) {e_sde:.4f}  ED(ODE, p_t) {e_ode:.4f}  tolerance {tol_t:.4f}")
# proves C5 for VE too
prove(
    "C5",
    max(max(e_sde, e_ode) / tol_t for _, e_sde, e_ode, tol_t in rows_ve),
    1.0,
    what="VE SDE and ODE, exact score: worst ED to p_t / tolerance",
)

# %% [markdown]
# **With the trained network.** The equality of marginals holds for the true score. A learned score
# is only close, and the two generators react differently to its error, so with a trained network
# their end clouds need not agree within the data-vs-data band (compare with the table of section 2).

# %%
start_net = torch.randn(N, 2, generator=torch.Generator().manual_seed(11))
ts_net = torch.linspace(0.0, 0.999, 301)
sde_net = reverse_sde(net, start_net, schedule, ts_net, generator=torch.Generator().manual_seed(12))
ode_net = solve_ode(probability_flow(net, schedule), start_net, ts=ts_net[::6].contiguous(), method="heun")
print(
    f"trained network: ED(SDE, data) {energy_distance(sde_net.final, data):.4f}, "
    f"ED(ODE, data) {energy_distance(ode_net.final, data):.4f}, "
    f"ED(SDE, ODE) {energy_distance(sde_net.final, ode_net.final):.4f}; data-vs-data tolerance {tol:.4f}"
)

fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), sharex=True, sharey=True)
for ax, pts, name in (
    (axes[0], data, "data"),
    (axes[1], sde_net.final, "reverse SDE, trained net"),
    (axes[2], ode_net.final, "PF-ODE, trained net"),
):
    ax.scatter(*pts.T, s=2, alpha=0.4, label=name)
    ax.set_title(name)
    ax.set_aspect("equal")
    ax.set_xlabel("x[0]")
    ax.legend(loc="upper right", markerscale=4, fontsize=8)
axes[0].set_ylabel("x[1]")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Churn: a DDPM step is a DDIM step that overshoots, plus noise (C6)
#
# Write $\rho_t = \sigma_t/\alpha_t$ (noise-to-signal ratio; log-SNR $\lambda_t = -2\log\rho_t$). A deterministic
# DDIM step from $t$ to a time $u$ gives $x_u = \alpha_u\hat x + \sigma_u\hat\epsilon$. Then add noise *forward*
# from $u$ back to the noisier time $s$ with the schedule's own kernel $q(x_s \mid x_u)$:
# $$ x_s = \frac{\alpha_s}{\alpha_u} x_u + \sqrt{\sigma_s^2 - \frac{\alpha_s^2}{\alpha_u^2}\sigma_u^2}\; z
# = \alpha_s\hat x + \alpha_s\rho_u\,\hat\epsilon + \sqrt{\sigma_s^2 - \alpha_s^2\rho_u^2}\; z . $$
# This is a DDIM-family step with $c^2 = \sigma_s^2 - \alpha_s^2\rho_u^2$. It equals DDPM's posterior step when
# $\alpha_s^2\rho_u^2 = \sigma_s^2 - c^2_{\text{DDPM}} = \sigma_s^4\alpha_t^2/(\alpha_s^2\sigma_t^2)$, that is when
# $$ \rho_u = \rho_s^2/\rho_t \quad\Longleftrightarrow\quad \lambda_u = \lambda_s + (\lambda_s - \lambda_t) : $$
# **DDPM's step is a DDIM step twice as long in log-SNR, followed by renoising back.** The library's
# `churn_sampler` takes the overshoot as a parameter, $\lambda_u = \lambda_s + \text{churn}\,(\lambda_s - \lambda_t)$:
# churn 0 is DDIM, churn 1 is DDPM, more churn forgets more of the past at each step.
#
# First one step, by hand: from one point $x_t$ (repeated), DDPM's step versus DDIM to $u$ and renoising.

# %%
ts10 = ddpm_grid(10)
t_a, t_b = ts10[5].item(), ts10[6].item()  # one step of a 10-step DDPM: t = 0.5 -> s = 0.6


def lam(v):
    return schedule.log_snr(torch.tensor([v], dtype=torch.float64)).item()


u = schedule.time_at_log_snr(torch.tensor([2 * lam(t_b) - lam(t_a)], dtype=torch.float64)).item()
u_half = schedule.time_at_log_snr(torch.tensor([1.5 * lam(t_b) - 0.5 * lam(t_a)], dtype=torch.float64)).item()
print(
    f"t = {t_a:.3f} -> s = {t_b:.3f}; DDPM's step is DDIM to u = {u:.4f} "
    f"(log-SNR {lam(t_a):.2f} -> {lam(t_b):.2f} -> {lam(u):.2f}), then renoise"
)

x_t = ddim(net, noise[:1], schedule, ts10[:6], eta=1.0, generator=torch.Generator().manual_seed(13)).final
x_rep = x_t.repeat(N, 1)
step_ddpm = ddim(
    net, x_rep, schedule, torch.tensor([t_a, t_b]), eta=1.0, generator=torch.Generator().manual_seed(14)
).final


def ddim_then_renoise(u_time, seed):
    x_u = ddim(net, x_rep, schedule, torch.tensor([t_a, u_time]), eta=0.0).final  # deterministic
    c_u, c_s = schedule(torch.tensor([u_time])), schedule(torch.tensor([t_b]))
    ratio = (c_s.alpha / c_u.alpha).item()
    z = torch.randn(x_u.shape, generator=torch.Generator().manual_seed(seed))
    return x_u, ratio * x_u + math.sqrt(c_s.sigma.item() ** 2 - ratio**2 * c_u.sigma.item() ** 2) * z


u_two = schedule.time_at_log_snr(torch.tensor([3 * lam(t_b) - 2 * lam(t_a)], dtype=torch.float64)).item()
x_u, step_churn = ddim_then_renoise(u, 15)
_, step_half = ddim_then_renoise(u_half, 16)
_, step_two = ddim_then_renoise(u_two, 18)
step_ddim = ddim(net, x_rep[:1], schedule, torch.tensor([t_a, t_b]), eta=0.0).final

# %%
# proves C6 (one step): DDPM's step = DDIM step to u, then forward renoising, in distribution
# control for C6 (one step): overshooting by half (churn 0.5) or twice (churn 2) as far is rejected
mean_a, mean_b = step_ddpm.mean(0), step_churn.mean(0)
std_a, std_b = step_ddpm.std(0), step_churn.std(0)
# tolerance for this Gaussian cloud: the data-vs-data band of a Gaussian with DDPM's step mean and std
band_step = data_band(
    energy_distance,
    lambda seed: mean_a + std_a * torch.randn(N, 2, generator=torch.Generator().manual_seed(seed)),
)
tol_step = 2 * band_step.max().item()
ed_churn, ed_half = energy_distance(step_churn, step_ddpm), energy_distance(step_half, step_ddpm)
ed_two = energy_distance(step_two, step_ddpm)

fig, ax = plt.subplots(figsize=(6.5, 6))
ax.scatter(*step_ddpm.T, s=3, alpha=0.3, label="DDPM step t -> s")
ax.scatter(*step_churn.T, s=3, alpha=0.3, label="DDIM to u, renoise u -> s")
ax.scatter(*step_half.T, s=3, alpha=0.2, label="DDIM to u' (churn 0.5), renoise")
ax.scatter(*x_t[0], marker="x", color="k", s=80, label="x_t (shared start)")
ax.scatter(*x_u[0], marker="*", color="r", s=120, label="x_u (DDIM, overshoots)")
ax.scatter(*step_ddim[0], marker="D", color="purple", s=50, label="DDIM step to s")
ax.set_aspect("equal")
ax.set_xlabel("x[0]")
ax.set_ylabel("x[1]")
ax.set_title("C6: one DDPM step = DDIM to a further time + noise")
ax.legend(fontsize=8, markerscale=2)
plt.tight_layout()
plt.show()

print(f"means: DDPM {mean_a.numpy().round(4)}  DDIM+renoise {mean_b.numpy().round(4)}")
print(f"stds:  DDPM {std_a.numpy().round(4)}  DDIM+renoise {std_b.numpy().round(4)}")
print(
    f"energy distance to the DDPM step: DDIM to u + renoise {ed_churn:.5f}, "
    f"DDIM to u' + renoise {ed_half:.5f}, churn 2 {ed_two:.5f}  (tolerance {tol_step:.5f})"
)
prove(
    "C6", ed_churn, tol_step, what="one step from one x_t: DDIM to u + renoise vs DDPM step, energy distance"
)
control("C6", ed_half, tol_step, what="one step: churn 0.5 (stops short of u) vs DDPM step")
control("C6", ed_two, tol_step, what="one step: churn 2 (overshoots u) vs DDPM step")

# %% [markdown]
# And over whole runs, with the library's `churn_sampler`: churn 1 on a 10-step grid samples the law of
# 10-step DDPM, churn 0 is DDIM exactly. Between and beyond, the amount of churn is a knob.

# %%
from lessons.ddim import churn_sampler

# the library's single step against the hand-made one, same random numbers
lib_step = churn_sampler(
    net, x_rep, schedule, torch.tensor([t_a, t_b]), churn=1.0, generator=torch.Generator().manual_seed(15)
).final
print(
    f"churn_sampler step vs DDIM-to-u + renoise (same z): largest difference {(lib_step - step_churn).abs().max():.1e}"
)
assert torch.allclose(lib_step, step_churn, atol=1e-4)

g = torch.Generator().manual_seed(17)
runs = {}
for churn in (0.0, 0.5, 1.0, 2.0):
    runs[churn] = churn_sampler(net, noise, schedule, ts10, churn=churn, generator=g)
ddpm10 = ddim(net, torch.randn(N, 2, generator=g), schedule, ts10, eta=1.0, generator=g)
ddim10 = ddim(net, noise, schedule, ts10, eta=0.0)

# %%
# churn = 1 is DDPM in distribution over whole runs; churn = 0 is DDIM (side facts: see below for the proof)
ed_runs = {churn: energy_distance(r.final, ddpm10.final) for churn, r in runs.items()}
fig, axes = plt.subplots(1, 4, figsize=(17, 4.5), sharex=True, sharey=True)
for ax, (churn, r) in zip(axes, runs.items()):
    for j in range(15):
        ax.plot(*r.xs[:, j].T, lw=0.8, color=f"C{j % 10}", alpha=0.8)
    ax.scatter(*r.final.T, s=1, alpha=0.15, color="grey", label="all samples")
    ax.scatter(*r.final[:15].T, marker="*", color="r", s=40, label="ends of the drawn paths")
    ax.set_title(f"churn = {churn}: ED to 10-step DDPM {ed_runs[churn]:.4f}")
    ax.set_aspect("equal")
    ax.set_xlabel("x[0]")
    ax.legend(fontsize=7, loc="lower left")
axes[0].set_ylabel("x[1]")
fig.suptitle("C6: churn sampler, 10 steps, same starting noise (churn 0 = DDIM, churn 1 = DDPM)")
plt.tight_layout(rect=(0, 0, 1, 0.93))
plt.show()

for churn, ed in ed_runs.items():
    print(
        f"churn {churn}: energy distance to 10-step DDPM {ed:.4f}, to data {energy_distance(runs[churn].final, data):.4f}"
        f"  (tolerance {tol:.4f}), nfe {runs[churn].nfe}"
    )
print(f"churn 0 vs DDIM, same noise: largest difference {(runs[0.0].xs - ddim10.xs).abs().max():.1e}")
assert ed_runs[1.0] < tol and runs[1.0].nfe == 10
assert torch.allclose(runs[0.0].xs, ddim10.xs, atol=1e-4)

# %% [markdown]
# The whole clouds cannot tell the churns apart: every value of churn lands within the data-vs-data tolerance of
# 10-step DDPM (printed above), because each is a valid sampler of nearly the same law. What churn changes is how
# much of the past a run keeps. So the whole-sampler test fixes the past, as the one-step test did: from **one**
# point $x_t$ at $t = 0.3$ (repeated), the remaining 7 steps of the 10-step grid, with churn, against 10-step
# DDPM from the same point. The chance band again comes from DDPM's own outputs (random halves of twice as many).

# %%
# proves C6 (whole sampler): from one x_t, the rest of a churn-1 run has DDPM's law
# control for C6 (whole sampler): churn 0, 0.5 and 2 from the same x_t are rejected
x_mid = ddim(net, noise[:1], schedule, ts10[:4], eta=1.0, generator=torch.Generator().manual_seed(13)).final
rest = ts10[3:]
ref_rest = ddim(net, x_mid.repeat(2 * N, 1), schedule, rest, eta=1.0, generator=g).final  # 2N DDPM outputs
band_rest = torch.tensor(
    [energy_distance(*ref_rest[torch.randperm(2 * N, generator=g)].chunk(2)) for _ in range(20)]
)
tol_rest = 2 * band_rest.max().item()
ed_rest = {
    churn: energy_distance(
        churn_sampler(net, x_mid.repeat(N, 1), schedule, rest, churn=churn, generator=g).final, ref_rest[:N]
    )
    for churn in (0.0, 0.5, 1.0, 2.0)
}
print(
    f"from one x_t at t = {rest[0]:.2f}, {len(rest) - 1} steps: energy distance to DDPM",
    {c: round(v, 4) for c, v in ed_rest.items()},
    f"(tolerance {tol_rest:.4f})",
)
prove(
    "C6", ed_rest[1.0], tol_rest, what="rest of a 10-step run from one x_t: churn 1 vs DDPM, energy distance"
)
for churn in (0.0, 0.5, 2.0):
    control("C6", ed_rest[churn], tol_rest, what=f"rest of a 10-step run from one x_t: churn {churn} vs DDPM")

# %% [markdown]
# ## Exercises
#
# **Checked exercises.** Each is a function to write. Replace the line `raise NotImplementedError(...)` by your
# code and run the cell: `check` runs your function on random inputs against the library and says what is
# right, what is off and by how much, and which common slip your answer matches. Until you fill it in, it
# says "not done yet" and the rest of the notebook runs as before. The solutions are in
# `solutions/02_ddim_and_sdes.py` (a handout for learners leaves that folder out).
#
# **Checked 1: one DDIM step.** Write the deterministic step ($\eta = 0$) from $x_t$ to the less noisy time $s$,
# from the network's $\hat\epsilon$ at $x_t$ and the four numbers $\alpha_t, \sigma_t, \alpha_s, \sigma_s$ (section 1
# writes it inside a loop). The check compares it with `lessons.ddim.ddim` on four random steps of a VP schedule.

# %%
from lessons.exercises import check


def ddim_step(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    """x_s (B, D) from x = x_t (B, D) and eps_hat (B, D); alpha_t, sigma_t, alpha_s and sigma_s are floats."""
    raise NotImplementedError("hint: the data guess from x and eps_hat first, then renoise it to time s")


check("ddim_step", ddim_step)

# %% [markdown]
# **Checked 2: how much noise DDPM adds.** Write $c_\text{DDPM}$, the standard deviation of the fresh noise in a
# DDPM step from $t$ to $s$ (section 1). The check does not use that formula: it takes DDPM's own chain, where
# $x_k$ given $x_j$ ($j < k$) is $\mathcal N\big(\sqrt{\bar\alpha_k/\bar\alpha_j}\,x_j,\;(1 - \bar\alpha_k/\bar\alpha_j) I\big)$, and
# the Gaussian posterior of $x_j$ given $x_k$ and the data, on five pairs of steps.


# %%
def ddpm_posterior_std(alpha_t, sigma_t, alpha_s, sigma_s):
    """c_DDPM for the step from t to the later time s (all four arguments floats); a float."""
    raise NotImplementedError("hint: c^2 is the part of sigma_s^2 that the step draws afresh")


check("ddpm_posterior_std", ddpm_posterior_std)

# %% [markdown]
# **Checked 3: the SDE of a schedule.** Write the drift rate $f_t$ and the diffusion $g_t$ of the noising SDE
# (section 3) from $\alpha_t, \sigma_t$ and their time derivatives, each a tensor `(B,)` with one value per time;
# return the pair `(f, g)`. The check compares with `lessons.sde.sde_coefficients` on the VP, VE and cosine
# schedules: a formula that holds for VP only is caught.


# %%
def sde_drift_and_diffusion(alpha, sigma, d_alpha, d_sigma):
    """(f, g), each (B,), from alpha, sigma, d_alpha = d alpha / dt and d_sigma = d sigma / dt, each (B,)."""
    raise NotImplementedError("hint: f is the rate of change of log alpha; g^2 keeps sigma^2 on schedule")


check("sde_drift_and_diffusion", sde_drift_and_diffusion)

# %% [markdown]
# **Open questions** (no automatic check: each asks for an experiment or a derivation; what a good answer
# contains is said under it).
#
# 1. **DDIM inversion.** With $\eta = 0$, run `ddim` *backwards* (a decreasing grid is refused, so write
#    the step from $s$ to $t$ by hand) from data to noise, then forward again. How close do you come
#    back to the data with 10, 50, 200 steps? Why is this impossible for $\eta > 0$?
#    *A good answer* shows the backward step (the same formula with the roles of $t$ and $s$ swapped, with
#    $\hat\epsilon$ evaluated at the current point: an approximation, since the exact inverse would need it at the
#    point it lands on), a table of the reconstruction error for the three step counts that falls as the steps
#    grow, and the reason: with $\eta > 0$ each step adds fresh noise, so many noises lead to the same output and
#    the map has no inverse.
# 2. **Grids.** Replace the evenly spaced sub-sequence by one spaced evenly in log-SNR (use
#    `schedule.time_at_log_snr`). Which sampler profits more at $K = 5$ and $K = 10$?
#    *A good answer* gives the energy distance to data for DDPM and DDIM on both grids at both $K$, next to the
#    data-vs-data tolerance, names the winner for each, and says where each grid puts its steps (where the
#    log-SNR changes fast).
# 3. **An SDE with intermediate noise.** The family $dx = (f x + \frac{1+\eta^2}{2} g^2\,\text{score})\,dt + \eta g\,dW$
#    has the same marginals for every $\eta \ge 0$. Show it with the Fokker-Planck equation, then
#    check it numerically at $\eta = 0.5$ with Euler-Maruyama and the exact score.
#    *A good answer* writes the Fokker-Planck equation of the family, shows that the extra drift
#    $\frac{\eta^2}{2} g^2 \nabla\log p_t$ and the extra diffusion $\frac{\eta^2}{2} g^2 \Delta p_t$ cancel (because
#    $p_t \nabla \log p_t = \nabla p_t$), and reports the energy distance of the $\eta = 0.5$ samples to data
#    within the data-vs-data tolerance, with a deliberately wrong factor (say $1 + \eta^2$ without the $/2$) rejected.
# 4. **Churn as error correction.** Extend the churn table to the exact model: does more churn still
#    help when the score has no error? What happens at churn 4 with 10 steps, and why?
#    *A good answer* gives the table for both models side by side, separates model error (which noise can wash
#    out) from discretisation error (which every sampler has, even with the exact score), and explains churn 4
#    through the size of the deterministic overshoot: the DDIM step then travels five times the log-SNR gap.
# 5. **VE by DDIM.** `ddim` works on any schedule. Run it on the VE schedule with the exact model and
#    compare with the VE probability-flow ODE at equal NFE.
#    *A good answer* reports the energy distance to data of both at several NFE (with `solve_ode` on
#    `lessons.sde.probability_flow`), against the data band, and says which one needs fewer steps and why (DDIM
#    is Euler's method in $\sigma_t/\alpha_t$ instead of in $t$, a variable in which the ODE is much straighter).

# %% [markdown]
# ## What to remember
#
# - One trained $\epsilon$-network serves a whole family of samplers: DDIM's $\eta$ sets how much fresh noise
#   each step injects ($\eta = 0$ none, deterministic; $\eta = 1$ DDPM's posterior), on any grid of times.
# - In continuous time the noising process is an SDE with $f_t = \frac{d}{dt}\log\alpha_t$ and
#   $g_t^2 = -2\alpha_t\sigma_t\frac{d}{dt}(\sigma_t/\alpha_t)$ (VP: $\beta/2$ and $\beta$; VE: $0$ and $-\frac{d}{dt}\sigma_t^2$);
#   in the course's time it runs from $t = 1$ down to $t = 0$.
# - The score is $-\hat\epsilon/\sigma_t$. The reverse SDE and the probability-flow ODE use it to go from
#   noise to data with the same marginals $p_t$, but the ODE is a deterministic map and the SDE is not.
# - A DDPM step is a DDIM step that overshoots by the same log-SNR again, then adds noise back;
#   the overshoot ("churn") is a free knob between deterministic and very stochastic sampling.
# - With a perfect score all of these agree in distribution. With a learned score, the folklore that
#   stochastic samplers forgive model error better was not borne out here: on this target the network's extra
#   error was about the same for DDPM and DDIM (section 2). Whether it helps is a question to measure per model.
