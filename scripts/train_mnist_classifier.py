"""Train the small MNIST classifier that measures sample quality, and write its checked checkpoint.

python scripts/train_mnist_classifier.py --steps 800 --out checkpoints/mnist/classifier.pt
"""

import argparse
import time

from lessons.image_metrics import accuracy, save_classifier, train_classifier
from lessons.mnist import SOURCES, load_mnist


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--source", choices=SOURCES, default="auto")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    train_set, test_set = load_mnist("train", source=args.source), load_mnist("test", source=args.source)
    start_cpu = time.process_time()
    model, result = train_classifier(train_set, args.steps, args.batch_size, args.lr, args.seed, args.device)
    cpu_seconds = time.process_time() - start_cpu
    acc = accuracy(model, test_set.images, test_set.labels)
    settings = {
        "steps": result.steps_done,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "data": train_set.description,
        "held_out_accuracy": acc,
        "train_seconds": round(result.seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
    }
    digest = save_classifier(args.out, model, settings)
    print(
        f"wrote {args.out} (sha256 {digest[:12]}...): held-out accuracy {acc:.4f} on {len(test_set)} digits; "
        f"{result.seconds:.0f} s wall, {cpu_seconds:.0f} s CPU"
    )


if __name__ == "__main__":
    main()
