"""Karpathy's split JSON for COCO and Flickr30k retrieval (dataset_coco.json, dataset_flickr30k.json):
{"images": [{"filepath"?, "filename", "split", "sentences": [{"raw": ...}, ...]}]}. One row per image of the
chosen split (`test` unless `PATH@SPLIT`; also val, train, restval), `text` = its captions (5 each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffdis.data.formats.table import Options, Table, find_image_root, read_json, require_files
from diffdis.errors import DiffDisError

DEFAULT_SPLIT = "test"
SUBFOLDERS = ("images", "flickr30k-images", "flickr30k_images")  # where Flickr30k's images usually are


def looks_like(path: Path) -> bool:
    """A .json whose first images carry `sentences` (the file is large: only its start is read)."""
    if not (path.is_file() and path.suffix == ".json"):
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        head = handle.read(1 << 20)
    return '"sentences"' in head


def _row(image: Any, index: int, path: Path) -> dict[str, Any]:
    try:
        name = "/".join(p for p in (image.get("filepath"), image["filename"]) if p)
        texts = [s["raw"].strip() for s in image["sentences"]]
        return {"file_name": name, "text": texts, "split": image["split"]}
    except (KeyError, TypeError, AttributeError) as err:
        raise DiffDisError(
            f"{path}: image {index} needs filename, split and sentences with raw captions ({err!r})"
        ) from None


def read(path: Path, options: Options) -> Table:
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DiffDisError(f'{path} is not a Karpathy split JSON ({{"images": [...]}} with sentences)')
    rows = [_row(image, i, path) for i, image in enumerate(doc["images"])]
    split = options.split or DEFAULT_SPLIT
    chosen = [r for r in rows if r["split"] == split]
    if not chosen:
        found = sorted({str(r["split"]) for r in rows})
        raise DiffDisError(
            f"{path} has no images in the {split!r} split (splits: {', '.join(found)}); choose one with {path}@SPLIT"
        )
    root = options.image_root or find_image_root(path, chosen[0]["file_name"], SUBFOLDERS)
    require_files(chosen, root, path, f"{split}-split")
    return Table(f"{path.stem.removeprefix('dataset_')}-{split}", root, chosen)
