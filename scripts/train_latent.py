"""Train lesson 09's latent models on MNIST and write checked checkpoints to checkpoints/latent/.

    python scripts/train_latent.py                               # all three, in order
    python scripts/train_latent.py --models unet dit --steps 3000

autoencoder: the KL autoencoder (lessons.autoencoder), digits (1, 28, 28) <-> latents (4, 7, 7);
unet, dit:   class-conditional velocity networks of about the same size trained with flow matching on the
             autoencoder's scaled latents (lessons.latent: SD3's straight path and logit-normal times,
             label dropout for classifier-free guidance), from the autoencoder checkpoint in --out.
Each checkpoint holds the EMA weights, the configuration and every setting of the run (with the measured
CPU seconds and the FLOPs of one training step), with a SHA-256 checksum verified on load.
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch

from lessons.autoencoder import (
    DEFAULT_BETA,
    KLAutoencoder,
    autoencoder_config,
    latent_scale,
    load_autoencoder,
    make_autoencoder_loss,
    save_autoencoder,
    train_autoencoder,
)
from lessons.checkpoints import checksum, load_checkpoint
from lessons.device import describe_device, pick_device
from lessons.dit import DiT, save_dit
from lessons.image_training import save_image_model
from lessons.latent import LatentSpace, latent_cfm_loss, latent_dit_config, latent_unet, train_latent_model
from lessons.mnist import SOURCES, load_mnist
from lessons.training import step_flops
from lessons.unet import count_parameters

MODELS = ("autoencoder", "unet", "dit")


def _common(args, data, device, result, cpu_seconds) -> dict:
    return {
        "steps": result.steps_done,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "data": data.description,
        "device": describe_device(device),
        "train_seconds": round(result.seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
        "final_loss": sum(result.losses[-100:]) / len(result.losses[-100:]),
    }


def train_ae(args, data, device, out: Path) -> None:
    torch.manual_seed(args.seed)
    model = KLAutoencoder(autoencoder_config("small"))
    batch = data.images[: args.batch_size]
    flops = step_flops(model, make_autoencoder_loss(args.beta), batch)
    print(f"autoencoder: {count_parameters(model):,} parameters, {flops / 1e9:.2f} GFLOP per step")
    start_cpu = time.process_time()
    result = train_autoencoder(
        model,
        data,
        args.ae_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        seed=args.seed,
        device=device,
    )
    cpu_seconds = time.process_time() - start_cpu
    model = model.cpu().eval()
    settings = {
        **_common(args, data, device, result, cpu_seconds),
        "beta": args.beta,
        "scale": latent_scale(model, data.images),
        "step_flops": flops,
    }
    digest = save_autoencoder(out / "autoencoder.pt", model, settings)
    print(
        f"wrote {out / 'autoencoder.pt'} (sha256 {digest[:12]}...): {cpu_seconds:.0f} CPU s, scale {settings['scale']:.4f}"
    )


def train_flow(args, name, data, device, out: Path) -> None:
    autoencoder, ae_settings = load_autoencoder(out / "autoencoder.pt")
    space = LatentSpace(autoencoder, ae_settings["scale"])
    torch.manual_seed(args.seed)
    model = latent_unet(num_classes=10) if name == "unet" else DiT(latent_dit_config(num_classes=10))
    mean, std = space.posterior(data.images[: args.batch_size])
    flops = step_flops(model, latent_cfm_loss(10), (mean, std, data.labels[: args.batch_size]))
    print(f"{name}: {count_parameters(model):,} parameters, {flops / 1e9:.2f} GFLOP per step")
    start_cpu = time.process_time()
    ema, result = train_latent_model(
        model,
        space,
        data.images,
        data.labels,
        args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=device,
    )
    cpu_seconds = time.process_time() - start_cpu
    settings = {
        **_common(args, data, device, result, cpu_seconds),
        "model": name,
        "p_uncond": 0.1,
        "time_sampling": "logit_normal(0, 1)",
        "step_flops": flops,
        "parameters": count_parameters(model),
        "autoencoder_sha256": checksum(*load_checkpoint(out / "autoencoder.pt")),
    }
    path = out / f"{name}.pt"
    save = save_image_model if name == "unet" else save_dit
    digest = save(path, ema.cpu(), settings)
    print(f"wrote {path} (sha256 {digest[:12]}...): {result.steps_done} steps, {cpu_seconds:.0f} CPU s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--ae-steps", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=3000, help="training steps of each latent flow model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--beta", type=float, default=DEFAULT_BETA, help="the autoencoder's KL weight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cuda, mps or cpu")
    parser.add_argument("--source", choices=SOURCES, default="auto", help="where MNIST comes from")
    parser.add_argument("--out", default="checkpoints/latent", help="the folder of the checkpoints")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    data = load_mnist("train", source=args.source)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        if name in args.models:
            train_ae(args, data, device, out) if name == "autoencoder" else train_flow(
                args, name, data, device, out
            )


if __name__ == "__main__":
    main()
