"""How well the shipped judge names real drawings of a given style, without retraining it.

    python benchmarks/judge_accuracy.py --style varied --images 500

The judge (diffdis/eval/judge.py) was trained on the plain (version-1) drawings; generation benchmarks on models
trained with the varied (version-2) worlds draw varied pictures, so this says how far its verdicts carry there.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from diffdis.data.digits import make_digits
from diffdis.data.world import make_world
from diffdis.eval.judge import judge_accuracy, load_judge, read_labelled_folder

EVAL_SEED = 2026  # as benchmarks/train_judge.py: a heldout split no training run draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--style", default="varied", choices=["varied", "plain"])
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    judge = load_judge()
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "world heldout split (seed 2026)": make_world(
                Path(tmp) / "h", args.images, EVAL_SEED, split="heldout", style=args.style
            ),
            "world train split (seed 0)": make_world(Path(tmp) / "t", args.images, 0, split="train", style=args.style),
            "digits train split": make_digits(Path(tmp) / "d", "train", limit=args.images, style=args.style),
        }
        results = {name: judge_accuracy(judge, *read_labelled_folder(folder)) for name, folder in sets.items()}
    print(json.dumps({"style": args.style, "images": args.images, "accuracy": results}, indent=1))


if __name__ == "__main__":
    main()
