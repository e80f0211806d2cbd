"""Training and sampling recipe for the image models of lessons 07 and 08: DDPM or CFM, EMA, GPU speed-ups.

'ddpm': Ho et al.'s eps-prediction loss on the discrete schedule (lessons.ddpm), sampled by DDIM on
  a sub-sequence of its steps (lessons.ddim.ddim with DiscreteVPSchedule).
'cfm':  conditional flow matching on the OT path x_t = t data + (1 - t) noise (lessons.flow_matching),
  sampled by Euler steps of the learned velocity (lessons.solvers.solve_ode).
On CUDA the loss runs under bf16 autocast with channels_last tensors, and the forward pass is
compiled with torch.compile; on other devices these switch themselves off.
"""

import contextlib
import warnings

import torch

from lessons.checkpoints import configured_builder, load_model, save_configured_model
from lessons.checks import (
    check_finite,
    check_instance,
    check_memory,
    check_number,
    check_positive_int,
    check_seed,
    check_tensor,
    choose,
)
from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.device import _parse_device, pick_device
from lessons.flow_matching import cfm_loss
from lessons.guidance import ClassifierFreeGuidance, drop_labels
from lessons.mnist import MNIST, mnist_batches
from lessons.models import _check_num_classes
from lessons.optimal_transport import ot_assignment
from lessons.paths import GaussianPath
from lessons.progress import Progress
from lessons.schedules import LinearSchedule
from lessons.solvers import solve_ode
from lessons.tensors import time_like
from lessons.training import random_batches, train_with_ema
from lessons.trajectory import Trajectory
from lessons.unet import UNet, UNetConfig

IMAGE_METHODS = ("ddpm", "cfm")  # the two training and sampling recipes of the image models
IMAGE_PREDICTIONS = ("velocity", "eps")  # what a flow-matching image network may output on the straight path
# which noise each training image is paired with (flow matching only): drawn apart; re-paired within each batch by
# the exact OT assignment (Tong et al.'s minibatch OT-CFM); or the noise the image was generated from (reflow)
IMAGE_COUPLINGS = ("independent", "ot", "reflow")


