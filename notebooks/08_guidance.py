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
# # 08 · Guidance: asking for a digit, and how hard to ask
#
# Lesson 07 gave each model a class label and sampled without further ado. The samples were digits, but
# not always the digit we asked for. **Classifier-free guidance** (Ho & Salimans, 2022) makes the label
# count for more, at a price: the samples of one class become more alike. This lesson derives the guided
# field, checks with exact fields what it does and does not sample, trains with the one trick it needs
# (label dropout), and measures the trade-off.
#
# **What you will learn**
# - class-conditional flow matching: the label is one more input, `model(x=..., t=..., cond=label)`;
# - label dropout: one network learns $v(x, t, c)$ and $v(x, t, \varnothing)$ at once;
# - where the guided field $(1 + w)\,v(x, t, c) - w\,v(x, t, \varnothing)$ comes from;
# - claim **C29**: it does *not* sample the "sharpened" law $p(x)\,p(c \mid x)^{1+w}$ — shown on a 2D
#   mixture whose fields and tilted law are exact;
# - claim **C28**: as $w$ grows, a classifier agrees with the requested label more often, while the
#   diversity within each class falls, measured over several noise seeds with intervals;
# - an explorer with a digit picker and a guidance slider.

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
import scipy.stats
import torch

from lessons.budget import budget, by_budget
from lessons.checkpoints import checkpoint_path
from lessons.claims import control, prove
from lessons.device import describe_device, pick_device
from lessons.evaluation import data_band
from lessons.guidance import sample_tilted
from lessons.image_metrics import class_diversity, classify, frechet_distance, load_classifier
from lessons.image_training import generate, load_image_model, make_loss, train_image_model
from lessons.metrics import energy_distance
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.mnist import load_mnist, tile
from lessons.schedules import LinearSchedule
from lessons.solvers import solve_ode
from lessons.unet import UNet, unet_config
from widgets.guidance import GuidanceExplorer, precompute_guided_samples

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
# At each time $t$ this is the score of the *tilted noised* law $p_t(x)\,p_t(c \mid x)^{1+w}$ (normalised),
# the classifier's opinion raised to a power. It is tempting to conclude that the sampler then ends at the
# tilted data law $p(x)\,p(c \mid x)^{1+w}$. **It does not.** The tilted laws of different times are not
# the noising of one law: noising the tilted data law gives another family, because $p_t(c \mid x)$ is an
# average of $p(c \mid \text{data})$ over the data that could have produced $x$, and a power of an average is
# not an average of powers. So the guided field is not the velocity of any one noising path, and neither the
# ODE nor the SDE built on it samples the tilted law (Chidambaram et al. 2024, "What does guidance do?";
# Bradley & Nakkiran 2024). Section 2 measures the gap with exact fields (claim C29). What guidance does is
# follow, at every time, a field that points to where the classifier is more confident; on MNIST that makes
# samples more typical of their class and less varied (claim C28, section 4).
#
# For a Gaussian path the velocity is affine in the score, $v_t(x) = a_t\,x + b_t\,\nabla \log p_t(x)$
# (lesson 06), with the same $a_t, b_t$ for every class, so the same combination holds for velocities
# (and for noise or data predictions):
# $$\tilde v(x, t, c) = (1 + w)\,v(x, t, c) - w\,v(x, t, \varnothing).$$
# $w = 0$ is the plain conditional model. One network gives both terms if, during training, the label is
# replaced by a "no class" token $\varnothing$ some of the time (here 10%): **label dropout**.

# %%
cfm_model, settings = load_image_model(checkpoint_path("mnist", "cfm_small.pt"))
print(
    f"shipped model: class-conditional flow matching, label dropout p = {settings['p_uncond']}, "
    f"{settings['steps']} steps, {settings['train_cpu_seconds']:.0f} CPU seconds"
)
x, t, c = torch.randn(4, 1, 28, 28), torch.rand(4), torch.tensor([3, 1, 4, 1])
w = 2.0
null = torch.full_like(c, cfm_model.num_classes)  # the "no class" token is index 10
by_hand = (1 + w) * cfm_model(x=x, t=t, cond=c) - w * cfm_model(x=x, t=t, cond=null)
from lessons.guidance import ClassifierFreeGuidance  # the library's version, imported after deriving it

