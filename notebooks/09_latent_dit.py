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
# # 09 · Latent flow matching and a tiny DiT: Stable Diffusion 3's recipe at MNIST scale
#
# Lesson 07 trained a U-Net on pixels. The image models people use today do not: Stable Diffusion first trains an
# **autoencoder** that squeezes an image into a small grid of latent numbers, and the generative model learns in that
# latent space (Rombach et al. 2022). Stable Diffusion 3 and Flux then train that latent model with **rectified flow**
# (lesson 04's straight path), sample its times from a **logit-normal** law, and replace the U-Net by a
# **transformer** conditioned through adaptive layer norm (DiT, Peebles and Xie 2023; MM-DiT, Esser et al. 2024). This
# lesson builds each piece at MNIST scale and measures what it buys.
#
# **What you will learn**
# - a KL autoencoder: its loss is a (weighted) negative ELBO, reconstruction plus $\beta$ times a KL term whose closed
#   form we derive and check by Monte Carlo; its reconstructions measured by the classifier of lesson 07 (C35);
# - the latent scaling factor (Stable Diffusion's 0.18215), computed from data, and when it matters;
# - flow matching in the latent space with SD3's recipe (straight path, logit-normal times, class labels,
#   classifier-free guidance), against lesson 07's pixel-space model on the same Fréchet distance, with the
#   training compute counted in FLOPs (C36);
# - a DiT: patches as tokens, transformer blocks conditioned by adaLN-zero (the identity at initialisation, C37), and
#   MM-DiT's joint attention over [class tokens; image tokens]; the DiT against a U-Net of the same size (C37).
#
# **Claims proven here:** C35 (the KL term equals its closed form for diagonal Gaussians, and the reconstructions
# keep the digit), C36 (latent flow matching reaches a given sample quality with less training compute than pixel
# space), C37 (a DiT block with adaLN-zero is the identity at initialisation, and a DiT trained with latent flow
# matching draws digits of the requested class, compared with the U-Net at equal parameters).
#
# On a CPU the lesson trains a tiny autoencoder and a small latent model for real, and loads the models shipped with
# the course (`scripts/train_latent.py`) for the measurements. With a GPU, train them yourself at larger size:
# `python scripts/train_latent.py --device cuda --ae-steps 10000 --steps 20000 --out my_latent/`.
#
# Sections: 0. Setup · 1. An autoencoder with a KL term · 2. Training it; do the reconstructions keep the digit?
# (C35) · 3. The latent space and its scale · 4. Flow matching in the latent space · 5. Pixels against latents (C36)
# · 6. A tiny DiT (C37) · Exercises · What to remember

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
import numpy as np
import torch
import torch.nn.functional as F

from lessons.autoencoder import (
    KLAutoencoder,
    autoencoder_config,
    gaussian_kl,
    load_autoencoder,
    train_autoencoder,
)
from lessons.budget import budget, by_budget
from lessons.checkpoints import checkpoint_path
from lessons.claims import control, prove
from lessons.device import describe_device, pick_device
from lessons.dit import DiTBlock, JointDiTBlock, load_dit, patchify, unpatchify
from lessons.image_metrics import classify, frechet_distance, load_classifier
from lessons.image_training import generate, load_image_model, make_loss
from lessons.latent import (
    LatentSpace,
    generate_latent,
    latent_cfm_loss,
    latent_unet,
    train_latent_model,
)
from lessons.mnist import load_mnist, tile
from lessons.training import step_flops
from lessons.unet import count_parameters
from lessons.weighting import logit_normal_density, logit_normal_times

torch.manual_seed(0)
torch.set_num_threads(min(2, torch.get_num_threads()))
device = pick_device()
print("budget:", budget(), "| device:", describe_device(device))
lesson_start = time.process_time()
train_set = load_mnist("train")  # prints which source it used and how many images
test_set = load_mnist("test")
classifier = load_classifier()

# %% [markdown]
# ## 0. Setup
#
# Time runs as everywhere in the course: $t = 0$ is noise, $t = 1$ is data, and on the straight path
# $x_t = t\,\text{data} + (1 - t)\,\text{noise}$. Digits are $(1, 28, 28)$ tensors in $[-1, 1]$; quality is lesson
# 07's Fréchet distance (FD) in the feature space of the course's digit classifier, read against the FD between two
# sets of real digits of the same size.
#
# ## 1. An autoencoder with a KL term
#
# An **encoder** maps a digit $x$ to a Gaussian over latents, $q(z \mid x) = \mathcal N(\mu(x),
# \operatorname{diag}\sigma^2(x))$ with $z$ of shape $(4, 7, 7)$: 196 numbers for 784 pixels. A **decoder** $D(z)$
# maps a latent back to a digit. Read the decoder as a Gaussian $p(x \mid z) = \mathcal N(D(z), s^2 I)$ and put a
# standard normal prior $p(z) = \mathcal N(0, I)$ on the latents; the evidence lower bound of lesson 01 gives
# $$-\log p(x) \le \mathbb E_{q(z\mid x)}\!\left[\frac{\lVert x - D(z)\rVert^2}{2 s^2}\right] +
# \mathrm{KL}\big(q(z \mid x)\,\Vert\,p(z)\big) + \text{const}.$$
# Multiplying by $2s^2$ gives the loss we train, a squared reconstruction error plus $\beta = 2s^2$ times the KL term
# (a $\beta$-VAE). Stable Diffusion's autoencoder uses a tiny $\beta$: the KL term does not make the latents a standard
# normal, it only keeps them from drifting to huge or needle-thin values, so that a generative model can learn them.
# The expectation is estimated with one sample $z = \mu + \sigma\,\epsilon$, $\epsilon \sim \mathcal N(0, I)$ (the
# reparameterisation trick: the gradient flows through $\mu$ and $\sigma$).
#
# **The KL term in closed form.** Both laws factor over the 196 dimensions, so the KL is a sum of one-dimensional
# terms. For one dimension, $\log q(z) - \log p(z) = -\log\sigma - \frac{(z-\mu)^2}{2\sigma^2} + \frac{z^2}{2}$;
# under $q$, $\mathbb E(z-\mu)^2 = \sigma^2$ and $\mathbb E z^2 = \mu^2 + \sigma^2$, hence
# $$\mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\Vert\,\mathcal N(0, 1)\big) = \tfrac12\left(\mu^2 + \sigma^2 - 1 -
# \log\sigma^2\right).$$
# We write it by hand, compare it with `lessons.autoencoder.gaussian_kl`, and test both against a Monte Carlo
# estimate of $\mathbb E_q[\log q(z) - \log p(z)]$ whose standard error we compute. The control is a slip that is easy
# to make, $\sigma$ in place of $\sigma^2$: the same test must reject it.

