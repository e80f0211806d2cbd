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
# # 08 · Guidance: asking for a digit, and how hard to ask
#
# Lesson 07 gave each model a class label and sampled without further ado. The samples were digits, but
# not always the digit we asked for. **Classifier-free guidance** (Ho & Salimans, 2022) makes the label
# count for more, at a price: the samples of one class become more alike. This lesson derives the guided
# field, trains with the one trick it needs (label dropout), and measures the trade-off.
#
# **What you will learn**
# - class-conditional flow matching: the label is one more input, `model(x=..., t=..., cond=label)`;
# - label dropout: one network learns $v(x, t, c)$ and $v(x, t, \varnothing)$ at once;
# - why $(1 + w)\,v(x, t, c) - w\,v(x, t, \varnothing)$ is the right guided field;
# - claim **C28**: as $w$ grows, a classifier agrees with the requested label more often, while the
#   diversity within each class falls, measured;
# - an explorer with a digit picker and a guidance slider.

# %%
import time

import matplotlib.pyplot as plt
import torch

from lessons.budget import budget, by_budget
from lessons.checkpoints import checkpoint_path
from lessons.device import describe_device, pick_device
from lessons.image_metrics import classify, frechet_distance, load_classifier
from lessons.image_training import generate, load_image_model
from lessons.mnist import load_mnist, tile

device = pick_device()
print("budget:", budget(), "| device:", describe_device(device))
lesson_start = time.process_time()
train_set, test_set = load_mnist("train"), load_mnist("test")
classifier = load_classifier()

# %% [markdown]
# ## 1. From a classifier's gradient to a guided field
#
# Bayes' rule for the noisy marginals gives $\log p_t(x \mid c) = \log p_t(x) + \log p_t(c \mid x) - \log p(c)$,
# so the conditional score is the unconditional one plus a classifier's gradient:
# $\nabla \log p_t(x \mid c) = \nabla \log p_t(x) + \nabla \log p_t(c \mid x)$.
# **Classifier guidance** (Dhariwal & Nichol) scales the classifier term by $1 + w$. Without a classifier,
# write it as a difference of the two scores we can learn:
# $$\nabla \log p_t(x) + (1 + w)\,\nabla \log p_t(c \mid x) = (1 + w)\,\nabla \log p_t(x \mid c) - w\,\nabla \log p_t(x).$$
# This is sampling from $p_t(x)\,p_t(c \mid x)^{1+w}$: the classifier's opinion raised to a power, which
# sharpens it — regions that are unambiguously a "3" gain weight, unusual 3s lose it.
#
# For a Gaussian path the velocity is affine in the score, $v_t(x) = a_t\,x + b_t\,\nabla \log p_t(x)$
# (lesson 06), with the same $a_t, b_t$ for every class, so the same combination holds for velocities
# (and for noise or data predictions):
# $$\tilde v(x, t, c) = (1 + w)\,v(x, t, c) - w\,v(x, t, \varnothing).$$
# $w = 0$ is the plain conditional model. One network gives both terms if, during training, the label is
# replaced by a "no class" token $\varnothing$ some of the time (here 10%): **label dropout**.

# %%
from lessons.guidance import ClassifierFreeGuidance
from lessons.image_training import make_loss
from lessons.unet import UNet, unet_config

cfm_model, settings = load_image_model(checkpoint_path("mnist", "cfm_small.pt"))
print(
    f"shipped model: class-conditional flow matching, label dropout p = {settings['p_uncond']}, "
    f"{settings['steps']} steps, {settings['train_cpu_seconds']:.0f} CPU seconds"
)
x, t, c = torch.randn(4, 1, 28, 28), torch.rand(4), torch.tensor([3, 1, 4, 1])
w = 2.0
null = torch.full_like(c, cfm_model.num_classes)  # the "no class" token is index 10
by_hand = (1 + w) * cfm_model(x=x, t=t, cond=c) - w * cfm_model(x=x, t=t, cond=null)
library = ClassifierFreeGuidance(cfm_model, w)(x=x, t=t, cond=c)
print("guided velocity, by hand vs lessons.guidance:", (by_hand - library).abs().max().item())
assert torch.allclose(by_hand, library, atol=1e-5)

