"""Streamed training batches (tar shards, parquet): rows shuffled through a buffer, split by rank, decoded on
workers by `diffdis.data.stream.BatchStream`; resuming goes through StatefulDataLoader's saved state, which
must match the run's shards, seed, ranks, workers and batch size.
"""

from __future__ import annotations

import inspect
import itertools
import warnings
from collections.abc import Callable

from diffdis.data.spec import parse_data_spec, training_source
from diffdis.data.stream import (
    BatchStream,
    checked_shards,
    generate_rows,
    is_streaming_source,
    row_stream,
    stream_files,
)
from diffdis.data.training_batches import BadRowCount, TrainingData, loader_options
from diffdis.errors import DiffDisError


def is_streamed(data: str) -> bool:
    """Whether `data` (checked against the one `--data` grammar first) names tar or parquet shards."""
    spec = training_source(parse_data_spec(data))
    return not spec.sets and is_streaming_source(data)


def stream_source(data: str, image_column: str, caption_column: str) -> tuple[str, list[str]]:
    """(kind, shards) of streamed `data`: each tar file or parquet row group, checked readable first."""
    kind, files = stream_files(data)
    return kind, checked_shards(kind, files, image_column, caption_column)


def _stream_loader(batches: BatchStream, num_workers: int, pin_memory: bool):
    from torchdata.stateful_dataloader import StatefulDataLoader

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*set_vital.*")  # torchdata 0.11 calls a deprecated torch API
        return StatefulDataLoader(batches, **loader_options(num_workers, pin_memory))


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


def streamed_training_data(
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
    """`training_data` for tar or parquet shards: unusable rows skipped and counted (`max_bad_fraction`)."""
    from datasets.distributed import split_dataset_by_node

    kind, shards = stream_source(data, image_column, caption_column)
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
    count = BadRowCount(max_bad_fraction, local, *(state[k] for k in ("bad", "seen", "first_bad")) if state else ())

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
