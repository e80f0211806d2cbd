# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Straight vs curved: couplings, rectified flow and ODE solvers
#
# Lesson 04 trained a velocity field by regressing on *conditional* velocities. Each conditional
# path of the OT (linear) schedule is a straight line run at constant speed. Yet sampling
# still needs many steps. This lesson shows why: the *marginal* field averages the straight
# conditional lines, and the average bends. Then we look at three ways to get fewer steps.
#
# **What you will learn**
# 1. Why conditional OT paths are straight while marginal trajectories curve wherever conditional
#    lines would cross (C14).
# 2. Minibatch optimal-transport couplings (OT-CFM): pairing noise and data well makes the learned
#    flow straighter and few-step samples better (C15).
# 3. Rectified flow and *reflow*: retrain on the model's own (noise, sample) pairs, so that one or
#    two Euler steps are enough (C16).
# 4. Euler, midpoint, Heun, RK4 and adaptive dopri5, and how sample quality trades against the number
#    of function evaluations (NFE), per solver (C17) and per path, OT against VP (C18).
# 5. Flow matching between two arbitrary 2D distributions, with no Gaussian at all (C19).
# 6. The two measures of "straightness" used in papers: Liu et al.'s straightness and Tong et al.'s
#    normalized path energy.
#
# Time convention as everywhere in the course: $t=0$ is noise (the source), $t=1$ is data.

# %%
import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from lessons.budget import budget, by_budget
from lessons.couplings import couple, pair_batches, reflow_pairs, transport_cost
from lessons.data2d import sample_target, target_density
from lessons.evaluation import nfe_to_reach
from lessons.flow_matching import cfm_batch_loss
from lessons.metrics import normalized_path_energy, path_energy, straightness
from lessons.mixture import ExactMixtureModel
from lessons.models import MLP
from lessons.optimal_transport import ot_assignment, w2
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule, VPSchedule
from lessons.solvers import NFE_PER_STEP, solve_ode, step
from lessons.training import train
from lessons.trajectory import Trajectory

torch.manual_seed(0)
START = time.perf_counter()
STEPS = by_budget(fast=1500, full=8000)  # training steps per model
N_EVAL = 1000  # points per W2 evaluation
print(f"budget: {budget()}, {STEPS} training steps per model, W2 on {N_EVAL} points")

# %% [markdown]
# ## 0. The yardstick: how far apart are two samples of the *same* distribution?
#
# We judge samples by the 2-Wasserstein distance to a held-out sample of the target,
# $W_2(P, Q)^2 = \min_{\pi} \mathbb{E}_{(a, b) \sim \pi} \|a - b\|^2$, computed exactly on point
# sets (`lessons.optimal_transport.w2`). Even two independent samples of the same law are not at distance
# 0: with $n$ points the empirical W2 has a floor. Every tolerance below is stated against this
# data-vs-data baseline on the same $n$.

# %%
TARGET = "8gaussians"
train_data = sample_target(TARGET, 10_000, seed=1)  # the 10,000 training points
test_data = sample_target(TARGET, N_EVAL, seed=2)
baseline = w2(sample_target(TARGET, N_EVAL, seed=3), test_data, solver="emd")
print(f"data-vs-data W2 on {N_EVAL} points of {TARGET}: {baseline:.3f}")

