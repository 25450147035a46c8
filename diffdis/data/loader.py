"""Training batches through a DataLoader with workers: map-style sources by step, streamed sources as a stream.

Map-style (an image folder with metadata.jsonl, a .csv, built-in names): the rows of the global batch at step s
are `batch_indices(s, ...)`, a function of (seed, s) only, so resuming needs nothing but the step; each
DataLoader item is one step's decoded batch, made on a worker (`diffdis.data.loader_steps`).
Streamed (tar shards, parquet): see `diffdis.data.stream`; resume goes through StatefulDataLoader's state
(`diffdis.data.loader_stream`). This module holds the entry points: `training_data`, `cached_training_data`
and `one_pass_batches`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from diffdis.data.loader_steps import batch_indices, by_step, map_style_training_data
from diffdis.data.loader_stream import is_streamed, stream_source, streamed_training_data
from diffdis.data.stream import BatchStream, is_streaming_source, row_stream
from diffdis.data.training_batches import BadRowCount, TrainingData, loader_options
from diffdis.errors import DiffDisError

__all__ = [
    "TrainingData",
    "batch_indices",
    "cached_training_data",
    "is_streaming_source",
    "one_pass_batches",
    "training_data",
]


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
    if is_streamed(data):
        return streamed_training_data(
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
    return map_style_training_data(
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
    if is_streamed(data):
        kind, shards = stream_source(data, image_column, caption_column)
        rows = row_stream(kind, shards, image_column, caption_column)
    else:
        from datasets import Image

        from diffdis.data.captions import load_captioned

        dataset = load_captioned(data, image_column, caption_column).cast_column("image", Image(decode=False))
        rows = dataset.to_iterable_dataset(num_shards=max(1, min(num_workers, len(dataset))))
    options = loader_options(min(num_workers, rows.num_shards), False, persistent=False)
    loader = torch.utils.data.DataLoader(BatchStream(rows, batch_size, image_size, repeat=False), **options)
    count = BadRowCount(max_bad_fraction, batch_size)
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

    return by_step(
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
