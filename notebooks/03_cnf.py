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
# # Lesson 03: continuous normalizing flows, likelihood and the cost of simulation
#
# A diffusion model or a flow-matching model ends up as a velocity field $v_\theta(x, t)$: integrate
# $\mathrm{d}x/\mathrm{d}t = v_\theta(x, t)$ from noise at $t = 0$ to data at $t = 1$ and you get samples.
# Such a model is a **continuous normalizing flow** (CNF, Chen et al. 2018). This lesson shows what a
# CNF gives for free, an exact log-likelihood, and what it costs when we train it the old way, by
# maximum likelihood, simulating the ODE at every step. Lesson 04 removes that cost.
#
# **What you will learn**
# - the instantaneous change of variables: $\frac{\mathrm{d}}{\mathrm{d}t}\log p_t(x_t) = -\nabla\cdot v(x_t, t)$,
#   and the augmented ODE that turns it into a log-likelihood (claim C7);
# - the divergence exactly ($D$ backward passes) and by Hutchinson's estimator (one pass, unbiased,
#   with a variance we measure and predict; claim C8);
# - gradients through an ODE: backpropagation through the solver versus the adjoint method, same
#   gradient, different memory and time (claim C9);
# - maximum-likelihood training of a CNF on a 2D target, its density, its test NLL against the
#   target's entropy, and why it is slow.
#
# Time convention of the course: $t = 0$ is noise, $t = 1$ is data.

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
import time

import matplotlib.pyplot as plt
import torch

from lessons.autograd_memory import SavedTensorMeter
from lessons.budget import budget, by_budget
from lessons.claims import control, prove
from lessons.cnf import standard_normal_log_prob, train_max_likelihood
from lessons.data2d import target_density
from lessons.device import describe_device, pick_device
from lessons.divergence import draw_probes, velocity_and_divergence
from lessons.models import MLP
from lessons.solvers import solve_ode
from lessons.trajectory import CountingModel

torch.manual_seed(0)
print("budget:", budget(), "| device for this lesson: cpu | best available:", describe_device(pick_device()))

# %% [markdown]
# ## 1. A flow and its density
#
# Let $\psi_t$ be the flow of the ODE $\frac{\mathrm{d}}{\mathrm{d}t}\psi_t(x) = v(\psi_t(x), t)$,
# $\psi_0(x) = x$. Draw noise $x_0 \sim p_0 = \mathcal N(0, I)$ and push it: $x_t = \psi_t(x_0)$ has
# density $p_t$. Mass is conserved, so $p_t$ obeys the continuity equation
# $$\partial_t p_t + \nabla\cdot(p_t v) = 0 .$$
# Follow one particle and differentiate $\log p_t(x_t)$ along its path (chain rule, then the
# continuity equation, $\nabla\cdot(p v) = v\cdot\nabla p + p\,\nabla\cdot v$):
# $$\frac{\mathrm{d}}{\mathrm{d}t}\log p_t(x_t) = \frac{\partial_t p_t + v\cdot\nabla p_t}{p_t}
#   = -\nabla\cdot v(x_t, t).$$
# This is the **instantaneous change of variables**. Integrated from $0$ to $1$:
# $$\log p_1(x_1) = \log p_0(x_0) - \int_0^1 \nabla\cdot v(x_t, t)\,\mathrm{d}t .$$
# To evaluate a data point $x_1$, run the ODE *backwards* from $t = 1$ to $t = 0$ together with a
# second state $\delta$ that accumulates the divergence, $\mathrm{d}\delta/\mathrm{d}t = \nabla\cdot v$,
# $\delta(1) = 0$: the **augmented ODE**. At $t = 0$ we have the noise $x_0$ and
# $\delta(0) = -\int_0^1 \nabla\cdot v\,\mathrm{d}t$, so $\log p_1(x_1) = \log p_0(x_0) + \delta(0)$.
#
# The divergence $\nabla\cdot v = \operatorname{tr}(\partial v/\partial x) = \sum_i \partial v_i/\partial x_i$:
# one backward pass of autograd per dimension gives one row of the Jacobian, and we keep its
# diagonal entry. Written out:


# %%
def divergence_by_hand(field, x, t):
    """sum_i d v_i / d x_i, (B,), one autograd pass per dimension."""
    x = x.detach().requires_grad_(True)
    v = field(x=x, t=t)
    div = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(x.shape[1]):
        row = torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0]  # (B, D): row i of J
        div += row[:, i]
    return div


def log_likelihood_by_hand(field, data, steps):
    """Euler on the augmented ODE from t = 1 to 0; log p_1(data) = log N(noise) + delta(0), (B,)."""
    x, delta, dt = data, torch.zeros(data.shape[0], dtype=data.dtype), -1.0 / steps
    for k in range(steps):
        t = torch.full((data.shape[0],), 1.0 - k / steps, dtype=data.dtype)
        v, div = field(x=x, t=t).detach(), divergence_by_hand(field, x, t)
        x, delta = x + dt * v, delta + dt * div
    log_normal = -0.5 * (x**2).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)
    return log_normal + delta


# %% [markdown]
# ### An affine flow, whose density is known
#
# Take a constant affine field $v(x, t) = A x + b$. Its flow is
# $\psi_1(x_0) = e^{A} x_0 + A^{-1}(e^{A} - I)\,b$, so with $x_0 \sim \mathcal N(0, I)$ the data law is
# Gaussian, $p_1 = \mathcal N\big(A^{-1}(e^A - I)b,\; e^{A} e^{A^\top}\big)$, and $\nabla\cdot v = \operatorname{tr}A$.
# We pick a non-symmetric $A$ (a rotation with a squeeze), so particles swirl.
# The CNF's log-likelihood must equal this closed form.

