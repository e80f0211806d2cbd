"""Train a U-Net on MNIST with DDPM or conditional flow matching and write a checked checkpoint.

    python scripts/train_mnist.py --method cfm --classes --steps 2000 --size small --out checkpoints/mnist/cfm.pt

Flow matching can pair noise and images by minibatch OT (--coupling ot), or reflow a trained flow model: draw
--reflow-pairs pairs (noise, the model's sample from it) and fine-tune the model on them (Liu et al.'s 2-rectified
flow):

    python scripts/train_mnist.py --method cfm --classes --coupling reflow --init checkpoints/mnist/cfm_small.pt \
        --reflow-pairs 8000 --steps 3000 --out checkpoints/mnist/reflow_small.pt

--control-out PATH also trains, from the same parent on the same samples, the control: each sample re-paired with
another sample's noise, the reflow recipe with the pairing destroyed, which tells what the pairs do from what more
training on the model's own samples does.

The checkpoint holds the EMA weights, the U-Net configuration and every setting of the run,
with a SHA-256 checksum that lessons.checkpoints verifies on load.
"""

import argparse
import hashlib
import time
from pathlib import Path

import torch

from lessons.device import describe_device, pick_device
from lessons.image_training import (
    IMAGE_COUPLINGS,
    IMAGE_METHODS,
    IMAGE_PREDICTIONS,
    generate_reflow_pairs,
    load_image_model,
    save_image_model,
    train_image_model,
)
from lessons.mnist import SOURCES, load_mnist
from lessons.training import LR_SCHEDULES
from lessons.unet import SIZES, UNet, count_parameters, unet_config


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes (which parent a reflow was made from)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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
    parser.add_argument(
        "--coupling", choices=IMAGE_COUPLINGS, default="independent", help="flow matching only"
    )
    parser.add_argument(
        "--prediction",
        choices=IMAGE_PREDICTIONS,
        default="velocity",
        help="what a flow-matching network outputs on the straight path (eps: DDPM's loss on that path)",
    )
    parser.add_argument("--init", default=None, help="start from this checkpoint's weights (reflow's parent)")
    parser.add_argument("--reflow-pairs", type=int, default=8000, help="pairs drawn from the --init model")
    parser.add_argument("--reflow-nfe", type=int, default=32, help="Euler steps per reflow pair")
    parser.add_argument(
        "--control-out",
        default=None,
        help="reflow only: also train the control (the same pairs shuffled) and write it here",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )
    args = parser.parse_args(argv)
    if args.coupling != "independent" and args.method != "cfm":
        parser.error(
            f"--coupling {args.coupling} pairs noise with images for flow matching: use --method cfm"
        )
    if args.prediction != "velocity" and args.method != "cfm":
        parser.error(
            f"--prediction {args.prediction} is for flow matching (DDPM's network predicts eps): use --method cfm"
        )
    if args.prediction != "velocity" and args.coupling == "reflow":
        parser.error("reflow trains a velocity network from a velocity network: leave --prediction velocity")
    if (args.coupling == "reflow") != (args.init is not None):
        parser.error(
            "--coupling reflow needs --init, the flow model to reflow (and --init is for reflow only)"
        )
    if args.control_out is not None and args.coupling != "reflow":
        parser.error("--control-out trains the control of a reflow: use it with --coupling reflow")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    device = pick_device(args.device)
    if args.init is None:
        data = load_mnist("train", source=args.source)
        torch.manual_seed(args.seed)
        model = UNet(unet_config(args.size, num_classes=10 if args.classes else None))
        train_and_save(args, model, data, None, device, args.out)
        return
    parent_model, parent = load_image_model(args.init, device)
    if (
        parent["method"] != "cfm"
        or parent.get("prediction", "velocity") != "velocity"
        or parent["size"] != args.size
        or parent["classes"] != args.classes
    ):
        parser.error(
            f"--init {args.init} is a {parent['method']} U-Net '{parent['size']}' (classes: {parent['classes']}); "
            f"reflow needs a flow model of the size and conditioning asked for (cfm, {args.size}, {args.classes})"
        )
    start = time.perf_counter()
    data, noise = generate_reflow_pairs(
        parent_model, args.reflow_pairs, nfe=args.reflow_nfe, seed=args.seed + 1
    )
    print(f"{data.description}: {time.perf_counter() - start:.0f} s")
    reflow = {
        "parent": Path(args.init).name,
        "parent_sha256": file_sha256(args.init),
        "parent_steps": parent["steps"],
        "pairs": args.reflow_pairs,
        "pair_nfe": args.reflow_nfe,
        "pair_seed": args.seed + 1,
        "pair_seconds": round(time.perf_counter() - start, 1),
    }
    runs = [(noise, args.out, False)]
    if args.control_out is not None:  # each sample with another sample's noise: the pairing destroyed
        shuffled = noise[torch.randperm(len(noise), generator=torch.Generator().manual_seed(args.seed + 2))]
        runs.append((shuffled, args.control_out, True))
    for pair_noise, out, is_control in runs:
        model, _ = load_image_model(args.init, "cpu")
        torch.manual_seed(args.seed)
        train_and_save(args, model, data, pair_noise, device, out, {**reflow, "shuffled": is_control})


def train_and_save(args, model, data, noise, device, out, reflow=None):
    """Train model (in place) as args say, on data (and the reflow noise), and write its EMA checkpoint to out."""
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
        coupling=args.coupling,
        noise=noise,
        prediction=args.prediction,
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
        "coupling": args.coupling,
        "prediction": args.prediction,
    }
    if reflow is not None:
        settings["reflow"] = reflow
    digest = save_image_model(out, ema.cpu(), settings)
    print(
        f"wrote {out} (sha256 {digest[:12]}...): {result.steps_done} steps in {result.seconds:.0f} s "
        f"wall, {cpu_seconds:.0f} s CPU; final loss {settings['final_loss']:.4f}"
    )


if __name__ == "__main__":
    main()