# %%
gen = torch.Generator().manual_seed(0)
mu = 0.8 * torch.randn(8, 4, 7, 7, generator=gen)  # eight latents' means and log-variances
logvar = torch.randn(8, 4, 7, 7, generator=gen).clamp(-3, 2)
by_hand = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)  # (8,), one KL per latent
print(f"KL by hand vs gaussian_kl, max difference: {(by_hand - gaussian_kl(mu, logvar)).abs().max():.2e}")
assert torch.allclose(by_hand, gaussian_kl(mu, logvar), rtol=1e-6, atol=1e-5)

n_mc = 20_000  # Monte Carlo draws z ~ q for each latent
std = (0.5 * logvar).exp()
z = mu + std * torch.randn(n_mc, *mu.shape, generator=gen)  # (n_mc, 8, 4, 7, 7)
log_ratio = (-0.5 * logvar - (z - mu) ** 2 / (2 * std**2) + z**2 / 2).flatten(2).sum(2)  # log q - log p
mc, mc_se = log_ratio.mean(0), log_ratio.std(0) / n_mc**0.5  # (8,) estimates and their standard errors
z_right = ((mc - gaussian_kl(mu, logvar)) / mc_se).abs().max().item()
wrong = 0.5 * (mu**2 + std - 1 - logvar).flatten(1).sum(1)  # the slip: sigma where sigma^2 belongs
z_wrong = ((mc - wrong) / mc_se).abs().max().item()
for i in range(3):
    print(
        f"latent {i}: closed form {gaussian_kl(mu, logvar)[i]:8.2f}, Monte Carlo {mc[i]:8.2f} ± {mc_se[i]:.2f}, "
        f"slip {wrong[i]:8.2f}"
    )
print(
    f"largest |Monte Carlo - closed form| over the 8 latents: {z_right:.2f} standard errors; slip: {z_wrong:.1f}"
)
Z_MAX = 4.0  # eight z-scores: the largest of eight standard normals exceeds 4 with probability 5e-4

# %%
# proves C35
prove(
    "C35",
    z_right,
    Z_MAX,
    what="KL closed form vs Monte Carlo, largest |difference| in standard errors (8 latents)",
)

# %%
# control for C35: the same test on the slip sigma for sigma^2
control("C35", z_wrong, Z_MAX, what="KL with sigma in place of sigma^2 vs Monte Carlo, in standard errors")

# %% [markdown]
# ## 2. Training it; do the reconstructions keep the digit?
#
# `lessons.autoencoder` holds the network: two stride-2 convolutions take $28 \to 14 \to 7$, residual blocks refine,
# and two heads give $\mu$ and $\log\sigma^2$ per latent; the decoder mirrors it. `train_autoencoder` runs the course's
# one training loop (`lessons.training.train`) on $\lVert x - D(z)\rVert^2 + \beta\,\mathrm{KL}$. The budget decides
# the length: a tiny autoencoder for a few hundred steps here, enough to see digits come back; the measurements use
# the shipped autoencoder (`scripts/train_latent.py`).

# %%
size, ae_steps = by_budget(fast=("tiny", 300), full=("small", 1500))
demo_ae = KLAutoencoder(autoencoder_config(size))
result = train_autoencoder(demo_ae, train_set, ae_steps, batch_size=64, progress=True)
print(
    f"trained the {size} autoencoder ({count_parameters(demo_ae):,} parameters) for {result.steps_done} steps in "
    f"{result.seconds:.0f} s; loss {np.mean(result.losses[:20]):.1f} -> {np.mean(result.losses[-20:]):.1f}"
)
assert np.mean(result.losses[-20:]) < 0.5 * np.mean(result.losses[:20])  # it learned

autoencoder, ae_settings = load_autoencoder(checkpoint_path("latent", "autoencoder.pt"))
print(
    f"shipped autoencoder: {count_parameters(autoencoder):,} parameters, beta = {ae_settings['beta']}, "
    f"{ae_settings['steps']} steps of batch {ae_settings['batch_size']}, {ae_settings['train_cpu_seconds']:.0f} CPU s"
)
shown = test_set.images[:10]
with torch.no_grad():
    rows = [
        shown,
        demo_ae(shown, sample=False)[0].clamp(-1, 1),
        autoencoder(shown, sample=False)[0].clamp(-1, 1),
    ]