# %%
A = torch.tensor([[0.3, -1.2], [0.8, -0.4]], dtype=torch.float64)
b = torch.tensor([1.0, -0.5], dtype=torch.float64)


def affine_field(x, t, cond=None):  # every field takes cond, used or not
    return x @ A.T + b


expm = torch.linalg.matrix_exp(A)
affine_law = torch.distributions.MultivariateNormal(
    torch.linalg.solve(A, (expm - torch.eye(2, dtype=A.dtype)) @ b), expm @ expm.T
)
affine_data = affine_law.sample((500,))
closed_form = affine_law.log_prob(affine_data)

# the library's versions, imported after deriving them by hand (so these imports sit here, not at the top)
from lessons.cnf import log_likelihood
from lessons.divergence import divergence_exact

t_half = torch.full((500,), 0.5, dtype=torch.float64)
assert torch.allclose(divergence_by_hand(affine_field, affine_data, t_half), torch.trace(A).expand(500))
assert torch.allclose(divergence_exact(affine_field, affine_data, t_half), torch.trace(A).expand(500))
by_hand = log_likelihood_by_hand(affine_field, affine_data, steps=200)
with torch.no_grad():
    euler_lib = log_likelihood(affine_field, affine_data, method="euler", steps=200)
print(
    "by hand vs library (same Euler steps): max difference", (by_hand - euler_lib.log_prob).abs().max().item()
)
assert torch.allclose(by_hand, euler_lib.log_prob, atol=1e-9)

# %% [markdown]
# The library's `log_likelihood` runs the same augmented ODE, either with a fixed-step method of
# `lessons.solvers` (`euler`, `midpoint`, `heun`, `rk4`, `rk4_38` and a number of steps: the very steps
# `solve_ode` takes) or with torchdiffeq's adaptive `dopri5`, which picks its steps to meet a tolerance
# and reports how many field evaluations (NFE) it used. Below: the error against the closed form as the solver gets better.
#
# How close must it be? As close as the solver itself says it is, estimated without the closed form.
# RK4's error falls 16-fold when the steps double, so the 32-step log-density $\ell_{32}$ is off by
# about $\tfrac{16}{15}|\ell_{32} - \ell_{64}|$ (Richardson's estimate); dopri5 at tolerance $10^{-9}$ is
# off by about its distance to a solve at $10^{-11}$. The check allows twice the estimate, plus the
# float64 rounding of 64 steps ($64 \cdot 2^{-52} \max|\log p|$). Its negative controls: the same
# solve with the divergence's sign flipped ($\log p_0 + \int \nabla\cdot v$), and the closed-form density
# of another affine flow, $A^\top$ in place of $A$ (same divergence, other covariance).

# %%
# proves C7
results, errors, fixed_nfe = {}, {}, {}
with torch.no_grad():
    for method in ("euler", "rk4"):
        for steps in (4, 8, 16, 32, 64):
            result = results[method, steps] = log_likelihood(
                affine_field, affine_data, method=method, steps=steps
            )
            errors[method, steps] = (result.log_prob - closed_form).abs().max().item()
            fixed_nfe[method, steps] = result.nfe
    adaptive = {}
    for tol in (1e-3, 1e-5, 1e-7, 1e-9):
        result = log_likelihood(affine_field, affine_data, method="dopri5", rtol=tol, atol=tol)
        adaptive[tol] = (result.nfe, (result.log_prob - closed_form).abs().max().item())
    dopri = result  # the last run: tolerance 1e-9
    dopri_tighter = log_likelihood(affine_field, affine_data, method="dopri5", rtol=1e-11, atol=1e-11)

print("fixed steps: max |log p_CNF - log p_exact|")
for (method, steps), err in errors.items():
    print(f"  {method:5s} {steps:3d} steps, NFE {fixed_nfe[method, steps]:4d}: {err:.2e}")
print("dopri5:", ", ".join(f"tol {tol:.0e}: NFE {n}, error {e:.1e}" for tol, (n, e) in adaptive.items()))

fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
with torch.no_grad():
    paths = solve_ode(affine_field, torch.randn(12, 2, dtype=torch.float64), steps=60, method="rk4")
for k in range(12):
    axes[0].plot(paths.xs[:, k, 0], paths.xs[:, k, 1], lw=1)