# %% [markdown]
# ## 2. Training with label dropout, for real
#
# The recipe of lesson 07 with `classes=True`: each minibatch carries its labels, and `make_loss` drops
# each to $\varnothing$ with probability `p_uncond`. A tiny model trains here for a few hundred steps to
# show that it runs; the measurements use the shipped small model.

# %%
from lessons.image_training import train_image_model

size, steps = by_budget(fast=("tiny", 300), full=("small", 1500))
tiny = UNet(unet_config(size, num_classes=10))
ema_tiny, result = train_image_model(
    tiny,
    "cfm",
    train_set,
    steps=steps,
    batch_size=32,
    lr=2e-3,
    classes=True,
    p_uncond=0.1,
    device=device,
    progress=False,
)
print(
    f"{size} model, {result.steps_done} steps: loss {sum(result.losses[:20]) / 20:.3f} -> {sum(result.losses[-20:]) / 20:.3f}"
)
assert sum(result.losses[-20:]) < 0.8 * sum(result.losses[:20])
seen = []


def spy(x, t, cond):  # records the labels it gets
    return seen.append(cond) or tiny(x=x, t=t, cond=cond)


make_loss("cfm", forward=spy, num_classes=10, p_uncond=0.1)(
    tiny, (train_set.images[:1000].to(device), train_set.labels[:1000].to(device))
)
dropped = float((seen[0] == 10).float().mean())
print(f"fraction of labels dropped to 'no class' in a batch of 1000: {dropped:.3f} (p_uncond = 0.1)")
assert abs(dropped - 0.1) < 4 * (0.1 * 0.9 / 1000) ** 0.5  # within 4 binomial standard errors

# %% [markdown]
# ## 3. Guidance scale against accuracy and diversity
#
# For each guidance scale $w$ we draw the same noise, ask for an equal number of each digit, and sample
# with Euler steps. Three measurements:
# - **accuracy**: how often the classifier reads the digit we asked for;
# - **diversity**: the mean distance between two samples of the same class, in the classifier's
#   32-dimensional feature space, averaged over classes (the same number for real held-out digits is
#   the diversity we would like to keep);
# - the classifier **Fréchet distance** to held-out real digits (lesson 07), which mixes both.

# %%
from lessons.image_metrics import class_diversity

scales = by_budget(fast=[0.0, 0.5, 1.0, 2.0, 4.0], full=[0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0])
n_eval, nfe = by_budget(fast=(200, 8), full=(1000, 16))
noise = torch.randn(n_eval, 1, 28, 28, generator=torch.Generator().manual_seed(0))
labels = torch.arange(n_eval) % 10
pick = torch.randperm(len(test_set), generator=torch.Generator().manual_seed(0))[:n_eval]
reference = test_set.images[pick]
ref_feats, _ = classify(classifier, reference)
real_diversity = class_diversity(ref_feats, test_set.labels[pick])

rows, grids = [], []
for w in scales:
    samples = generate(cfm_model, "cfm", noise, nfe=nfe, cond=labels, guidance=w).final
    feats, predicted = classify(classifier, samples)
    rows.append(
        dict(
            w=w,
            accuracy=float((predicted == labels).float().mean()),
            diversity=class_diversity(feats, labels),
            fd=frechet_distance(feats, ref_feats),
        )
    )
    grids.append(samples[:30])
print(f"{nfe} Euler steps, {n_eval} samples per scale; real held-out digits: diversity {real_diversity:.2f}")
print(f"{'w':>5} | {'accuracy':>8} | {'diversity':>9} | {'FD':>7}")
for r in rows:
    print(f"{r['w']:>5.1f} | {r['accuracy']:>8.3f} | {r['diversity']:>9.2f} | {r['fd']:>7.2f}")

# %%
fig, axes = plt.subplots(1, len(scales), figsize=(2.3 * len(scales), 3))
for ax, w, grid in zip(axes, scales, grids):
    ax.imshow(tile(grid, nrow=5), cmap="gray_r")
    ax.set_title(f"w = {w}")
    ax.axis("off")
fig.suptitle("same noise, same labels (0..9 in each row pair), growing guidance")
plt.show()

