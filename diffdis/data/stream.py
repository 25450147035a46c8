"""Streamed image-caption data: webdataset tar shards (img2dataset's layout) and parquet files.

Rows are read by our own small readers and served as a Hugging Face `datasets` IterableDataset, which gives
shard-level splitting across ranks and workers (`split_dataset_by_node`), a seeded shuffle (shard order and a
row buffer, reseeded per epoch by `set_epoch`) and a resumable `state_dict`. We read the tars ourselves rather
than through `load_dataset("webdataset")` because that builder fixes its columns from the first five rows of the
first shard and parses `.txt`/`.json` members inside the stream: one shard with `.webp` instead of `.jpg`, a
malformed json or a non-UTF-8 caption then ends the whole stream, where here it is one bad row.

The image stays as bytes in the stream; `BatchStream` decodes and resizes on the DataLoader workers and skips
(and counts) rows it cannot use.
"""

from __future__ import annotations

import glob
import io
import json
import re
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import PIL.Image
import torch

from diffdis.data.transforms import image_to_tensor
from diffdis.errors import DiffDisError

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
MAX_BAD_IN_A_ROW = 1000  # a worker that reads this many unusable rows in a row ends the run


def expand_braces(pattern: str) -> list[str]:
    """`a/{000..002}.tar` -> a/000.tar a/001.tar a/002.tar (zero padding kept); `{x,y}` lists too."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    head, tail, body = pattern[: match.start()], pattern[match.end() :], match.group(1)
    numbers = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numbers:
        lo, hi = numbers.groups()
        width = len(lo) if lo.startswith("0") else 0
        parts = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        parts = body.split(",")
    return [expanded for part in parts for expanded in expand_braces(head + part + tail)]


def _kind(path: str) -> str | None:
    return {".tar": "tar", ".parquet": "parquet"}.get(Path(path).suffix.lower())


def is_streaming_source(data: str) -> bool:
    """Tar shards or parquet (one file, a folder of them, a glob or a brace pattern); not image folders with
    metadata.jsonl, .csv files or built-in names, which stay map-style."""
    source = Path(data)
    if source.is_dir():
        return not (source / "metadata.jsonl").exists() and any(_kind(str(p)) for p in source.iterdir())
    names = expand_braces(data)
    matches = (match for name in names if glob.has_magic(name) for match in glob.iglob(name))
    return any(_kind(name) for name in names) or any(_kind(match) for match in matches)


def stream_files(data: str) -> tuple[str, list[Path]]:
    """("tar" | "parquet", the files in order) of a streaming source; one line when nothing matches.
    Where there are tars, the parquet files beside them are img2dataset's per-shard metadata: only tars count."""
    source = Path(data)
    if source.is_dir():
        names = sorted(str(p) for p in source.iterdir() if _kind(str(p)))
    else:
        names = [
            name
            for part in expand_braces(data)
            for name in (sorted(glob.glob(part)) if glob.has_magic(part) else [part])
        ]
        names = [name for name in names if _kind(name) or not glob.has_magic(data)]
    if not any(Path(name).is_file() for name in names):
        raise DiffDisError(
            f"{data} matches no file; give .tar or .parquet files (a folder, a glob or DIR/{{00000..00099}}.tar)"
        )
    missing = [name for name in names if not Path(name).is_file()]
    if missing:
        raise DiffDisError(
            f"{missing[0]} does not exist ({len(missing)} of the {len(names)} files {data} names are missing)"
        )
    kinds = {_kind(name) for name in names}
    if None in kinds:
        raise DiffDisError(f"{data} must name only .tar or .parquet files")
    kind = "tar" if "tar" in kinds else "parquet"
    return kind, [Path(name) for name in names if _kind(name) == kind]


# ---- checks before the first batch: constant work per file, nothing per row ----


def check_tar(path: Path) -> None:
    """A whole tar ends with zero blocks and starts with a valid header: catches truncated and corrupt shards."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(512)
        f.seek(max(0, size - 1024))
        tail = f.read(1024)
    problem = None
    if size < 1024 or size % 512:
        problem = f"its size ({size} bytes) is not a whole number of 512-byte tar blocks: truncated?"
    elif tail.strip(b"\0"):
        problem = "it does not end with the tar end-of-archive blocks: truncated?"
    elif head.strip(b"\0"):
        try:
            tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
        except tarfile.TarError as err:
            problem = f"its first header is not a tar header ({err})"
    if problem:
        raise DiffDisError(f"shard {path} is not a readable tar file: {problem}; re-create or remove it")


def check_captions(path: Path, rows: int = 8) -> None:
    """A shard whose first rows have images but no caption at all was written without captions."""
    first = [row for _, row in zip(range(rows), read_tar(path))]
    has_image = [r for r in first if r["image"]["bytes"]]
    if has_image and not any(r["text"] for r in has_image):
        raise DiffDisError(
            f"shard {path} has images but no captions: no KEY.txt and no 'caption' in KEY.json "
            f"(first row {has_image[0]['key']}); write the shards with captions (img2dataset --caption_col)"
        )


def check_parquet(path: Path, image_column: str, caption_column: str) -> int:
    """The file's number of row groups, once its footer reads and it has both columns."""
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
        names = file.schema_arrow.names
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise DiffDisError(f"{path} is not a readable parquet file ({type(err).__name__}: {err})") from err
    for column, flag in ((image_column, "--image-column"), (caption_column, "--caption-column")):
        if column not in names:
            raise DiffDisError(f"{path} has no column {column!r} (columns: {names}); set {flag}")
    return file.metadata.num_row_groups


