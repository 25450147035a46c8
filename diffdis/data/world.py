"""A procedural captioned world: the ten CIFAR-10 object classes and four simple shapes as coloured
silhouettes on varied backgrounds, with paraphrased captions, deterministic from a seed.

It gives zero-shot classification (object, colour) and compositional generalisation something to test
offline: a fixed set of colour x object combinations (`heldout_combinations`) never appears in training.

This module writes a world dataset (`make_world`): what the world holds and the words for it are in
`world_vocabulary`, the shapes in `world_silhouettes`, the painting of one image in `world_drawing`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffdis.data.formats.metadata import write_metadata
from diffdis.data.variation import STYLES, Variation, draw_variation
from diffdis.data.world_drawing import clashes, draw_thing
from diffdis.data.world_vocabulary import (
    BACKGROUNDS,
    COLOURS,
    NATURAL_BACKGROUND,
    SIZE_POSITIONS,
    SIZES,
    THINGS,
    caption,
    heldout_combinations,
)
from diffdis.errors import DiffDisError


def _sample(split: str, rng: np.random.Generator) -> tuple[str, str]:
    heldout = heldout_combinations()
    if split == "heldout":
        pairs = sorted(heldout)
        return pairs[rng.integers(len(pairs))]
    thing = THINGS[rng.integers(len(THINGS))]
    colours = [c for c in COLOURS if (thing, c) not in heldout]
    return thing, colours[rng.integers(len(colours))]


def make_world(
    out_dir: Path, num_images: int, seed: int = 0, size: int = 32, split: str = "train", style: str = "varied"
) -> Path:
    """Write `num_images` PNGs and metadata.jsonl (file_name, text, object, colour, background, size, position,
    split, flipped, angle; with style "varied" also scale, slant, stroke, clutter, blur, noise) to `out_dir`;
    the same arguments give byte-identical files. Style "plain" is the world before version 2."""
    if split not in ("train", "heldout"):
        raise DiffDisError(f"unknown world split {split!r}; choose train or heldout")
    if style not in STYLES:
        raise DiffDisError(f"unknown world style {style!r}; choose one of: {', '.join(STYLES)}")
    if size < 8:
        raise DiffDisError(f"image size {size} is too small to draw objects; use 8 or more")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    backgrounds = list(BACKGROUNDS)
    rows = []
    for i in range(num_images):
        thing, colour = _sample(split, rng)
        natural = NATURAL_BACKGROUND.get(thing)
        background = natural if natural and rng.random() < 0.3 else backgrounds[rng.integers(len(backgrounds))]
        while clashes(colour, background):
            background = backgrounds[rng.integers(len(backgrounds))]
        size_name = list(SIZES)[rng.integers(len(SIZES))]
        position = SIZE_POSITIONS[size_name][rng.integers(len(SIZE_POSITIONS[size_name]))]
        flipped, angle = bool(rng.random() < 0.5), int(rng.integers(-15, 16))
        variation = draw_variation(rng) if style == "varied" else Variation()
        name = f"{i:06d}.png"
        draw_thing(thing, colour, background, size_name, position, flipped, angle, rng, size, variation=variation).save(
            out / name
        )
        text = caption(thing, colour, background, size_name, position, rng)
        rows.append(
            {
                "file_name": name,
                "text": text,
                "object": thing,
                "colour": colour,
                "background": background,
                "size": size_name,
                "position": position,
                "split": split,
                "flipped": flipped,
                "angle": angle,
                **(variation.record() if style == "varied" else {}),
            }
        )
    write_metadata(out, rows)
    return out
