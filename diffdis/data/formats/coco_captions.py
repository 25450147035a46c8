"""COCO caption annotations (captions_val2014.json): {"images": [{"id", "file_name"}], "annotations":
[{"image_id", "caption"}]}. One row per image with captions, `text` = its captions (about 5); the file is
one split, so no `@SPLIT`. Images: --image-root, or found beside the file (e.g. ../val2014/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffdis.data.formats.table import Options, Table, find_image_root, read_json, require_files
from diffdis.errors import DiffDisError


def looks_like(path: Path) -> bool:
    return path.is_file() and path.suffix == ".json"


def _captions(doc: dict[str, Any], path: Path) -> dict[Any, list[str]]:
    by_image: dict[Any, list[str]] = {}
    for i, note in enumerate(doc["annotations"]):
        if not isinstance(note, dict) or not isinstance(note.get("caption"), str) or "image_id" not in note:
            raise DiffDisError(f"{path}: annotation {i} needs image_id and caption")
        by_image.setdefault(note["image_id"], []).append(note["caption"].strip())
    return by_image


def read(path: Path, options: Options) -> Table:
    options.refuse("coco-captions", split=True)
    doc = read_json(path)
    if not (isinstance(doc, dict) and isinstance(doc.get("images"), list) and isinstance(doc.get("annotations"), list)):
        raise DiffDisError(
            f"{path} is neither a Karpathy split JSON (images with sentences) "
            "nor COCO captions (images and annotations)"
        )
    captions = _captions(doc, path)
    rows = []
    for i, image in enumerate(doc["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str) or "id" not in image:
            raise DiffDisError(f"{path}: image {i} needs id and file_name")
        if captions.get(image["id"]):  # an image no caption describes cannot be retrieved: left out
            rows.append({"file_name": image["file_name"], "text": captions[image["id"]], "image_id": image["id"]})
    if not rows:
        raise DiffDisError(f"{path}: no image has a caption")
    split_folder = path.stem.removeprefix("captions_")  # captions_val2014.json -> val2014/
    root = options.image_root or find_image_root(path, rows[0]["file_name"], (split_folder, "images"))
    require_files(rows, root, path, "captioned")
    return Table(path.stem, root, rows)