library = ClassifierFreeGuidance(cfm_model, w)(x=x, t=t, cond=c)
print("guided velocity, by hand vs lessons.guidance:", (by_hand - library).abs().max().item())
assert torch.allclose(by_hand, library, atol=1e-5)

# %% [markdown]
# ## 2. What the guided field samples: an exact check in 2D
#
# On MNIST nobody knows $p(x)\,p(c \mid x)^{1+w}$. On a 2D Gaussian mixture with class labels everything is
# exact: two classes of two overlapping components each (equal priors $p(c) = 1/2$), the conditional and
# unconditional marginal velocities $u_t(x \mid c)$ and $u_t(x)$ of the straight path in closed form
# (`ExactMixtureModel`, lesson 04), so the guided field $(1 + w)\,u_t(x \mid c) - w\,u_t(x)$ carries no
# training error, and an RK4 solver with enough steps carries no solver error either (checked by doubling them).
#
# The tilted law $p(x \mid c)^{1+w}\,p(x)^{-w} \propto p(x)\,p(c \mid x)^{1+w}$ is drawn exactly by rejection:
# draw $x \sim p(x \mid c)$ and keep it with probability $p(c \mid x)^{w} \le 1$, with
# $p(c \mid x) = p(c)\,p(x \mid c) / p(x)$ (`lessons.guidance.sample_tilted`). We compare laws with the
# energy distance (lesson 01), against the band it shows between two samples of the *same* law.

# %%
class_means = {0: [[-1.0, 0.0], [0.5, 1.5]], 1: [[1.0, 0.0], [-0.5, -1.5]]}
class_laws = {k: GaussianMixture(m, 0.6) for k, m in class_means.items()}
all_classes = GaussianMixture(class_means[0] + class_means[1], 0.6)  # p(x) = (p(x|0) + p(x|1)) / 2
path_2d = LinearSchedule()
u_cond = ExactMixtureModel(class_laws[0], path_2d, prediction="velocity")  # u_t(x | c = 0), exact
u_all = ExactMixtureModel(all_classes, path_2d, prediction="velocity")  # u_t(x), exact


def guided_field(w):
    return lambda x, t, cond=None: (1 + w) * u_cond(x=x, t=t) - w * u_all(x=x, t=t)


n_2d, ode_steps, band_repeats = by_budget(fast=(1000, 50, 12), full=(4000, 100, 20))
scales_2d = [0.0, 1.0, 2.0, 4.0]


def guided_2d(w, seed=0, steps=ode_steps):  # (n_2d, 2) guided ODE samples of class 0
    noise = torch.randn(n_2d, 2, generator=torch.Generator().manual_seed(seed))
    return solve_ode(guided_field(w), noise, steps=steps, method="rk4").final


def tilted_2d(w, seed):  # (n_2d, 2) exact draws of p(x | 0)^(1+w) p(x)^(-w)
    return sample_tilted(class_laws[0], all_classes, 0.5, w, n_2d, torch.Generator().manual_seed(seed))


def p_class0(x):  # exact p(c = 0 | x), (B,)
    return torch.exp(math.log(0.5) + class_laws[0].log_prob(x) - all_classes.log_prob(x))


solver_gap = (guided_2d(scales_2d[-1]) - guided_2d(scales_2d[-1], steps=2 * ode_steps)).abs().max().item()
print(
    f"RK4, {ode_steps} vs {2 * ode_steps} steps at w = {scales_2d[-1]}: samples move by at most {solver_gap:.1e}"
)
assert solver_gap < 1e-3  # solver error is negligible next to the gaps below

rows_2d = []
for w in scales_2d:
    guided, tilted = guided_2d(w), tilted_2d(w, seed=1)
    band = data_band(energy_distance, lambda seed: tilted_2d(w, 100 + seed), repeats=band_repeats)
    rows_2d.append(
        dict(
            w=w,
            guided=guided,
            tilted=tilted,
            ed=energy_distance(guided, tilted),
            tol=(
                band.mean() + 3 * band.std()
            ).item(),  # what chance gives between two samples of the tilted law
            conf_guided=p_class0(guided).mean().item(),
            conf_tilted=p_class0(tilted).mean().item(),
        )
    )