def autocast_for(device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, a do-nothing context on any other device."""
    if _parse_device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format_for(device) -> torch.memory_format:
    """channels_last on CUDA (faster convolutions with tensor cores), the usual layout elsewhere."""
    return torch.channels_last if _parse_device(device).type == "cuda" else torch.contiguous_format


def make_loss(
    method: str,
    forward=None,
    num_classes: int | None = None,
    p_uncond: float = 0.1,
    ddpm: DDPM | None = None,
    coupling: str = "independent",
    prediction: str = "velocity",
):
    """loss_fn(model, batch) for lessons.training.train; batch is images (B, 1, H, W) or (images, labels).

    With labels, each is replaced by the null class num_classes with probability p_uncond (label
    dropout), so one network learns both the conditional and the unconditional model.
    coupling (flow matching only): 'independent' draws the noise apart from the images; 'ot' re-pairs each
    batch's images (and their labels) with its noise by the exact OT assignment on the flattened pixels;
    'reflow' takes the noise from the batch, (images, labels, noise) or (images, noise), the noise each
    image was generated from.
    prediction (flow matching only): what the network outputs on the straight path, 'velocity' (CFM) or 'eps'
    (the noise, an eps-MSE loss as DDPM's on the straight path; sample it with lessons.ddim.ddim on
    LinearSchedule() from a time after 0, where alpha > 0).
    """
    choose(method, IMAGE_METHODS, "training method")
    choose(coupling, IMAGE_COUPLINGS, "coupling")
    choose(prediction, IMAGE_PREDICTIONS, "prediction (what the flow network outputs)")
    if prediction != "velocity" and method != "cfm":
        raise ValueError(
            f"prediction={prediction!r} trains a network on the straight path; DDPM's network predicts eps on its "
            "own schedule already: use method='cfm', or leave prediction='velocity'."
        )
    if coupling != "independent" and method != "cfm":
        raise ValueError(
            f"the {coupling!r} coupling pairs noise with images for flow matching; DDPM's loss draws its own "
            "noise: use method='cfm', or coupling='independent'."
        )
    if forward is not None and not callable(forward):
        raise TypeError(
            f"forward must be None or a model called as forward(x=..., t=..., cond=...), got {type(forward).__name__}."
        )
    _check_num_classes(num_classes)
    check_number(p_uncond, "p_uncond (the label dropout probability)", low=0, high=1)
    if ddpm is not None:
        check_instance(ddpm, DDPM, "ddpm", "DDPM()")
    ddpm, path = ddpm or DDPM(), GaussianPath(LinearSchedule())

    def loss_fn(model, batch):
        net = forward or model
        noise = None
        if coupling == "reflow":
            if not isinstance(batch, tuple) or len(batch) not in (2, 3):
                raise ValueError(
                    "the 'reflow' coupling needs batches (images, labels, noise) or (images, noise): the noise "
                    "each image was generated from (train_image_model(..., coupling='reflow', noise=...))."
                )
            *batch, noise = batch
            batch = tuple(batch) if len(batch) == 2 else batch[0]
        images, labels = batch if isinstance(batch, tuple) else (batch, None)
        if coupling == "ot":
            noise = torch.randn_like(images)
            partner = ot_assignment(
                noise.flatten(1), images.flatten(1)
            )  # images[partner[i]] goes with noise[i]
            images, labels = images[partner], None if labels is None else labels[partner]
        if labels is not None and num_classes is None and p_uncond > 0:
            raise ValueError(
                "the batch carries labels but make_loss has no num_classes to drop them to; "
                "give make_loss(..., num_classes=model.num_classes)."
            )
        images = images.contiguous(memory_format=memory_format_for(images.device))
        if labels is not None and p_uncond > 0:  # p_uncond = 0 keeps every label (and draws nothing)
            labels = drop_labels(labels, p_uncond, num_classes)
        with autocast_for(images.device):
            loss = (
                ddpm.loss(net, images, cond=labels)
                if method == "ddpm"
                else cfm_loss(net, path, images, noise=noise, cond=labels, prediction=prediction)
            )
        return loss.float()

    return loss_fn


def compiled_forward(model, device, use_compile: bool | None = None):
    """torch.compile(model) on CUDA when it compiles and runs; None (eager) otherwise."""
    check_instance(model, UNet, "model", "UNet(unet_config('tiny'))")
    if use_compile is not None and not isinstance(use_compile, bool):
        raise TypeError(
            f"use_compile must be True, False or None (compile on CUDA only), got {use_compile!r}."
        )
    if use_compile is None:
        use_compile = _parse_device(device).type == "cuda"
    if not use_compile:
        return None
    try:
        fast = torch.compile(model)
        c = model.num_classes
        x = torch.zeros(2, model.config.image_channels, 28, 28, device=device)
        with autocast_for(device):
            fast(
                x=x,
                t=time_like(0.5, x),
                cond=None if c is None else torch.zeros(2, dtype=torch.long, device=device),
            )
        return fast
    except Exception as err:  # an old GPU, no compiler toolchain: eager mode still works
        warnings.warn(
            f"torch.compile failed ({type(err).__name__}); training without it.", RuntimeWarning, stacklevel=2
        )
        return None


def train_image_model(
    model: UNet,
    method: str,
    data: MNIST,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    classes: bool = False,
    p_uncond: float = 0.1,
    ema_decay: float = 0.999,
    device=None,
    seed: int = 0,
    use_compile: bool | None = None,
    progress: bool = True,
    callback=None,
    callback_every: int = 100,
    lr_schedule: str = "cosine",
    coupling: str = "independent",
    noise: torch.Tensor | None = None,
    prediction: str = "velocity",
):
    """Train model in place with lessons.training.train; return (EMA copy of the model, TrainResult).

    callback(step, ema_model, losses) runs every callback_every steps (to measure quality while training).
    coupling: 'independent', 'ot' or 'reflow' (see make_loss); 'reflow' needs noise (N, 1, 28, 28), the noise
    each image of data was generated from (generate_reflow_pairs makes both), drawn with its image in each batch.
    prediction: 'velocity' or (flow matching only) 'eps', see make_loss.
    """
    check_instance(model, UNet, "model", "UNet(unet_config('tiny'))")
    choose(method, IMAGE_METHODS, "training method")
    check_instance(data, MNIST, "data", "load_mnist('train')")
    check_positive_int(steps, "the number of training steps")
    check_positive_int(batch_size, "batch_size")
    check_number(lr, "the learning rate lr", low=0, low_open=True)
    check_number(ema_decay, "ema_decay", low=0, high=1, high_open=True)
    check_seed(seed)
    check_positive_int(callback_every, "callback_every")
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be a function callback(step, ema_model, losses), got {type(callback).__name__}."
        )
    device = pick_device(device)
    if classes and not model.num_classes:
        raise ValueError(
            "classes=True needs a U-Net built with num_classes (e.g. unet_config(size, num_classes=10))."
        )
    choose(coupling, IMAGE_COUPLINGS, "coupling")
    make_loss(method, coupling=coupling, prediction=prediction)  # refuses a bad combination before any work
    if (coupling == "reflow") != (noise is not None):
        raise ValueError(
            "coupling='reflow' trains on pairs: give noise, the noise each image of data was generated from "
            "(data, noise = generate_reflow_pairs(model, ...)); the other couplings draw their own noise (noise=None)."
        )
    if noise is not None:
        check_finite(check_tensor(noise, "noise"), "noise")
        if noise.shape != data.images.shape:
            raise ValueError(
                f"noise must hold one noise image per training image, shape {tuple(data.images.shape)}; "
                f"got {tuple(noise.shape)}."
            )
        if batch_size > len(data):
            raise ValueError(f"batch_size must be between 1 and the {len(data)} pairs, got {batch_size}.")
        rows = (data.images, data.labels, noise) if classes else (data.images, noise)
        batches = random_batches(rows, batch_size, torch.Generator().manual_seed(seed))
    else:
        batches = mnist_batches(data, batch_size, with_labels=classes, seed=seed)
    model.to(device=device, memory_format=memory_format_for(device))
    forward = compiled_forward(model, device, use_compile)
    loss_fn = make_loss(
        method, forward, model.num_classes, p_uncond, coupling=coupling, prediction=prediction
    )
    return train_with_ema(
        model,
        loss_fn,
        batches,
        steps,
        ema_decay,
        callback,
        callback_every,
        lr=lr,
        seed=seed,
        device=device,
        progress=progress,
        lr_schedule=lr_schedule,
    )


def clip_data_prediction(model, schedule, low: float = -1.0, high: float = 1.0):
    """An eps-model whose implied data prediction is clipped to [low, high] (Ho et al.'s sampler does this).

    data_hat = clip((x_t - sigma eps) / alpha), then eps' = (x_t - alpha data_hat) / sigma, (B, ...).
    Near pure noise alpha is tiny, so an error in eps becomes an error 1 / alpha times larger in data_hat.
    """
    if not callable(model) or not callable(schedule):
        raise TypeError(
            "model must be an eps-model model(x=..., t=..., cond=...) and schedule a schedule object."
        )
    check_number(low, "low")
    check_number(high, "high")
    if not low < high:
        raise ValueError(f"the clipping range needs low < high, got low = {low} and high = {high}.")

    def clipped(x, t, cond=None):
        c = schedule(t).expand_like(x)
        data_hat = ((x - c.sigma * model(x=x, t=t, cond=cond)) / c.alpha).clamp(low, high)
        return (x - c.alpha * data_hat) / c.sigma

    return clipped


@torch.no_grad()
def generate(
    model,
    method: str,
    noise: torch.Tensor,
    nfe: int,
    cond: torch.Tensor | None = None,
    guidance: float = 0.0,
    ddpm: DDPM | None = None,
    eta: float = 0.0,
    clip: bool = False,
    batch_size: int | None = None,
) -> Trajectory:
    """Samples from noise (B, C, H, W) in nfe network calls (guided calls count once): DDIM for 'ddpm', Euler for 'cfm'.

    clip (DDPM only): clip the data prediction to [-1, 1] at every DDIM step.
    batch_size: sample that many images per network call, the trajectories joined along B: the same images as
    one call (on a CPU, batches of ~100 keep the activations in cache and run about twice as fast as 1,000 at once).
    With eta > 0 each batch draws its own step noise, so the samples differ from one call's (not their law).
    """
    if not callable(model):
        raise TypeError(
            f"model must be a network called as model(x=..., t=..., cond=...), got {type(model).__name__}."
        )
    choose(method, IMAGE_METHODS, "sampling method")
    check_finite(check_tensor(noise, "noise", ndim=4), "noise")
    check_positive_int(nfe, "nfe (the number of network evaluations)")
    check_number(guidance, "guidance (the guidance scale w)", low=0)
    check_number(eta, "eta", low=0)
    if ddpm is not None:
        check_instance(ddpm, DDPM, "ddpm", "DDPM()")
    if clip and method != "ddpm":
        raise ValueError("clip applies to the DDPM (eps-prediction) sampler only.")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size (images per network call)")
        if cond is not None:
            if not isinstance(cond, torch.Tensor):
                raise TypeError(
                    f"cond must be a tensor of class labels, one per image, got {type(cond).__name__}."
                )
            if cond.shape[:1] != noise.shape[:1]:
                raise ValueError(
                    f"cond must hold one label per noise image to be split into batches: noise has "
                    f"{noise.shape[0]} images, cond has shape {tuple(cond.shape)}."
                )
    # the trajectory keeps nfe + 1 states, stacked once at the end (about twice their size at the peak)
    check_memory(
        2 * (nfe + 1) * noise.numel() * max(4, noise.element_size()),
        f"generating {noise.shape[0]} images in {nfe} steps",
    )
    net = ClassifierFreeGuidance(model, guidance) if guidance > 0 else model
    if method == "ddpm":
        ddpm = ddpm or DDPM()
        schedule = DiscreteVPSchedule(ddpm)
        net = clip_data_prediction(net, schedule) if clip else net

    def sample(z, c):  # one batch: (nfe + 1, b, C, H, W) states
        with autocast_for(z.device):
            if method == "ddpm":
                return ddim(net, z, schedule, ddim_times(ddpm, nfe), eta=eta, cond=c)
            return solve_ode(net, z, steps=nfe, method="euler", cond=c)

    if batch_size is None or batch_size >= noise.shape[0]:
        traj = sample(noise, cond)
        return Trajectory(traj.ts, traj.xs.float(), traj.nfe)
    starts = range(0, noise.shape[0], batch_size)
    xs = None
    for start in starts:
        part = slice(start, start + batch_size)
        traj = sample(noise[part], None if cond is None else cond[part])
        if xs is None:  # filled batch by batch: no list of trajectories to join at the end
            xs = torch.empty((traj.xs.shape[0], *noise.shape), dtype=torch.float32, device=noise.device)
        xs[:, part] = traj.xs
    return Trajectory(traj.ts, xs, traj.nfe)


def generate_reflow_pairs(
    model: UNet, count: int, nfe: int = 32, seed: int = 0, batch_size: int = 100, progress=None
):
    """Reflow's training pairs from a class-conditional flow model: (MNIST of its samples, the noise of each).

    count noise images (count, 1, 28, 28) drawn from seed, labels 0, 1, ..., 9, 0, ... in turn, each carried to a
    digit by nfe Euler steps of the model (no guidance) and clipped to the pixel range [-1, 1]; sampled
    batch_size at a time, keeping only each batch's final state. progress: a bar per batch (True, False, or None:
    only once it has run for a while).
    """
    check_instance(model, UNet, "model", "load_image_model(checkpoint_path('mnist', 'cfm_small.pt'))[0]")
    if not model.num_classes:
        raise ValueError(
            "generate_reflow_pairs labels each pair with the digit it was generated as: give a class-conditional "
            "flow model (built with unet_config(size, num_classes=10))."
        )
    check_positive_int(count, "count (the number of pairs)")
    check_positive_int(nfe, "nfe (Euler steps per sample)")
    check_seed(seed)
    check_positive_int(batch_size, "batch_size (images per network call)")
    device = next(model.parameters()).device
    noise = torch.randn(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(count) % 10
    images = torch.empty_like(noise)
    starts = range(0, count, batch_size)
    with Progress(len(starts), "reflow pairs", progress) as bar:
        for start in starts:
            part = slice(start, start + batch_size)
            z, c = noise[part].to(device), labels[part].to(device)
            images[part] = generate(model, "cfm", z, nfe, cond=c).final.float().clamp(-1, 1).cpu()
            bar.update()
    description = (
        f"{count:,} reflow pairs: noise and the model's {nfe}-step Euler sample from it (seed {seed})"
    )
    return MNIST(images, labels, source="reflow", description=description), noise


def save_image_model(path, model: UNet, settings: dict) -> str:
    """Save a U-Net's weights with its configuration and the given settings (method, steps, ...); return the checksum."""
    return save_configured_model(path, model, UNet, "unet", settings, "UNet(unet_config('tiny'))")


def load_image_model(path, device="cpu"):
    """Load (U-Net in eval mode, settings) from a checkpoint written by save_image_model, checksum verified."""
    device = pick_device(device)
    model, settings = load_model(path, _build_unet)
    return model.to(device), settings


_build_unet = configured_builder(
    UNet, UNetConfig, "unet", "it was not written by save_image_model; remake it with scripts/train_mnist.py"
)