# %% [markdown]
# ## 1. Conditional paths are straight; marginal trajectories are not (C14)
#
# The OT path (Lipman et al.) pairs one noise point with one data point and moves along
# $$x_t = t\,\text{data} + (1 - (1-\sigma_{\min})t)\,\text{noise},\qquad
#   \frac{dx_t}{dt} = \text{data} - (1-\sigma_{\min})\,\text{noise}.$$
# The velocity does not depend on $t$: a straight line at constant speed. Liu et al. measure how far a
# trajectory is from that with the **straightness**
# $$S = \mathbb{E}\int_0^1 \big\|(x_1 - x_0) - \tfrac{dx_t}{dt}\big\|^2 dt,$$
# which is $0$ exactly for straight, constant-speed paths.
#
# Sampling, however, follows the *marginal* field $u_t(x) = \mathbb{E}[\,u_t(x\mid \text{data})\mid x_t = x]$,
# the posterior average of all conditional velocities through $x$. At $t=0$ the point $x$ is the noise
# itself and says nothing about its data partner, so the average is over the whole data set:
# $u_0(x) = \mathbb{E}[\text{data}] - (1-\sigma_{\min})x$, which points towards the data mean, the origin
# here, and not towards any mode. Two solutions of one ODE are never at the same place at the same
# time, so where conditional lines cross, the marginal trajectories must bend instead. For the 8-gaussians target
# (a Gaussian mixture) the ideal model `lessons.mixture.ExactMixtureModel` with `prediction="velocity"` gives
# this field exactly (lesson 04).

# %%
# conditional OT paths, written out, and their straightness computed by hand
ot_path = GaussianPath(LinearSchedule(sigma_min=1e-3))
g = torch.Generator().manual_seed(4)
noise = torch.randn(400, 2, generator=g, dtype=torch.float64)
data = sample_target(TARGET, 400, seed=5).double()
ts = torch.linspace(0, 1, 101, dtype=torch.float64)
xs = torch.stack([ot_path.sample(noise, data, t.repeat(400)).x_t for t in ts])  # (101, 400, 2)
conditional = Trajectory(ts, xs, nfe=0)
velocity = (xs[1:] - xs[:-1]) / (ts[1:] - ts[:-1])[:, None, None]  # (100, 400, 2)
chord = xs[-1] - xs[0]
s_by_hand = ((chord[None] - velocity) ** 2).sum(-1).mul(0.01).sum(0).mean().item()
speed = velocity.norm(dim=-1)  # (100, 400)
print(f"straightness by hand {s_by_hand:.2e}, library {straightness(conditional):.2e}")
print(f"largest change of speed along a conditional path: {(speed - speed[0]).abs().max():.2e}")

# %%
# marginal trajectories: integrate the exact marginal field of the mixture from the same noise
mixture = target_density(TARGET)


ot_field = ExactMixtureModel(mixture, ot_path.schedule, prediction="velocity")  # called like every model


marginal = solve_ode(ot_field, noise.float(), steps=100, method="rk4")
chord_sq = ((marginal.final - marginal.xs[0]) ** 2).sum(-1).mean().item()
s_marginal = straightness(marginal)
print(
    f"marginal trajectories: straightness {s_marginal:.3f}, relative to mean squared chord {s_marginal / chord_sq:.4f}"
)


def segments_cross(p, q, r, s):
    """For each pair (i, j) of segments p_i->q_i and r_j->s_j: do they intersect? (orientation test)"""

    def orient(a, b, c):
        return torch.sign(
            (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
            - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
        )

    p, q, r, s = p[:, None], q[:, None], r[None], s[None]
    return (orient(p, q, r) != orient(p, q, s)) & (orient(r, s, p) != orient(r, s, q))


k = 60  # the first 60 conditional lines: how many pairs of them cross?
crossings = segments_cross(noise[:k], data[:k], noise[:k], data[:k]).triu(1).sum().item()
print(f"{crossings} of {k * (k - 1) // 2} pairs of conditional lines cross")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 5.2))
for ax, traj, title in [
    (axes[0], conditional, "conditional OT paths (independent pairs)"),
    (axes[1], marginal, "marginal trajectories (exact field, RK4)"),
]:
    paths = traj.xs[:, :k].float()
    ax.plot(paths[:, :, 0], paths[:, :, 1], color="tab:gray", lw=0.7, alpha=0.7)
    ax.scatter(*paths[0].T, s=8, color="tab:blue", label="noise (t = 0)", zorder=3)
    ax.scatter(*paths[-1].T, s=8, color="tab:red", label="end point (t = 1)", zorder=3)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax.legend(loc="lower left", fontsize=8)