def checked_shards(kind: str, files: list[Path], image_column: str, caption_column: str) -> list[str]:
    """The stream's shards, the units split across ranks and workers: each tar file, each parquet row group
    ("FILE::GROUP"), so one large parquet file still feeds several workers."""
    if kind == "tar":
        for path in files:
            check_tar(path)
        check_captions(files[0])
        return [str(path) for path in files]
    return [f"{path}::{group}" for path in files for group in range(check_parquet(path, image_column, caption_column))]


# ---- row readers: one dict per row, {"key", "image": {"bytes", "path"}, "text", "problem"} ----


def _tar_row(key: str, fields: dict[str, bytes], shard: Path) -> dict:
    image_ext = next((e for e in IMAGE_EXTENSIONS if e in fields), None)
    text, problem = None, None
    if fields.get("txt"):
        text = fields["txt"].decode("utf-8", errors="replace").strip()
    if not text and "json" in fields:
        try:
            caption = json.loads(fields["json"]).get("caption")
            text = caption.strip() if isinstance(caption, str) else None
        except (ValueError, AttributeError):
            problem = f"{shard.name}/{key}.json is not a json object"
    if image_ext is None:
        problem = f"{shard.name}/{key} has no image (no .jpg, .png or .webp member)"
    elif not text and problem is None:
        problem = f"{shard.name}/{key} has no caption (no .txt and no 'caption' in its .json)"
    image = {"bytes": fields.get(image_ext) if image_ext else None, "path": f"{shard.name}/{key}.{image_ext}"}
    return {"key": f"{shard.name}/{key}", "image": image, "text": text, "problem": problem}


