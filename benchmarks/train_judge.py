"""Train the judge shipped in diffdis/eval/judge_weights/ and print its accuracy on images it never saw.

    python benchmarks/train_judge.py                 # writes the shipped weights (a few minutes on 2 cores)
    python benchmarks/train_judge.py --out /tmp/judge --epochs 1

Accuracy is measured on a world heldout split (the colour x object pairs DiffDis never trains on) drawn with
seed 2026, on the world train split DiffDis trains on (seed 0), and on the digits test split.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from diffdis.data.digits import make_digits
from diffdis.data.world import make_world
from diffdis.eval.judge import SHIPPED_DIR, judge_accuracy, read_labelled_folder, save_judge
from diffdis.train.judge import train_judge

EVAL_SEED = 2026  # the same heldout images benchmarks/default_model.py scores DiffDis on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(SHIPPED_DIR))
    parser.add_argument("--world-images", type=int, default=10000)
    parser.add_argument("--heldout-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-images", type=int, default=1000)
    args = parser.parse_args()

    start = time.perf_counter()
    judge = train_judge(
        world_images=args.world_images,
        heldout_images=args.heldout_images,
        epochs=args.epochs,
        seed=args.seed,
        log=lambda m: print(f"{m}  ({time.perf_counter() - start:.0f} s)", flush=True),
    )
    train_seconds = time.perf_counter() - start
    save_judge(judge, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "world heldout split (seed 2026)": make_world(
                Path(tmp) / "h", args.eval_images, EVAL_SEED, split="heldout"
            ),
            "world train split (seed 0)": make_world(Path(tmp) / "t", args.eval_images, 0, split="train"),
            "digits test split": make_digits(Path(tmp) / "d", "test"),
        }
        results = {name: judge_accuracy(judge, *read_labelled_folder(folder)) for name, folder in sets.items()}
    params = sum(p.numel() for p in judge.parameters())
    print(f"judge: {params:,} parameters, trained in {train_seconds:.0f} s on {torch.get_num_threads()} threads")
    for name, acc in results.items():
        print(f"{name:34s} " + "  ".join(f"{k} {v:.1%}" for k, v in acc.items()))
    summary = {"parameters": params, "train_seconds": round(train_seconds, 1), "args": vars(args), "accuracy": results}
    (Path(args.out) / "accuracy.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