axes[0].scatter(paths.xs[0, :, 0], paths.xs[0, :, 1], s=12, c="k", label="noise (t = 0)")
axes[0].scatter(paths.xs[-1, :, 0], paths.xs[-1, :, 1], s=12, c="r", label="data (t = 1)")
axes[0].set(title="trajectories of the affine flow", xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
axes[0].legend()
axes[1].scatter(closed_form, dopri.log_prob, s=4)
axes[1].plot(
    [closed_form.min(), closed_form.max()], [closed_form.min(), closed_form.max()], "k--", lw=1, label="y = x"
)
axes[1].set(
    title="CNF log-density (dopri5) vs closed form", xlabel="closed-form log p_1", ylabel="integrated log p_1"
)
axes[1].legend()
for method, marker in (("euler", "o-"), ("rk4", "s-")):
    steps_list = [s for m, s in errors if m == method]
    axes[2].loglog(steps_list, [errors[method, s] for s in steps_list], marker, label=method)
axes[2].loglog([4, 64], [errors["euler", 4], errors["euler", 4] / 16], "k:", label="slope -1")
axes[2].set(title="error of the integrated log-density", xlabel="solver steps", ylabel="max |error| (nats)")
axes[2].legend()
fig.tight_layout()
plt.show()

euler_slope = math.log(errors["euler", 64] / errors["euler", 4]) / math.log(16)
print(
    f"dopri5 (tol 1e-9) max error {(dopri.log_prob - closed_form).abs().max().item():.1e} nats; Euler order {-euler_slope:.2f}"
)
rounding = 64 * torch.finfo(torch.float64).eps * closed_form.abs().max().item()
rk4_32 = results["rk4", 32].log_prob
rk4_bound = 2 * 16 / 15 * (rk4_32 - results["rk4", 64].log_prob).abs().max().item() + rounding
dopri_bound = 2 * (dopri.log_prob - dopri_tighter.log_prob).abs().max().item() + rounding
print(
    f"solver's own error estimates (x2, + rounding): rk4 32 steps {rk4_bound:.1e}, dopri5 1e-9 {dopri_bound:.1e}"
)
prove("C7", errors["rk4", 32], rk4_bound, what="max |log p CNF - exact|, affine flow, rk4 32 steps")
prove("C7", adaptive[1e-9][1], dopri_bound, what="max |log p CNF - exact|, affine flow, dopri5 tol 1e-9")
# control for C7: the divergence's sign flipped, log p_0(noise) - delta(0), from the same 32-step solve
flipped = 2 * standard_normal_log_prob(results["rk4", 32].noise) - rk4_32
control("C7", (flipped - closed_form).abs().max(), rk4_bound, what="the same, divergence sign flipped")
# control for C7: the closed-form density of the flow of A^T (same trace, other covariance)
expm_t = torch.linalg.matrix_exp(A.T)
other_law = torch.distributions.MultivariateNormal(
    torch.linalg.solve(A.T, (expm_t - torch.eye(2, dtype=A.dtype)) @ b), expm_t @ expm_t.T
)
control(
    "C7",
    (rk4_32 - other_law.log_prob(affine_data)).abs().max(),
    rk4_bound,
    what="the same vs the flow of A^T",
)
assert errors["rk4", 64] < errors["rk4", 8]
assert -1.2 < euler_slope < -0.8  # first-order method: error ~ 1 / steps
assert (
    dopri.noise @ expm.T + affine_law.mean - affine_data
).abs().max() < 1e-6  # the noise is psi_1^{-1}(data)

# %% [markdown]
# The integrated divergence reproduces the exact density to within the solver's own error estimate
# (about $4\cdot 10^{-8}$ nats for RK4 with 32 steps, a few $10^{-9}$ for dopri5), while a flipped
# divergence sign is off by $2|\operatorname{tr}A| = 0.2$ nats and the other flow's density by many
# nats, both rejected by the same threshold. Euler converges at order 1, RK4 at order 4. Nothing
# here is specific to the affine field except the closed form we compare with: `log_likelihood`
# takes any velocity model, so lessons 04 to 07 use it to report the likelihood of flow-matching
# models.
#
# ## 2. Hutchinson's trace estimator
#
# The exact divergence costs $D$ backward passes: 2 for our toy targets, 784 for MNIST. Hutchinson's
# trick needs one. For any random vector $\varepsilon$ with $\mathbb E[\varepsilon\varepsilon^\top] = I$
# (Rademacher signs $\pm 1$ or a standard Gaussian),
# $$\mathbb E[\varepsilon^\top J \varepsilon] = \mathbb E[\operatorname{tr}(J\varepsilon\varepsilon^\top)]
#   = \operatorname{tr}(J\,\mathbb E[\varepsilon\varepsilon^\top]) = \operatorname{tr} J ,$$
# and $\varepsilon^\top J$ is one vector-Jacobian product, one backward pass. It is unbiased, not exact.
# Its variance depends only on the symmetric part $S = (J + J^\top)/2$:
# $\operatorname{Var} = 2\|S\|_F^2$ for Gaussian probes and $2(\|S\|_F^2 - \sum_i S_{ii}^2)$ for
# Rademacher probes (the diagonal is estimated without error), divided by $P$ when $P$ probes are averaged.


# %%
def hutchinson_by_hand(field, x, t, eps):
    """eps^T (dv/dx) eps for one probe per sample, (B,)."""
    x = x.detach().requires_grad_(True)
    v = field(x=x, t=t)
    vjp = torch.autograd.grad(v, x, eps)[0]  # (B, D): eps^T J
    return (vjp * eps).sum(1)


from lessons.divergence import divergence_hutchinson

torch.manual_seed(1)
probe_net = MLP(dim=2, hidden=32, depth=2, time_scale=1.0).double()  # an untrained network: a generic field
x_probe = torch.tensor([[0.5, -1.0], [1.5, 0.3]], dtype=torch.float64)
t_probe = torch.tensor([0.3, 0.7], dtype=torch.float64)
eps = (torch.randint(0, 2, (2, 2), generator=torch.Generator().manual_seed(5)) * 2 - 1).double()
library = divergence_hutchinson(probe_net, x_probe, t_probe, generator=torch.Generator().manual_seed(5))
assert torch.allclose(hutchinson_by_hand(probe_net, x_probe, t_probe, eps), library)
print(
    "one-probe estimates:",
    library.tolist(),
    "| exact:",
    divergence_exact(probe_net, x_probe, t_probe).tolist(),
)

# %% [markdown]
# Now the claim: over many independent probes the estimates average to the exact divergence, and
# their variance follows the formula above and falls as $1/P$. We draw $n = 20\,000$ estimates for
# each number of probes $P$ (the two points repeated $n$ times) and compare with the Jacobian
# computed exactly. The probes are drawn all at once, as `divergence_hutchinson` draws them, then fed
# through the network a chunk of rows at a time with `velocity_and_divergence` under `torch.no_grad()`:
# one batch of 40 000 rows with 16 probes would keep 16 graphs for a second backward pass, gigabytes
# of memory for numbers that need a few megabytes.
#
# The check is a z-score: the mean of the $n$ estimates must lie within 4 standard errors of the exact
# trace, and their variance within 5 standard errors of the closed form, for every probe
# distribution, $P$ and point (20 comparisons each; 4 standard errors of a normal mean are crossed
# once in 16 000 draws). Negative controls: probes scaled by 1.1, so that
# $\mathbb E[\varepsilon\varepsilon^\top] = 1.21\,I$ (a biased estimator), and the variance formula with the
# full Jacobian $J$ in place of its symmetric part $S$.

# %%
# proves C8
jac = torch.stack(
    [
        torch.autograd.functional.jacobian(
            lambda z, s=s: probe_net(x=z[None], t=t_probe[s : s + 1])[0], x_probe[s]
        )
        for s in range(2)
    ]
)  # (2, D, D)
sym = 0.5 * (jac + jac.transpose(1, 2))
exact = divergence_exact(probe_net, x_probe, t_probe)
assert torch.allclose(exact, torch.diagonal(jac, dim1=1, dim2=2).sum(1))
predicted = {
    "gaussian": 2 * (sym**2).sum((1, 2)),
    "rademacher": 2 * ((sym**2).sum((1, 2)) - (torch.diagonal(sym, dim1=1, dim2=2) ** 2).sum(1)),
}
n, probe_counts = 20_000, (1, 2, 4, 8, 16)
x_many, t_many = x_probe.repeat(n, 1), t_probe.repeat(n)  # (2n, 2), (2n,)


def hutchinson_in_chunks(eps, chunk=4000):
    """(1/P) sum_p eps_p^T J eps_p at the n repeated points, (n, 2), for probes eps (P, 2n, 2), chunk rows at a time."""
    with torch.no_grad():  # no graph kept for a second backward pass
        parts = [
            velocity_and_divergence(
                probe_net, x_many[i : i + chunk], t_many[i : i + chunk], eps[:, i : i + chunk]
            )[1]
            for i in range(0, len(x_many), chunk)
        ]
    return torch.cat(parts).view(n, 2)


def mean_and_variance(est):
    """Mean, its standard error, variance, its standard error: each (2,), one per point."""
    centred = (est - est.mean(0)) ** 2
    return est.mean(0), est.std(0) / n**0.5, centred.mean(0), centred.std(0) / n**0.5


def variance_z(formula):
    """The largest z-score of the measured variance against formula[noise] / P, over probes, P and points."""
    return max(
        ((var - formula[noise] / p).abs() / var_se).max().item()
        for (noise, p), (_, _, var, var_se) in measured.items()
    )


measured, gen = {}, torch.Generator().manual_seed(0)
for noise in ("rademacher", "gaussian"):
    for p in probe_counts:
        probes = draw_probes(x_many.shape, p, noise, gen, torch.float64)  # (p, 2n, 2)
        measured[noise, p] = mean_and_variance(hutchinson_in_chunks(probes))

fig, ax = plt.subplots(figsize=(6.5, 4.5))
for noise, color in (("rademacher", "C0"), ("gaussian", "C1")):
    var = [measured[noise, p][2][0].item() for p in probe_counts]
    ax.loglog(probe_counts, var, "o", color=color, label=f"{noise}: measured")
    ax.loglog(
        probe_counts,
        [predicted[noise][0].item() / p for p in probe_counts],
        "-",
        color=color,
        label=f"{noise}: predicted "
        + ("2||S||^2 / P" if noise == "gaussian" else "2(||S||^2 - sum S_ii^2) / P"),
    )
ax.set(title="variance of Hutchinson's divergence estimate (point 1)", xlabel="probes P", ylabel="variance")
ax.legend()
fig.tight_layout()
plt.show()

print("exact divergence:", [f"{v:.5f}" for v in exact.tolist()])
for (noise, p), (mean, se, var, _) in measured.items():
    print(
        f"{noise:10s} P={p:2d}: mean {[f'{v:.5f}' for v in mean.tolist()]} (+- {se.max().item():.0e}), "
        f"variance {[f'{v:.2e}' for v in var.tolist()]}, predicted {[f'{v / p:.2e}' for v in predicted[noise].tolist()]}"
    )
mean_z = max(((mean - exact).abs() / se).max().item() for mean, se, _, _ in measured.values())
print(
    f"largest z-scores: mean vs exact trace {mean_z:.2f}, variance vs closed form {variance_z(predicted):.2f}"
)
prove("C8", mean_z, 4, what="Hutchinson mean vs exact trace, max z-score")
prove("C8", variance_z(predicted), 5, what="Hutchinson variance vs its closed form in S, max z-score")
# control for C8: a biased estimator, Rademacher probes scaled by 1.1, through the same z-score check
biased_mean, biased_se, _, _ = mean_and_variance(
    hutchinson_in_chunks(1.1 * draw_probes(x_many.shape, 1, "rademacher", gen, torch.float64))
)
control(
    "C8", ((biased_mean - exact).abs() / biased_se).max().item(), 4, what="the same, probes scaled by 1.1"
)
# control for C8: the variance formula with the whole Jacobian J in place of its symmetric part S
diag_j = (torch.diagonal(jac, dim1=1, dim2=2) ** 2).sum(1)
with_j = {"gaussian": 2 * (jac**2).sum((1, 2)), "rademacher": 2 * ((jac**2).sum((1, 2)) - diag_j)}
control("C8", variance_z(with_j), 5, what="the same variance check, J in place of S")
assert (predicted["rademacher"] < predicted["gaussian"]).all()

# %% [markdown]
# The estimator is unbiased (every mean within 4 standard errors of the exact trace, the largest
# z-score about 2), its variance is the predicted one (within 5 standard errors of the sample
# variance), it halves each time $P$ doubles, and Rademacher probes beat Gaussian ones because they
# estimate the diagonal of $J$ exactly. The same checks reject probes scaled by 1.1 (a z-score in the
# tens: 20 000 draws resolve a 21% bias) and the variance formula written with $J$ instead of $S$.
# In a CNF the probe is drawn once per ODE solve and kept fixed along the path
# (`log_likelihood(..., exact=False)`), so the dynamics stay smooth for the adaptive solver while the
# log-likelihood stays unbiased. The price of exactness grows with $D$:

# %%
cost = {}
for dim in (2, 16, 128):
    net = MLP(dim=dim, hidden=64, depth=2, time_scale=1.0)
    x, t = torch.randn(256, dim), torch.rand(256)
    for name, fn in (("exact", divergence_exact), ("hutchinson", divergence_hutchinson)):
        fn(net, x, t)  # warm up
        start = time.process_time()
        for _ in range(3):
            fn(net, x, t)
        cost[dim, name] = (time.process_time() - start) / 3
    print(
        f"D = {dim:3d}: exact {1e3 * cost[dim, 'exact']:7.1f} ms, Hutchinson (1 probe) {1e3 * cost[dim, 'hutchinson']:5.1f} ms (CPU time)"
    )

# %% [markdown]
# ## 3. Gradients through an ODE solver: backpropagation or the adjoint
#
# To train $v_\theta$ we need $\nabla_\theta$ of a loss computed at the end of an ODE solve. Two ways:
#
# * **Backpropagation through the solver.** Autograd records every operation of every step and
#   replays them backwards. Exact for the discretised computation, but memory grows with the number
#   of steps (all intermediate activations are kept).
# * **The adjoint method** (Chen et al. 2018). With $z$ the state, $a(t) = \partial L/\partial z(t)$
#   obeys $\frac{\mathrm{d}a}{\mathrm{d}t} = -a^\top \frac{\partial f}{\partial z}$ and
#   $\frac{\mathrm{d}L}{\mathrm{d}\theta} = \int a^\top \frac{\partial f}{\partial \theta}\,\mathrm{d}t$
#   over the solve, integrated *backwards* together with $z$ itself, whose path is recomputed
#   rather than stored. Memory stays constant in the number of steps; time grows, since the backward
#   solve evaluates the field again, and the gradient is exact only up to the solver's tolerance.
#
# `log_likelihood(..., adjoint=True)` switches to torchdiffeq's `odeint_adjoint`. Its fixed-step RK4 is
# Kutta's 3/8 rule (`rk4_38` in `lessons.solvers`; classical `rk4` has no adjoint there), so both
# gradients below use `rk4_38`: the same method on both sides of the comparison.
#
# **How memory is measured here.** On a CPU PyTorch's allocator keeps no statistics, and Python's
# `tracemalloc` does not see it. What differs between the two methods is the autograd graph, so we
# count exactly that: `SavedTensorMeter` hooks `torch.autograd.graph.saved_tensors_hooks`, adds the
# bytes of each tensor autograd saves for backward (once per storage) and subtracts them when the
# graph is freed, keeping the peak over the forward and backward passes. It ignores the model's
# weights and the solver's temporaries that are not saved for backward; on a GPU,
# `torch.cuda.max_memory_allocated` would give the whole picture.

# %%
# proves C9
torch.manual_seed(2)
grad_net = CountingModel(MLP(dim=2, hidden=64, depth=3, time_scale=1.0).double())
grad_data = torch.randn(128, 2, dtype=torch.float64) * 1.5


def measure(adjoint, method, steps, tol):
    """Gradient of the mean NLL, CPU seconds, field calls forward / backward, peak saved MB."""
    grad_net.zero_grad()
    start = time.process_time()
    with SavedTensorMeter() as meter:
        result = log_likelihood(
            grad_net, grad_data, method=method, steps=steps, rtol=tol, atol=tol, adjoint=adjoint
        )
        forward_calls, grad_net.calls = grad_net.calls, 0
        (-result.log_prob.mean()).backward()
    seconds = time.process_time() - start
    backward_calls, grad_net.calls = grad_net.calls, 0
    grad = torch.cat([p.grad.flatten() for p in grad_net.parameters()])
    return grad, seconds, forward_calls, backward_calls, meter.peak_megabytes


grad_net.calls = 0
measure(False, "rk4_38", 4, 1e-5)  # warm up
rows = {}
for method, steps, tol in (
    ("rk4_38", 4, 1e-5),
    ("rk4_38", 8, 1e-5),
    ("rk4_38", 16, 1e-5),
    ("rk4_38", 32, 1e-5),
    ("dopri5", None, 1e-8),
):
    for adjoint in (False, True):
        rows[method, steps, adjoint] = measure(adjoint, method, steps, tol)

print(
    f"{'solver':12s} {'gradient by':12s} {'rel. diff':>10s} {'CPU s':>7s} {'calls fwd':>9s} {'calls bwd':>9s} {'peak saved MB':>14s}"
)
for (method, steps, adjoint), (grad, sec, fwd, bwd, mb) in rows.items():
    reference = rows[method, steps, False][0]
    diff = ((grad - reference).norm() / reference.norm()).item()
    label = f"{method} {steps}" if steps else f"{method} 1e-8"
    print(
        f"{label:12s} {'adjoint' if adjoint else 'backprop':12s} {diff:10.1e} {sec:7.2f} {fwd:9d} {bwd:9d} {mb:14.1f}"
    )

fig, ax = plt.subplots(figsize=(6.5, 4.5))
fixed = [4, 8, 16, 32]
for adjoint, marker in ((False, "o-"), (True, "s-")):
    ax.plot(
        fixed,
        [rows["rk4_38", s, adjoint][4] for s in fixed],
        marker,
        label="adjoint" if adjoint else "backprop through solver",
    )
ax.set(
    title="memory held for backward (rk4_38, 128 points)",
    xlabel="solver steps",
    ylabel="peak saved tensors (MB)",
)
ax.legend()
fig.tight_layout()
plt.show()


def relative(grad, reference):
    """|grad - reference| / |reference|, a float."""
    return ((grad - reference).norm() / reference.norm()).item()


# The threshold is the gradient's own error: RK4-type error falls 16-fold when the steps double, so
# backprop's N-step gradient is off by about (16/15) |g_N - g_2N| (Richardson); the adjoint must agree closer.
# dopri5's gradient error is measured against the 32-step gradient; the adjoint may be off as much again.
gradient_error = {
    steps: 16 / 15 * relative(rows["rk4_38", steps, False][0], rows["rk4_38", 2 * steps, False][0])
    for steps in (4, 8, 16)
}
gradient_error[None] = 2 * relative(rows["dopri5", None, False][0], rows["rk4_38", 32, False][0])
assert relative(rows["dopri5", None, True][0], rows["rk4_38", 32, False][0]) < gradient_error[None] / 2
for method, steps in (("rk4_38", 4), ("rk4_38", 8), ("rk4_38", 16), ("dopri5", None)):
    backprop, adjoint = rows[method, steps, False], rows[method, steps, True]
    label = f"{method} {steps} steps" if steps else f"{method} tol 1e-8"
    prove(
        "C9",
        relative(adjoint[0], backprop[0]),
        gradient_error[steps],
        what=f"adjoint vs backprop gradient, {label}",
    )
    assert backprop[3] == 0 and adjoint[3] >= adjoint[2]  # the adjoint re-evaluates the field backwards
    assert adjoint[4] < backprop[4] / 3  # and holds far less memory

# control for C9: the adjoint gradient one training step later (Adam's first step, lr 3e-3 as in section 4)
saved = [p.detach().clone() for p in grad_net.parameters()]
with torch.no_grad():
    for p in grad_net.parameters():
        p -= 3e-3 * p.grad.sign()  # p.grad: the last measure's (dopri5 adjoint) gradient
later = measure(True, "rk4_38", 16, 1e-5)[0]
with torch.no_grad():
    for p, value in zip(grad_net.parameters(), saved):
        p.copy_(value)
control(
    "C9",
    relative(later, rows["rk4_38", 16, False][0]),
    gradient_error[16],
    what="the same, one Adam step later",
)

# Memory over 8 times the steps: constant means a ratio 1, proportional growth a ratio near 8; the check
# splits the two at their geometric middle, sqrt(8).
growth = {adj: rows["rk4_38", 32, adj][4] / rows["rk4_38", 4, adj][4] for adj in (False, True)}
print(f"saved-tensor memory, 32 steps / 4 steps: backprop x{growth[False]:.2f}, adjoint x{growth[True]:.2f}")
prove("C9", growth[True], 8**0.5, what="adjoint memory growth, 32 vs 4 steps")
prove("C9", growth[False], 8**0.5, sense=">=", what="backprop memory growth, 32 vs 4 steps")
# control for C9: each growth check run on the other method's memory
control("C9", growth[False], 8**0.5, what="the no-growth check on backprop's memory")
control("C9", growth[True], 8**0.5, sense=">=", what="the growth check on the adjoint's memory")

# %% [markdown]
# Same gradient, two different bills. With fixed steps the two gradients agree to $10^{-10}$ or
# better, far inside the gradient's own discretisation error (estimated by doubling the steps); one
# Adam step moves the gradient by about 20%, and the same check rejects it. With dopri5 they agree to
# about $10^{-5}$, within the error of backprop's gradient through the adaptive solver (the adjoint's
# is the closer of the two to the 32-step gradient). Backpropagation keeps every step's activations,
# so its memory grows linearly with the number of steps; the adjoint keeps one step's worth whatever
# the number of steps (32 steps cost it a few percent more than 4, backprop 8 times more), and pays
# with extra field evaluations in the backward solve (the "calls bwd" column; for an adaptive
# solver the backward solve picks its own steps). On a small 2D problem time is similar; on images, where the
# activations are large, memory decides.
#
# ## 4. Training a CNF by maximum likelihood
#
# The likelihood is exact and differentiable, so we can train $v_\theta$ by maximising it:
# $\min_\theta\, -\frac1B\sum_b \log p_1^\theta(x_b)$, with every step solving the augmented ODE.
# Target: the three-component Gaussian mixture of the course, whose density (and so its entropy
# $H = -\mathbb E\log p$, by Monte Carlo) is known. No model can reach a test NLL below $H$: the
# NLL is $H + \mathrm{KL}(p\,\|\,p_\theta)$.
#
# We train the course's `MLP` with a smooth time embedding (`time_scale=1`, see open question 1), exact
# divergence and a fixed RK4 solver with 8 steps, with `train_max_likelihood`, a thin layer over
# `lessons.training.train`. The test NLL is then measured with the adaptive dopri5 solver, so that
# it is the likelihood of the continuous model, not of its 8-step discretisation.

# %%
mixture = target_density("mixture")
test_data = mixture.sample(2000, generator=torch.Generator().manual_seed(1))
entropy_draws = -mixture.log_prob(mixture.sample(100_000, generator=torch.Generator().manual_seed(2)))
entropy, entropy_se = entropy_draws.mean().item(), entropy_draws.std().item() / 100_000**0.5

train_steps, batch = by_budget(fast=250, full=1500), by_budget(fast=128, full=256)
cnf = MLP(dim=2, hidden=64, depth=3, time_scale=1.0)
with torch.no_grad():
    nll_untrained = -log_likelihood(cnf, test_data).log_prob.mean().item()
batch_gen = torch.Generator().manual_seed(0)
cpu_start = time.process_time()
ml_result = train_max_likelihood(
    cnf,
    lambda: mixture.sample(batch, generator=batch_gen),
    train_steps,
    method="rk4",
    solver_steps=8,
    lr=3e-3,
    seed=0,
    device="cpu",
)
ml_cpu = time.process_time() - cpu_start
print(
    f"maximum-likelihood training: {ml_result.steps_done} steps of batch {batch} in {ml_result.seconds:.1f} s "
    f"wall ({ml_cpu:.1f} s CPU), {1e3 * ml_result.seconds / ml_result.steps_done:.0f} ms a step"
)

# %%
# checks the maximum-likelihood fit (lesson 04 compares its training time with flow matching, C13)
with torch.no_grad():
    test_dopri = log_likelihood(cnf, test_data, method="dopri5")
    test_rk4 = log_likelihood(cnf, test_data, method="rk4", steps=8)
nll, nll_rk4 = -test_dopri.log_prob.mean().item(), -test_rk4.log_prob.mean().item()
nll_se = test_dopri.log_prob.std().item() / len(test_data) ** 0.5
nll_prior = -standard_normal_log_prob(test_data).mean().item()

lim = 4.5
grid_1d = torch.linspace(-lim, lim, 90)
grid = torch.stack(torch.meshgrid(grid_1d, grid_1d, indexing="xy"), -1).reshape(-1, 2)
with torch.no_grad():
    model_density = log_likelihood(cnf, grid, method="dopri5").log_prob.exp().reshape(90, 90)
    samples = solve_ode(
        cnf, torch.randn(1000, 2, generator=torch.Generator().manual_seed(3)), steps=8, method="rk4"
    ).final
target_grid = mixture.log_prob(grid).exp().reshape(90, 90)

fig, axes = plt.subplots(1, 4, figsize=(19, 4.5))
extent = (-lim, lim, -lim, lim)
vmax = target_grid.max().item()
axes[0].imshow(target_grid, origin="lower", extent=extent, cmap="magma", vmin=0, vmax=vmax)
axes[0].set(title="target density", xlabel="$x_1$", ylabel="$x_2$")
axes[1].imshow(model_density, origin="lower", extent=extent, cmap="magma", vmin=0, vmax=vmax)
axes[1].set(title=f"CNF density after {ml_result.steps_done} ML steps", xlabel="$x_1$", ylabel="$x_2$")
axes[2].scatter(test_data[:1000, 0], test_data[:1000, 1], s=3, alpha=0.5, label="target")
axes[2].scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.5, label="CNF samples (rk4, 8 steps)")
axes[2].set(
    title="samples", xlabel="$x_1$", ylabel="$x_2$", xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal"
)
axes[2].legend(loc="lower right")
axes[3].plot(ml_result.losses, lw=0.8, label="training NLL (batch)")
axes[3].axhline(entropy, color="k", ls="--", label=f"target entropy {entropy:.3f}")
axes[3].axhline(nll_prior, color="gray", ls=":", label=f"N(0, I) on the data {nll_prior:.2f}")
axes[3].set(
    title="maximum-likelihood training",
    xlabel="step",
    ylabel="nats per point",
    ylim=(entropy - 0.5, nll_prior + 1),
)
axes[3].legend()
fig.tight_layout()
plt.show()

