"""Training batches through a DataLoader with workers: map-style sources by step, streamed sources as a stream.

Map-style (an image folder with metadata.jsonl, a .csv, built-in names): the rows of the global batch at step s
are `batch_indices(s, ...)`, a function of (seed, s) only, so resuming needs nothing but the step; each
DataLoader item is one step's decoded batch, made on a worker.
Streamed (tar shards, parquet): see `diffdis.data.stream`; resume goes through StatefulDataLoader's state.
"""

from __future__ import annotations

import inspect
import itertools
import warnings
from collections.abc import Callable, Iterator
from functools import lru_cache

import torch

from diffdis.data.spec import parse_data_spec, training_source
from diffdis.data.stream import (
    BatchStream,
    checked_shards,
    generate_rows,
    is_streaming_source,
    row_stream,
    stream_files,
)
from diffdis.data.transforms import image_to_tensor
from diffdis.errors import DiffDisError

__all__ = [
    "TrainingData",
    "batch_indices",
    "cached_training_data",
    "is_streaming_source",
    "one_pass_batches",
    "training_data",
]


@lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> list[int]:
    """Rows of the global batch at `step`: a fresh seeded permutation per epoch, no state to save."""
    out: list[int] = []
    position = step * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(position + len(out), n)
        take = min(batch_size - len(out), n - offset)
        out += _epoch_order(n, seed, epoch)[offset : offset + take].tolist()
    return out


class DecodedRows:
    """Random access to a captioned `datasets.Dataset`: rows -> {"pixels", "text"}, decoded and resized."""

    def __init__(self, dataset, image_size: int):
        self.dataset, self.image_size = dataset, image_size

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, indices: list[int]) -> dict:
        rows = self.dataset[indices]
        pixels = torch.stack([image_to_tensor(image, self.image_size) for image in rows["image"]])
        return {"pixels": pixels, "text": [str(t or "") for t in rows["text"]]}


class StepBatches(torch.utils.data.Dataset):
    """Item `step`: this rank's share of the global batch at that step, read from `rows` (anything with `len`
    and `batch(indices)`: decoded images, or a frozen-encoder cache) on a DataLoader worker."""

    def __init__(self, rows, batch_size: int, rank: int, world_size: int, seed: int):
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        share = batch_size // world_size
        self.shard = slice(rank * share, (rank + 1) * share)

    def __getitem__(self, step: int) -> dict:
        indices = batch_indices(step, len(self.rows), self.batch_size, self.seed)[self.shard]
        return {**self.rows.batch(indices), "bad": 0, "seen": len(indices)}


def _by_step(
    rows,
    what: str,
    *,
    batch_size: int,
    rank: int,
    world_size: int,
    seed: int,
    num_workers: int,
    pin_memory: bool,
    start_step: int,
    state: dict | None,
    captions: Callable[[int], list[str]],
) -> TrainingData:
    """Map-style batches in the step order `batch_indices` fixes: resuming needs only the step."""
    if batch_size > len(rows):
        raise DiffDisError(f"batch size {batch_size} exceeds the {len(rows)} rows of {what}")
    batches = StepBatches(rows, batch_size, rank, world_size, seed)

    def make_loader(saved: dict):
        return torch.utils.data.DataLoader(
            batches, sampler=_Steps(saved["step"]), **_loader_options(num_workers, pin_memory)
        )

    step = state["step"] if state is not None and "step" in state else start_step
    return TrainingData(False, len(rows), make_loader, {"step": step}, {}, _BadRowCount(1.0, 0), captions)


class _Steps(torch.utils.data.Sampler):
    def __init__(self, start: int):
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


def _loader_options(num_workers: int, pin_memory: bool, persistent: bool = True) -> dict:
    """Whole batches as items; pinned memory only where there is a GPU to copy to."""
    workers = {"persistent_workers": persistent, "prefetch_factor": 2} if num_workers else {}
    pin = pin_memory and torch.cuda.is_available()
    return {"batch_size": None, "num_workers": num_workers, "pin_memory": pin, **workers}