fig.suptitle(f"straightness: conditional {straightness(conditional):.1e}, marginal {s_marginal:.2f}")
fig.tight_layout()
plt.show()

# proves C14: conditional OT paths are straight at constant speed (straightness 0 up to float64
# rounding); the marginal trajectories from the same noise are not (straightness is a sizeable
# fraction of the squared distance travelled), because the conditional lines cross.
assert abs(s_by_hand - straightness(conditional)) < 1e-9
assert straightness(conditional) < 1e-12 and (speed - speed[0]).abs().max() < 1e-9
assert crossings > 0
assert s_marginal / chord_sq > 0.02, s_marginal / chord_sq

# %% [markdown]
# ## 2. Couplings: independent pairs vs minibatch optimal transport (C15)
#
# CFM may draw (noise, data) from **any coupling** $\pi$ whose marginals are the noise and the data
# laws; the learned field still carries noise to data. The independent coupling
# $\pi = p_\text{noise}\otimes p_\text{data}$ (I-CFM, also 1-rectified flow) pairs points at random, so
# lines cross a lot and the marginal field curves. Tong et al.'s **OT-CFM** re-pairs each minibatch by
# the optimal assignment
# $$\sigma^\star = \arg\min_{\sigma \in S_B} \sum_{i=1}^B \|\text{noise}_i - \text{data}_{\sigma(i)}\|^2,$$
# an approximation of the optimal-transport plan. OT pairs cross far less, so their average bends less.
# With equal weights the optimal plan is a permutation, so an assignment solver finds it exactly:

# %%
batch_noise = torch.randn(256, 2, generator=g)
batch_data = train_data[:256]
cost = torch.cdist(batch_noise.double(), batch_data.double()) ** 2  # (B, B) squared distances
rows, cols = linear_sum_assignment(cost.numpy())  # Hungarian-type exact assignment
by_hand = batch_data[cols]  # rows come out sorted: noise_i is paired with data_cols[i]
lib_noise, lib_data = couple(batch_noise, batch_data, "ot")  # the library: POT's exact network simplex
cost_ind, cost_ot = transport_cost(batch_noise, batch_data), transport_cost(lib_noise, lib_data)
print(
    f"mean squared pair distance: independent {cost_ind:.2f}, OT by hand {transport_cost(batch_noise, by_hand):.2f}, "
    f"library {cost_ot:.2f}"
)
assert abs(transport_cost(batch_noise, by_hand) - cost_ot) < 1e-6 * cost_ot
assert torch.equal(ot_assignment(batch_noise, batch_data).sort().values, torch.arange(256))

# %% [markdown]
# Now train two flows that differ *only* in the coupling: same network (an MLP of 3 hidden layers of
# width 64 with SELU, as in the standard 2D benchmark), same path, steps, seed and data.

# %%
path = GaussianPath(LinearSchedule())  # sigma_min = 0: rectified flow's straight interpolation
cfm_objective = cfm_batch_loss(path)  # cfm_loss on each (noise, data) batch of pair_batches


def train_flow(next_batch, steps=STEPS, init=None, seed=0):
    """A fresh (or copied) 3x64 SELU MLP trained with CFM on coupled batches."""
    torch.manual_seed(seed)
    model = MLP(hidden=64, depth=3, activation="selu") if init is None else copy.deepcopy(init)
    train(model, cfm_objective, next_batch, steps=steps, lr=1e-3, seed=seed, device="cpu", progress=False)
    return model


t0 = time.process_time()
icfm = train_flow(pair_batches(train_data, 256, "independent", seed=0))
t1 = time.process_time()
otcfm = train_flow(pair_batches(train_data, 256, "ot", seed=0))
print(
    f"CPU time: I-CFM {t1 - t0:.1f} s, OT-CFM {time.process_time() - t1:.1f} s (the per-batch assignment costs extra)"
)

