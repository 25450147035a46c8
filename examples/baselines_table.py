"""The table of `examples/baselines.sh`: each metric's mean over seeds with its spread, and training FLOPs.

    python examples/baselines_table.py runs/baselines --steps 3000 --preset tiny-patch2

FLOPs per training step (forward + backward at batch 32, no optimiser) are counted once per method with
`torch.utils.flop_counter.FlopCounterMode` on random weights of the same geometry: DiffDis's unified loss with
--tasks both / disc / gen, and CLIPModel's contrastive loss.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

NAMES = {
    "both": "DiffDis (both tasks)",
    "disc": "discrimination only",
    "gen": "generation only",
    "clip": "CLIP (CLIPModel)",
    "clip_flops": "CLIP at DiffDis's training FLOPs",
    "both_flops": "DiffDis (both tasks) at CLIP's training FLOPs",
}
CHECKPOINT_EVERY = 500  # examples/baselines.sh saves `both` every 500 steps; both_flops reads one of those
COLUMNS = [  # (header, record file, metric key)
    ("objects acc1", "classify_world_objects", "acc1"),
    ("objects mean recall", "classify_world_objects", "mean_per_class_recall"),
    ("colours acc1", "classify_world_colours", "acc1"),
    ("digits acc1", "classify_digits", "acc1"),
    ("i→t R@1", "retrieve", "text_retrieval_recall@1"),
    ("i→t R@5", "retrieve", "text_retrieval_recall@5"),
    ("i→t R@10", "retrieve", "text_retrieval_recall@10"),
    ("t→i R@1", "retrieve", "image_retrieval_recall@1"),
    ("t→i R@5", "retrieve", "image_retrieval_recall@5"),
    ("t→i R@10", "retrieve", "image_retrieval_recall@10"),
    ("judge object", "generate", "judge_object_accuracy"),
    ("judge colour", "generate", "judge_colour_accuracy"),
    ("FID (judge)", "generate", "fid"),
]


@functools.cache  # each count builds a model; the table asks for the same few several times
def step_flops(method: str, preset_name: str, batch: int = 32) -> float:
    """FLOPs of one forward + backward of the method's training loss on random inputs."""
    torch.manual_seed(0)
    from diffdis.model.text import train_tokenizer

    tokenizer = train_tokenizer(["a red circle", "a blue square"], 300, 32)
    ids = torch.randint(3, len(tokenizer), (batch, 16))
    if method == "clip":
        from diffdis.model.clip import ClipBaselineConfig, build_clip

        cfg = ClipBaselineConfig()
        model = build_clip(cfg, tokenizer)
        pixels = torch.randn(batch, 3, cfg.image_size, cfg.image_size)
        with FlopCounterMode(display=False) as counter:
            model(input_ids=ids, pixel_values=pixels, return_loss=True).loss.backward()
        return counter.get_total_flops()
    from diffdis.config import preset
    from diffdis.diffusion.schedule import training_scheduler
    from diffdis.pipeline import DiffDisPipeline
    from diffdis.train.losses import UnifiedLossSettings, unified_loss

    config = preset(preset_name)
    pipe = DiffDisPipeline.build(config, tokenizer)
    null = torch.randint(3, len(tokenizer), (1, 16))
    images = torch.rand(batch, 3, config.image_size, config.image_size) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        loss, _ = unified_loss(
            pipe.model,
            pipe.text_encoder,
            pipe.autoencoder,
            training_scheduler(config.schedule),
            ids,
            null,
            images,
            UnifiedLossSettings(tasks=method),
            torch.Generator().manual_seed(0),
        )
        loss.backward()
    return counter.get_total_flops()


def equal_flops_steps(method: str, steps: int, preset_name: str) -> int:
    """The steps METHOD trains for DiffDis's training FLOPs at `steps`."""
    return round(steps * step_flops("both", preset_name) / step_flops(method, preset_name))


def diffdis_steps_at_flops_of(method: str, steps: int, preset_name: str) -> int:
    """DiffDis's last saved step whose training FLOPs do not pass METHOD's at `steps`."""
    exact = steps * step_flops(method, preset_name) / step_flops("both", preset_name)
    return int(exact // CHECKPOINT_EVERY) * CHECKPOINT_EVERY


def cell(values: list[float], metric: str) -> str:
    if not values:
        return "–"
    scale, digits = (1, 1) if metric == "fid" else (100, 1)
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values) * scale:.{digits}f}–{max(values) * scale:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--preset", default="tiny-patch2")
    parser.add_argument(
        "--equal-flops-steps", metavar="METHOD", help="Print the steps METHOD needs for DiffDis's FLOPs at --steps."
    )
    parser.add_argument(
        "--diffdis-steps-at-flops-of",
        metavar="METHOD",
        help="Print the last checkpoint step of DiffDis whose FLOPs do not pass METHOD's at --steps.",
    )
    parser.add_argument(
        "--no-flops",
        action="store_true",
        help="Leave the FLOPs out (runs with a pretrained text encoder: the count knows only from-scratch towers).",
    )
    args = parser.parse_args()
    if args.equal_flops_steps:
        print(equal_flops_steps(args.equal_flops_steps, args.steps, args.preset))
        return
    if args.diffdis_steps_at_flops_of:
        print(diffdis_steps_at_flops_of(args.diffdis_steps_at_flops_of, args.steps, args.preset))
        return
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    seeds: dict[str, set[str]] = defaultdict(set)
    for path in sorted((args.out / "results").glob("seed*/*/*.json")):
        method, seed = path.parent.name, path.parent.parent.name
        record = json.loads(path.read_text())
        seeds[method].add(seed)
        for _, stem, metric in COLUMNS:
            if path.stem == stem and metric in record and record[metric] is not None:
                values[(method, f"{stem}:{metric}")].append(float(record[metric]))
    methods = [m for m in NAMES if m in seeds]
    print("Batch 32; mean over seeds (min–max); % except FID.\n")
    print("| model | steps | seeds | train PFLOPs | " + " | ".join(h for h, _, _ in COLUMNS) + " |")
    print("|" + "---|" * (4 + len(COLUMNS)))
    for method in methods:
        steps = args.steps
        if method == "clip_flops":  # trained for as many steps as DiffDis's FLOPs buy
            steps = equal_flops_steps("clip", args.steps, args.preset)
        if method == "both_flops":  # an earlier checkpoint of the `both` run
            steps = diffdis_steps_at_flops_of("clip", args.steps, args.preset)
        pflops = (
            "–" if args.no_flops else f"{step_flops(method.removesuffix('_flops'), args.preset) * steps / 1e15:.2f}"
        )
        cells = " | ".join(cell(values[(method, f"{stem}:{metric}")], metric) for _, stem, metric in COLUMNS)
        print(f"| {NAMES[method]} | {steps} | {len(seeds[method])} | {pflops} | {cells} |")


if __name__ == "__main__":
    main()
