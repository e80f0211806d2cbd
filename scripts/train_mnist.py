"""Train a U-Net on MNIST with DDPM or conditional flow matching and write a checked checkpoint.

    python scripts/train_mnist.py --method cfm --classes --steps 2000 --size small --out checkpoints/mnist/cfm.pt

The checkpoint holds the EMA weights, the U-Net configuration and every setting of the run,
with a SHA-256 checksum that lessons.checkpoints verifies on load.
"""

import argparse
import time

import torch

from lessons.device import describe_device, pick_device
from lessons.image_training import IMAGE_METHODS, save_image_model, train_image_model
from lessons.mnist import SOURCES, load_mnist
from lessons.training import LR_SCHEDULES
from lessons.unet import SIZES, UNet, count_parameters, unet_config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=IMAGE_METHODS, required=True)
    parser.add_argument(
        "--classes", action="store_true", help="class-conditional, with label dropout for guidance"
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--size", choices=tuple(SIZES), default="small")
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lr-schedule", choices=tuple(LR_SCHEDULES), default="cosine")
    parser.add_argument(
        "--p-uncond", type=float, default=0.1, help="label dropout probability (with --classes)"
    )
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best one here)")
    parser.add_argument("--no-compile", action="store_true", help="do not torch.compile on CUDA")
    parser.add_argument("--source", choices=SOURCES, default="auto", help="where MNIST comes from")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    data = load_mnist("train", source=args.source)
    torch.manual_seed(args.seed)
    model = UNet(unet_config(args.size, num_classes=10 if args.classes else None))
    print(
        f"{args.method} U-Net '{args.size}': {count_parameters(model):,} parameters on {describe_device(device)}"
    )
    start_cpu = time.process_time()
    ema, result = train_image_model(
        model,
        args.method,
        data,
        args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        classes=args.classes,
        p_uncond=args.p_uncond,
        ema_decay=args.ema_decay,
        lr_schedule=args.lr_schedule,
        device=device,
        seed=args.seed,
        use_compile=False if args.no_compile else None,
    )
    cpu_seconds = time.process_time() - start_cpu
    settings = {
        "method": args.method,
        "classes": args.classes,
        "p_uncond": args.p_uncond if args.classes else 0.0,
        "size": args.size,
        "steps": result.steps_done,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "ema_decay": args.ema_decay,
        "seed": args.seed,
        "data": data.description,
        "device": describe_device(device),
        "train_seconds": round(result.seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
        "final_loss": sum(result.losses[-100:]) / len(result.losses[-100:]),
        "ddpm": {"num_steps": 1000, "beta_start": 1e-4, "beta_end": 0.02},
    }
    digest = save_image_model(args.out, ema.cpu(), settings)
    print(
        f"wrote {args.out} (sha256 {digest[:12]}...): {result.steps_done} steps in {result.seconds:.0f} s "
        f"wall, {cpu_seconds:.0f} s CPU; final loss {settings['final_loss']:.4f}"
    )


if __name__ == "__main__":
    main()
