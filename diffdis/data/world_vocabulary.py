"""What the procedural world holds and the words its captions use: the things, colours, backgrounds, sizes and
positions, their synonyms and phrases, the caption grammar, and the held-out colour x object pairs.

Kept apart from the drawing so that what reads captions (`diffdis.data.world_truth`, the judge, benchmarks) needs
neither PIL nor the silhouettes.
"""

from __future__ import annotations

import re

import numpy as np

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
