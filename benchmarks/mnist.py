"""MNIST training speed on the device at hand: images per second, FLOPs, and time to a sample quality.

    python benchmarks/mnist.py                          # small U-Net, CFM, best device here
    python benchmarks/mnist.py --size full --max-seconds 600 --target-fd 300

Measures, for one U-Net size and method:
  - FLOPs per image of one forward pass and of one training step (forward + backward), counted by
    torch.utils.flop_counter.FlopCounterMode, so the achieved FLOP rate can be set against the
    device's peak (pass --peak-tflops, or a known NVIDIA GPU is looked up);
  - training throughput in images per second (after a warm-up; bf16 autocast, channels_last and
    torch.compile on CUDA, as scripts/train_mnist.py does);
  - time to a classifier Frechet distance: train from scratch, every --eval-every steps sample
    --eval-samples digits with 8 Euler/DDIM steps from the EMA weights and measure the FD to held-out
    digits with the shipped classifier; report the training time (evaluation excluded) at which FD
    first falls below --target-fd.
Writes benchmarks/results/mnist_<device>.md.
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch
from torch.utils.flop_counter import FlopCounterMode

from lessons.device import describe_device, pick_device
from lessons.image_metrics import classify, frechet_distance, load_classifier
from lessons.image_training import compiled_forward, generate, make_loss, memory_format_for, train_image_model
from lessons.mnist import load_mnist, mnist_batches
from lessons.unet import UNet, count_parameters, unet_config

PEAK_TFLOPS = {
    "H100": 989.0,
    "H200": 989.0,
    "A100": 312.0,
    "L4": 121.0,
    "T4": 65.0,
}  # dense bf16/fp16 tensor cores


def flops_per_image(model, method, batch, device):
    """(forward FLOPs, training-step FLOPs) per image, counted on one batch."""
    images, labels = batch
    t = torch.rand(images.shape[0], device=device)
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            model(x=images, t=t, cond=labels)
    forward = counter.get_total_flops() / images.shape[0]
    loss_fn = make_loss(method, num_classes=model.num_classes)
    with FlopCounterMode(display=False) as counter:
        loss_fn(model, batch).backward()
    model.zero_grad(set_to_none=True)
    return forward, counter.get_total_flops() / images.shape[0]


def throughput(model, method, data, batch_size, device, steps, warmup=3):
    """Training images per second of wall time and per CPU-second over ``steps`` steps, after ``warmup`` steps.

    On a shared CPU the wall-clock rate depends on the other jobs; the CPU-time rate does not.
    """
    model.to(device=device, memory_format=memory_format_for(device))
    loss_fn = make_loss(method, compiled_forward(model, device), model.num_classes)
    batches, opt = (
        mnist_batches(data, batch_size, with_labels=True),
        torch.optim.AdamW(model.parameters(), lr=1e-3),
    )

    def one_step():
        images, labels = batches()
        loss = loss_fn(model, (images.to(device), labels.to(device)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start), steps * batch_size / (
        time.process_time() - start_cpu
    )


def time_to_fd(args, data, reference, classifier, device):
    """Train from scratch; return ((wall, CPU) seconds of training until FD <= target, or None; [(step, wall, CPU, FD)])."""
    model = UNet(unet_config(args.size, num_classes=10))
    history, eval_seconds, start, start_cpu = [], [0.0, 0.0], time.perf_counter(), time.process_time()
    noise = torch.randn(args.eval_samples, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
    labels = (torch.arange(args.eval_samples) % 10).to(device)
    reference_feats = classify(classifier, reference)[0]

    def measure(step, ema_model, losses):
        t0, c0 = time.perf_counter(), time.process_time()
        samples = generate(ema_model, args.method, noise, nfe=8, cond=labels).final
        fd = frechet_distance(classify(classifier, samples)[0], reference_feats)
        eval_seconds[0] += time.perf_counter() - t0
        eval_seconds[1] += time.process_time() - c0
        history.append(
            (
                step,
                time.perf_counter() - start - eval_seconds[0],
                time.process_time() - start_cpu - eval_seconds[1],
                fd,
            )
        )
        print(
            f"  step {step:>6}: {history[-1][1]:7.1f} s of training ({history[-1][2]:.1f} CPU s), FD {fd:8.1f}",
            flush=True,
        )

    train_image_model(
        model,
        args.method,
        data,
        args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        classes=True,
        device=device,
        callback=measure,
        callback_every=args.eval_every,
        lr_schedule="constant",
    )  # so the distance at step n does not depend on --max-steps
    hit = next(((wall, cpu) for _, wall, cpu, fd in history if fd <= args.target_fd), None)
    return hit, history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=("tiny", "small", "full"))
    parser.add_argument("--method", default="cfm", choices=("cfm", "ddpm"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--throughput-steps", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=600, help="training steps for the time-to-FD run")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--target-fd", type=float, default=300.0)
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="the device's peak, for the utilization"
    )
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    data, test = load_mnist("train"), load_mnist("test")
    classifier = load_classifier()
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[: args.eval_samples]
    reference = test.images[pick]  # a random subset: the offline split is sorted by class
    torch.manual_seed(0)
    model = UNet(unet_config(args.size, num_classes=10)).to(device)
    images, labels = mnist_batches(data, args.batch_size, with_labels=True)()
    fwd, step_flops = flops_per_image(model, args.method, (images.to(device), labels.to(device)), device)
    cpu0 = time.process_time()
    rate, cpu_rate = throughput(model, args.method, data, args.batch_size, device, args.throughput_steps)
    print(f"throughput: {rate:.0f} images/s ({cpu_rate:.0f} per CPU-second)")
    hit, history = time_to_fd(args, data, reference, classifier, device)
    cpu_seconds = time.process_time() - cpu0
    name = describe_device(device)
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    achieved = rate * step_flops / 1e12
    rows = [
        ("device", name),
        ("torch", torch.__version__),
        ("U-Net", f"{args.size}, {count_parameters(model):,} parameters"),
        ("method", args.method),
        ("forward FLOPs per image", f"{fwd / 1e6:.1f} M"),
        ("training FLOPs per image", f"{step_flops / 1e6:.1f} M"),
        ("batch size", str(args.batch_size)),
        ("training throughput", f"{rate:.0f} images/s wall, {cpu_rate:.0f} images per CPU-second"),
        (
            "achieved rate (wall)",
            f"{achieved * 1e3:.1f} GFLOP/s"
            + (f" ({100 * achieved / peak:.2f}% of {peak:.0f} TFLOP/s peak)" if peak else ""),
        ),
        ("achieved rate per CPU-second", f"{cpu_rate * step_flops / 1e9:.1f} GFLOP"),
        (
            f"time to classifier FD <= {args.target_fd:g} (8 NFE)",
            f"{hit[0]:.1f} s of training ({hit[1]:.1f} CPU s)"
            if hit is not None
            else f"not reached in {args.max_steps} steps",
        ),
        ("FD along training (step: FD)", ", ".join(f"{s}: {fd:.0f}" for s, _, _, fd in history)),
        ("CPU seconds of this benchmark", f"{cpu_seconds:.0f}"),
    ]
    table = "| quantity | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    print(table)
    out = Path(__file__).parent / "results" / f"mnist_{device.type}.md"
    out.write_text(f"# MNIST training benchmark ({name})\n\n{table}\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