# %% [markdown]
# **Claim C28.** Accuracy rises and diversity falls as $w$ grows. The tolerances come from the sampling
# noise of each measurement on this number of samples: for accuracy, the binomial standard error
# $\sqrt{p(1-p)/n}$; for diversity, the spread of the same statistic between two disjoint halves of the
# real held-out digits (a data-vs-data baseline).

# %%
# proves C28
acc = torch.tensor([r["accuracy"] for r in rows])
div = torch.tensor([r["diversity"] for r in rows])
half = len(test_set) // 2
perm = torch.randperm(len(test_set), generator=torch.Generator().manual_seed(1))
all_feats, _ = classify(classifier, test_set.images)
div_a = class_diversity(all_feats[perm[:half]], test_set.labels[perm[:half]])
div_b = class_diversity(all_feats[perm[half:]], test_set.labels[perm[half:]])
div_noise = abs(div_a - div_b) * (half / n_eval) ** 0.5  # scaled to n_eval samples (error ~ 1/sqrt(n))
acc_se = (acc[0] * (1 - acc[0]) / n_eval).sqrt().item()

fig, ax1 = plt.subplots(figsize=(6.5, 4))
ax1.plot(scales, acc, "o-", color="tab:blue", label="accuracy (classifier agrees)")
ax1.set(xlabel="guidance scale w", ylabel="accuracy", title="classifier-free guidance: accuracy vs diversity")
ax2 = ax1.twinx()
ax2.plot(scales, div, "s--", color="tab:red", label="diversity within a class")
ax2.axhline(real_diversity, color="tab:red", ls=":", label="diversity of real digits")
ax2.set_ylabel("mean feature distance within a class")
fig.legend(loc="center right", bbox_to_anchor=(0.88, 0.5))
plt.show()
print(
    f"accuracy {acc[0]:.3f} -> {acc[-1]:.3f} (standard error {acc_se:.3f}); "
    f"diversity {div[0]:.2f} -> {div[-1]:.2f} (data-vs-data spread {div_noise:.2f})"
)
assert acc[-1] - acc[0] > 3 * acc_se, "guidance should raise class accuracy"
assert div[0] - div[-1] > 3 * div_noise, "guidance should lower diversity"
assert (acc[1:] - acc[:-1] > -2 * acc_se).all() and (
    div[1:] - div[:-1] < 2 * div_noise
).all()  # monotone up to noise

# %% [markdown]
# Too much guidance costs quality too: the Fréchet distance, which sees both whether samples look like
# digits and whether they vary like digits, is usually best at a moderate $w$ and worse at large $w$ —
# which is why text-to-image systems use a middle value.
#
# ## 4. Explore it yourself
#
# The explorer shows precomputed samples (the same noise for every scale), so the slider is instant.

# %%
from widgets.guidance import GuidanceExplorer, precompute_guided_samples

explorer_scales = [0.0, 0.5, 1.0, 2.0, 4.0]
explorer = GuidanceExplorer(
    precompute_guided_samples(cfm_model, explorer_scales, per_class=8, nfe=8), classifier
)
explorer.scale.value = 4.0  # what a learner would do: move the slider
assert explorer.message.layout.display == "none"
print(f"lesson CPU time: {time.process_time() - lesson_start:.0f} s")
explorer

# %% [markdown]
# ## Exercises
# 1. Guide the DDPM model of lesson 07 (`checkpoints/mnist/ddpm_small.pt`, also trained with label dropout)
#    with `generate(..., method="ddpm", guidance=w)`. The guided noise prediction uses the same formula: why?
# 2. Negative guidance ($-1 < w < 0$) interpolates towards the unconditional model. What happens to
#    accuracy and diversity? (`ClassifierFreeGuidance` refuses it; write the two-line field yourself.)
# 3. Guide only for $t > 0.5$ (late, detail-setting steps) or only for $t < 0.5$. Which half decides the class?
#
# ## What to remember
# - Classifier-free guidance needs no classifier: label dropout trains the conditional and the
#   unconditional model in one network, and the guided field is $(1+w)\,v_c - w\,v_\varnothing$.
# - It samples from $p(x)\,p(c \mid x)^{1+w}$: samples become more typical of their class (higher
#   accuracy) and less varied (lower diversity). That trade-off is measured, not assumed.