print(f"test NLL (dopri5, NFE {test_dopri.nfe}): {nll:.3f} +- {nll_se:.3f} nats | rk4 8 steps: {nll_rk4:.3f}")
print(
    f"target entropy (Monte Carlo): {entropy:.3f} +- {entropy_se:.3f} | untrained CNF: {nll_untrained:.3f} "
    f"| N(0, I) (zero field): {nll_prior:.3f}"
)
closed = (nll_prior - nll) / (nll_prior - entropy)
print(f"gap to the entropy: {nll - entropy:.3f} nats; {100 * closed:.0f}% of the N(0, I) gap closed")
assert nll > entropy - 4 * (
    nll_se + entropy_se
)  # no model beats the entropy (a sanity check of the likelihood)
assert nll - entropy < 0.25  # within 0.25 nats of the best possible NLL
assert closed > 0.85 and nll < nll_untrained - 1.0
assert abs(nll - nll_rk4) < 0.05  # the 8-step solver used in training is not being exploited

# %% [markdown]
# The CNF's test NLL sits a few hundredths to a few tenths of a nat above the entropy, the floor no
# model can cross; training took the time printed above. The 8-step RK4 NLL and the adaptive
# dopri5 NLL agree, which says the network learned a smooth field rather than the errors of its
# training solver.
#
# ## 5. Why this is slow
#
# Each training step above solves the augmented ODE: 8 RK4 steps, so 32 field evaluations, each
# followed by $D$ backward passes for the divergence, and then backpropagation through all of it.
# A regression loss on the same network (what lesson 04 will use) needs one forward and one
# backward pass. The ratio of the two is the price of simulation:

