"""Writers of small datasets in the layouts they are distributed in (CIFAR binary, python and parquet; Karpathy and
COCO caption JSON; class folders), for the format reader tests and the eval CLI tests."""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image


def cifar_planes(count: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """((count, 3072) uint8 colour planes, labels), random."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3072), dtype=np.uint8), rng.integers(0, classes, count)


def planes_pixel(planes: np.ndarray, image: int, row: int, col: int) -> tuple[int, int, int]:
    """The (R, G, B) of one pixel, read from the planes as the CIFAR page describes them."""
    at = row * 32 + col
    return tuple(int(planes[image, plane * 1024 + at]) for plane in range(3))


def write_cifar_bin(path: Path, planes: np.ndarray, labels: np.ndarray, coarse: np.ndarray | None = None) -> None:
    """CIFAR-10 records (label byte + 3072), or CIFAR-100's (coarse byte, fine byte + 3072) when `coarse` is given."""
    heads = labels[:, None] if coarse is None else np.stack([coarse, labels], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.concatenate([heads.astype(np.uint8), planes], axis=1).tobytes())


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (SHORT_BINSTRING / BINSTRING), as cPickle wrote the CIFAR files."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def python2_pickle(obj: object) -> bytes:
    """Protocol 2 with Python 2 strings, and numpy named as numpy 1 named it (numpy.core): the real files' bytes."""
    buffer = io.BytesIO()
    Python2Pickler(buffer, 2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_cifar_python(
    path: Path, planes: np.ndarray, labels: np.ndarray, coarse: np.ndarray | None = None, pickler=python2_pickle
) -> None:
    batch = {b"batch_label": b"batch", b"data": planes, b"filenames": [b"x_%d.png" % i for i in range(len(planes))]}
    if coarse is None:
        batch[b"labels"] = [int(y) for y in labels]
    else:
        batch[b"fine_labels"], batch[b"coarse_labels"] = [int(y) for y in labels], [int(c) for c in coarse]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickler(batch))


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_cifar_parquet(path: Path, planes: np.ndarray, labels: np.ndarray) -> None:
    """The Hub's CIFAR-10 parquet: `img` {bytes, path} (PNG) and `label`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pixels = planes.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    images = [{"bytes": png_bytes(p), "path": f"{i}.png"} for i, p in enumerate(pixels)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"img": images, "label": [int(y) for y in labels]}), path)


def write_image(path: Path, colour: tuple[int, int, int] = (200, 30, 30), size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)


def write_karpathy(path: Path, splits: dict[str, int], filepath: str | None = None) -> list[dict]:
    """A Karpathy split JSON with `splits[s]` images in split s, 5 sentences each, and the images beside it."""
    images = []
    for split, count in splits.items():
        for i in range(count):
            name = f"{split}_{i}.jpg"
            sentences = [{"raw": f"photo {split} {i} caption {k} ", "tokens": []} for k in range(5)]
            image = {"filename": name, "split": split, "imgid": len(images), "sentences": sentences}
            if filepath:
                image["filepath"] = filepath
            images.append(image)
            write_image(path.parent / (filepath or "") / name, (40 * i % 256, 100, 30 * len(images) % 256))
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return images