# %%
eval_noise = torch.randn(N_EVAL, 2, generator=g)
w2_sq_source = w2(eval_noise, test_data, solver="emd") ** 2  # W2^2(source, target) for the NPE
results = {}
for name, model in [("I-CFM", icfm), ("OT-CFM", otcfm)]:
    traj = solve_ode(model, eval_noise, steps=100, method="euler")
    results[name] = {
        "straightness": straightness(traj),
        "NPE": normalized_path_energy(traj, w2_sq_source),
        "traj": traj,
        **{
            f"W2@{n}": w2(solve_ode(model, eval_noise, steps=n).final, test_data, solver="emd")
            for n in (1, 2, 4, 100)
        },
    }
    print(f"{name:7s}", "  ".join(f"{k} {v:.3f}" for k, v in results[name].items() if k != "traj"))

# %% [markdown]
# Tong et al.'s **normalized path energy** compares the kinetic energy of the flow with the least
# possible one. By the Benamou-Brenier formula, any flow that carries the source to the target has
# $\mathrm{PE} = \mathbb{E}\int_0^1 \|\dot x_t\|^2 dt \ge W_2^2(\text{source}, \text{target})$, with
# equality only for the OT flow, so
# $\mathrm{NPE} = |\mathrm{PE} - W_2^2| / W_2^2$ is $0$ for the optimal flow. From recorded states, with
# the velocity constant on each step, $\mathrm{PE} \approx \sum_k \|x_{k+1}-x_k\|^2 / \Delta t_k$:

# %%
traj = results["OT-CFM"]["traj"]
pe_by_hand = ((traj.xs[1:] - traj.xs[:-1]) ** 2).sum(-1).sum(0).mean().item() / 0.01  # 100 steps of 0.01
npe_by_hand = abs(pe_by_hand - w2_sq_source) / w2_sq_source
print(
    f"OT-CFM path energy {pe_by_hand:.2f} vs W2^2 {w2_sq_source:.2f}; NPE by hand {npe_by_hand:.4f}, "
    f"library {normalized_path_energy(traj, w2_sq_source):.4f}"
)
assert abs(pe_by_hand - path_energy(traj)) < 1e-4 * pe_by_hand

# %%
fig, axes = plt.subplots(1, 4, figsize=(17, 4.6))
for ax, (c_noise, c_data, title) in zip(
    axes[:2],
    [
        (batch_noise, batch_data, f"independent pairs, cost {cost_ind:.1f}"),
        (lib_noise, lib_data, f"minibatch OT pairs, cost {cost_ot:.1f}"),
    ],
):
    for a, b in zip(c_noise[:80], c_data[:80]):
        ax.plot([a[0], b[0]], [a[1], b[1]], color="tab:gray", lw=0.6)
    ax.scatter(*c_noise[:80].T, s=6, color="tab:blue", label="noise")
    ax.scatter(*c_data[:80].T, s=6, color="tab:red", label="data")
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax.legend(loc="lower left", fontsize=8)
for ax, name in zip(axes[2:], ["I-CFM", "OT-CFM"]):
    paths = results[name]["traj"].xs[:, :60]
    ax.plot(paths[:, :, 0], paths[:, :, 1], color="tab:gray", lw=0.6)
    ax.scatter(
        *solve_ode(icfm if name == "I-CFM" else otcfm, eval_noise, steps=2).final.T,
        s=3,
        color="tab:green",
        label="2 Euler steps",
    )
    ax.set(
        title=f"{name}: straightness {results[name]['straightness']:.2f}, W2@2 {results[name]['W2@2']:.2f}",
        xlabel="$x_1$",
        ylabel="$x_2$",
        aspect="equal",
    )
    ax.legend(loc="lower left", fontsize=8)
fig.tight_layout()
plt.show()

# proves C15: with everything else equal, minibatch OT pairs cost less to transport, the learned flow
# is straighter (Liu's straightness and Tong's NPE both lower) and its 1- and 2-step samples are
# closer to the target. The W2 gaps are required to exceed the data-vs-data baseline, so sampling
# noise alone cannot produce them.
ind, ot_ = results["I-CFM"], results["OT-CFM"]
assert cost_ot < 0.75 * cost_ind
assert ot_["straightness"] < 0.5 * ind["straightness"], (ot_["straightness"], ind["straightness"])
assert ot_["NPE"] < ind["NPE"]
assert ind["W2@1"] - ot_["W2@1"] > baseline and ind["W2@2"] - ot_["W2@2"] > baseline / 2