fig, ax = plt.subplots(figsize=(8, 2.8))
ax.imshow(tile(torch.cat(rows), nrow=10), cmap="gray_r")
ax.set_yticks([14, 43, 72], ["held-out digits", f"our {size} AE", "shipped AE"])
ax.set_xticks([])
ax.set_title("reconstructions decode(encode(x)), from the posterior mean")
plt.show()

# %% [markdown]
# **Do the reconstructions keep the digit?** We let the classifier read 1,000 held-out digits and their
# reconstructions. A fair yardstick for 196 numbers is the simplest code with as many: a $14 \times 14$ thumbnail
# (average pooling), enlarged back to $28 \times 28$. The claim is that the learned code keeps the digit at least as
# well: its accuracy is not below the thumbnail's by more than two standard errors of the paired difference (the
# same digits read both ways). The control decodes each digit's latent *after shuffling the latents among the
# digits* (a decoder handed the wrong code), read against the true labels: the same test must reject it.

# %%
images, labels = test_set.images, test_set.labels
with torch.no_grad():
    recon = torch.cat([autoencoder(part, sample=False)[0].clamp(-1, 1) for part in images.split(500)])
    thumb = F.interpolate(F.avg_pool2d(images, 2), scale_factor=2, mode="bilinear", align_corners=False)
    shuffled_z = autoencoder.encode(images)[0][
        torch.randperm(len(images), generator=torch.Generator().manual_seed(1))
    ]
    wrong_code = autoencoder.decode(shuffled_z).clamp(-1, 1)
read = {
    name: classify(classifier, x)[1] == labels
    for name, x in (("real", images), ("recon", recon), ("thumbnail", thumb), ("shuffled", wrong_code))
}


def paired_gap(a, b):  # (accuracy of a - accuracy of b, standard error of that difference), same digits
    d = read[a].float() - read[b].float()
    return d.mean().item(), (d.std() / len(d) ** 0.5).item()


for name in read:
    print(f"classifier accuracy on {name:>9}: {read[name].float().mean():.3f}")
gap, gap_se = paired_gap("recon", "thumbnail")
wrong_gap, wrong_se = paired_gap("shuffled", "thumbnail")
print(f"reconstruction - thumbnail: {gap:+.3f} ± {gap_se:.3f}; shuffled codes - thumbnail: {wrong_gap:+.3f}")
reference = classify(classifier, images)[0]  # features of the 1,000 held-out digits, the FD reference below


def floors(n, seed=0):  # FD to the held-out digits of n random training digits, and of their reconstructions
    real = train_set.images[torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))[:n]]
    with torch.no_grad():
        rebuilt = autoencoder(real, sample=False)[0].clamp(-1, 1)
    return (frechet_distance(classify(classifier, x)[0], reference) for x in (real, rebuilt))


fd_floor, fd_recon = floors(1000)
print(
    f"FD to the held-out digits, 1,000 training digits: as they are {fd_floor:.2f}, reconstructed {fd_recon:.2f}"
)

# %%
# proves C35
prove(
    "C35",
    -gap,
    2 * gap_se,
    what="accuracy lost by the reconstructions against a 14x14 thumbnail (1,000 digits)",
)

# %%
# control for C35: the decoder handed the latent of another digit
control(
    "C35", -wrong_gap, 2 * wrong_se, what="accuracy lost by decoding shuffled latents against the thumbnail"
)

# %% [markdown]
# The reconstructed training digits' FD to the held-out digits is a floor for everything below: a latent model whose
# samples were perfect latents of real digits would still pay for what the decoder loses.
#
# ## 3. The latent space and its scale
#
# Flow matching mixes a latent with standard Gaussian noise. If the latents had a standard deviation of 5, the noise
# would hardly disturb them until $t$ is near 0; if 0.05, it would drown them almost at once, and the time steps
# spent on the rest would be wasted. Stable Diffusion multiplies its latents by one number chosen from data so that
# they have unit standard deviation (0.18215 for its autoencoder); `latent_scale` computes ours as $1/\operatorname{std}$
# of posterior samples $z = \mu + \sigma\epsilon$ over the training digits, and `LatentSpace` applies it on the way in
# and divides it out on the way to the decoder. How far from 1 it lands depends on the KL weight: the KL term pulls
# every posterior towards $\mathcal N(0, I)$, so a strong one leaves little to rescale, while Stable Diffusion's very
# weak one let its latents spread to a std of about 5.5. Section 5 measures what forgetting the scale costs ours.

# %%
space = LatentSpace(autoencoder, ae_settings["scale"])
gen = torch.Generator().manual_seed(2)
with torch.no_grad():
    mean_z, logvar_z = autoencoder.encode(train_set.images)
