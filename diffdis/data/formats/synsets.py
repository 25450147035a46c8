"""The 1000 ImageNet-1k (ILSVRC2012) WordNet ids in class-index order, from the shipped imagenet_synsets.txt."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

WNID = re.compile(r"n\d{8}")


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """Class k is entry k: the sorted wnids, the order torchvision, open_clip and Keras index classes by."""
    text = (resources.files("diffdis.data.formats") / "imagenet_synsets.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@cache
def imagenet_index() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}