# %% [markdown]
# ## 3. Rectified flow and reflow (C16)
#
# Liu et al.'s **rectified flow** is CFM on the straight interpolation with independent pairs (exactly
# our I-CFM). Its ODE defines a *deterministic* coupling: each noise point is paired with the sample
# the model makes from it. **Reflow** retrains on these pairs,
# $$(\text{noise}, \hat{\text{data}}) ,\qquad \hat{\text{data}} = \mathrm{ODE}_{v_\theta}(\text{noise}),$$
# This coupling is deterministic (each noise point has one partner) and is made by a flow whose paths
# never meet, so far fewer of the straight lines between pairs cross than with random pairs, and the
# averaging that bent the field mostly disappears. Liu et al. prove that rectifying never increases a
# convex transport cost, and the pairs keep the model's distribution, so only the paths change.
# Building the pairs is a plain Euler loop:

# %%
pair_noise = torch.randn(10_000, 2, generator=g)
x = pair_noise
with torch.no_grad():
    for i in range(100):  # 100 Euler steps of the 1-rectified flow
        x = x + 0.01 * icfm(x=x, t=torch.full((x.shape[0],), i / 100))
lib_pair_noise, lib_pair_data = reflow_pairs(icfm, pair_noise, steps=100, method="euler")
print(f"largest gap between the hand-made and library reflow pairs: {(x - lib_pair_data).abs().max():.2e}")
assert torch.allclose(x, lib_pair_data, atol=1e-4)

# 2-rectified flow: start from the 1-rectified weights and train on the fixed pairs
reflow = train_flow(
    pair_batches(lib_pair_data, 256, "paired", source=lib_pair_noise, seed=1), init=icfm, seed=1
)

# %%
rows_c16 = {}
for name, model in [("1-RF (I-CFM)", icfm), ("2-RF (reflow)", reflow)]:
    traj = solve_ode(model, eval_noise, steps=100)
    rows_c16[name] = {
        "straightness": straightness(traj),
        "traj": traj,
        **{
            f"W2@{n}": w2(solve_ode(model, eval_noise, steps=n).final, test_data, solver="emd")
            for n in (1, 2, 100)
        },
    }
    print(f"{name:14s}", "  ".join(f"{k} {v:.3f}" for k, v in rows_c16[name].items() if k != "traj"))

fig, axes = plt.subplots(2, 3, figsize=(13, 8.6))
for r, (name, model) in enumerate([("1-RF (I-CFM)", icfm), ("2-RF (reflow)", reflow)]):
    paths = rows_c16[name]["traj"].xs[:, :60]
    axes[r, 0].plot(paths[:, :, 0], paths[:, :, 1], color="tab:gray", lw=0.6)
    axes[r, 0].set(title=f"{name}: trajectories, straightness {rows_c16[name]['straightness']:.2f}")
    for c, n in [(1, 1), (2, 2)]:
        axes[r, c].scatter(*test_data.T, s=2, color="tab:red", alpha=0.3, label="target")
        axes[r, c].scatter(
            *solve_ode(model, eval_noise, steps=n).final.T, s=2, color="tab:green", label=f"{n} Euler step(s)"
        )
        axes[r, c].set(title=f"{name}: {n} step(s), W2 {rows_c16[name][f'W2@{n}']:.2f}")
        axes[r, c].legend(loc="lower left", fontsize=8)
for ax in axes.flat:
    ax.set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal", xlim=(-8, 8), ylim=(-8, 8))
fig.tight_layout()
plt.show()