print(f"{'w':>4} | {'ED(guided, tilted)':>18} | {'band':>6} | mean p(c|x): guided  tilted")
for r in rows_2d:
    print(
        f"{r['w']:>4.1f} | {r['ed']:>18.4f} | {r['tol']:>6.4f} |              {r['conf_guided']:.3f}   {r['conf_tilted']:.3f}"
    )

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
other = class_laws[1].sample(n_2d, generator=torch.Generator().manual_seed(5))
r2 = rows_2d[2]
for ax, (name, pts) in zip(
    axes[:2], (("exact tilted law", r2["tilted"]), ("guided ODE samples", r2["guided"]))
):
    ax.scatter(*other.T, s=3, color="tab:gray", alpha=0.3, label="class 1 (the other class)")
    ax.scatter(*pts.T, s=3, color="tab:blue", alpha=0.5, label=f"class 0, {name}")
    ax.set(title=f"w = {r2['w']}: {name}", xlim=(-3.5, 3.5), ylim=(-4, 5), aspect="equal")
    ax.legend(loc="lower right", fontsize=8, markerscale=3)
axes[2].plot(scales_2d, [r["ed"] for r in rows_2d], "o-", label="ED(guided, exact tilted law)")
axes[2].plot(scales_2d, [r["tol"] for r in rows_2d], "k:", label="band: two samples of the tilted law")
axes[2].set(xlabel="guidance scale w", ylabel="energy distance", title="guidance vs the tilted law")
axes[2].legend()
plt.show()

# %% [markdown]
# **Claim C29.** At $w = 0$ the guided samples are the plain conditional law (within the band of two samples of
# $p(x \mid c)$); for every $w > 0$ they differ from the exact tilted law by far more than the band. The
# controls run the same two checks on something wrong: the "same law" check on $w = 2$ guided samples against
# the conditional law (it must reject them), and the "different law" check on two fresh samples of the tilted
# law (it must not call them different).


# %%
# proves C29
def conditional_draw(seed):  # (n_2d, 2) draws of the plain conditional law p(x | 0)
    return class_laws[0].sample(n_2d, generator=torch.Generator().manual_seed(seed))


band_c = data_band(energy_distance, lambda seed: conditional_draw(200 + seed), repeats=band_repeats)
tol_c = (band_c.mean() + 3 * band_c.std()).item()
prove(
    "C29",
    energy_distance(rows_2d[0]["guided"], conditional_draw(1)),
    tol_c,
    "<=",
    what="w=0 guided vs conditional law, energy distance",
)
for r in rows_2d[1:]:
    prove("C29", r["ed"], r["tol"], ">=", what=f"w={r['w']:g} guided vs exact tilted law, energy distance")
assert all(r["conf_guided"] > r["conf_tilted"] for r in rows_2d[1:])  # guidance overshoots the tilt

# %%
# control for C29
control(
    "C29",
    energy_distance(r2["guided"], conditional_draw(1)),
    tol_c,
    "<=",
    what=f"w={r2['w']:g} guided vs conditional law (wrong law)",
)
control(
    "C29",
    energy_distance(tilted_2d(r2["w"], 900), tilted_2d(r2["w"], 901)),
    r2["tol"],
    ">=",
    what=f"two samples of the w={r2['w']:g} tilted law (same law)",
)

# %% [markdown]
# The guided samples are not a little off: they overshoot. The mean classifier confidence $p(c \mid x)$ of the
# guided samples is higher than that of the tilted law at every $w > 0$, and the guided cloud is pushed
# beyond the class, away from the other one, where the tilted law only reweights the class's own
# components. Guidance is a good *heuristic* for "more typical of class $c$"; it is not a sampler of
# $p(x)\,p(c \mid x)^{1+w}$, and no choice of steps fixes that, since the field itself is the cause.
#
# ## 3. Training with label dropout, for real
#
# The recipe of lesson 07 with `classes=True`: each minibatch carries its labels, and `make_loss` drops
# each to $\varnothing$ with probability `p_uncond`. A tiny model trains here for a few hundred steps to
# show that it runs; the measurements use the shipped small model.

