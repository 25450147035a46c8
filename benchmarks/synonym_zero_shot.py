"""Zero-shot classification with the words the captions use, their synonyms, and words training never saw.

    python benchmarks/synonym_zero_shot.py MODEL [MODEL ...] [--num-images 300] [--seed 12345]
Draws a fresh world test set (a seed training does not use), then classifies each image's object (the ten
CIFAR-10 classes) and colour (eleven) with three label sets of the same classes:
  caption words   the class's first caption word ("airplane", "car", "cat", ..., "red", ...)
  seen synonyms   another word captions use for it ("plane", "automobile", "kitty", "lorry", "crimson", ...)
  unseen words    a synonym no caption contains ("sedan", "kitten", "van", "cherry", ...): only a text encoder
                  that already knows the language can place it
Prints accuracy (%) per model and label set (chance: 10% objects, 9.1% colours), and, text side only, how
often each synonym's embedding is nearest its own class's caption word (what zero-shot transfer relies on).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from diffdis.data import world_vocabulary  # noqa: E402
from diffdis.data.formats.metadata import read_metadata  # noqa: E402
from diffdis.data.world import make_world  # noqa: E402
from diffdis.data.world_vocabulary import COLOUR_WORDS, OBJECT_WORDS, OBJECTS  # noqa: E402
from diffdis.pipeline import DiffDisPipeline  # noqa: E402

# Words for each class that no world caption uses (checked against the caption vocabulary at run time).
UNSEEN_OBJECTS = {
    "airplane": "airliner",
    "automobile": "sedan",
    "bird": "sparrow",
    "cat": "kitten",
    "deer": "stag",
    "dog": "hound",
    "frog": "toad",
    "horse": "pony",
    "ship": "vessel",
    "truck": "van",
}
UNSEEN_COLOURS = {
    "red": "cherry",
    "orange": "tangerine",
    "yellow": "lemon",
    "green": "lime",
    "blue": "azure",
    "purple": "plum",
    "pink": "rose",
    "brown": "coffee",
    "white": "ivory",
    "black": "ebony",
    "gray": "slate",
}
OBJECT_TEMPLATES = ("a {}.", "a photo of a {}.", "a drawing of a {}.")
COLOUR_TEMPLATES = ("a {} object.", "something {}.", "a {} thing.")


def caption_vocabulary() -> set[str]:
    """Every word a world caption can contain."""
    phrases = [*world_vocabulary.TEMPLATES]
    for table in (
        world_vocabulary.OBJECT_WORDS,
        world_vocabulary.COLOUR_WORDS,
        world_vocabulary.BACKGROUND_PHRASES,
        world_vocabulary.SIZE_WORDS,
        world_vocabulary.POSITION_WORDS,
    ):
        phrases += [w for words in table.values() for w in words]
    return {w for phrase in phrases for w in re.split(r"[^a-z]+", phrase.lower()) if w}


def label_sets(words: dict[str, tuple[str, ...]], unseen: dict[str, str], classes) -> dict[str, list[str]]:
    return {
        "caption words": [words[c][0] for c in classes],
        "seen synonyms": [words[c][1] if len(words[c]) > 1 else words[c][0] for c in classes],
        "unseen words": [unseen[c] for c in classes],
    }


def accuracy(pipe: DiffDisPipeline, queries: torch.Tensor, truth: list[int], labels: list[str], templates) -> float:
    """queries: (N, d) the images' e0 (pipe.image_queries), scored against each label's text embedding."""
    scores = queries @ pipe.zero_shot_classifier(labels, templates).T
    return 100.0 * float((scores.argmax(-1) == torch.tensor(truth)).float().mean())


def text_prior(pipe: DiffDisPipeline, labels: list[str], reference: list[str], templates) -> float:
    """Text side only: how often a label's embedding is nearest to its own class's caption word."""
    scores = pipe.zero_shot_classifier(labels, templates) @ pipe.zero_shot_classifier(reference, templates).T
    return 100.0 * float((scores.argmax(-1) == torch.arange(len(labels))).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--num-images", type=int, default=300)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--text-only", action="store_true", help="Only the text-side columns (no images, seconds).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seen = caption_vocabulary() & {*UNSEEN_OBJECTS.values(), *UNSEEN_COLOURS.values()}
    assert not seen, f"'unseen' words that captions use: {seen}"
    with tempfile.TemporaryDirectory() as tmp:
        make_world(Path(tmp) / "test", args.num_images, args.seed, 32, "train")
        rows = read_metadata(Path(tmp) / "test")
        images = {r["file_name"]: Image.open(Path(tmp) / "test" / r["file_name"]).convert("RGB") for r in rows}
    colours = list(COLOUR_WORDS)
    tasks = {
        "object": (
            [i for i, r in enumerate(rows) if r["object"] in OBJECTS],
            "object",
            list(OBJECTS),
            OBJECT_WORDS,
            UNSEEN_OBJECTS,
            OBJECT_TEMPLATES,
        ),
        "colour": (list(range(len(rows))), "colour", colours, COLOUR_WORDS, UNSEEN_COLOURS, COLOUR_TEMPLATES),
    }
    results: dict[str, dict[str, float]] = {}
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for model in args.models:
        pipe = DiffDisPipeline.from_pretrained(model)
        out = results.setdefault(model, {})
        # each image's e0 once, scored against every label set
        queries = None if args.text_only else pipe.image_queries([images[r["file_name"]] for r in rows])
        for task, (subset, key, classes, words, unseen, templates) in tasks.items():
            truth = [classes.index(rows[i][key]) for i in subset]
            sets = label_sets(words, unseen, classes)
            for name, labels in sets.items():
                if queries is not None:
                    out[f"{task}: {name}"] = round(accuracy(pipe, queries[subset], truth, labels, templates), 1)
            for name in ("seen synonyms", "unseen words"):
                out[f"{task}: {name} -> caption word (text only)"] = round(
                    text_prior(pipe, sets[name], sets["caption words"], templates), 1
                )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for column in next(iter(results.values())):
        print(f"{column:50s}" + "".join(f"{out[column]:10.1f}" for out in results.values()))
    print("models: " + ", ".join(results))


if __name__ == "__main__":
    main()