# %%
x_batch, t_batch = mixture.sample(batch, generator=batch_gen), torch.rand(batch)
one_pass, simulated = [], []
for _ in range(3):
    start = time.process_time()
    torch.nn.functional.mse_loss(cnf(x=x_batch, t=t_batch), x_batch).backward()
    one_pass.append(time.process_time() - start)
    start = time.process_time()
    (-log_likelihood(cnf, x_batch, method="rk4", steps=8).log_prob.mean()).backward()
    simulated.append(time.process_time() - start)
print(
    f"one regression step {1e3 * min(one_pass):.1f} ms vs one maximum-likelihood step {1e3 * min(simulated):.1f} ms "
    f"(x{min(simulated) / min(one_pass):.0f}), CPU time"
)

# %% [markdown]
# And that is with a fixed 8-step solver in 2D. With an adaptive solver the number of steps grows as
# training makes the field more complex, and in $D$ dimensions the exact divergence costs $D$ passes
# (Hutchinson brings it back to one, at the price of noise in the loss). Lesson 04 trains the same
# network on the same target by flow matching, without any ODE solve, and compares the time.
#
# ## Exercises
#
# **Checked exercises.** Each is a function to write. Replace the line `raise NotImplementedError(...)` by your
# code and run the cell: `check` runs your function on random inputs against the library and says what is
# right, what is off and by how much, and which common slip your answer matches. Until you fill it in, it
# says "not done yet" and the rest of the notebook runs as before. The solutions are in `solutions/03_cnf.py`
# (a handout for learners leaves that folder out).
#
# **Checked 1: Hutchinson with P probes.** Write the estimator of section 2 with `probes` Rademacher probes,
# averaged. The check calls it at two points repeated 4000 times, with 1 and with 4 probes: the mean must be
# within 4.5 standard errors of `lessons.divergence.divergence_exact`, and the variance must fall 4-fold.