def read_tar(path: Path) -> Iterator[dict]:
    """Rows of one img2dataset shard: consecutive members sharing a key (the name up to its first dot)."""
    key, fields = None, {}
    try:
        with tarfile.open(path, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, dot, extension = name.partition(".")
                if not dot:
                    continue
                stem = f"{folder}/{stem}" if folder else stem
                data = tar.extractfile(member).read()
                if stem != key and key is not None:
                    yield _tar_row(key, fields, path)
                    fields = {}
                key = stem
                fields[extension.lower()] = data
            end = tar.offset
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DiffDisError(f"shard {path} is not a readable tar file ({err}); re-create or remove it") from err
    if key is not None:
        yield _tar_row(key, fields, path)
    _check_tar_end(path, end)


def _check_tar_end(path: Path, end: int) -> None:
    """tarfile takes a damaged header in mid-archive for the end of the archive: only zeros may follow it."""
    with open(path, "rb") as f:
        f.seek(end)
        rest = f.read(64 * 1024)
    if rest.strip(b"\0"):
        raise DiffDisError(f"shard {path} is damaged: no valid tar header at byte {end}; re-create or remove it")


def _image_cell(value, root: Path) -> dict:
    """A parquet image cell (bytes, an HF Image struct {bytes, path}, or a path relative to the file)."""
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
    else:
        data, path = (value, None) if isinstance(value, bytes | bytearray) else (None, value)
    if path and not data and not Path(path).is_absolute():
        path = str(root / path)
    return {"bytes": data, "path": path}


def read_parquet(path: Path, group: int, image_column: str, caption_column: str) -> Iterator[dict]:
    """Rows of one row group of a parquet file."""
    import pyarrow.parquet as pq

    root, row = path.parent.resolve(), 0
    batches = pq.ParquetFile(path).iter_batches(
        batch_size=256, row_groups=[group], columns=[image_column, caption_column]
    )
    for batch in batches:
        for image, text in zip(batch.column(image_column).to_pylist(), batch.column(caption_column).to_pylist()):
            key = f"{path.name}:{group}:{row}"
            if image is None:
                yield {"key": key, "image": None, "text": text, "problem": f"{key} has no image"}
            else:
                yield {"key": key, "image": _image_cell(image, root), "text": text, "problem": None}
            row += 1


def generate_rows(shards: list[str], kind: str, image_column: str, caption_column: str) -> Iterator[dict]:
    """The generator behind the stream: `shards` is the list `datasets` splits across ranks and workers."""
    for shard in shards:
        if kind == "tar":
            yield from read_tar(Path(shard))
        else:
            path, _, group = shard.rpartition("::")
            yield from read_parquet(Path(path), int(group), image_column, caption_column)


def row_stream(kind: str, shards: list[str], image_column: str, caption_column: str):
    """A `datasets.IterableDataset` of raw rows (images undecoded) over `checked_shards`."""
    import datasets

    features = datasets.Features(
        {
            "key": datasets.Value("string"),
            "image": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
            "text": datasets.Value("string"),
            "problem": datasets.Value("string"),
        }
    )
    kwargs = {"shards": shards, "kind": kind, "image_column": image_column}
    kwargs["caption_column"] = caption_column
    return datasets.IterableDataset.from_generator(generate_rows, features=features, gen_kwargs=kwargs)


# ---- decoding on the workers ----


def decode_row(row: dict, size: int) -> torch.Tensor | str:
    """(3, size, size) in [-1, 1], or why the row cannot be used."""
    if row.get("problem"):
        return row["problem"]
    where = row.get("key", "a row")
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        return f"{where} has no caption"
    image = row.get("image") or {}
    source = io.BytesIO(image["bytes"]) if image.get("bytes") else image.get("path")
    if not source:
        return f"{where} has no image"
    try:
        with PIL.Image.open(source) as picture:
            picture.load()
            return image_to_tensor(picture, size)
    except FileNotFoundError:
        return f"{where} names {image.get('path')}, which does not exist"
    except PIL.UnidentifiedImageError:
        return f"{where} has an image PIL cannot identify"
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as err:
        return f"{where} has an unreadable image ({err})"


@contextmanager
def _one_thread(enabled: bool) -> Iterator[None]:
    """Per-image tensor copies are too small for intra-op threads: with num_workers=0 on a busy machine, torch's
    2 threads made decoding 256-pixel images ~5x slower (43 vs 236 images/s). Workers run on one thread anyway."""
    threads = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if enabled:
            torch.set_num_threads(threads)


class BatchStream(torch.utils.data.IterableDataset):
    """Whole batches of decoded rows from a row stream, made on the DataLoader worker that reads the rows.

    Yields {"pixels", "text", "bad", "seen", "why"} (bad/seen: rows skipped/read since this worker's previous
    batch; why: the first skipped row's reason), or {"error": one line} when this worker cannot go on.
    `repeat`: roll over epochs for ever (training); otherwise one pass, the last batch possibly short.
    Its state_dict (taken by StatefulDataLoader after each batch) is the epoch and the row stream's state.
    """

    def __init__(self, rows, batch_size: int, image_size: int, repeat: bool = True):
        self.rows, self.batch_size, self.image_size, self.repeat = rows, batch_size, image_size, repeat
        self.epoch, self.resumed = 0, False

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "rows": self.rows.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.resumed = state["epoch"], True
        self.rows.load_state_dict(state["rows"])

    def __iter__(self) -> Iterator[dict]:
        try:
            yield from self._batches()
        except DiffDisError as err:
            yield {"error": str(err)}
        except Exception as err:  # noqa: BLE001  (any reader failure: one line in the main process, no traceback)
            yield {"error": f"reading the data failed: {type(err).__name__}: {err}".splitlines()[0]}

    def _batches(self) -> Iterator[dict]:
        # `datasets` keeps the epoch in a tensor shared by all workers; each worker counts its own epochs.
        self.rows._epoch = self.epoch
        pixels, texts, bad, seen, why, in_a_row = [], [], 0, 0, None, 0
        in_main_process = torch.utils.data.get_worker_info() is None
        while True:
            self.rows.set_epoch(self.epoch)
            read = usable = 0
            for row in self.rows:
                read, seen = read + 1, seen + 1
                with _one_thread(in_main_process):
                    out = decode_row(row, self.image_size)
                if isinstance(out, str):
                    bad, in_a_row, why = bad + 1, in_a_row + 1, why or out
                    if in_a_row >= MAX_BAD_IN_A_ROW:
                        raise DiffDisError(f"{in_a_row} rows in a row were unusable (first: {why}); fix the data")
                    continue
                in_a_row, usable = 0, usable + 1
                pixels.append(out)
                texts.append(row["text"].strip())
                if len(pixels) == self.batch_size:
                    with _one_thread(in_main_process):
                        stacked = torch.stack(pixels)
                    yield {"pixels": stacked, "text": texts, "bad": bad, "seen": seen, "why": why}
                    pixels, texts, bad, seen, why = [], [], 0, 0, None
            if not self.repeat:
                if pixels or seen:  # a short last batch; empty when only bad rows were left, to count them
                    stacked = torch.stack(pixels) if pixels else torch.empty(0, 3, self.image_size, self.image_size)
                    yield {"pixels": stacked, "text": texts, "bad": bad, "seen": seen, "why": why}
                return
            whole_pass, self.resumed = not self.resumed, False  # a resumed epoch is only its tail
            if whole_pass and read == 0:
                return  # this worker was given no shard (or its shards hold no rows)
            if whole_pass and usable == 0:
                raise DiffDisError(f"none of the {read} rows of a whole pass over the data is usable (first: {why})")
            self.epoch += 1
