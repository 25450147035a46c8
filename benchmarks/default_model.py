"""Every quality figure of a trained world model (issue #3), printed and written as JSON, plus a sample grid.

    python benchmarks/default_model.py --model runs/default/model --out runs/default/benchmark
    python benchmarks/default_model.py --model DIR --out /tmp/bench --quick      # a smoke run, about 2 minutes
    python benchmarks/default_model.py --sections discrimination --style plain   # v1 drawings, minutes not half an hour

Without --model it measures the model shipped with diffdis. Sections:
  generation      8 samples for every (colour, object) pair of the training vocabulary and, apart, for every
                  held-out pair, at the model's default sampler; the shipped judge says which object and colour
                  it sees (diffdis/eval/judge.py, trained on its own data, never on DiffDis's).
  zero-shot       1,000 world "heldout"-split images (unseen colour x object pairs; --style varied, the world's
                  default, or plain, the version-1 drawings) whose object is a CIFAR-10 class: label sets
                  cifar10 (cifar templates) and world_colours; the digits test split with the digits label set.
                  The model's default query sampler.
  retrieval       1,000 held-out image-caption pairs, image->text and text->image R@1/5/10: against each
                  image's own caption, against any caption true of it, and a random-tie oracle's own-caption score.
  cli             `diffdis generate "a red car"` with default settings, timed as a subprocess.
--sections runs a subset (generation is most of the time). Writes OUT/default_model_benchmark.json, and with
generation and cli OUT/samples_grid.png (8 prompts x 4 samples) and OUT/a-red-car.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from diffdis.data.digits import make_digits
from diffdis.data.label_sets import load_labels, load_templates
from diffdis.data.world import make_world
from diffdis.data.world_vocabulary import COLOUR_WORDS, COLOURS, OBJECT_WORDS, OBJECTS, THINGS, heldout_combinations
from diffdis.default_model import resolve_model
from diffdis.eval.judge import Judge, load_judge, read_labelled_folder
from diffdis.eval.metrics import accuracy_topk, mean_per_class_recall, retrieval_recall
from diffdis.eval.retrieve import world_truth_recall
from diffdis.pipeline import DiffDisPipeline
from diffdis.quiet import quiet_libraries  # no library progress bars between the section lines

SECTIONS = ("generation", "discrimination", "cli")
HELDOUT_SEED = 2026  # the evaluation images: a heldout split no training run draws (DiffDis 0, judge 1234)
# six training pairs, then two held-out ones (a red airplane and a green star were never drawn in training)
GRID_PAIRS = [
    ("automobile", "red"),
    ("airplane", "blue"),
    ("bird", "yellow"),
    ("dog", "brown"),
    ("ship", "white"),
    ("horse", "orange"),
    ("airplane", "red"),
    ("star", "green"),
]


def prompt_for(thing: str, colour: str) -> str:
    """The world's canonical caption words: 'a red car', 'an orange truck'."""
    text = f"{COLOUR_WORDS[colour][0]} {OBJECT_WORDS[thing][0]}"
    return ("an " if text[0] in "aeiou" else "a ") + text