class _BadRowCount:
    """Bad/seen rows summed over batches; one line once the fraction passes the limit."""

    def __init__(self, max_bad_fraction: float, min_rows: int, bad: int = 0, seen: int = 0, first: str | None = None):
        self.max_bad_fraction, self.min_rows = max_bad_fraction, min_rows
        self.bad, self.seen, self.first = bad, seen, first

    def add(self, batch: dict) -> dict:
        if "error" in batch:
            raise DiffDisError(batch["error"])
        why = batch.pop("why", None)
        self.bad, self.seen, self.first = self.bad + batch["bad"], self.seen + batch["seen"], self.first or why
        self.check(self.min_rows)
        return batch

    def check(self, min_rows: int) -> None:
        if self.seen >= min_rows and self.bad > self.max_bad_fraction * self.seen:
            raise DiffDisError(
                f"{self.bad} of {self.seen} rows read so far were unusable (first: {self.first}), more than "
                f"--max-bad-fraction {self.max_bad_fraction}; fix the data or raise the fraction"
            )


def _streamed(data: str) -> bool:
    """Whether `data` (checked against the one `--data` grammar first) names tar or parquet shards."""
    spec = training_source(parse_data_spec(data))
    return not spec.sets and is_streaming_source(data)


def _source(data: str, image_column: str, caption_column: str) -> tuple[str, list[str]]:
    kind, files = stream_files(data)
    return kind, checked_shards(kind, files, image_column, caption_column)


def _stream_loader(batches: BatchStream, num_workers: int, pin_memory: bool):
    from torchdata.stateful_dataloader import StatefulDataLoader

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*set_vital.*")  # torchdata 0.11 calls a deprecated torch API
        return StatefulDataLoader(batches, **_loader_options(num_workers, pin_memory))


class TrainingData:
    """Batches for training, one per optimiser step, for ever (epochs roll over).

    Each batch: {"pixels": float32 (b, 3, S, S) in [-1, 1], "text": list[str], "bad": rows skipped since this
    rank's previous batch, "seen": rows read since then}. `state_dict()` after a batch resumes after that batch
    (so does iterating again).
    """

    def __init__(
        self,
        streaming: bool,
        num_rows: int | None,
        make_loader: Callable,
        state: dict,
        config: dict,
        count: _BadRowCount,
        captions: Callable[[int], list[str]],
    ):
        self.streaming, self.num_rows = streaming, num_rows
        self._make_loader, self._state, self._config = make_loader, state, config
        self._count, self._captions, self._loader = count, captions, None

    def __iter__(self) -> Iterator[dict]:
        self._loader = self._make_loader(self.state_dict())
        for batch in self._loader:
            batch = self._count.add(batch)
            if not self.streaming:
                self._state = {"step": self._state["step"] + 1}
            yield batch
        raise DiffDisError("the data stream ended: it holds no rows")

    def state_dict(self) -> dict:
        if not self.streaming:
            return dict(self._state)
        loader = self._loader.state_dict() if self._loader is not None else self._state.get("loader")
        count = {"bad": self._count.bad, "seen": self._count.seen, "first_bad": self._count.first}
        return {"loader": loader, **count, **self._config}

    def captions(self, n: int = 10_000) -> list[str]:
        """Up to `n` captions from the first rows (for training a tokenizer); no image is decoded."""
        return self._captions(n)


def _stream_captions(
    kind: str, shards: list[str], image_column: str, caption_column: str
) -> Callable[[int], list[str]]:
    def captions(n: int) -> list[str]:
        rows = generate_rows(shards, kind, image_column, caption_column)
        texts = (row["text"].strip() for row in rows if isinstance(row["text"], str) and row["text"].strip())
        return list(itertools.islice(texts, n))

    return captions


