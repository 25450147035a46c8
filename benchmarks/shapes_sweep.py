"""Zero-shot accuracy on the built-in shapes world over samplers, steps and image guidance.

    python benchmarks/shapes_sweep.py --model runs/quickstart/model --data runs/quickstart/test-200
(make the test folder with `diffdis data make shapes --output-dir DIR --num-images 200 --seed 99`).
Prints one row per setting: colour+shape accuracy (32 labels), shape-only and colour-only accuracy, s/image.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch
from PIL import Image

from diffdis.data.formats.metadata import read_metadata
from diffdis.data.shapes import COLOURS, SHAPES
from diffdis.pipeline import DiffDisPipeline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--schedulers", default="ddim,dpm++")
    parser.add_argument("--steps", default="1,2,5,10,25")
    parser.add_argument("--guidance", default="1,2,4")
    parser.add_argument("--max-images", type=int, default=200)
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    pipe = DiffDisPipeline.from_pretrained(args.model)
    rows = read_metadata(Path(args.data))[: args.max_images]
    images = [Image.open(Path(args.data) / r["file_name"]).convert("RGB") for r in rows]
    labels = [f"{c} {s}" for c in COLOURS for s in SHAPES]
    truth = torch.tensor([labels.index(f"{r['colour']} {r['shape']}") for r in rows])
    classifier = pipe.zero_shot_classifier(labels, ["a {}"])
    print("scheduler steps guidance  acc(colour+shape)  acc(shape)  acc(colour)  s/image")
    for name, steps, scale in itertools.product(
        args.schedulers.split(","), map(int, args.steps.split(",")), map(float, args.guidance.split(","))
    ):
        start = time.perf_counter()
        queries = pipe.image_queries(images, steps, scale, name, seed=0)
        seconds = (time.perf_counter() - start) / len(images)
        pred = (queries @ classifier.T).argmax(-1)
        both = (pred == truth).float().mean().item()
        shape = (pred % len(SHAPES) == truth % len(SHAPES)).float().mean().item()
        colour = (pred // len(SHAPES) == truth // len(SHAPES)).float().mean().item()
        print(
            f"{name:9s} {steps:5d} {scale:8.1f}  {both:17.3f}  {shape:10.3f}  {colour:11.3f}  {seconds:7.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
