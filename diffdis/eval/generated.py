"""The folder of a generation benchmark's images: one PNG per prompt, written once, kept across runs.

Image i is `DIR/000000.png`-style, numbered by its prompt's index, so shards can share one folder and an
interrupted run resumes: files already there are kept, never made again.

Seeding. `DiffDisPipeline.generate` draws the noise of a whole call from one seed, so an image depends on the
call it was made in. Prompts are therefore generated in fixed blocks: block b holds prompts
[b * B, (b + 1) * B) (B = --batch-size) and is always one call with seed + b, the last block padded to B rows
with its last prompt (padding is dropped), so the noise tensor has the same shape. Image i thus depends only
on (seed, B, i, prompt i) -- not on sharding, resuming or how many prompts follow -- and regenerating a block
gives back the images already on disk. A different B draws different noise: it is part of the run's
settings, checked against each kept file's record (the PNG's `diffdis` text chunk, `diffdis.png_record`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from diffdis.errors import DiffDisError
from diffdis.png_record import read_png_record, save_png

# what a kept image's record must share with this run for the image to count as this run's
SETTINGS = ("prompt", "index", "seed", "batch_size", "scheduler", "steps", "guidance", "model", "model_version")


def blocks(count: int, batch_size: int, num_shards: int = 1, shard_index: int = 0) -> list[range]:
    """This shard's blocks of prompt indices: block b goes to shard b % num_shards."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise DiffDisError(f"shard-index must be in [0, {num_shards}) and num-shards at least 1")
    starts = range(0, count, batch_size)
    return [range(s, min(s + batch_size, count)) for b, s in enumerate(starts) if b % num_shards == shard_index]


def image_path(folder: Path, index: int, count: int) -> Path:
    return Path(folder) / f"{index:0{max(6, len(str(count - 1)))}d}.png"


def kept(path: Path, expected: dict[str, Any]) -> bool:
    """Whether `path` holds this run's image already; one with other settings is an error, never overwritten."""
    if not path.exists():
        return False
    try:
        record = read_png_record(path)
    except (OSError, UnidentifiedImageError, ValueError, DiffDisError) as err:
        raise DiffDisError(
            f"{path} is not an image this command wrote ({err}); delete it or choose another --output-dir"
        ) from None
    differ = [k for k in SETTINGS if record.get(k) != expected[k]]
    if differ:
        k = differ[0]
        raise DiffDisError(
            f"{path} was made with {k} {record.get(k)!r}, this run has {expected[k]!r}; use the same "
            "settings to resume, or another --output-dir"
        )
    return True


def existing(folder: Path, prompts: Sequence[str], my_blocks: Sequence[range], settings: dict[str, Any]) -> set[int]:
    """The indices of `my_blocks` whose image is on disk already (checked before any work: a file made with other
    settings is an error)."""
    return {
        i
        for block in my_blocks
        for i in block
        if kept(image_path(folder, i, len(prompts)), _record(prompts, i, settings))
    }


def generate_missing(
    pipe: Any,
    prompts: Sequence[str],
    folder: Path,
    my_blocks: Sequence[range],
    settings: dict[str, Any],
    have: set[int],
    callback: Callable[[int, int], None] | None = None,
) -> tuple[int, float]:
    """Write every image of `my_blocks` not in `have` (from `existing`); (images made, seconds spent making them).
    `settings`: seed, batch_size, scheduler, steps, guidance, model, model_version (and anything else to record)."""
    folder.mkdir(parents=True, exist_ok=True)
    total, done, made, seconds = sum(len(b) for b in my_blocks), 0, 0, 0.0
    batch_size = settings["batch_size"]
    for block in my_blocks:
        missing = [i for i in block if i not in have]
        if missing:
            chunk = [prompts[i] for i in block]
            start = time.perf_counter()
            images = pipe.generate(
                chunk + [chunk[-1]] * (batch_size - len(chunk)),
                num_inference_steps=settings["steps"],
                guidance_scale=settings["guidance"],
                scheduler=settings["scheduler"],
                seed=settings["seed"] + block.start // batch_size,
            )
            seconds += time.perf_counter() - start
            for i in missing:
                save_png(images[i - block.start], image_path(folder, i, len(prompts)), _record(prompts, i, settings))
            made += len(missing)
        done += len(block)
        if callback is not None:
            callback(done, total)
    return made, seconds


def _record(prompts: Sequence[str], index: int, settings: dict[str, Any]) -> dict[str, Any]:
    return {**settings, "prompt": prompts[index], "index": index}


def read_images(folder: Path, indices: Sequence[int], count: int) -> list[Image.Image]:
    """The images of `indices` (RGB, loaded: the files are closed again)."""
    out = []
    for i in indices:
        with Image.open(image_path(folder, i, count)) as image:
            out.append(image.convert("RGB"))
    return out
