"""How the built-in drawings vary the way real pictures do: scale, position, slant, stroke width, clutter, blur
and sensor noise (issue #17). A model that only ever saw one clean rendering of each thing learns that
rendering: the v3 default model read 95.7% of its own digits but 17.8% of digits someone else wrote.

`Variation()` is the plain rendering (the worlds before version 2, byte for byte); `draw_variation` draws a
varied one from the dataset's generator, so a seed still fixes every image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

STYLES = ("varied", "plain")


@dataclass(frozen=True)
class Variation:
    scale: float = 1.0  # times the size class's extent
    shift: float = 0.03  # largest random offset of the centre, as a fraction of the image
    slant: float = 0.0  # horizontal shear: x += slant * y
    stroke: float = 1.0  # times the outline and line-part widths
    clutter: int = 0  # distractor marks drawn behind the object
    blur: float = 0.0  # Gaussian blur radius in output pixels
    noise: float = 0.0  # standard deviation of pixel noise (0..255)

    def record(self) -> dict[str, float | int]:
        """The metadata a varied row carries (rounded; plain rows carry none)."""
        return {
            "scale": round(self.scale, 3),
            "slant": round(self.slant, 3),
            "stroke": round(self.stroke, 3),
            "clutter": self.clutter,
            "blur": round(self.blur, 3),
            "noise": round(self.noise, 2),
        }


def draw_variation(rng: np.random.Generator) -> Variation:
    """A varied rendering; ranges chosen so the thing stays whole, inside the frame and named by its caption."""
    clutter = int(rng.integers(1, 5)) if rng.random() < 0.5 else 0
    blur = float(rng.uniform(0.2, 0.9)) if rng.random() < 0.35 else 0.0
    noise = float(rng.uniform(2.0, 10.0)) if rng.random() < 0.5 else 0.0
    return Variation(
        scale=float(rng.uniform(0.8, 1.15)),
        shift=0.08,
        slant=float(rng.uniform(-0.35, 0.35)),
        stroke=float(rng.uniform(0.5, 2.5)),
        clutter=clutter,
        blur=blur,
        noise=noise,
    )


def draw_clutter(image: Image.Image, count: int, rng: np.random.Generator) -> None:
    """`count` thin strokes and rings in tones of the background under them (never a named colour)."""
    side = image.width
    draw = ImageDraw.Draw(image)
    pixels = np.asarray(image)
    for _ in range(count):
        x, y = (float(v) for v in rng.uniform(0, side, 2))
        tone = pixels[min(int(y), side - 1), min(int(x), side - 1)].astype(int)
        shade = tuple(int(v) for v in np.clip(tone + (70 if tone.mean() < 128 else -70), 0, 255))
        width = max(1, round(side * float(rng.uniform(0.008, 0.03))))
        reach = side * float(rng.uniform(0.08, 0.3))
        if rng.random() < 0.6:
            angle = float(rng.uniform(0, np.pi))
            end = (x + reach * np.cos(angle), y + reach * np.sin(angle))
            draw.line([(x, y), end], fill=shade, width=width)
        else:
            r = reach / 2
            draw.ellipse([x - r, y - r, x + r, y + r], outline=shade, width=width)


def finish(image: Image.Image, variation: Variation, rng: np.random.Generator) -> Image.Image:
    """Blur and sensor noise at the output size."""
    if variation.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(variation.blur))
    if variation.noise > 0:
        pixels = np.asarray(image).astype(np.float32) + rng.normal(0, variation.noise, (image.height, image.width, 3))
        image = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
    return image


def vary_digit(gray: Image.Image, rng: np.random.Generator, size: int, supersample: int = 4) -> Image.Image:
    """A handwritten digit (white on black, filling its frame) as people write and scan them: smaller and off
    centre, slanted, rotated, with thinner or thicker strokes, sometimes blurred or noisy. `gray` is mode L."""
    side = size * supersample
    big = gray.resize((side, side), Image.Resampling.BICUBIC)
    stroke = rng.integers(-1, 3)  # -1 thinner, 0 as is, 1..2 thicker (3x3 min / max filters at `supersample`x)
    for _ in range(abs(int(stroke))):
        big = big.filter(ImageFilter.MinFilter(3) if stroke < 0 else ImageFilter.MaxFilter(3))
    scale = float(rng.uniform(0.55, 0.95))
    slant, angle = float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-12, 12))
    free = side * (1 - scale) / 2
    dx, dy = (float(v) for v in rng.uniform(-free, free, 2) * 0.8)
    # inverse map output -> input: scale about the centre, shear, rotate, shift
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    forward = np.array([[c, -s], [s, c]]) @ np.array([[1, slant], [0, 1]]) * scale
    inverse = np.linalg.inv(forward)
    centre = np.array([side / 2, side / 2])
    offset = centre - inverse @ (centre + np.array([dx, dy]))
    coeffs = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    placed = big.transform((side, side), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR, fillcolor=0)
    image = placed.resize((size, size), Image.Resampling.LANCZOS).convert("RGB")
    blur = float(rng.uniform(0.2, 0.7)) if rng.random() < 0.3 else 0.0
    noise = float(rng.uniform(2.0, 8.0)) if rng.random() < 0.3 else 0.0
    return finish(image, Variation(blur=blur, noise=noise), rng)
