"""What a training loader hands the loop, whatever its source: `TrainingData` (batches for ever, with a state that
resumes), the count of bad rows that stops a run past `--max-bad-fraction`, and the DataLoader options both the
step-ordered (`loader_steps`) and the streamed (`loader_stream`) loaders use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from diffdis.errors import DiffDisError


def loader_options(num_workers: int, pin_memory: bool, persistent: bool = True) -> dict:
    """Whole batches as items; pinned memory only where there is a GPU to copy to."""
    workers = {"persistent_workers": persistent, "prefetch_factor": 2} if num_workers else {}
    pin = pin_memory and torch.cuda.is_available()
    return {"batch_size": None, "num_workers": num_workers, "pin_memory": pin, **workers}


class BadRowCount:
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
        count: BadRowCount,
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