# %%
from lessons.exercises import check


def hutchinson_divergence(field, x, t, probes):
    """An unbiased estimate of div v at x (B, D), t (B,), averaged over `probes` random probes; (B,)."""
    raise NotImplementedError("hint: one vector-Jacobian product eps^T J per probe, as in hutchinson_by_hand")


check("hutchinson_divergence", hutchinson_divergence)

# %% [markdown]
# **Checked 2: the variance of one probe.** Write $\operatorname{Var}[\varepsilon^\top J\varepsilon]$ for one Rademacher
# probe, as a number from the matrix $J$ `(D, D)`. The check does not use the formula of section 2: it lists
# all $2^D$ sign vectors, which are equally likely, and takes the variance of $\varepsilon^\top J \varepsilon$ over them.


# %%
def rademacher_variance(jacobian):
    """Var[eps^T J eps] for one Rademacher probe eps and a matrix J = jacobian (D, D); a number."""
    raise NotImplementedError("hint: only the symmetric part of J matters, and eps_i^2 = 1")


check("rademacher_variance", rademacher_variance)

# %% [markdown]
# **Checked 3: an affine flow's density by hand.** For the constant field $v(x, t) = Ax + b$ of section 1, write
# $\log p_1(x)$ with the change of variables: pull $x$ back to its noise $\psi_1^{-1}(x)$, evaluate
# $\log\mathcal N(0, I)$ there, and subtract $\int_0^1 \nabla\cdot v\,\mathrm dt$. The check compares it with the numerical
# CNF, `lessons.cnf.log_likelihood`, on three random flows.