raw = mean_z + (0.5 * logvar_z).exp() * torch.randn(mean_z.shape, generator=gen)
print(f"scale by hand 1/std = {1 / raw.std():.4f}; shipped scale (computed the same way) {space.scale:.4f}")
scaled = space.encode(train_set.images, sample=True, generator=gen)
print(f"std of the scaled latents: {scaled.std():.3f}; mean {scaled.mean():+.3f}")
assert abs(scaled.std().item() - 1) < 0.02
fig, axes = plt.subplots(1, 2, figsize=(10, 2.6))
axes[0].hist(raw.flatten().numpy(), bins=100, density=True)
axes[0].set_title(f"latent values as encoded (std {raw.std():.2f})")
axes[1].imshow(tile(scaled[:10].reshape(40, 1, 7, 7), nrow=10, pad=1), cmap="RdBu_r")
axes[1].set_title("four 7x7 channels (rows) of ten digits' scaled latents")
axes[1].axis("off")
plt.show()

# %% [markdown]
# ## 4. Flow matching in the latent space: SD3's recipe
#
# Nothing new in the loss: lesson 04's conditional flow matching on the straight path, with latents for data,
# $$\mathcal L = \mathbb E_{t, z, \epsilon}\,\lVert v_\theta(x_t, t, c) - (z - \epsilon)\rVert^2, \qquad
# x_t = t\,z + (1 - t)\,\epsilon,$$
# where $z$ is a fresh posterior sample of a training digit's latent at every step, and $c$ its class, replaced by the
# null class one time in ten so that the same network also learns the unconditional field (classifier-free guidance,
# lesson 08). What SD3 adds is **where on the path it trains**: instead of $t \sim U[0, 1]$ it draws
# $t = \operatorname{sigmoid}(m + s\,n)$ with $n \sim \mathcal N(0, 1)$, the logit-normal law, which spends more
# steps in the middle of the path, where the velocity is hardest to predict, and fewer near the ends, where it is
# nearly the average of the data ($t \approx 0$) or nearly the noise ($t \approx 1$). Its density follows from the
# change of variables $\ell = \log\frac{t}{1-t}$, $d\ell/dt = \frac{1}{t(1-t)}$:
# $$\pi(t) = \frac{1}{s\sqrt{2\pi}\; t(1-t)}\exp\!\left(-\frac{(\log\frac{t}{1-t} - m)^2}{2 s^2}\right).$$
# Lesson 06 met this law as a loss weighting (`lessons.weighting`); we check its sampler `logit_normal_times` against the density bin by bin, each bin's count against its standard error.

# %%
ts = logit_normal_times(200_000, generator=torch.Generator().manual_seed(3))
edges = torch.linspace(0, 1, 21)
counts = torch.histc(ts, bins=20, min=0, max=1)
grid = torch.linspace(1e-4, 1 - 1e-4, 20001)
cdf = torch.cumsum(logit_normal_density(grid), 0) * (grid[1] - grid[0])  # the density integrated numerically
expected = torch.diff(torch.cat([torch.zeros(1), torch.from_numpy(np.interp(edges[1:], grid, cdf)).float()]))
expected = expected / expected.sum() * len(ts)
z_bins = ((counts - expected) / expected.clamp_min(1).sqrt()).abs().max().item()
print(f"largest bin deviation from the density: {z_bins:.2f} standard errors (20 bins)")
assert z_bins < Z_MAX
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.hist(ts.numpy(), bins=50, density=True, alpha=0.5, label="logit_normal_times")
ax.plot(grid, logit_normal_density(grid), label="density by change of variables")
ax.axhline(1, color="gray", ls=":", label="uniform")
ax.set(xlabel="t", title="where SD3 trains on the path")
ax.legend()
plt.show()

# %% [markdown]
# Training in the latent space is cheap: a latent is four times smaller than a digit, and the network needs no
# resolution levels to reach across the image. We train a small latent U-Net for real here; the measurements use the
# shipped one, trained by `scripts/train_latent.py` with the same recipe for longer.

# %%
latent_steps = by_budget(fast=300, full=2000)
demo_flow, flow_result = train_latent_model(
    latent_unet(num_classes=10), space, train_set.images, train_set.labels, latent_steps, progress=True
)
print(
    f"trained a latent U-Net for {flow_result.steps_done} steps in {flow_result.seconds:.0f} s; loss "
    f"{np.mean(flow_result.losses[:20]):.3f} -> {np.mean(flow_result.losses[-20:]):.3f}"
)
assert np.mean(flow_result.losses[-20:]) < 0.8 * np.mean(flow_result.losses[:20])
unet, unet_settings = load_image_model(checkpoint_path("latent", "unet.pt"))
dit, dit_settings = load_dit(checkpoint_path("latent", "dit.pt"))
demo_noise, demo_labels = (
    torch.randn(20, *space.shape, generator=torch.Generator().manual_seed(4)),
    torch.arange(20) % 10,
)
fig, axes = plt.subplots(1, 2, figsize=(12, 2.2))
for ax, (name, net) in zip(
    axes, ((f"our latent U-Net, {latent_steps} steps", demo_flow), ("shipped latent U-Net", unet))
):
    ax.imshow(tile(generate_latent(net, space, demo_noise, nfe=8, cond=demo_labels), nrow=10), cmap="gray_r")
    ax.set_title(f"{name}: 8 Euler steps, classes 0..9")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 5. Pixels against latents (C36)
