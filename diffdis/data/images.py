"""Reading user image files with one clear error each (missing, not an image, truncated)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from diffdis.errors import DiffDisError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def load_image(path: str | Path) -> Image.Image:
    path = Path(path)
    if path.is_dir():
        raise DiffDisError(f"{path} is a folder, not an image file")
    if not path.is_file():
        raise DiffDisError(f"image {path} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise DiffDisError(f"{path} is not a readable image ({err})") from err


def list_images(directory: str | Path) -> list[Path]:
    """Every image file under `directory`, sorted; hidden files (a writer's `.NAME.tmp-PID.png`) are not images yet."""
    root = Path(directory)
    if not root.is_dir():
        raise DiffDisError(f"image folder {root} does not exist")
    paths = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    if not paths:
        raise DiffDisError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
    return paths