# %%
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
)
print(
    f"{size} model, {result.steps_done} steps: loss {sum(result.losses[:20]) / 20:.3f} -> {sum(result.losses[-20:]) / 20:.3f}"
)
assert sum(result.losses[-20:]) < 0.8 * sum(result.losses[:20])
seen = []


def spy(x, t, cond):  # records the labels it gets; its output does not matter here, so no network call
    seen.append(cond)
    return torch.zeros_like(x)


make_loss("cfm", forward=spy, num_classes=10, p_uncond=0.1)(
    tiny, (train_set.images[:1000].to(device), train_set.labels[:1000].to(device))
)
dropped = float((seen[0] == 10).float().mean())
print(f"fraction of labels dropped to 'no class' in a batch of 1000: {dropped:.3f} (p_uncond = 0.1)")
assert abs(dropped - 0.1) < 4 * (0.1 * 0.9 / 1000) ** 0.5  # within 4 binomial standard errors

# %% [markdown]
# ## 4. Guidance scale against accuracy and diversity
#
# For each guidance scale $w$ we ask for an equal number of each digit and sample with Euler steps. Three
# measurements:
# - **accuracy**: how often the classifier reads the digit we asked for;
# - **diversity**: the mean distance between two samples of the same class, in the classifier's
#   32-dimensional feature space, averaged over classes (the same number for real held-out digits is
#   the diversity we would like to keep);
# - the classifier **Fréchet distance** to held-out real digits (lesson 07), which mixes both.
#
# One batch of noise would give one number per scale, with no idea of its error. We draw several
# independent batches (noise seeds); within a seed every scale starts from the same noise, so the change
# between two scales is measured on the same starting points, and the spread over seeds gives a 95%
# interval (Student's $t$ on the seed values). A few hundred digits per seed are enough for what is tested
# below: the 95% intervals of the changes stay clear of zero. As in lesson 07, the digits are sampled 100 at
# a time (`generate(..., batch_size=100)`): the same images as one big batch, about twice as fast on a CPU.

# %%
scales = by_budget(fast=[0.0, 1.0, 2.0, 4.0], full=[0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0])
n_seeds, n_per_seed, nfe = by_budget(fast=(4, 100, 8), full=(5, 250, 16))
labels = torch.arange(n_per_seed) % 10
pick = torch.randperm(len(test_set), generator=torch.Generator().manual_seed(0))[: n_seeds * n_per_seed]
ref_feats, _ = classify(classifier, test_set.images[pick])
real_diversity = class_diversity(ref_feats, test_set.labels[pick])


CHUNK = 100  # digits per network call (batch_size): a small batch's activations stay in the processor's cache