# proves C16: after one reflow, the flow is straighter and 1- and 2-step Euler samples are much closer
# to the target (gaps larger than the data-vs-data baseline); one step of the 2-rectified flow beats two
# steps of the 1-rectified flow.
before, after = rows_c16["1-RF (I-CFM)"], rows_c16["2-RF (reflow)"]
assert after["straightness"] < 0.5 * before["straightness"]
assert before["W2@1"] - after["W2@1"] > baseline and before["W2@2"] - after["W2@2"] > baseline
assert after["W2@1"] < before["W2@2"]

# %% [markdown]
# ## 4. Solvers and the price of curvature: NFE vs quality (C17, C18)
#
# A sampler is an ODE solver for $\dot x = u_t(x)$, and its cost is the number of network
# evaluations (NFE). Euler, $x_{t+h} = x_t + h\,u_t(x_t)$, has global error $O(h)$. **Heun** (the
# trapezoid rule with an Euler predictor) spends two evaluations per step for error $O(h^2)$:
# $$\tilde x = x_t + h\,u_t(x_t),\qquad x_{t+h} = x_t + \tfrac h2\big(u_t(x_t) + u_{t+h}(\tilde x)\big).$$
# Midpoint is also second order, RK4 is fourth order with 4 evaluations per step, and dopri5 adapts its
# steps to meet a tolerance. A straight, constant-speed trajectory is integrated *exactly* by one Euler
# step, so curvature is what costs NFE.


# %%
def heun_step(field, x, t, h):
    """One Heun step by hand."""
    k1 = field(x=x, t=torch.full((x.shape[0],), t))
    k2 = field(x=x + h * k1, t=torch.full((x.shape[0],), t + h))
    return x + 0.5 * h * (k1 + k2)


x_probe = torch.randn(5, 2, generator=g)
print(
    "Heun by hand vs lessons.solvers.step:",
    (heun_step(ot_field, x_probe, 0.3, 0.1) - step(ot_field, x_probe, 0.3, 0.1, "heun")).abs().max().item(),
)
assert torch.allclose(heun_step(ot_field, x_probe, 0.3, 0.1), step(ot_field, x_probe, 0.3, 0.1, "heun"))

# %% [markdown]
# To see the solvers and not the training noise, we use the **exact** marginal fields of the
# 8-gaussians mixture on two paths: the OT path, and the variance-preserving diffusion path of DDPM's
# linear betas ($\beta$ from 0.1 to 20, Song et al.), whose velocity grows without bound as $t \to 1$
# ($\sigma \to 0$), so we stop at $t = 1 - 10^{-3}$ as diffusion samplers do. The error of a solver is the
# W2 between its samples and those of a very accurate solve (dopri5, tolerance $10^{-7}$) from the same noise.

# %%
vp_path = GaussianPath(VPSchedule())
T_END = {"OT": 1.0, "VP": 1 - 1e-3}
FIELDS = {"OT": ot_field, "VP": ExactMixtureModel(mixture, vp_path.schedule, prediction="velocity")}
NFES = [4, 8, 16, 32, 64, 128, 256]
SHOWN = {m: NFE_PER_STEP[m] for m in ("euler", "midpoint", "heun", "rk4")}  # rk4_38 behaves like rk4
solver_noise = torch.randn(N_EVAL, 2, generator=g, dtype=torch.float64)


def error_vs(reference, samples):
    return w2(samples, reference, solver="emd") if torch.isfinite(samples).all() else float("inf")


