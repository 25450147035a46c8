"""The one `--data` grammar of `diffdis train`, `diffdis eval` and `diffdis data cache`, parsed here only, so a
spelling means the same to every command.

    world:5000+digits        built-in sets: NAME[/SPLIT][:N] joined by `+` (written once to the cache)
    digits/test              a named split; without one, training reads `train` and evaluation the held-out
                             split (world: heldout, digits: test, shapes: train), as each always has
    DIR | FILE               data on disk; PATH@SPLIT chooses a split of CIFAR or Karpathy data (evaluation)
    'DIR/{00000..00099}.tar' tar or parquet shards (a folder, glob or brace pattern), streamed in training

Something on disk of that name always wins over a built-in set: a folder called `world` is that folder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from diffdis.data.builtin import DEFAULT_SPLITS, SPLITS, materialise
from diffdis.errors import DiffDisError

__all__ = ["BuiltinSet", "DataSpec", "as_data_spec", "evaluation_source", "parse_data_spec", "training_source"]


@dataclass(frozen=True)
class BuiltinSet:
    """One built-in set of a spec: `world/heldout:500` -> BuiltinSet("world", "heldout", 500)."""

    name: str
    split: str | None = None  # None: the split the reading command uses by default
    count: int | None = None  # images to write; None for the generator's default

    @property
    def label(self) -> str:
        """A short name for result files: world-heldout-500."""
        return f"{self.name}-{self.split}" + (f"-{self.count}" if self.count else "")


@dataclass(frozen=True)
class DataSpec:
    """What a `--data` names: built-in `sets`, or a `path` on disk (with the `split` of PATH@SPLIT)."""

    text: str  # as the user wrote it, for messages and for shard patterns
    path: Path | None = None
    split: str | None = None
    sets: tuple[BuiltinSet, ...] = ()

    def resolved(self, use: str) -> tuple[BuiltinSet, ...]:
        """The sets with every split named: a missing one is `use`'s default ("train" or "eval")."""
        defaults = DEFAULT_SPLITS[use]
        return tuple(replace(s, split=s.split or defaults[s.name]) for s in self.sets)

    def folders(self, use: str) -> list[Path]:
        """The sets' image folders in the cache, written on first use."""
        return [materialise(s.name, s.count, s.split) for s in self.resolved(use)]


def _parse_sets(text: str) -> tuple[BuiltinSet, ...] | None:
    """`world:5000+digits/test` -> its sets; None when any part is no built-in name (then `text` is a path)."""
    sets = []
    for part in text.split("+"):
        head, _, count = part.partition(":")
        name, _, split = head.partition("/")
        if name not in SPLITS or (count and not count.isdecimal()):
            return None
        sets.append(BuiltinSet(name, split or None, int(count) or None if count else None))  # `:0`: the default
    for s in sets:
        if s.split is not None and s.split not in SPLITS[s.name]:
            raise DiffDisError(f"dataset {s.name} has no split {s.split!r}; choose one of: {', '.join(SPLITS[s.name])}")
    return tuple(sets)


def parse_data_spec(text: str) -> DataSpec:
    """Read a `--data`: an existing path, then PATH@SPLIT (PATH existing), then built-in sets; anything else is
    taken as a path (a shard pattern, or a missing file that the reader reports)."""
    if Path(text).exists():
        return DataSpec(text, Path(text))
    head, at, split = text.rpartition("@")
    if at and head and split and Path(head).exists():
        return DataSpec(text, Path(head), split)
    sets = _parse_sets(text)
    if sets is not None:
        return DataSpec(text, sets=sets)
    return DataSpec(text, Path(text))


def as_data_spec(data: str | DataSpec) -> DataSpec:
    return data if isinstance(data, DataSpec) else parse_data_spec(data)


def training_source(spec: DataSpec) -> DataSpec:
    """`spec` if training can read it: built-in sets, or an image folder, table file or shards on disk."""
    from diffdis.data.stream import is_streaming_source  # torch: only when training data is opened

    if spec.sets:
        return spec
    if spec.split is not None:
        raise DiffDisError(
            f"{spec.text}: training reads no split of data on disk (PATH@SPLIT is for evaluation data); "
            "point --data at the split's own folder or files"
        )
    if not spec.path.exists() and not is_streaming_source(spec.text):
        if spec.path.suffix == ".csv":
            raise DiffDisError(f"data file {spec.path} does not exist")
        raise DiffDisError(
            f"cannot use {spec.text!r} as data: give an image folder with metadata.jsonl, a .parquet or a .csv file, "
            "or built-in datasets such as 'world:20000+digits'"
        )
    return spec


def evaluation_source(spec: DataSpec) -> DataSpec:
    """`spec` if evaluation can read it: built-in sets, or a path (PATH@SPLIT) that exists."""
    if spec.sets or spec.path.exists():
        return spec
    from diffdis.data.formats import FORMATS

    defaults = ", ".join(f"{n} ({s} split)" for n, s in DEFAULT_SPLITS["eval"].items())
    raise DiffDisError(
        f"cannot use {spec.text!r} as evaluation data: give an image folder with metadata.jsonl or a built-in "
        f"name ({defaults}), e.g. world:500, digits/train or world:500+digits; "
        f"or data on disk in one of the layouts of --data-format ({', '.join(FORMATS)})"
    )
