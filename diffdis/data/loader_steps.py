"""Map-style training batches by step: the rows of the global batch at step s are `batch_indices(s, ...)`, a
function of (seed, s) only, so resuming needs nothing but the step. Each DataLoader item is one step's decoded
batch (or a frozen-encoder cache's rows), made on a worker.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from functools import lru_cache

import torch

from diffdis.data.training_batches import BadRowCount, TrainingData, loader_options
from diffdis.data.transforms import image_to_tensor
from diffdis.errors import DiffDisError


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


def by_step(
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
            batches, sampler=_Steps(saved["step"]), **loader_options(num_workers, pin_memory)
        )

    step = state["step"] if state is not None and "step" in state else start_step
    return TrainingData(False, len(rows), make_loader, {"step": step}, {}, BadRowCount(1.0, 0), captions)


class _Steps(torch.utils.data.Sampler):
    def __init__(self, start: int):
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


def map_style_training_data(
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
    """`training_data` for an image folder, a .csv or built-in names: every row checked first (`bad_rows`)."""
    from diffdis.data.captions import check_rows, load_captioned

    if state is not None and "step" not in state:
        raise DiffDisError(
            f"the saved data state is a stream's, but {data} is read map-style; resume with the data it was saved with"
        )
    dataset = check_rows(load_captioned(data, image_column, caption_column), bad_rows, log)

    def captions(n: int) -> list[str]:
        return [str(t or "") for t in dataset.select_columns(["text"])[: min(n, len(dataset))]["text"]]

    return by_step(
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
