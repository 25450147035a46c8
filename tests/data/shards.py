"""Small webdataset tar shards in img2dataset's layout (KEY.png|jpg + KEY.txt and/or KEY.json), written with tarfile.

Row i has caption "row i" and a solid colour made from i, so tests can tell rows apart after decoding.
Only `distinct` different images are encoded; the bytes are reused, so 100,000 rows take a second or two.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path

from PIL import Image


def colour(i: int) -> tuple[int, int, int]:
    return (i * 37) % 256, (i * 11) % 256, (i // 256 * 53) % 256


def _encoded(i: int, size: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour(i)).save(buffer, format={"png": "PNG", "jpg": "JPEG"}[fmt])
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    directory: Path | str,
    num_shards: int,
    rows_per_shard: int,
    size: int = 16,
    bad: Iterable[int] = (),
    captions: str | None = "txt",
    fmt: str = "png",
    distinct: int | None = None,
) -> list[Path]:
    """`directory/00000.tar` ...; `bad`: global row numbers whose image bytes are not an image;
    `captions`: "txt" (KEY.txt), "json" (a `caption` in KEY.json) or None (KEY.json without a caption);
    `distinct`: encode only this many images and cycle them (row i gets image i % distinct)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bad, cache, paths = set(bad), {}, []
    for shard in range(num_shards):
        path = directory / f"{shard:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for row in range(shard * rows_per_shard, (shard + 1) * rows_per_shard):
                key = f"{row:09d}"
                image = row if distinct is None else row % distinct
                if image not in cache:
                    cache[image] = _encoded(image, size, fmt)
                _add(tar, f"{key}.{fmt}", b"not an image" if row in bad else cache[image])
                meta = {"key": key, "status": "success", "width": size, "height": size, "url": f"https://x/{key}"}
                if captions == "txt":
                    _add(tar, f"{key}.txt", f"row {row}".encode())
                elif captions == "json":
                    meta["caption"] = f"row {row}"
                _add(tar, f"{key}.json", json.dumps(meta).encode())
        paths.append(path)
    return paths
