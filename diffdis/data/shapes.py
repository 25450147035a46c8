"""A small procedural captioned world: coloured shapes on plain backgrounds, deterministic from a seed.

Enough to train and test every command offline in minutes; the richer built-in world is its own module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from diffdis.data.formats.metadata import write_metadata

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 190),
    "orange": (240, 140, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
BACKGROUNDS = {"gray": (128, 128, 128), "light blue": (170, 200, 235), "beige": (225, 210, 180), "dark": (50, 55, 60)}
SHAPES = ("circle", "square", "triangle", "cross")


def draw_shape(shape: str, colour: str, background: str, size: int, rng: np.random.Generator) -> Image.Image:
    image = Image.new("RGB", (size, size), BACKGROUNDS[background])
    draw = ImageDraw.Draw(image)
    r = size * rng.uniform(0.22, 0.34)
    cx, cy = size / 2 + rng.uniform(-0.12, 0.12) * size, size / 2 + rng.uniform(-0.12, 0.12) * size
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        w = r / 2.5
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    return image


def caption(shape: str, colour: str, background: str, rng: np.random.Generator) -> str:
    forms = (f"a {colour} {shape}", f"a {colour} {shape} on a {background} background", f"{colour} {shape}")
    return str(forms[rng.integers(len(forms))])


def make_shapes(out_dir: Path, num_images: int, seed: int = 0, size: int = 32) -> Path:
    """Write `num_images` PNGs and metadata.jsonl (file_name, text, shape, colour) to `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colours, backgrounds = list(COLOURS), list(BACKGROUNDS)
    rows = []
    for i in range(num_images):
        shape, colour = SHAPES[rng.integers(len(SHAPES))], colours[rng.integers(len(colours))]
        background = backgrounds[rng.integers(len(backgrounds))]
        if colour == "white" and background == "beige" or colour == "black" and background == "dark":
            background = "gray"  # keep the shape visible
        name = f"{i:06d}.png"
        draw_shape(shape, colour, background, size, rng).save(out / name)
        rows.append(
            {"file_name": name, "text": caption(shape, colour, background, rng), "shape": shape, "colour": colour}
        )
    write_metadata(out, rows)
    return out
