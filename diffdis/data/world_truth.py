"""Which world captions are true of which world images.

A world caption states some of an image's attributes ("a red car" states colour and object, nothing about the
background), so one caption is true of many images. Retrieval scored only against each image's own caption
counts a red car ranked above *the* red car as a miss; `truth_matrix` gives the set of captions that describe
each image, so retrieval can also be scored as "any true caption / image in the top k" (`positive=` in
`diffdis.eval.metrics.retrieval_recall`), and bounds what the own-caption score can reach at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diffdis.data.world_vocabulary import BACKGROUND_PHRASES, COLOUR_WORDS, OBJECT_WORDS, POSITION_WORDS, SIZE_WORDS
from diffdis.errors import DiffDisError

ATTRIBUTES = ("object", "colour", "background", "size", "position")
FILLER = {"a", "an", "photo", "picture", "drawing", "of"}


def _phrases() -> tuple[list[tuple[str, str, str]], dict[str, tuple[str, str]]]:
    """(multi-word phrases, longest first, as (phrase, attribute, value)), {single word: (attribute, value)}."""
    phrases = [(p, "background", name) for name, options in BACKGROUND_PHRASES.items() for p in options]
    phrases += [("in the sky", "background", "sky")]
    phrases += [(p, "position", name) for name, options in POSITION_WORDS.items() for p in options]
    words: dict[str, tuple[str, str]] = {}
    for attribute, table in (("object", OBJECT_WORDS), ("colour", COLOUR_WORDS), ("size", SIZE_WORDS)):
        for name, options in table.items():
            words.update({w: (attribute, name) for w in options if w})
    return sorted(phrases, key=lambda p: -len(p[0])), words


PHRASES, WORDS = _phrases()


def caption_attributes(text: str) -> dict[str, str]:
    """The attributes a world caption states, by canonical name: {"colour": "red", "object": "automobile"}.
    Background and position phrases are matched first, so 'on a black background' is a background, not a colour.
    A word outside the world's grammar is an error: the caption is not a world caption."""
    rest, found = f" {text.lower().replace(',', ' ')} ", {}
    for phrase, attribute, value in PHRASES:
        if f" {phrase} " in rest:
            found[attribute] = value
            rest = rest.replace(f" {phrase} ", " ", 1)
    for word in rest.split():
        if word in FILLER:
            continue
        if word not in WORDS:
            raise DiffDisError(f"{text!r} is not a world caption: {word!r} is not in its grammar")
        attribute, value = WORDS[word]
        found[attribute] = value
    return found


def truth_matrix(rows: Sequence[dict], texts: Sequence[str]) -> torch.Tensor:
    """(N_images, N_texts) bool: text j states nothing that image i (a world metadata row) contradicts."""
    stated = [caption_attributes(t) for t in texts]
    truth = torch.ones(len(rows), len(texts), dtype=torch.bool)
    for attribute in ATTRIBUTES:
        values = sorted({r[attribute] for r in rows} | {s[attribute] for s in stated if attribute in s})
        index = {v: k for k, v in enumerate(values)}
        image = torch.tensor([index[r[attribute]] for r in rows])
        for j, s in enumerate(stated):
            if attribute in s:
                truth[:, j] &= image == index[s[attribute]]
    return truth


def own_caption_ceiling(
    truth: torch.Tensor, text_image: torch.Tensor, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Expected own-caption Recall@k of an oracle that knows exactly what each caption states and breaks ties
    at random: an image's own caption is one of the n captions true of it, found in the top k with probability
    min(1, k/n); likewise a caption's own image among the m images it is true of. A reference, not a bound: a
    model can beat it by ranking the captions that state more first (the other captions true of an image are
    mostly the vague ones, so its own caption is more often a specific one), as contrastive training learns
    to; transformers' CLIPModel does on the varied world (image->text R@1 24.8% against this 15.5%)."""
    if not bool(truth[text_image, torch.arange(len(text_image))].all()):
        raise DiffDisError("some caption is not true of its own image; the rows and texts do not belong together")
    if len(torch.unique(text_image)) != len(text_image):
        raise DiffDisError("the own-caption ceiling assumes one caption per image")
    true_texts = truth.sum(dim=1).float()[torch.unique(text_image)]  # n per captioned image
    true_images = truth.sum(dim=0).float()  # m per text
    out = {}
    for k in ks:
        out[f"image_to_text_R@{k}"] = (k / true_texts).clamp(max=1).mean().item()
        out[f"text_to_image_R@{k}"] = (k / true_images).clamp(max=1).mean().item()
    return out