def vocabulary_pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(training pairs, held-out pairs), each (object, colour) in THINGS x COLOURS order."""
    heldout = heldout_combinations()
    pairs = [(t, c) for t in THINGS for c in COLOURS]
    return [p for p in pairs if p not in heldout], [p for p in pairs if p in heldout]


# ---- generation -------------------------------------------------------------------------------------------


def generate_pairs(
    pipe: DiffDisPipeline, pairs: list[tuple[str, str]], samples: int, prompts_per_batch: int, seed: int
) -> list[list[Image.Image]]:
    """`samples` images per pair, batched several prompts at a time; batch b uses seed + b."""
    out: list[list[Image.Image]] = []
    for b, start in enumerate(range(0, len(pairs), prompts_per_batch)):
        chunk = [prompt_for(t, c) for t, c in pairs[start : start + prompts_per_batch]]
        images = pipe.generate(chunk, num_images_per_prompt=samples, seed=seed + b)
        out += [images[i * samples : (i + 1) * samples] for i in range(len(chunk))]
        print(f"  generated {len(out)}/{len(pairs)} prompts", flush=True)
    return out


def judge_pairs(judge: Judge, pairs: list[tuple[str, str]], images: list[list[Image.Image]]) -> dict:
    """% right object, % right colour, % both, overall and per pair."""
    flat = [im for group in images for im in group]
    verdict = judge.predict(flat)
    per_pair, i = [], 0
    for (thing, colour), group in zip(pairs, images):
        objects, colours = verdict["object"][i : i + len(group)], verdict["colour"][i : i + len(group)]
        i += len(group)
        per_pair.append(
            {
                "prompt": prompt_for(thing, colour),
                "object": thing,
                "colour": colour,
                "object_right": sum(o == thing for o in objects) / len(group),
                "colour_right": sum(c == colour for c in colours) / len(group),
                "both_right": sum(o == thing and c == colour for o, c in zip(objects, colours)) / len(group),
                "judged_objects": objects,
                "judged_colours": colours,
            }
        )

    def mean(key: str) -> float:
        return sum(p[key] for p in per_pair) / len(per_pair)

    return {
        "pairs": len(pairs),
        "samples_per_pair": len(images[0]),
        "images": len(flat),
        "object_accuracy": mean("object_right"),
        "colour_accuracy": mean("colour_right"),
        "both_accuracy": mean("both_right"),
        "per_pair": per_pair,
    }


def sample_grid(rows: list[list[Image.Image]], titles: list[str], scale: int = 4) -> Image.Image:
    """One row per prompt, images upscaled `scale` times (nearest: the real pixels), the prompt on the left."""
    side, label_width = rows[0][0].width * scale, 150
    grid = Image.new("RGB", (label_width + side * max(map(len, rows)), side * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for r, (images, title) in enumerate(zip(rows, titles)):
        draw.text((6, r * side + side // 2 - 6), title, fill=(0, 0, 0))
        for c, image in enumerate(images):
            grid.paste(image.resize((side, side), Image.Resampling.NEAREST), (label_width + c * side, r * side))
    return grid


# ---- discrimination ---------------------------------------------------------------------------------------


def zero_shot(pipe: DiffDisPipeline, queries: torch.Tensor, labels: str, targets: list[str]) -> dict:
    """Top-1/top-5 and mean per-class recall of precomputed image queries against a built-in label set."""
    names, templates = load_labels(labels), load_templates(None, labels)
    scores = queries @ pipe.zero_shot_classifier(names, templates).to(queries.device).T
    target = torch.tensor([names.index(t) for t in targets])
    top = accuracy_topk(scores.cpu(), target, ks=(1, 5))
    return {
        "labels": labels,
        "templates": len(templates),
        "images": len(targets),
        "top1": top[1],
        "top5": top[5],
        "mean_per_class_recall": mean_per_class_recall(scores.cpu(), target),
    }


def timed(name: str, seconds: dict[str, float], fn: Callable[[], dict]) -> dict:
    start = time.perf_counter()
    print(f"[{name}]", flush=True)
    result = fn()
    seconds[name] = round(time.perf_counter() - start, 1)
    print(f"[{name}] {seconds[name]:.1f} s", flush=True)
    return result


def time_cli(model: str | None, out: Path) -> dict:
    """`diffdis generate "a red car"` at default settings, as a user runs it (process start and load included)."""
    target = out / "a-red-car.png"
    command = [sys.executable, "-m", "diffdis_cli", "generate", "a red car", "--output", str(target), "--overwrite"]
    command += ["--model", model] if model else []
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"diffdis generate failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return {"command": ["diffdis", *command[3:]], "wall_seconds": round(wall, 2), "output": str(target)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--out", default="runs/default/benchmark", help="folder for the JSON and PNGs")
    parser.add_argument("--judge", default=None, help="judge folder (default: the shipped judge)")
    parser.add_argument("--quick", action="store_true", help="a smoke run on far fewer samples")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prompts-per-batch", type=int, default=16, help="prompts per generate call")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ",".join(SECTIONS)
    )
    parser.add_argument(
        "--style", default="varied", choices=["varied", "plain"], help="how the held-out world is drawn"
    )
    args = parser.parse_args()
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    if not sections or set(sections) - set(SECTIONS):
        parser.error(f"--sections takes a comma-separated subset of {','.join(SECTIONS)}, got {args.sections!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    quiet_libraries()
    samples, n_images, n_digits = (2, 48, 48) if args.quick else (8, 1000, None)

    total_start, seconds = time.perf_counter(), {}
    pipe = DiffDisPipeline.from_pretrained(resolve_model(args.model), device=args.device)
    judge = load_judge(args.judge, device=args.device)
    train_pairs, heldout_pairs = vocabulary_pairs()
    if args.quick:  # the grid's pairs first, so the grid has rows; then a few more of each kind
        train_pairs = list(dict.fromkeys([p for p in GRID_PAIRS if p in train_pairs] + train_pairs[::33]))
        heldout_pairs = list(dict.fromkeys([p for p in GRID_PAIRS if p in heldout_pairs] + heldout_pairs[::11]))
    inference = vars(pipe.inference)
    result: dict = {
        "model": str(resolve_model(args.model)),
        "quick": args.quick,
        "inference": inference,
        "torch_threads": torch.get_num_threads(),
        "device": args.device,
        "sections": sections,
        "style": args.style,
    }

    def generation() -> dict:
        seen = generate_pairs(pipe, train_pairs, samples, args.prompts_per_batch, seed=0)
        unseen = generate_pairs(pipe, heldout_pairs, samples, args.prompts_per_batch, seed=10_000)
        by_pair = dict(zip(train_pairs + heldout_pairs, seen + unseen))
        rows = [(p, by_pair[p][:4]) for p in GRID_PAIRS if p in by_pair]
        titles = [prompt_for(*p) + (" *" if p in heldout_pairs else "") for p, _ in rows]
        sample_grid([r for _, r in rows], titles).save(out / "samples_grid.png")
        return {
            "train_pairs": judge_pairs(judge, train_pairs, seen),
            "heldout_pairs": judge_pairs(judge, heldout_pairs, unseen),
            "grid": {
                "file": str(out / "samples_grid.png"),
                "prompts": titles,
                "note": "* marks a held-out pair; columns are the first 4 of each prompt's samples",
            },
        }

    if "generation" in sections:
        result["generation"] = timed("generation", seconds, generation)

    with tempfile.TemporaryDirectory(prefix="diffdis-bench-") as tmp:
        # 1,600 heldout-split images hold 1,000 of a CIFAR-10 object (shapes are 6 of the 22 held-out pairs)
        world = read_labelled_folder(
            make_world(
                Path(tmp) / "world",
                2 * n_images if args.quick else 1600,
                HELDOUT_SEED,
                split="heldout",
                style=args.style,
            )
        )
        digits = read_labelled_folder(make_digits(Path(tmp) / "digits", "test", limit=n_digits))

    def discrimination() -> dict:
        images, rows = world
        cifar = [i for i, r in enumerate(rows) if r["object"] in OBJECTS][:n_images]
        retrieval_set = list(range(n_images))
        needed = sorted(set(cifar) | set(retrieval_set))  # one query per image, shared by all three figures
        queries = dict(zip(needed, pipe.image_queries([images[i] for i in needed])))
        q_cifar = torch.stack([queries[i] for i in cifar])
        q_digits = pipe.image_queries(digits[0])
        real = judge.predict([images[i] for i in cifar])  # the judge on real held-out images: its own error
        text_queries = pipe.encode_text([rows[i]["text"] for i in retrieval_set])[1]
        scores = torch.stack([queries[i] for i in retrieval_set]) @ text_queries.to(q_cifar.device).T
        return {
            "image_queries": len(needed) + len(digits[0]),
            "cifar10_objects": zero_shot(pipe, q_cifar, "cifar10", [rows[i]["object"] for i in cifar]),
            "world_colours": zero_shot(pipe, q_cifar, "world_colours", [rows[i]["colour"] for i in cifar]),
            "digits": zero_shot(pipe, q_digits, "digits", [r["label_name"] for r in digits[1]]),
            "retrieval": {
                "pairs": len(retrieval_set),
                **retrieval_recall(scores.cpu(), torch.arange(len(retrieval_set))),
                **world_truth_recall(
                    [rows[i] for i in retrieval_set],
                    [rows[i]["text"] for i in retrieval_set],
                    list(range(len(retrieval_set))),
                    scores.cpu(),
                ),
            },
            "judge_on_real_heldout": {
                "object_accuracy": sum(o == rows[i]["object"] for o, i in zip(real["object"], cifar)) / len(cifar),
                "colour_accuracy": sum(c == rows[i]["colour"] for c, i in zip(real["colour"], cifar)) / len(cifar),
            },
        }

    if "discrimination" in sections:
        result["discrimination"] = timed("discrimination", seconds, discrimination)
    if "cli" in sections:
        result["cli"] = timed("cli", seconds, lambda: time_cli(args.model, out))
    seconds["total"] = round(time.perf_counter() - total_start, 1)
    result["seconds"] = seconds
    if args.quick and set(sections) == set(SECTIONS):
        queries = result["discrimination"]["image_queries"]
        result["full_run_estimate_seconds"] = estimate_full(
            seconds, len(train_pairs) + len(heldout_pairs), samples, queries
        )
    (out / "default_model_benchmark.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_summary(result, out)


def estimate_full(seconds: dict[str, float], pairs: int, samples: int, queries: int) -> float:
    """Scale the quick run's sections to the full run's counts: 154 pairs x 8 images; about 1,375 world image
    queries (1,000 CIFAR-object images and the first 1,000 for retrieval overlap) + 359 digits."""
    generation = seconds["generation"] * (154 * 8) / (pairs * samples)
    discrimination = seconds["discrimination"] * (1375 + 359) / queries
    return round(generation + discrimination + seconds["cli"], 0)


def print_summary(result: dict, out: Path) -> None:
    if "generation" in result:
        print_generation(result["generation"])
    if "discrimination" in result:
        print_discrimination(result["discrimination"], result["style"])
    if "cli" in result:
        print(f"\n== cli ==\n{' '.join(result['cli']['command'])}: {result['cli']['wall_seconds']:.1f} s")
    print(f"\n== seconds ==\n{json.dumps(result['seconds'])}")
    if "full_run_estimate_seconds" in result:
        print(f"full run estimated at {result['full_run_estimate_seconds']:.0f} s on this machine")
    print(f"\nwrote {out / 'default_model_benchmark.json'}" + (" and the PNGs" if "generation" in result else ""))


def print_generation(gen: dict) -> None:
    print("\n== generation (judge: object / colour / both right) ==")
    for key in ("train_pairs", "heldout_pairs"):
        g = gen[key]
        print(
            f"{key:14s} {g['pairs']:3d} pairs x {g['samples_per_pair']} samples: "
            f"object {g['object_accuracy']:.1%}  colour {g['colour_accuracy']:.1%}  both {g['both_accuracy']:.1%}"
        )


def print_discrimination(disc: dict, style: str) -> None:
    print(f"\n== zero-shot classification, {style} drawings (top-1 / top-5 / mean per-class recall) ==")
    for key in ("cifar10_objects", "world_colours", "digits"):
        z = disc[key]
        print(
            f"{key:16s} {z['images']:5d} images: top-1 {z['top1']:.1%}  top-5 {z['top5']:.1%}  "
            f"mpcr {z['mean_per_class_recall']:.1%}"
        )
    j = disc["judge_on_real_heldout"]
    print(
        f"(the judge itself on these real images: object {j['object_accuracy']:.1%}, colour {j['colour_accuracy']:.1%})"
    )
    r = disc["retrieval"]
    print(
        f"\n== retrieval ({r['pairs']} held-out pairs) ==\nimage->text R@1 {r['image_to_text_R@1']:.1%}  "
        f"R@5 {r['image_to_text_R@5']:.1%}   text->image R@1 "
        f"{r['text_to_image_R@1']:.1%}  R@5 {r['text_to_image_R@5']:.1%}"
    )
    for prefix, what in (
        ("any_true_", "any caption true of the image counts"),
        ("own_caption_ceiling_", "own-caption score of an oracle breaking ties at random (a reference, not a bound)"),
    ):
        print(
            f"{what}:\n  image->text R@1 {r[prefix + 'image_to_text_R@1']:.1%} "
            f" R@5 {r[prefix + 'image_to_text_R@5']:.1%}   "
            f"text->image R@1 {r[prefix + 'text_to_image_R@1']:.1%}  R@5 {r[prefix + 'text_to_image_R@5']:.1%}"
        )


if __name__ == "__main__":
    main()