#
# Lesson 07's pixel-space model (`checkpoints/mnist/cfm_small.pt`) and the shipped latent U-Net learned the same thing
# from the same 4,000 digits with the same loss; they differ in where they learn it, and in the time sampling. We
# measure both on the same footing: FD of 8-step Euler samples (the same class counts) to the held-out digits,
# over several noise seeds, and the **training compute**, counted rather than timed: the FLOPs of one training step
# (the network's forward and backward pass on a batch, counted by `torch.utils.flop_counter`, `lessons.training.
# step_flops`) times the number of steps. The latent model's count includes training the autoencoder, which it needs
# and the pixel model does not. Throughput and sampling time are timed too, as a second, machine-dependent view.
#
# The claim holds if the latent model's FD is no worse than the pixel model's (its excess at most two standard
# errors of the difference of the seed means) while its training used fewer FLOPs. The control is the autoencoder
# without the flow: its decoder fed prior noise $z \sim \mathcal N(0, I)$, as one samples a VAE; the same FD test
# must reject it. We also decode the latent U-Net's samples without dividing out the scale, the bug section 3
# warned of, and read what it costs here.

# %%
pixel, pixel_settings = load_image_model(checkpoint_path("mnist", "cfm_small.pt"))
n_eval = by_budget(fast=200, full=400)
eval_seeds = by_budget(fast=[2, 3, 4], full=[2, 3, 4, 5])
nfes = by_budget(fast=[2, 4, 8], full=[2, 4, 8, 16])
eval_labels = torch.arange(n_eval) % 10
floor_n, recon_n = floors(n_eval)  # the same floors for sample sets of n_eval digits (FD grows as n shrinks)
unscaled = LatentSpace(autoencoder, 1.0)  # latents decoded without dividing out the scale
one_setting = ("latent U-Net, unscaled", "prior noise decoded")  # measured at one setting only


def noise_for(shape, seed):
    return torch.randn(n_eval, *shape, generator=torch.Generator().manual_seed(seed))


samplers = {  # name -> function(seed, nfe) -> images (n_eval, 1, 28, 28)
    "pixel U-Net": lambda s, n: (
        generate(pixel, "cfm", noise_for((1, 28, 28), s), n, cond=eval_labels, batch_size=100).final
    ),
    "latent U-Net": lambda s, n: generate_latent(unet, space, noise_for(space.shape, s), n, cond=eval_labels),
    "latent DiT": lambda s, n: generate_latent(dit, space, noise_for(space.shape, s), n, cond=eval_labels),
    "latent U-Net, unscaled": lambda s, n: unscaled.decode(
        generate(unet, "cfm", noise_for(space.shape, s), n, cond=eval_labels).final
    ),
    "prior noise decoded": lambda s, n: space.decode(noise_for(space.shape, s)),  # no flow at all
}
scores, sample_seconds = (
    {},
    {},
)  # (name, seed, nfe) -> (FD, class accuracy); name -> seconds per 100 digits at 8 NFE
for name, sample in samplers.items():
    for seed in eval_seeds:
        for n in nfes if name not in one_setting else [8]:
            start = time.perf_counter()
            x = sample(seed, n)
            if n == 8:
                sample_seconds[name] = (time.perf_counter() - start) * 100 / n_eval
            feats, predicted = classify(classifier, x)
            scores[name, seed, n] = (
                frechet_distance(feats, reference),
                (predicted == eval_labels).float().mean().item(),
            )


def seed_values(name, n, which=0):  # (seeds,) FD (which=0) or accuracy (which=1)
    return np.array([scores[name, s, n][which] for s in eval_seeds])


print(f"{'':>24}" + "".join(f"{'FD @ ' + str(n):>12}" for n in nfes))
for name in samplers:
    cells = [
        f"{seed_values(name, n).mean():>12.2f}" if (name, eval_seeds[0], n) in scores else f"{'':>12}"
        for n in nfes
    ]
    print(f"{name:>24}" + "".join(cells))

# %%
ae_flops = ae_settings["step_flops"] * ae_settings["steps"]
batch = (train_set.images[:64], train_set.labels[:64])
pixel_step = step_flops(pixel, make_loss("cfm", num_classes=10), batch)
mean64, std64 = space.posterior(train_set.images[:64])
latent_step = step_flops(unet, latent_cfm_loss(10), (mean64, std64, train_set.labels[:64]))
compute = {  # training FLOPs
    "pixel U-Net": pixel_step * pixel_settings["steps"],
    "latent U-Net": latent_step * unet_settings["steps"] + ae_flops,
}
print(
    f"one training step of batch 64: pixel U-Net {pixel_step / 1e9:.1f} GFLOP ({count_parameters(pixel):,} parameters), "
    f"latent U-Net {latent_step / 1e9:.2f} GFLOP ({count_parameters(unet):,} parameters)"
)
print(
    f"training compute: pixel {compute['pixel U-Net'] / 1e12:.1f} TFLOP ({pixel_settings['steps']} steps); latent "
    f"{compute['latent U-Net'] / 1e12:.1f} TFLOP ({unet_settings['steps']} steps, of which the autoencoder "
    f"{ae_flops / 1e12:.1f})"
)
for name, settings in (
    ("pixel U-Net", pixel_settings),
    ("latent U-Net", unet_settings),
    ("latent DiT", dit_settings),
):
    rate = settings["steps"] * settings["batch_size"] / settings["train_cpu_seconds"]
    print(
        f"{name}: trained at {rate:.0f} digits per CPU second ({settings['device']}, the shipped run); "
        f"samples 100 digits at 8 NFE in {sample_seconds[name]:.2f} s here"
    )