curves, adaptive = {}, {}
for name, field in FIELDS.items():
    reference = solve_ode(
        field, solver_noise, method="dopri5", steps=1, t_end=T_END[name], rtol=1e-7, atol=1e-7
    ).final
    for method, per_step in SHOWN.items():
        curves[name, method] = [
            error_vs(
                reference,
                solve_ode(field, solver_noise, steps=n // per_step, method=method, t_end=T_END[name]).final,
            )
            for n in NFES
        ]
    adaptive[name] = [
        (traj.nfe, error_vs(reference, traj.final))
        for tol in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
        for traj in [
            solve_ode(field, solver_noise, method="dopri5", steps=1, t_end=T_END[name], rtol=tol, atol=tol)
        ]
    ]
    print(name, {m: [f"{e:.3f}" for e in curves[name, m]] for m in SHOWN})
    print(name, "dopri5 (NFE, error):", [(n, f"{e:.4f}") for n, e in adaptive[name]])

# %%
EPS = 0.02  # target error: 0.4% of the radius (5) of the circle of modes, far below the W2 baseline
fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
for ax, name in zip(axes, FIELDS):
    for method in SHOWN:
        errs = np.array(curves[name, method])
        ax.loglog(
            NFES,
            np.where(np.isfinite(errs), errs, np.nan),
            "o-",
            label=f"{method} (NFE for {EPS}: {nfe_to_reach(NFES, errs, EPS):.0f})",
        )
    nfe, err = zip(*adaptive[name])
    ax.loglog(nfe, err, "k*--", label="dopri5, tolerance 1e-2..1e-6")
    ax.axhline(EPS, color="gray", ls=":", label=f"target error {EPS}")
    ax.set(title=f"{name} path, exact marginal field", xlabel="NFE", ylabel="W2 to the exact flow's samples")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

needed = {(p, m): nfe_to_reach(NFES, curves[p, m], EPS) for p in FIELDS for m in SHOWN}
print(f"NFE to reach error {EPS}:", {k: round(v, 1) for k, v in needed.items()})
# proves C17: on both paths, every higher-order solver reaches the target error with fewer NFE than Euler.
for p in FIELDS:
    for m in ("midpoint", "heun", "rk4"):
        assert needed[p, m] < needed[p, "euler"], (p, m, needed)

# %% [markdown]
# Which path is cheaper? With fixed uniform steps and these *exact* fields the picture is mixed (compare
# the Euler curves above). A likely reason: the VP field pulls hard towards the data near $t=1$, which
# damps earlier errors, but is also stiff there, which hurts Heun, whose second evaluation is at the
# last time. The
# adaptive solver settles the question: it picks its own steps to hold a tolerance, so its NFE at a
# given error measures how hard the ODE itself is to integrate. We read both dopri5 curves at the
# same errors. (The benchmark at the end compares *trained* OT and VP models at 1 to 8 Euler steps.)

# %%
ot_nfe, ot_err = zip(*sorted(adaptive["OT"], key=lambda p: -p[1]))
vp_nfe, vp_err = zip(*sorted(adaptive["VP"], key=lambda p: -p[1]))
matched = {
    eps: (nfe_to_reach(ot_nfe, ot_err, eps), nfe_to_reach(vp_nfe, vp_err, eps)) for eps in (3e-3, 1e-3)
}
print("dopri5 NFE at equal error (OT, VP):", {k: (round(a), round(b)) for k, (a, b) in matched.items()})
# proves C18: at the same error, the adaptive solver needs fewer evaluations on the OT path than on the
# VP (diffusion) path of the same target, from the same noise.
for eps, (nfe_ot, nfe_vp) in matched.items():
    assert nfe_ot < 0.9 * nfe_vp, (eps, nfe_ot, nfe_vp)

# %% [markdown]
# ## 5. No Gaussian needed: moons to 8 gaussians (C19)
#
# Nothing in CFM requires the source to be Gaussian: the interpolation
# $x_t = t\,\text{data} + (1-t)\,\text{source}$ and its velocity $\text{data} - \text{source}$ make sense for
# any pair of points, and the marginal field still carries the source law to the target law (Tong et al.).
# We take the two-moons distribution as the source and pair it to the 8 gaussians with minibatch OT.

# %%
moons_train = sample_target("moons", 10_000, seed=6)
moons_test = sample_target("moons", N_EVAL, seed=7)
moons_flow = train_flow(pair_batches(train_data, 256, "ot", source=moons_train, seed=2), seed=2)
moved = solve_ode(moons_flow, moons_test, steps=100)
w2_moved = w2(moved.final, test_data, solver="emd")
w2_source = w2(moons_test, test_data, solver="emd")
print(
    f"W2 to the 8 gaussians: the moons themselves {w2_source:.3f}, after the flow {w2_moved:.3f}, "
    f"data-vs-data baseline {baseline:.3f}"
)

fig, axes = plt.subplots(1, 3, figsize=(14, 4.8))
axes[0].scatter(*moons_test.T, s=3, color="tab:blue", label="source: moons")
axes[0].scatter(*test_data.T, s=3, color="tab:red", alpha=0.4, label="target: 8 gaussians")
paths = moved.xs[:, :80]
axes[1].plot(paths[:, :, 0], paths[:, :, 1], color="tab:gray", lw=0.6)
axes[1].scatter(*paths[0].T, s=6, color="tab:blue", label="start (moons)")
axes[1].scatter(*paths[-1].T, s=6, color="tab:green", label="end")
axes[2].scatter(*test_data.T, s=3, color="tab:red", alpha=0.4, label="target")
axes[2].scatter(*moved.final.T, s=3, color="tab:green", label=f"flowed moons, W2 {w2_moved:.2f}")
for ax, title in zip(axes, ["source and target", "OT-CFM trajectories", "result (100 Euler steps)"]):
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax.legend(loc="lower left", fontsize=8)
fig.tight_layout()
plt.show()

# proves C19: starting from moons, not from a Gaussian, the flow's samples are within a small multiple of
# the data-vs-data baseline of the 8 gaussians, and far closer than the source itself.
assert w2_moved < 2 * baseline + 0.1, (w2_moved, baseline)
assert w2_moved < 0.3 * w2_source

# %%
print(f"lesson run time: {time.perf_counter() - START:.0f} s wall")

# %% [markdown]
# ## The standard 2D benchmark
#
# `benchmarks/flows_2d.py` runs the comparison of the literature (Tong et al.): N(0, I) to 8 gaussians,
# moons to 8 gaussians, N(0, I) to moons and N(0, I) to the s-curve; I-CFM, OT-CFM, reflow, flow matching on
# the VP path and a DDPM baseline; an MLP of 3 hidden layers of width 64 with SELU, 10,000 training points,
# 100 Euler steps, W2 to a held-out set and normalized path energy, over several seeds, plus W2 at 1, 2, 4
# and 8 steps. Run `python benchmarks/flows_2d.py` (or `--quick` for a smoke test); the table is written
# to `benchmarks/results/`.
#
# ## Exercises
# 1. Shrink the OT batch size in `pair_batches` from 256 to 8, then 2. At which size does OT-CFM's
#    straightness approach I-CFM's? Why must a batch of 1 give exactly the independent coupling?
# 2. Reflow a second time (3-rectified flow). Does straightness keep falling? What happens to W2 at
#    100 steps, and why might errors accumulate over reflows?
# 3. Redo section 4 with the cosine (trigonometric) schedule `CosineSchedule`. Where does it fall
#    between OT and VP, and why does its velocity stay bounded at $t = 1$?
# 4. In section 1, swap the target for `'mixture'` (three unequal Gaussians). Which trajectories curve
#    the most, and does that match where conditional lines cross?
# 5. Train the moons-to-8-gaussians flow with the independent coupling. Compare straightness and the
#    W2 after 2 Euler steps with the OT version.
#
# ## What to remember
# - Conditional OT paths are straight lines at constant speed; the marginal field averages them,
#   and its trajectories curve where the lines would cross. Curvature is what solvers pay for.
# - A better coupling gives straighter flows: minibatch OT (OT-CFM) re-pairs each batch by exact
#   assignment; reflow re-pairs by the model's own ODE, so that 1 or 2 Euler steps give good samples.
# - Higher-order solvers (midpoint, Heun, RK4) and adaptive dopri5 buy accuracy per NFE; the OT path
#   needs fewer NFE than the VP diffusion path, whose velocity blows up near the data.
# - Straightness (Liu et al.) and normalized path energy (Tong et al.) measure how far a flow is from
#   straight; W2 to a held-out sample, read against a data-vs-data baseline, measures sample quality.
# - Flow matching transports any distribution to any other: the source need not be Gaussian.
