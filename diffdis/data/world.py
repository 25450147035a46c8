"""A procedural captioned world: the ten CIFAR-10 object classes and four simple shapes as coloured
silhouettes on varied backgrounds, with paraphrased captions, deterministic from a seed.

It gives zero-shot classification (object, colour) and compositional generalisation something to test
offline: a fixed set of colour x object combinations (`heldout_combinations`) never appears in training.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from diffdis.data.formats.metadata import write_metadata
from diffdis.data.variation import STYLES, Variation, draw_clutter, draw_variation, finish
from diffdis.errors import DiffDisError

OBJECTS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")  # CIFAR-10 order
SHAPES = ("circle", "square", "triangle", "star")
THINGS = OBJECTS + SHAPES
COLOURS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 215, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "purple": (140, 60, 190),
    "pink": (245, 130, 190),
    "brown": (130, 80, 40),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
    "gray": (128, 128, 128),
}
# Words a caption may use; the first is the canonical name recorded in the metadata.
OBJECT_WORDS = {
    "airplane": ("airplane", "plane", "aeroplane"),
    "automobile": ("car", "automobile"),
    "bird": ("bird",),
    "cat": ("cat", "kitty"),
    "deer": ("deer",),
    "dog": ("dog", "puppy"),
    "frog": ("frog",),
    "horse": ("horse",),
    "ship": ("ship", "boat"),
    "truck": ("truck", "lorry"),
    "circle": ("circle", "disc"),
    "square": ("square",),
    "triangle": ("triangle",),
    "star": ("star",),
}
COLOUR_WORDS = {
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange",),
    "yellow": ("yellow", "golden"),
    "green": ("green", "emerald"),
    "blue": ("blue", "navy", "cobalt"),
    "purple": ("purple", "violet"),
    "pink": ("pink",),
    "brown": ("brown", "chocolate"),
    "white": ("white", "snow-white"),
    "black": ("black", "jet-black"),
    "gray": ("gray", "grey", "silver"),
}
# name -> (top colour, bottom colour, kind); "split" is a sky/ground horizon, "gradient" a vertical blend.
BACKGROUNDS = {
    "gray": ((128, 128, 128), (128, 128, 128), "plain"),
    "sky": ((165, 200, 235), (165, 200, 235), "plain"),
    "beige": ((225, 210, 180), (225, 210, 180), "plain"),
    "dark": ((45, 50, 58), (45, 50, 58), "plain"),
    "light green": ((175, 215, 165), (175, 215, 165), "plain"),
    "white": ((245, 245, 245), (245, 245, 245), "plain"),
    "grass": ((165, 200, 235), (90, 150, 70), "split"),
    "sea": ((165, 200, 235), (35, 80, 150), "split"),
    "sunset": ((250, 170, 80), (120, 60, 130), "gradient"),
    "gray gradient": ((220, 220, 220), (70, 70, 70), "gradient"),
}
BACKGROUND_PHRASES = {
    "gray": ("on a gray background",),
    "sky": ("against a blue sky", "on a light blue background"),
    "beige": ("on a beige background",),
    "dark": ("on a dark background", "on a black background"),
    "light green": ("on a light green background",),
    "white": ("on a white background",),
    "grass": ("on the grass", "in a green field"),
    "sea": ("by the sea", "in front of the sea"),
    "sunset": ("at sunset", "against a sunset sky"),
    "gray gradient": ("on a gray gradient background",),
}
NATURAL_BACKGROUND = {"airplane": "sky", "bird": "sky", "ship": "sea", "deer": "grass", "horse": "grass"}
SIZES = {"small": 0.5, "medium": 0.68, "large": 0.86}  # largest side of the object, as a fraction of the image
SIZE_WORDS = {"small": ("small", "tiny", "little"), "medium": ("", "medium-sized"), "large": ("large", "big", "huge")}
POSITIONS = {
    "centre": (0, 0),
    "left": (-1, 0),
    "right": (1, 0),
    "top": (0, -1),
    "bottom": (0, 1),
    "top left": (-1, -1),
    "top right": (1, -1),
    "bottom left": (-1, 1),
    "bottom right": (1, 1),
}
POSITION_WORDS = {
    "centre": ("in the centre", "in the middle"),
    "left": ("on the left", "on the left side"),
    "right": ("on the right", "on the right side"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
    "top left": ("in the top left corner",),
    "top right": ("in the top right corner",),
    "bottom left": ("in the bottom left corner",),
    "bottom right": ("in the bottom right corner",),
}
# Larger objects have no room to move, so they are only placed where the caption stays true.
SIZE_POSITIONS = {
    "large": ("centre",),
    "medium": ("centre", "left", "right", "top", "bottom"),
    "small": tuple(POSITIONS),
}
TEMPLATES = (
    "{c} {o}",
    "a {c} {o}",
    "a photo of a {c} {o}",
    "a {s} {c} {o}",
    "a {c} {o} {b}",
    "a {s} {c} {o} {b}, {p}",
    "a {c} {o} {p}",
    "a picture of a {s} {c} {o} {p}",
    "a drawing of a {c} {o} {b}",
    "{c} {o} {b}",
)
MIN_CONTRAST = 100.0  # RGB distance below which an object would blend into its background

Point = tuple[float, float]
Part = tuple[str, list[Point], float]  # (role, points, line width in object units; 0 = filled polygon)


def heldout_combinations() -> set[tuple[str, str]]:
    """The (object, colour) pairs never drawn in the train split: (3 * object index + colour index) % 7 == 0,
    over `THINGS` and `COLOURS` in their listed order. That is 22 of 154 pairs (14%), exactly two objects per
    colour and one or two colours per object, so every object and colour keeps most partners in training."""
    colours = list(COLOURS)
    return {(t, c) for i, t in enumerate(THINGS) for j, c in enumerate(colours) if (3 * i + j) % 7 == 0}


def canonical_labels() -> dict[str, list[str]]:
    """The label sets a zero-shot evaluation on this world uses; objects and colours are also the built-in
    label sets `world_objects` and `world_colours`."""
    return {"objects": list(OBJECTS), "shapes": list(SHAPES), "colours": list(COLOURS)}


# --- silhouettes, facing right, in object units (x right, y down, about [-1, 1]) ---


def _ell(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> list[Point]:
    return [(cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n)) for k in range(n)]


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _mirror_y(points: list[Point]) -> list[Point]:
    return [(x, -y) for x, y in points]


def _legs(xs: tuple[float, ...], top: float, bottom: float, width: float) -> list[Part]:
    return [("body", [(x, top), (x, bottom)], width) for x in xs]


def _airplane() -> list[Part]:  # seen from above: fuselage, swept wings, tailplane
    wing = [(0.22, -0.08), (-0.18, -0.88), (-0.4, -0.88), (-0.24, -0.08)]
    tail = [(-0.66, -0.05), (-0.86, -0.4), (-1.0, -0.4), (-0.92, -0.05)]
    return [
        ("body", _ell(0, 0, 1.0, 0.13), 0),
        ("body", wing, 0),
        ("body", _mirror_y(wing), 0),
        ("body", tail, 0),
        ("body", _mirror_y(tail), 0),
    ]


def _automobile() -> list[Part]:  # body with cabin, two windows, two wheels
    body = [
        (-0.97, 0.05),
        (-0.92, -0.14),
        (-0.5, -0.17),
        (-0.3, -0.5),
        (0.3, -0.5),
        (0.55, -0.17),
        (0.92, -0.1),
        (0.98, 0.05),
        (0.96, 0.3),
        (-0.97, 0.3),
    ]
    return [
        ("body", body, 0),
        ("light", [(-0.4, -0.2), (-0.25, -0.42), (-0.04, -0.42), (-0.04, -0.2)], 0),
        ("light", [(0.04, -0.2), (0.04, -0.42), (0.25, -0.42), (0.44, -0.2)], 0),
        ("dark", _ell(-0.55, 0.3, 0.22, 0.22), 0),
        ("dark", _ell(0.55, 0.3, 0.22, 0.22), 0),
    ]


def _truck() -> list[Part]:  # tall cargo box, separate cab in front, three wheels
    cab = [(0.44, 0.25), (0.44, -0.32), (0.72, -0.32), (0.96, -0.05), (0.98, 0.25)]
    return [
        ("body", _rect(-0.98, -0.62, 0.36, 0.22), 0),
        ("body", cab, 0),
        ("body", _rect(-0.98, 0.12, 0.98, 0.3), 0),
        ("light", [(0.52, -0.25), (0.7, -0.25), (0.86, -0.05), (0.52, -0.05)], 0),
    ] + [("dark", _ell(x, 0.32, 0.18, 0.18), 0) for x in (-0.72, -0.32, 0.7)]


def _ship() -> list[Part]:  # pointed hull, superstructure with a window band, funnel, mast
    hull = [(-0.95, 0.05), (1.0, 0.02), (0.75, 0.45), (-0.82, 0.45)]
    return [
        ("body", hull, 0),
        ("body", _rect(-0.6, -0.28, 0.4, 0.06), 0),
        ("body", _rect(-0.42, -0.52, 0.12, -0.25), 0),
        ("body", _rect(-0.3, -0.85, -0.08, -0.5), 0),
        ("dark", _rect(-0.3, -0.85, -0.08, -0.74), 0),
        ("body", [(0.28, -0.28), (0.28, -0.78)], 0.07),
        ("light", _rect(-0.52, -0.17, 0.3, -0.07), 0),
        ("shade", _rect(-0.9, 0.2, 0.86, 0.26), 0),
    ]


def _bird() -> list[Part]:  # round body, head, pointed beak, long tail, folded wing, thin legs
    return [
        ("body", [(-0.35, -0.02), (-1.0, 0.28), (-0.94, 0.46), (-0.3, 0.26)], 0),
        ("body", _ell(-0.05, 0.05, 0.52, 0.34), 0),
        ("body", _ell(0.42, -0.3, 0.27, 0.26), 0),
        ("dark", [(0.62, -0.4), (0.98, -0.27), (0.62, -0.18)], 0),
        ("shade", [(0.28, -0.08), (-0.62, 0.05), (-0.2, 0.3), (0.18, 0.22)], 0),
        ("dark", _ell(0.5, -0.36, 0.07, 0.07), 0),
        ("dark", [(-0.08, 0.35), (-0.1, 0.72)], 0.07),
        ("dark", [(0.12, 0.35), (0.16, 0.72)], 0.07),
    ]


def _cat() -> list[Part]:  # sitting: upright body, round head with two pointed ears, tail curled up beside
    return [
        ("body", _ell(-0.05, 0.28, 0.4, 0.52), 0),
        ("body", _ell(-0.18, 0.58, 0.45, 0.26), 0),
        ("body", _ell(0.2, -0.4, 0.32, 0.28), 0),
        ("body", [(-0.08, -0.52), (-0.02, -1.0), (0.2, -0.64)], 0),
        ("body", [(0.24, -0.64), (0.46, -1.0), (0.52, -0.5)], 0),
        ("body", [(0.26, 0.25), (0.3, 0.82)], 0.16),
        ("body", [(-0.5, 0.76), (-0.82, 0.66), (-0.95, 0.36), (-0.86, 0.06)], 0.13),
    ]


def _dog() -> list[Part]:  # standing: body, four legs, short neck, head with long snout, floppy ear, raised tail
    return [
        ("body", _ell(-0.1, 0.0, 0.54, 0.26), 0),
        *_legs((-0.52, -0.32, 0.14, 0.32), 0.1, 0.62, 0.13),
        ("body", [(0.18, -0.15), (0.42, -0.48), (0.62, -0.36), (0.42, 0.06)], 0),
        ("body", _ell(0.55, -0.46, 0.22, 0.19), 0),
        ("body", [(0.6, -0.58), (0.98, -0.48), (0.98, -0.32), (0.6, -0.3)], 0),
        ("dark", _ell(0.96, -0.46, 0.06, 0.06), 0),
        ("shade", [(0.42, -0.6), (0.55, -0.58), (0.5, -0.22), (0.38, -0.26)], 0),
        ("body", [(-0.6, -0.1), (-0.8, -0.36), (-0.86, -0.56)], 0.1),
    ]


def _horse() -> list[Part]:  # standing tall: long legs, long raised neck with mane, long face, hanging tail
    return [
        ("body", _ell(-0.1, -0.05, 0.58, 0.26), 0),
        *_legs((-0.52, -0.34, 0.2, 0.36), 0.05, 0.9, 0.11),
        ("body", [(0.18, -0.22), (0.42, -0.82), (0.64, -0.76), (0.5, 0.05)], 0),
        ("body", [(0.42, -0.86), (0.62, -0.94), (0.98, -0.58), (0.92, -0.44), (0.56, -0.6)], 0),
        ("body", [(0.48, -0.86), (0.5, -1.02), (0.6, -0.9)], 0),
        ("shade", [(0.44, -0.9), (0.34, -0.82), (0.08, -0.22), (0.22, -0.18)], 0),
        ("shade", [(-0.64, -0.16), (-0.84, 0.05), (-0.9, 0.5)], 0.14),
    ]


def _deer() -> list[Part]:  # slender: long thin legs, short tail, upright neck, small head, big branching antlers
    antlers = [
        [(0.42, -0.55), (0.3, -0.78), (0.12, -0.98), (-0.12, -1.08)],
        [(0.34, -0.72), (0.48, -0.96)],
        [(0.2, -0.92), (0.28, -1.18)],
        [(0.02, -1.03), (0.02, -1.25)],
        [(0.5, -0.55), (0.62, -0.8), (0.66, -1.06)],
        [(0.61, -0.78), (0.8, -0.92)],
    ]
    return [
        ("body", _ell(-0.14, 0.05, 0.42, 0.2), 0),
        *_legs((-0.44, -0.3, 0.06, 0.18), 0.1, 1.0, 0.07),
        ("body", [(0.08, -0.06), (0.34, -0.5), (0.5, -0.44), (0.32, 0.06)], 0),
        ("body", [(0.32, -0.56), (0.5, -0.62), (0.8, -0.4), (0.74, -0.32), (0.44, -0.38)], 0),
        ("body", [(0.36, -0.52), (0.16, -0.6), (0.3, -0.44)], 0),
        ("body", [(-0.52, -0.06), (-0.66, -0.24), (-0.54, 0.06)], 0),
        *[("shade", a, 0.07) for a in antlers],
    ]


def _frog() -> list[Part]:  # from the front: squat wide body, bulging eyes on top, folded haunches, splayed feet
    eye_rings = (("body", 0.25), ("light", 0.16), ("dark", 0.08))
    eyes = [(role, _ell(x, -0.45, r, r), 0) for role, r in eye_rings for x in (-0.36, 0.36)]
    feet = [("body", [(sx * 0.55, 0.66), (sx * 1.0, 0.72)], 0.14) for sx in (-1, 1)]
    haunches = [("body", _ell(sx * 0.55, 0.42, 0.38, 0.24), 0) for sx in (-1, 1)]
    arms = [("body", [(sx * 0.22, 0.3), (sx * 0.26, 0.74)], 0.16) for sx in (-1, 1)]
    return [
        *feet,
        *haunches,
        ("body", _ell(0, 0.05, 0.66, 0.42), 0),
        *arms,
        *eyes,
        ("dark", [(-0.36, 0.06), (0.0, 0.16), (0.36, 0.06)], 0.06),
    ]


def _star() -> list[Point]:
    return [(r * math.sin(math.pi * k / 5), -r * math.cos(math.pi * k / 5)) for k, r in zip(range(10), [1.0, 0.42] * 5)]


SILHOUETTES = {
    "airplane": _airplane(),
    "automobile": _automobile(),
    "bird": _bird(),
    "cat": _cat(),
    "deer": _deer(),
    "dog": _dog(),
    "frog": _frog(),
    "horse": _horse(),
    "ship": _ship(),
    "truck": _truck(),
    "circle": [("body", _ell(0, 0, 1, 1, 48), 0)],
    "square": [("body", _rect(-1, -1, 1, 1), 0)],
    "triangle": [("body", [(0, -1), (1, 0.8), (-1, 0.8)], 0)],
    "star": [("body", _star(), 0)],
}


# --- rendering ---


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


def caption(thing: str, colour: str, background: str, size_name: str, position: str, rng: np.random.Generator) -> str:
    """One paraphrase from a small grammar; object and colour synonyms now and then, so prompts need not match."""

    def pick(options: tuple[str, ...], synonym_rate: float = 1.0) -> str:
        if len(options) == 1 or rng.random() > synonym_rate:
            return options[0]
        return str(options[rng.integers(len(options))])

    b = pick(BACKGROUND_PHRASES[background])
    if background == "sky" and thing in ("airplane", "bird") and rng.random() < 0.5:
        b = "in the sky"
    words = {
        "o": pick(OBJECT_WORDS[thing], 0.35),
        "c": pick(COLOUR_WORDS[colour], 0.25),
        "b": b,
        "s": pick(SIZE_WORDS[size_name]),
        "p": pick(POSITION_WORDS[position]),
    }
    text = TEMPLATES[rng.integers(len(TEMPLATES))].format(**words)
    text = re.sub(r"\s+", " ", text).strip().replace(" ,", ",")
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


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