ae_rate = ae_settings["steps"] * ae_settings["batch_size"] / ae_settings["train_cpu_seconds"]
print(f"the autoencoder trained at {ae_rate:.0f} digits per CPU second ({ae_settings['device']})")

fd_pixel, fd_latent, fd_unscaled, fd_bug = (
    seed_values(k, 8) for k in ("pixel U-Net", "latent U-Net", *one_setting)
)
se_diff = math.sqrt(fd_pixel.var(ddof=1) / len(fd_pixel) + fd_latent.var(ddof=1) / len(fd_latent))
se_bug = math.sqrt(fd_pixel.var(ddof=1) / len(fd_pixel) + fd_bug.var(ddof=1) / len(fd_bug))
print(
    f"FD at 8 NFE: pixel {fd_pixel.mean():.2f}, latent {fd_latent.mean():.2f} (difference {fd_latent.mean() - fd_pixel.mean():+.2f}"
    f" ± {se_diff:.2f}); unscaled decoding {fd_unscaled.mean():.2f}; prior noise decoded {fd_bug.mean():.2f}"
)
se_unscaled = math.sqrt(fd_unscaled.var(ddof=1) / len(fd_unscaled) + fd_latent.var(ddof=1) / len(fd_latent))
gap_unscaled = (fd_unscaled.mean() - fd_latent.mean()) / se_unscaled
print(
    f"forgetting the scale ({space.scale:.3f}) changes the FD by {gap_unscaled:+.1f} standard errors: "
    + ("beyond the noise" if abs(gap_unscaled) > 2 else "within the noise")
)

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 3.2))
for name in ("pixel U-Net", "latent U-Net", "latent DiT"):
    values = np.array([seed_values(name, n) for n in nfes])
    ax0.errorbar(
        nfes,
        values.mean(1),
        yerr=values.std(1, ddof=1) / len(eval_seeds) ** 0.5,
        fmt="o-",
        capsize=3,
        label=name,
    )
ax0.axhline(recon_n, color="k", ls=":", label=f"{n_eval} reconstructed training digits")
ax0.axhline(floor_n, color="gray", ls="--", label=f"{n_eval} real training digits")
ax0.set(
    xscale="log", yscale="log", xlabel="Euler steps (NFE)", ylabel="classifier FD", title="sample quality"
)
ax0.legend()
ax1.barh(
    ["pixel U-Net", "latent U-Net"],
    [compute["pixel U-Net"] / 1e12, latent_step * unet_settings["steps"] / 1e12],
)
ax1.barh(
    ["latent U-Net"],
    [ae_flops / 1e12],
    left=[latent_step * unet_settings["steps"] / 1e12],
    label="its autoencoder",
)
ax1.set(xlabel="training TFLOP", title="training compute")
ax1.legend()
plt.tight_layout()
plt.show()

# %%
# proves C36
prove("C36", fd_latent.mean() - fd_pixel.mean(), 2 * se_diff, what="FD at 8 NFE, latent minus pixel U-Net")
prove(
    "C36",
    compute["latent U-Net"] / compute["pixel U-Net"],
    1.0,
    what="training FLOPs, latent (with its autoencoder) / pixel",
)

# %%
# control for C36: the autoencoder alone, its decoder fed prior noise without the flow
control(
    "C36",
    fd_bug.mean() - fd_pixel.mean(),
    2 * se_bug,
    what="FD, prior noise decoded without the flow, minus pixel at 8 NFE",
)

# %% [markdown]
# ## 6. A tiny DiT (C37)
#
# A Diffusion Transformer treats the latent as a sequence of **patches**: each $p \times p$ patch of the
# $(4, 7, 7)$ latent becomes one token (here $p = 1$: 49 tokens of 4 numbers), linearly embedded, plus a fixed
# position embedding. Transformer blocks mix the tokens with self-attention; a final layer maps each token back to a
# patch (unpatchify). The time and the class enter every block through **adaLN-zero**: a small network maps the
# embedding $c$ of $(t, \text{class})$ to a shift $\beta$, a scale $\gamma$ and a gate $g$ for each of the block's two
# parts,
# $$h \leftarrow h + g_1 \odot \operatorname{Attn}\big((1 + \gamma_1)\odot\operatorname{LN}(h) + \beta_1\big),\qquad
# h \leftarrow h + g_2 \odot \operatorname{MLP}\big((1 + \gamma_2)\odot\operatorname{LN}(h) + \beta_2\big),$$
# and that network's last layer starts at **zero**, so every gate is 0 and every block is exactly the identity when
# training starts: a deep stack begins as a short one and grows its depth as it learns. The first part of C37 checks
# this on a fresh block (and on MM-DiT's joint block); the control is the same block with its adaLN layer given
# ordinary random weights.
#
# **MM-DiT** (SD3) keeps two streams of tokens, here 4 learned class tokens and the 49 image tokens, each with its own
# weights, and lets them attend to each other in **one joint attention** over the concatenation $[\text{class};
# \text{image}]$: the condition is read by attention, not only through adaLN.

