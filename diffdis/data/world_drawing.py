"""Drawing one world image: a background, optional clutter, one silhouette placed, outlined and filled, then
the style's finish. Kept apart from the writer (`world.make_world`), which decides what to draw.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from diffdis.data.variation import Variation, draw_clutter, finish
from diffdis.data.world_silhouettes import SILHOUETTES, Part
from diffdis.data.world_vocabulary import BACKGROUNDS, COLOURS, MIN_CONTRAST, POSITIONS, SIZES


def _role_colours(colour: tuple[int, int, int]) -> dict[str, tuple[int, int, int]]:
    """Details contrast with the body: darker tones on light colours, lighter on dark ones."""
    rgb = np.array(colour, dtype=float)
    dark_body = rgb.mean() < 70
    shade = rgb + 60 if dark_body else rgb * 0.62
    light = (215, 230, 245) if np.linalg.norm(rgb - (215, 230, 245)) > 60 else (140, 170, 205)
    return {
        "body": colour,
        "shade": tuple(int(v) for v in np.clip(shade, 0, 255)),
        "light": light,
        "dark": (110, 110, 110) if dark_body else (30, 30, 30),
        "outline": tuple(int(v) for v in rgb * 0.6),
    }


def background_tones(background: str) -> list[tuple[int, int, int]]:
    top, bottom, _ = BACKGROUNDS[background]
    return [tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)) for t in (0, 0.25, 0.5, 0.75, 1)]


def clashes(colour: str, background: str) -> bool:
    """True when an object of this colour would be (nearly) invisible on this background."""
    rgb = np.array(COLOURS[colour], dtype=float)
    return min(float(np.linalg.norm(rgb - tone)) for tone in background_tones(background)) < MIN_CONTRAST


def _background_image(background: str, side: int) -> Image.Image:
    top, bottom, kind = BACKGROUNDS[background]
    if kind == "plain":
        return Image.new("RGB", (side, side), top)
    if kind == "split":
        rows = np.where(np.arange(side)[:, None] < int(side * 0.62), np.array(top), np.array(bottom))
    else:
        t = np.linspace(0, 1, side)[:, None]
        rows = np.array(top) * (1 - t) + np.array(bottom) * t
    return Image.fromarray(np.repeat(rows[:, None, :], side, axis=1).astype(np.uint8))


def _place(parts: list[Part], extent: float, flipped: bool, angle: float, slant: float = 0.0) -> list[Part]:
    """Centre, scale so the largest side is `extent` pixels, mirror, slant (x += slant * y) and rotate
    (degrees, counter-clockwise)."""
    xs = [x for _, pts, _ in parts for x, _ in pts]
    ys = [y for _, pts, _ in parts for _, y in pts]
    cx, cy, scale = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, extent / max(max(xs) - min(xs), max(ys) - min(ys))
    cos, sin, sign = math.cos(math.radians(angle)), math.sin(math.radians(angle)), -1 if flipped else 1
    out = []
    for role, pts, width in parts:
        moved = [(sign * (x - cx) * scale + slant * (y - cy) * scale, (y - cy) * scale) for x, y in pts]
        out.append((role, [(x * cos + y * sin, -x * sin + y * cos) for x, y in moved], width * scale))
    return out


def draw_thing(
    thing: str,
    colour: str,
    background: str,
    size_name: str,
    position: str,
    flipped: bool,
    angle: float,
    rng: np.random.Generator,
    size: int = 32,
    supersample: int = 4,
    variation: Variation = Variation(),
) -> Image.Image:
    """Draw at `supersample` times the size, then downsample with LANCZOS for smooth edges."""
    side = size * supersample
    image = _background_image(background, side)
    draw_clutter(image, variation.clutter, rng)
    extent = min(0.9, SIZES[size_name] * variation.scale) * side  # slanted large things must still fit
    parts = _place(SILHOUETTES[thing], extent, flipped, angle, variation.slant)
    xs = [x for _, pts, _ in parts for x, _ in pts]
    ys = [y for _, pts, _ in parts for _, y in pts]
    margin, (dx, dy) = 0.04 * side, POSITIONS[position]
    origin = []
    for lo, hi, d in ((min(xs), max(xs), dx), (min(ys), max(ys), dy)):
        low, high = margin - lo, side - margin - hi  # the range of centres that keeps the object inside
        centre = (low + high) / 2 + d * (high - low) / 2 + rng.uniform(-variation.shift, variation.shift) * side
        origin.append(float(np.clip(centre, min(low, high), max(low, high))))
    roles, outline = _role_colours(COLOURS[colour]), max(1, round(variation.stroke * side / 64))
    draw = ImageDraw.Draw(image)
    for pass_ in ("outline", "fill"):
        for role, pts, width in parts:
            xy = [(x + origin[0], y + origin[1]) for x, y in pts]
            fill = roles["outline" if pass_ == "outline" else role]
            grow = outline if pass_ == "outline" else 0
            if width:
                draw.line(xy, fill=fill, width=max(1, round(width * variation.stroke + 2 * grow)), joint="curve")
            else:
                draw.polygon(xy, fill=fill, outline=fill if grow else None, width=grow or 1)
    return finish(image.resize((size, size), Image.Resampling.LANCZOS), variation, rng)