def measure(w, seed):  # (accuracy, diversity, features, samples) of one batch of guided samples
    noise = torch.randn(n_per_seed, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    samples = generate(cfm_model, "cfm", noise, nfe=nfe, cond=labels, guidance=w, batch_size=CHUNK).final
    feats, predicted = classify(classifier, samples)
    return float((predicted == labels).float().mean()), class_diversity(feats, labels), feats, samples


t_95 = scipy.stats.t.ppf(0.975, n_seeds - 1)


def interval(values):  # (mean, half width of its 95% interval) of per-seed values (n_seeds,)
    return values.mean().item(), t_95 * values.std().item() / n_seeds**0.5


acc, div = torch.zeros(len(scales), n_seeds), torch.zeros(len(scales), n_seeds)  # (scales, seeds)
fds, grids = [], []
for i, w in enumerate(scales):
    feats_w = []
    for seed in range(n_seeds):
        acc[i, seed], div[i, seed], feats, samples = measure(w, seed)
        feats_w.append(feats)
        if seed == 0:
            grids.append(samples[:30])
    fds.append(frechet_distance(torch.cat(feats_w), ref_feats))
print(
    f"{nfe} Euler steps, {n_seeds} seeds x {n_per_seed} samples per scale; "
    f"real held-out digits: diversity {real_diversity:.2f}"
)
print(f"{'w':>5} | {'accuracy (95% interval)':>23} | {'diversity (95% interval)':>24} | {'FD':>6}")
for i, w in enumerate(scales):
    (am, ah), (dm, dh) = interval(acc[i]), interval(div[i])
    print(f"{w:>5.1f} | {am:>13.3f} ± {ah:.3f} | {dm:>16.2f} ± {dh:.2f}   | {fds[i]:>6.2f}")

# %%
fig, axes = plt.subplots(1, len(scales), figsize=(2.3 * len(scales), 3))
for ax, w, grid in zip(axes, scales, grids):
    ax.imshow(tile(grid, nrow=5), cmap="gray_r")
    ax.set_title(f"w = {w}")
    ax.axis("off")
fig.suptitle("same noise, same labels (0..9 in each row pair), growing guidance")
plt.show()

# %% [markdown]
# **Claim C28.** Accuracy rises and diversity falls as $w$ grows. Per seed we take the change from $w = 0$ to
# the largest scale (the same noise at both), and ask that the whole 95% interval of that change, over the
# seeds, lies on the claimed side of zero. The control runs the same check where there is no guidance to
# cause a trend: the "change" from one batch at $w = 0$ to another batch at $w = 0$ with different seeds.

# %%
# proves C28
acc_rise, div_fall = acc[-1] - acc[0], div[0] - div[-1]  # per seed, (n_seeds,)
(ar, ar_h), (df, df_h) = interval(acc_rise), interval(div_fall)
w_max = scales[-1]
prove(
    "C28",
    ar - ar_h,
    0.0,
    ">=",
    what=f"accuracy rise w=0->{w_max:g}, lower end of 95% interval, {n_seeds} seeds",
)
prove(
    "C28",
    df - df_h,
    0.0,
    ">=",
    what=f"diversity fall w=0->{w_max:g}, lower end of 95% interval, {n_seeds} seeds",
)
t_99 = scipy.stats.t.ppf(0.995, n_seeds - 1)
for i in range(len(scales) - 1):  # between neighbours, no step goes significantly the wrong way (99%)
    step_acc, step_div = acc[i + 1] - acc[i], div[i] - div[i + 1]
    assert step_acc.mean() + t_99 * step_acc.std() / n_seeds**0.5 >= 0, f"accuracy falls from w = {scales[i]}"
    assert step_div.mean() + t_99 * step_div.std() / n_seeds**0.5 >= 0, (
        f"diversity rises from w = {scales[i]}"
    )

fig, ax1 = plt.subplots(figsize=(6.5, 4))
ax1.errorbar(
    scales,
    acc.mean(1),
    yerr=[interval(a)[1] for a in acc],
    fmt="o-",
    color="tab:blue",
    capsize=3,
    label="accuracy (classifier agrees)",
)
ax1.set(xlabel="guidance scale w", ylabel="accuracy", title="classifier-free guidance: accuracy vs diversity")
ax2 = ax1.twinx()
ax2.errorbar(
    scales,
    div.mean(1),
    yerr=[interval(d)[1] for d in div],
    fmt="s--",
    color="tab:red",
    capsize=3,
    label="diversity within a class",
)
ax2.axhline(real_diversity, color="tab:red", ls=":", label="diversity of real digits")
ax2.set_ylabel("mean feature distance within a class")
fig.legend(loc="center right", bbox_to_anchor=(0.88, 0.5))
plt.show()
print(
    f"from w = 0 to w = {w_max:g}: accuracy +{ar:.3f} ± {ar_h:.3f}, diversity -{df:.2f} ± {df_h:.2f} "
    f"(means over {n_seeds} seeds, 95% intervals)"
)

# %%
# control for C28
null_acc, null_div = torch.zeros(n_seeds), torch.zeros(n_seeds)
for seed in range(n_seeds):  # w = 0 again, on seeds not used above: any "trend" is chance
    a, d, _, _ = measure(0.0, n_seeds + seed)
    null_acc[seed], null_div[seed] = a - acc[0, seed], div[0, seed] - d
(na, na_h), (nd, nd_h) = interval(null_acc), interval(null_div)
print(
    f"w = 0 vs w = 0, other seeds: accuracy change {na:+.3f} ± {na_h:.3f}, diversity change {-nd:+.2f} ± {nd_h:.2f}"
)
control("C28", na - na_h, 0.0, ">=", what="accuracy 'rise' between two w=0 batches (no guidance)")
control("C28", nd - nd_h, 0.0, ">=", what="diversity 'fall' between two w=0 batches (no guidance)")

# %% [markdown]
# Too much guidance costs quality too: the Fréchet distance, which sees both whether samples look like
# digits and whether they vary like digits, moves by about a third of its $w = 0$ value at most up to $w = 1$
# here, either way (accuracy is already high at $w = 0$), and grows several-fold at large $w$, where diversity
# has collapsed — which is why text-to-image systems, whose unguided accuracy is much lower, use a middle value.
#
# ## 5. Explore it yourself
#
# The explorer shows precomputed samples (the same noise for every scale), so the slider is instant.

# %%
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
#
# **Checked exercises.** Each is a function to write. Replace the line `raise NotImplementedError(...)` by
# your code and run the cell: `check` runs your function on random inputs against the library and says what is
# right, what is off and by how much, and which common slip your answer matches. Until you fill it in, it says
# "not done yet" and the rest of the notebook runs as before. The solutions are in `solutions/08_guidance.py`
# (a handout for learners leaves that folder out).
#
# **Checked 1: the guided field in one network call.** Write the guided velocity of section 1,
# $(1 + w)\,v(x, t, c) - w\,v(x, t, \varnothing)$, for a class-conditional network `model` (called as
# `model(x=..., t=..., cond=...)`; its real classes are `0 .. model.num_classes - 1`, and the extra label
# `model.num_classes` is $\varnothing$, "no class"), points `x` `(B, D)`, times `t` `(B,)`, labels `cond`
# `(B,)` and a scale `w` $\ge 0$. Do it the way `lessons.guidance.ClassifierFreeGuidance` does: **one** call
# of the network on the batch stacked twice, once with the labels and once with $\varnothing$, so that
# guidance costs one (twice as large) network call per step, not two. The check compares your field with
# `ClassifierFreeGuidance` on a fixed 3-class network at $w = 0$, $0.5$ and $3$, and counts the calls.

# %%
from lessons.exercises import check


def guided_velocity(model, x, t, cond, w):
    """(1 + w) v(x, t, c) - w v(x, t, null), (B, D), from one network call on the batch stacked twice."""
    raise NotImplementedError("hint: stack x with itself, and the labels with the 'no class' label")


check("guided_velocity", guided_velocity)

# %% [markdown]
# **Checked 2: the classifier hidden in the guided score.** Section 1 starts from Bayes' rule for the noisy
# marginals, $p_t(c \mid x) = p(c)\,p_t(x \mid c) / p_t(x)$, the classifier that classifier guidance would
# have to train. On the 2D mixtures it is exact. Write it for points `x` `(B, D)` at times `t` `(B,)` on the
# straight path, `class_laws` a list of one `GaussianMixture` per class ($p(x \mid c)$ of the data) and
# `priors` the numbers $p(c)$, returning `(B, C)` (each row sums to 1). The likelihood of a noisy point is
# that of the mixture's noised law: `law.log_prob(x, alpha, sigma)` for
# $x_t = \alpha\,\text{data} + \sigma\,\text{noise}$. The check compares your posterior, on the lesson's two
# classes and on three classes with unequal priors, with the posterior of each component of the mixture of all
# the classes (`GaussianMixture.posterior_weights`) summed over the components of each class. (Its gradient is
# section 2's guidance direction: on the straight path
# $\frac{1 - t}{t}\,\nabla \log p_t(c \mid x) = u_t(x \mid c) - u_t(x)$, which the course's tests check by
# finite differences.)


# %%
def noised_class_posterior(x, t, class_laws, priors):
    """p_t(c | x), (B, C), at x (B, D) and times t (B,); class_laws: C GaussianMixtures; priors: C floats."""
    raise NotImplementedError("hint: Bayes' rule, with the likelihood of x_t = t data + (1 - t) noise")


check("noised_class_posterior", noised_class_posterior)

# %% [markdown]
# **Checked 3: the tilted law by importance weights.** Section 2 draws the tilted law
# $p(x \mid c)^{1+w}\,p(x)^{-w} \propto p(x)\,p(c \mid x)^{1+w}$ by rejection. Weights give its averages
# without rejecting anything: draw `n` points of `conditional` ($p(x \mid c)$, with `conditional.sample(n)`),
# weigh each by the tilted density over the density you drew from (known only up to a constant), and return
# the weighted mean of $p(c \mid x)$: the column "mean p(c|x): tilted" of section 2's table, as a float.
# `conditional` and `marginal` are `GaussianMixture`s ($p(x \mid c)$ and $p(x)$), `class_prior` is $p(c)$.
# Your answer is random, so the check compares it, at $w = 1$ and $2$ with `n = 10000`, with the mean over
# 50,000 exact draws of `lessons.guidance.sample_tilted`, in standard errors of the difference (that of a
# weighted mean comes from the spread of the weighted terms).


# %%
def tilted_confidence(conditional, marginal, class_prior, w, n):
    """The mean of p(c | x) under p(x) p(c | x)^(1+w), from n weighted draws of p(x | c); a float."""
    raise NotImplementedError("hint: the tilted density over p(x | c) is a power of p(c | x): which one?")


check("tilted_confidence", tilted_confidence)

# %% [markdown]
# **Open questions** (no automatic check: each asks for an experiment or a derivation; what a good answer
# contains is said under it).
#
# 1. **Guiding a noise prediction.** Guide the DDPM model of lesson 07 (`checkpoints/mnist/ddpm_small.pt`,
#    also trained with label dropout) with `generate(..., method="ddpm", guidance=w)`, and redo section 4's
#    table for it. The guided noise prediction uses the same formula as the velocity: why?
#    *A good answer* derives it: $\epsilon_t(x, c) = -\sigma_t\,\nabla \log p_t(x \mid c)$ is the score times
#    a number that is the same for every class, so $(1 + w)\,\epsilon_c - w\,\epsilon_\varnothing$ is the
#    noise prediction of the guided score (the same holds for any prediction $a_t\,x + b_t\,\nabla \log p_t$,
#    since $(1 + w) - w = 1$ keeps the common term $a_t\,x$). It then shows accuracy and diversity against $w$
#    with 95% intervals over seeds, as section 4 does, and compares the trend with the flow-matching model's,
#    on the same labels and numbers of steps.
# 2. **Negative guidance.** With $-1 < w < 0$ the field interpolates towards the unconditional model ($w = -1$
#    is the unconditional model itself). What happens to accuracy and diversity? (`ClassifierFreeGuidance`
#    refuses $w < 0$: write the field as a function `field(x, t, cond=None)` from two calls of the model, and
#    integrate it with `solve_ode(field, noise, steps=nfe, method="euler", cond=labels)`.)
#    *A good answer* measures both, with intervals over seeds, at a few $w$ in $[-1, 0]$ on the same noise,
#    and finds the trend of section 4 continued the other way: accuracy falls towards that of the
#    unconditional model (about 10%, one digit in ten matching the label by chance) and diversity rises
#    towards that of all digits; it checks its own field at $w = 0$ against `generate(..., guidance=0.0)`
#    first.
# 3. **When to guide.** Guide only for $t < 0.5$ (the noisy first half, where the coarse shape is set) or only
#    for $t > 0.5$ (the late, detail-setting steps), with a field that switches $w$ on with the time. Which
#    half decides the class?
#    *A good answer* compares accuracy and diversity for no guidance, guidance everywhere, and each half, on
#    the same noise and labels with intervals over seeds, says which half moves the accuracy (the class is
#    decided while the sample is still mostly noise, so expect the noisy half) and what the other half
#    changes, and explains it by what $x_t$ still leaves open at each time (by $t = 0.5$, $x_t$ is half data).
#
# ## What to remember
# - Classifier-free guidance needs no classifier: label dropout trains the conditional and the
#   unconditional model in one network, and the guided field is $(1+w)\,v_c - w\,v_\varnothing$.
# - The guided score is, at each time, the score of the tilted noised law $p_t(x)\,p_t(c \mid x)^{1+w}$, but
#   those laws are not the noising of one law, so guidance does **not** sample $p(x)\,p(c \mid x)^{1+w}$:
#   with exact fields in 2D its samples overshoot the tilted law, while $w = 0$ gives the conditional law (C29).
# - What it does, measured over several noise seeds: samples become more typical of their class (higher
#   accuracy) and less varied (lower diversity), C28. That trade-off is measured, not assumed.