# %%
x = torch.randn(2, 4, 7, 7)
tokens = patchify(x, 1)
print(
    f"latent {tuple(x.shape)} -> tokens {tuple(tokens.shape)} -> back, exact: {torch.equal(unpatchify(tokens, 1, 4, 7, 7), x)}"
)
assert torch.equal(unpatchify(tokens, 1, 4, 7, 7), x)
torch.manual_seed(5)
h, c, ctx = torch.randn(2, 49, 64), torch.randn(2, 64), torch.randn(2, 4, 64)
block, joint = DiTBlock(64, heads=4), JointDiTBlock(64, heads=4)
identity_gap = max(
    (block(h, c) - h).abs().max().item(),
    *((a - b).abs().max().item() for a, b in zip(joint(h, ctx, c), (h, ctx))),
)
perturbed = DiTBlock(64, heads=4)
torch.nn.init.normal_(perturbed.modulation[1].weight, std=0.02)  # an ordinary initialisation, not adaLN-zero
perturbed_gap = (perturbed(h, c) - h).abs().max().item()
print(
    f"fresh adaLN-zero blocks: largest |block(h) - h| = {identity_gap:.1e}; with ordinary init: {perturbed_gap:.3f}"
)

# %%
# proves C37
prove("C37", identity_gap, 0.0, what="largest |block(h) - h| of fresh adaLN-zero blocks (DiT and MM-DiT)")

# %%
# control for C37: the same block with an ordinary initialisation of its adaLN layer
control("C37", perturbed_gap, 0.0, what="largest |block(h) - h| with the adaLN layer randomly initialised")

# %% [markdown]
# **Does a trained DiT draw the digit it is asked for?** The shipped DiT and the shipped latent U-Net have about the
# same number of parameters and were trained by the same script on the same latents for the same steps. We ask each
# for an equal number of every digit (no guidance) and let the classifier read them. "Draws the requested class"
# means that the classifier reads the requested digit in most samples: the accuracy's lower two-standard-error bound
# is above one half. The control asks for one class and reads the answer against the *next* class, as a mixed-up
# label table would: the same test must reject it.

# %%
acc = {
    name: np.array([scores[name, s, 8][1] for s in eval_seeds])
    for name in ("latent DiT", "latent U-Net", "pixel U-Net")
}
n_read = n_eval * len(eval_seeds)
dit_samples = generate_latent(dit, space, noise_for(space.shape, eval_seeds[0]), 8, cond=eval_labels)
read_dit = classify(classifier, dit_samples)[1]
shifted = (read_dit == (eval_labels + 1) % 10).float().mean().item()
print(f"{'':>14}{'params':>9}{'steps':>7}{'FD @ 8':>9}{'accuracy':>10}")
for name, net, settings in (
    ("latent DiT", dit, dit_settings),
    ("latent U-Net", unet, unet_settings),
    ("pixel U-Net", pixel, pixel_settings),
):
    fd = seed_values(name, 8)
    print(
        f"{name:>14}{count_parameters(net):>9,}{settings['steps']:>7}{fd.mean():>9.2f}{acc[name].mean():>10.3f}"
    )
acc_dit = acc["latent DiT"].mean()
acc_se = math.sqrt(acc_dit * (1 - acc_dit) / n_read)
fig, ax = plt.subplots(figsize=(8, 2.2))
ax.imshow(tile(dit_samples[:20], nrow=10), cmap="gray_r")
ax.set_title("the shipped DiT, 8 Euler steps, classes 0..9")
ax.axis("off")
plt.show()

# %%
# proves C37
prove(
    "C37",
    acc_dit - 2 * acc_se,
    0.5,
    ">=",
    what="class accuracy of the DiT's samples (8 NFE), lower 2-SE bound",
)

# %%
# control for C37: the DiT's samples read against the next class (a mixed-up label table)
control(
    "C37",
    shifted - 2 * math.sqrt(max(shifted * (1 - shifted), 1e-4) / n_eval),
    0.5,
    ">=",
    what="the same samples read against class + 1",
)

# %% [markdown]
# ## Exercises
#
# **Checked exercises.** Each is a function to write. Replace the line `raise NotImplementedError(...)` by
# your code and run the cell: `check` runs your function on random inputs against the library and says what is
# right, what is off and by how much, and which common slip your answer matches. Until you fill it in, it
# says "not done yet" and the rest of the notebook runs as before. The solutions are in
# `solutions/09_latent_dit.py` (a handout for learners leaves that folder out).
#
# **Checked 1: the autoencoder's loss.** Write the loss of sections 1 and 2 for a batch of `images`
# `(B, 1, 28, 28)`: encode them with `model.encode(images)`, which gives `(mean, logvar)`, each
# `(B, 4, 7, 7)`; draw the posterior sample $z = \mu + \sigma\,\epsilon$ from the given standard normal draws
# `eps` `(B, 4, 7, 7)` (the reparameterisation); decode it with `model.decode(z)`; and return the batch mean
# of the squared reconstruction error, summed over the pixels, plus `beta` times the KL term in closed form.
# Return the tensor itself, with its graph, so that training could take its gradient. The check runs your loss
# on 16 random images with a fixed tiny `KLAutoencoder`, at $\beta = 0.01$ and $0.5$, and compares it with
# `lessons.autoencoder.autoencoder_loss` drawing the same $\epsilon$.

# %%
from lessons.exercises import check


def beta_vae_loss(model, images, eps, beta):
    """The loss (0-dim): batch mean of sum_pixels (images - decode(z))^2 + beta KL, z = mean + sigma eps."""
    raise NotImplementedError("hint: logvar is log sigma^2; the KL is section 1's closed form per image")


check("beta_vae_loss", beta_vae_loss)

