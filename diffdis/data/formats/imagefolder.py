"""Class folders, ImageNet style: ROOT/<class>/<image>. Folders named for WordNet synsets (n01440764) get the
ImageNet-1k class index as `label`; any other folder name becomes `label_name`, matched by name to the label set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffdis.data.formats.synsets import WNID, imagenet_index
from diffdis.data.formats.table import Options, Table
from diffdis.data.images import IMAGE_SUFFIXES
from diffdis.errors import DiffDisError


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def looks_like(path: Path) -> bool:
    return path.is_dir() and any(any(_is_image(f) for f in d.iterdir()) for d in _class_dirs(path))


def _class_images(folder: Path) -> list[Path]:
    """Every image under a class folder, nested folders too (as torchvision's ImageFolder), in a fixed order."""
    return sorted(p for p in folder.rglob("*") if _is_image(p))


def _synset_labels(dirs: list[Path], root: Path, drop_unknown: bool) -> dict[Path, dict[str, Any]]:
    """Class folder -> its columns, when the folders are ImageNet synsets; unknown folders refused or left out."""
    index = imagenet_index()
    unknown = [d.name for d in dirs if d.name not in index]
    if unknown and not drop_unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise DiffDisError(
            f"{root}: class folder {unknown[0]!r}{more} is not one of the 1000 ImageNet-1k synsets; "
            "pass --drop-unknown to leave its images out"
        )
    return {d: {"label": index[d.name], "wnid": d.name} for d in dirs if d.name in index}


def read(path: Path, options: Options) -> Table:
    options.refuse("imagefolder", split=True, image_root=True)
    if not path.is_dir():
        raise DiffDisError(f"{path} is not a folder: imagefolder data is ROOT/<class folder>/<images>")
    dirs = _class_dirs(path)
    if any(WNID.fullmatch(d.name) for d in dirs):
        columns = _synset_labels(dirs, path, options.drop_unknown)
    else:
        columns = {d: {"label_name": d.name.replace("_", " ")} for d in dirs}
    rows = [
        {"file_name": image.relative_to(path).as_posix(), **columns[d]} for d in columns for image in _class_images(d)
    ]
    if not rows:
        raise DiffDisError(f"{path} holds no images in class folders (ROOT/<class>/<image>)")
    return Table(path.resolve().name, path, rows)