def _shuffled(rows, seed: int, buffer: int):
    """Shard order reshuffled per epoch plus a row buffer. The buffer is fed from one shard at a time per worker
    (as webdataset does): with datasets 5's default of interleaving 10 shards per buffer, a worker's saved state
    does not load back (datasets 5.2 first applies it to the unsplit stream: IndexError)."""
    one_shard = "max_buffer_input_shards" in inspect.signature(rows.shuffle).parameters  # datasets >= 5
    return rows.shuffle(seed=seed, buffer_size=max(1, buffer), **({"max_buffer_input_shards": 1} if one_shard else {}))


def _streaming(
    data,
    *,
    image_size,
    batch_size,
    rank,
    world_size,
    seed,
    num_workers,
    image_column,
    caption_column,
    max_bad_fraction,
    shuffle_buffer,
    pin_memory,
    start_step,
    state,
    log,
) -> TrainingData:
    from datasets.distributed import split_dataset_by_node

    kind, shards = _source(data, image_column, caption_column)
    rows = _shuffled(row_stream(kind, shards, image_column, caption_column), seed, shuffle_buffer)
    rows = split_dataset_by_node(rows, rank=rank, world_size=world_size)
    local = batch_size // world_size
    workers = min(num_workers, rows.num_shards)  # a worker without a shard would only idle
    config = {"shards": len(shards), "seed": seed, "rank": rank, "world_size": world_size, "num_workers": workers}
    config["batch_size"] = batch_size
    if state is not None:
        if "loader" not in state:
            raise DiffDisError(
                f"the saved data state is a step, but {data} is streamed; resume with the data it was saved with"
            )
        saved = {k: state.get(k) for k in config}
        if saved != config:
            raise DiffDisError(
                f"the saved data state was made with {saved}, this run has {config}; resume with the same settings"
            )
    elif start_step:
        log(f"no saved stream position for step {start_step}: {data} is read from its beginning")
    count = _BadRowCount(max_bad_fraction, local, *(state[k] for k in ("bad", "seen", "first_bad")) if state else ())

    def make_loader(saved: dict):
        loader = _stream_loader(BatchStream(rows, local, image_size), workers, pin_memory)
        if saved.get("loader") is not None:
            loader.load_state_dict(saved["loader"])
        return loader

    log(
        f"streaming {len(shards)} {kind} shard(s) from {data}: "
        f"{rows.num_shards} for this rank, {max(workers, 1)} reader(s)"
    )
    captions = _stream_captions(kind, shards, image_column, caption_column)
    return TrainingData(True, None, make_loader, state or {}, config, count, captions)


def _map_style(
    data,
    *,
    image_size,
    batch_size,
    rank,
    world_size,
    seed,
    num_workers,
    image_column,
    caption_column,
    bad_rows,
    pin_memory,
    start_step,
    state,
    log,
) -> TrainingData:
    from diffdis.data.captions import check_rows, load_captioned

    if state is not None and "step" not in state:
        raise DiffDisError(
            f"the saved data state is a stream's, but {data} is read map-style; resume with the data it was saved with"
        )
    dataset = check_rows(load_captioned(data, image_column, caption_column), bad_rows, log)

    def captions(n: int) -> list[str]:
        return [str(t or "") for t in dataset.select_columns(["text"])[: min(n, len(dataset))]["text"]]

    return _by_step(
        DecodedRows(dataset, image_size),
        data,
        batch_size=batch_size,
        rank=rank,
        world_size=world_size,
        seed=seed,
        num_workers=num_workers,
        pin_memory=pin_memory,
        start_step=start_step,
        state=state,
        captions=captions,
    )