# %% [markdown]
# **Checked 2: the logit-normal density.** SD3 draws its times as $t = \operatorname{sigmoid}(m + s\,n)$ with
# $n \sim \mathcal N(0, 1)$. Derive the density of $t$ by the change of variables $\ell = \log\frac{t}{1 - t}$
# (try it before you reread section 4) and write it for times `t` `(N,)` strictly inside $(0, 1)$, `mean`
# $= m$ and `std` $= s$ (floats). The check compares your density with
# `lessons.weighting.logit_normal_density` at 250 times for three $(m, s)$: SD3's $(0, 1)$ and two others, so
# that a missing $1/s$ or a mirrored logit shows.


# %%
def logit_normal_pdf(t, mean, std):
    """The density (N,) at t (N,) in (0, 1) of t = sigmoid(mean + std n), n ~ N(0, 1)."""
    raise NotImplementedError("hint: the normal density of l = log(t / (1 - t)), times |dl/dt|")


check("logit_normal_pdf", logit_normal_pdf)

# %% [markdown]
# **Checked 3: a DiT block with adaLN.** Write the forward pass of section 6's block from its parts: the
# tokens `x` `(B, N, D)`; `mods`, the six `(B, D)` vectors that the block's adaLN layer makes from the
# conditioning vector $c$, in the order $(\beta_1, \gamma_1, g_1, \beta_2, \gamma_2, g_2)$ (shift, scale and
# gate of the attention part, then of the MLP part); and the functions `attention`, `mlp` and `norm` (the
# layer norm without its own scale and shift, the same for both parts), each taking and returning `(B, N, D)`.
# A `(B, D)` vector acts on every token of its sample: index it `[:, None]`. The check compares your block
# with `lessons.dit.DiTBlock` on two blocks with random adaLN weights, and on one fresh block, whose output
# must be its input (C37).


# %%
def adaln_zero_block(x, mods, attention, mlp, norm):
    """The block's output (B, N, D) for tokens x (B, N, D); mods: six (B, D): (shift, scale, gate) x 2."""
    raise NotImplementedError("hint: two gated residual parts, the second reading the first one's output")


check("adaln_zero_block", adaln_zero_block)

# %% [markdown]
# **Open questions** (no automatic check: each asks for an experiment; what a good answer contains is said
# under it).
#
# 1. **The KL weight.** Train the autoencoder with $\beta$ ten times larger and ten times smaller
#    (`scripts/train_latent.py --beta`). What happens to the reconstructions' accuracy, to the latents'
#    histogram, and to the latent model's FD?
#    *A good answer* measures all three for each $\beta$ on the same held-out digits and noise seeds (the
#    accuracy against the thumbnail with its paired standard error, as in section 2; the raw latents'
#    histogram, their std and so the scale factor; the FD at 8 NFE with its standard error over seeds) and
#    explains them: a large $\beta$ pulls every posterior towards $\mathcal N(0, I)$, so the code carries less
#    about the digit (blurrier reconstructions, lower accuracy, posterior noise a larger share of the latents'
#    variance); a tiny $\beta$ makes the code nearly deterministic and lets the latents spread into whatever
#    shape the encoder likes, which the flow model may find harder to learn: the FD, not the reconstructions,
#    shows whether it does.
# 2. **Uniform times.** Train the latent U-Net with uniform times
#    (`latent_cfm_loss(..., time_sampling="uniform")`, or `train_latent_model(..., time_sampling="uniform")`)
#    for the same steps and seed. Does the logit-normal law help at this scale, and at which NFE?
#    *A good answer* compares the two FD-against-NFE curves over the same noise seeds with their standard
#    errors, and says at each NFE whether the difference is beyond the noise, rather than reading one run; it
#    explains what the law changes: with $m = 0, s = 1$ the training times crowd around $t = 1/2$ (the density
#    is about 1.6 there and near 0 at the ends), where the velocity is hardest to predict, at the price of
#    less training near the ends.
# 3. **Patch size.** Give the DiT patches of size 7, one token for the whole latent
#    (`DiT(dit_config("small", 10, input_size=7, patch_size=7))`), and of size 1 at the same width, trained
#    alike. How do the parameter count, the FLOPs per step and the FD change?
#    *A good answer* counts the parameters (`count_parameters`: the patch embedding and the final layer grow
#    from $4 D$ to $196 D$ weights), measures the FLOPs per step with `step_flops` and the FD at 8 NFE over
#    the same seeds, and explains them: with one token the softmax over one key is 1, so attention only passes
#    its values through and every block is an MLP modulated by adaLN; the model loses the mixing between
#    positions that attention gives, while its FLOPs fall with the number of tokens.

# %% [markdown]
# ## What to remember
# - An autoencoder trained once moves generation into a space four times smaller; its loss is a weighted negative
#   ELBO, and its KL term has a closed form (checked here by Monte Carlo).
# - The latents are scaled to unit standard deviation from data before they are mixed with noise. How much that
#   matters depends on the autoencoder: ours, trained with a KL weight of 0.01, already has a std near 1 (scale
#   about 1.06), so here forgetting the scale is lost in the noise; Stable Diffusion's needs 0.18215.
# - SD3's recipe is lesson 04's flow matching on latents, with logit-normal times; measured in FLOPs, it reaches the
#   pixel model's quality with less training compute, the autoencoder included.
# - A DiT is a transformer over patches whose blocks start as the identity (adaLN-zero); on these latents it is
#   compared with a U-Net of the same size, measured rather than assumed.