# %%
def affine_log_density(x, A, b):
    """log p_1(x), (B,), at x (B, D) for the flow of v = A x + b from N(0, I); A (D, D), b (D,)."""
    raise NotImplementedError("hint: psi_1(noise) = e^A noise + A^-1 (e^A - I) b; the divergence is tr A")


check("affine_log_density", affine_log_density)

# %% [markdown]
# **Open questions** (no automatic check: each asks for an experiment or a derivation; what a good answer
# contains is said under it).
#
# 1. Build the CNF with `MLP(..., time_scale=1000.0)` (the default embedding, which oscillates quickly
#    in $t$) and train it with the same 8-step RK4 solver. Compare its test NLL under `rk4` with 8
#    steps and under `dopri5`. Which one can drop below the entropy, and why is that impossible for
#    a true density?
#    *A good answer* gives both test NLLs next to the entropy, finds that the 8-step number can go below it,
#    and explains why: the 8-step solve is not the flow of the field, so its "density" need not integrate to 1,
#    while for a true density the expected NLL is a cross-entropy, at least the entropy (Gibbs' inequality).
# 2. Train with `exact=False` (Hutchinson, one Rademacher probe). How noisy is the loss curve, and
#    how does the final test NLL compare?
#    *A good answer* measures the noise (the spread of the loss over the last few hundred steps, for both
#    trainings), compares the test NLLs with a standard error, and the time per step.
# 3. Derive the variance of $\varepsilon^\top J\varepsilon$ for Rademacher probes, and check that only
#    the symmetric part of $J$ matters.
#    *A good answer* expands $\varepsilon^\top J\varepsilon = \sum_i J_{ii} + \sum_{i \ne j} J_{ij}\varepsilon_i\varepsilon_j$,
#    uses that the products $\varepsilon_i\varepsilon_j$ ($i < j$) are uncorrelated signs, pairs $J_{ij}$ with $J_{ji}$
#    into $2S_{ij}$, and shows numerically that an antisymmetric part added to $J$ leaves the estimates unchanged.
# 4. In the adjoint table, loosen the dopri5 tolerance to $10^{-4}$. How far do the adjoint gradients
#    drift from backpropagation's?
#    *A good answer* gives the relative gradient gap at both tolerances with the NFE of each, and says how the
#    gap scales with the tolerance.
# 5. Train on `target_density("8gaussians")`. How many steps until the NLL approaches the entropy?
#    *A good answer* estimates the target's entropy (Monte Carlo of $-\log q$ with a standard error), plots the
#    test NLL against steps, states the step count at which the gap falls below a margin chosen beforehand, and
#    compares with the lesson's target.
#
# ## What to remember
# - A velocity field defines a density: $\log p_1(x_1) = \log p_0(x_0) - \int_0^1 \nabla\cdot v\,\mathrm{d}t$,
#   computed by solving the augmented ODE from data back to noise (`lessons.cnf.log_likelihood`).
# - The exact divergence costs $D$ backward passes; Hutchinson's estimator costs one, is unbiased,
#   and has variance $2\|S\|_F^2/P$ (less for Rademacher probes).
# - Backprop through the solver and the adjoint give the same gradient; backprop's memory grows with
#   the steps, the adjoint's does not, and the adjoint pays in extra evaluations.
# - Maximum-likelihood training works (the NLL approaches the entropy) but every step simulates the
#   ODE, which makes it slow. Flow matching (lesson 04) trains the same field without simulation.