def training_data(
    data: str,
    *,
    image_size: int,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    num_workers: int = 0,
    image_column: str = "image",
    caption_column: str = "text",
    bad_rows: str = "error",
    max_bad_fraction: float = 0.01,
    shuffle_buffer: int = 1000,
    pin_memory: bool = False,
    start_step: int = 0,
    state: dict | None = None,
    log: Callable[[str], None] = print,
) -> TrainingData:
    """Training batches of `data` for this rank. `batch_size` is the global batch; each rank gets its share.

    Streamed sources skip and count unusable rows (`max_bad_fraction`); map-style sources check every row
    first (`bad_rows`: error | skip). `state` (from `TrainingData.state_dict()`) resumes; map-style sources
    also resume from `start_step` alone.
    """
    if batch_size % world_size:
        raise DiffDisError(
            f"the batch size {batch_size} does not divide among {world_size} processes; use a multiple of {world_size}"
        )
    if _streamed(data):
        return _streaming(
            data,
            image_size=image_size,
            batch_size=batch_size,
            rank=rank,
            world_size=world_size,
            seed=seed,
            num_workers=num_workers,
            image_column=image_column,
            caption_column=caption_column,
            max_bad_fraction=max_bad_fraction,
            shuffle_buffer=shuffle_buffer,
            pin_memory=pin_memory,
            start_step=start_step,
            state=state,
            log=log,
        )
    return _map_style(
        data,
        image_size=image_size,
        batch_size=batch_size,
        rank=rank,
        world_size=world_size,
        seed=seed,
        num_workers=num_workers,
        image_column=image_column,
        caption_column=caption_column,
        bad_rows=bad_rows,
        pin_memory=pin_memory,
        start_step=start_step,
        state=state,
        log=log,
    )


def one_pass_batches(
    data: str,
    *,
    image_size: int,
    batch_size: int,
    num_workers: int = 0,
    image_column: str = "image",
    caption_column: str = "text",
    max_bad_fraction: float = 0.01,
    log: Callable[[str], None] = print,
) -> Iterator[dict]:
    """Every usable row once, unshuffled, in batches of `batch_size` (the last may be short); bad rows are
    skipped and counted. Source order with num_workers=0; with W workers, worker w reads shards w, w+W, ...
    (tar files, parquet row groups), their batches alternate and each worker's last batch may be short."""
    if _streamed(data):
        kind, shards = _source(data, image_column, caption_column)
        rows = row_stream(kind, shards, image_column, caption_column)
    else:
        from datasets import Image

        from diffdis.data.captions import load_captioned

        dataset = load_captioned(data, image_column, caption_column).cast_column("image", Image(decode=False))
        rows = dataset.to_iterable_dataset(num_shards=max(1, min(num_workers, len(dataset))))
    options = _loader_options(min(num_workers, rows.num_shards), False, persistent=False)
    loader = torch.utils.data.DataLoader(BatchStream(rows, batch_size, image_size, repeat=False), **options)
    count = _BadRowCount(max_bad_fraction, batch_size)
    for batch in loader:
        batch = count.add(batch)
        if len(batch["text"]):
            yield batch
    count.check(0)
    if count.bad:
        log(f"skipped {count.bad} of {count.seen} rows without a caption or a readable image (first: {count.first})")
    if count.seen == count.bad:
        raise DiffDisError(f"{data} holds no usable row" + (f" (first: {count.first})" if count.first else ""))


def cached_training_data(
    rows,
    *,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    num_workers: int = 0,
    start_step: int = 0,
    state: dict | None = None,
    pin_memory: bool = False,
) -> TrainingData:
    """Batches of a frozen-encoder cache (`diffdis.data.cache.CachedRows`) in the map-style step order, so a
    resumed run continues exactly."""
    if batch_size % world_size:
        raise DiffDisError(
            f"the batch size {batch_size} does not divide among {world_size} processes; use a multiple of {world_size}"
        )

    def captions(n: int) -> list[str]:
        return list(rows.batch(list(range(min(n, len(rows)))))["text"])

    return _by_step(
        rows,
        "the cache",
        batch_size=batch_size,
        rank=rank,
        world_size=world_size,
        seed=seed,
        num_workers=num_workers,
        pin_memory=pin_memory,
        start_step=start_step,
        state=state,
        captions=captions,
    )
