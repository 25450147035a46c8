"""ILSVRC2012 validation as distributed: a flat folder of ILSVRC2012_val_00000001.JPEG ... and the devkit
(ILSVRC2012_devkit_t12/data/). Line k of ILSVRC2012_validation_ground_truth.txt is image k's ILSVRC2012_ID, in
the devkit's own numbering; meta.mat maps that ID to a WordNet id, which gives the ImageNet-1k class index.

`--data` may name the image folder (the devkit inside it or beside it), or the devkit folder or its
ground-truth file with the images in --image-root (default: beside the devkit, or a `val/` folder there).
"""

from __future__ import annotations

import re
from itertools import islice
from pathlib import Path

import numpy as np

from diffdis.data.formats.synsets import imagenet_index
from diffdis.data.formats.table import Options, Table
from diffdis.errors import DiffDisError

DEVKIT = "ILSVRC2012_devkit_t12"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
VAL_IMAGE = re.compile(r"ILSVRC2012_val_(\d{8})\.jpe?g", re.IGNORECASE)


def _has_val_images(folder: Path) -> bool:
    return folder.is_dir() and any(VAL_IMAGE.fullmatch(p.name) for p in islice(folder.iterdir(), 2000))


def looks_like(path: Path) -> bool:
    if path.is_file():
        return path.name == GROUND_TRUTH
    return (path / "data" / "meta.mat").is_file() or _has_val_images(path)


def _images_beside(devkit: Path) -> Path:
    for folder in (devkit.parent, devkit.parent / "val", devkit.parent / "ILSVRC2012_img_val"):
        if _has_val_images(folder):
            return folder
    raise DiffDisError(f"no ILSVRC2012_val_*.JPEG images beside {devkit}; pass --image-root DIR where they are")


def _locate(path: Path, image_root: Path | None) -> tuple[Path, Path]:
    """(the devkit's data/ folder with meta.mat and the ground truth, the folder of validation images)."""
    if path.is_file():
        return path.parent, image_root or _images_beside(path.parent.parent)
    if (path / "data" / "meta.mat").is_file():
        return path / "data", image_root or _images_beside(path)
    if image_root is not None:
        raise DiffDisError(f"--image-root is for --data naming the devkit; {path} already holds the images")
    for data in (path / DEVKIT / "data", path.parent / DEVKIT / "data"):
        if (data / "meta.mat").is_file():
            return data, path
    raise DiffDisError(
        f"found no {DEVKIT}/data/meta.mat inside or beside {path}: unpack ILSVRC2012_devkit_t12.tar.gz there, "
        f"or pass --data DEVKIT_DIR --image-root {path}"
    )


def read_meta(meta: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> WordNet id, from the devkit's struct array `synsets`."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        synsets = np.atleast_1d(loadmat(meta, squeeze_me=True)["synsets"])
    except (MatReadError, KeyError, ValueError, TypeError, OSError) as err:
        raise DiffDisError(f"{meta} is not the ILSVRC2012 devkit's meta.mat (a struct array 'synsets'): {err}") from err
    if not {"ILSVRC2012_ID", "WNID"} <= set(synsets.dtype.names or ()):
        raise DiffDisError(f"{meta}: 'synsets' needs the fields ILSVRC2012_ID and WNID, has {synsets.dtype.names}")
    return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}


def read_ground_truth(path: Path) -> list[int]:
    if not path.is_file():
        raise DiffDisError(f"{path} does not exist; it comes with the devkit, in {DEVKIT}/data/")
    ids = []
    for n, line in enumerate(path.read_text(encoding="ascii", errors="replace").splitlines(), 1):
        if line.strip():
            if not line.strip().isdigit():
                raise DiffDisError(f"{path} line {n} is {line.strip()!r}, not an ILSVRC2012_ID")
            ids.append(int(line))
    return ids


def read(path: Path, options: Options) -> Table:
    options.refuse("imagenet-devkit", split=True)
    data, images = _locate(path, options.image_root)
    truth, wnid_of, index = read_ground_truth(data / GROUND_TRUTH), read_meta(data / "meta.mat"), imagenet_index()
    files = sorted((int(m[1]), p.name) for p in images.iterdir() if (m := VAL_IMAGE.fullmatch(p.name)))
    if not files:
        raise DiffDisError(f"no ILSVRC2012_val_*.JPEG images in {images}")
    rows = []
    for number, name in files:
        if number > len(truth):
            raise DiffDisError(f"{name} has no line in {GROUND_TRUTH} ({len(truth)} lines)")
        wnid = wnid_of.get(truth[number - 1])
        if wnid not in index:
            if options.drop_unknown:
                continue
            raise DiffDisError(
                f"{GROUND_TRUTH} line {number} names ILSVRC2012_ID {truth[number - 1]}, which meta.mat does not map to "
                "one of the 1000 ImageNet-1k synsets; pass --drop-unknown to leave such images out"
            )
        rows.append({"file_name": name, "label": index[wnid], "wnid": wnid})
    if not rows:
        raise DiffDisError(f"no image of {images} has an ImageNet-1k class")
    return Table(images.resolve().name, images, rows)
