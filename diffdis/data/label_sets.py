"""Zero-shot label sets and prompt templates, as data files (the open_clip way)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from diffdis.errors import DiffDisError

# Which built-in templates a built-in label set uses when none are given.
DEFAULT_TEMPLATES = {
    "cifar10": "cifar",
    "cifar100": "cifar",
    "mnist": "mnist",
    "imagenet1k": "imagenet_simple",
    "digits": "digits",
    # the paper's other zero-shot datasets: each uses CLIP_benchmark's templates for it, saved under its own name
    "caltech101": "caltech101",
    "cars": "cars",
    "flowers": "flowers",
    "food101": "food101",
    "sun397": "sun397",
    "dtd": "dtd",
    "fgvc_aircraft": "fgvc_aircraft",
    "pets": "pets",
    "eurosat": "eurosat",
}


def _builtin(folder: str) -> dict[str, str]:
    root = resources.files("diffdis.data") / folder
    return {Path(f.name).stem: f.name for f in root.iterdir() if f.name.endswith(".txt")}


def builtin_label_sets() -> list[str]:
    return sorted(_builtin("labels"))


def builtin_templates() -> list[str]:
    return sorted(_builtin("templates"))


def _read_lines(text: str, source: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise DiffDisError(f"{source} is empty")
    return lines


def read_text_file(path: Path, what: str) -> list[str]:
    """Non-empty stripped lines of a UTF-8 file, with a clear error for a missing or mis-encoded file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DiffDisError(f"{what} file {path} is not UTF-8 text ({err.reason}); re-save it as UTF-8") from err
    except OSError as err:
        raise DiffDisError(f"cannot read {what} file {path}: {err.strerror}") from err
    return _read_lines(text, f"{what} file {path}")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name longer than the file system allows
        return False


def load_labels(spec: str) -> list[str]:
    """A built-in set name (cifar10, ...), a text file with one label per line, or 'a,b,c'."""
    builtin = _builtin("labels")
    if spec in builtin:
        text = (resources.files("diffdis.data") / "labels" / builtin[spec]).read_text(encoding="utf-8")
        return _read_lines(text, f"label set {spec}")  # upstream lists are kept as they are (ImageNet repeats 2)
    path = Path(spec)
    if "," in spec and path.suffix != ".txt":
        labels = [s.strip() for s in spec.split(",") if s.strip()]
    elif path.suffix == ".txt" or _is_file(path):
        if not path.is_file():
            raise DiffDisError(f"label file {spec} does not exist; built-in sets: {', '.join(builtin_label_sets())}")
        labels = read_text_file(path, "label")
    else:
        raise DiffDisError(
            f"unknown label set {spec!r}: give a built-in name ({', '.join(builtin_label_sets())}), "
            "a .txt file with one label per line, or a comma-separated list"
        )
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise DiffDisError(f"duplicate labels {duplicates}: each label must appear once")
    if len(labels) < 2:
        raise DiffDisError("give at least two labels to choose between")
    return labels


def load_templates(spec: str | None, labels_spec: str | None = None) -> list[str]:
    """A built-in template set name, or a file with one template per line, each with one '{}'."""
    builtin = _builtin("templates")
    if spec is None:
        spec = DEFAULT_TEMPLATES.get(labels_spec or "", "simple")
    if spec in builtin:
        text = (resources.files("diffdis.data") / "templates" / builtin[spec]).read_text(encoding="utf-8")
        return _read_lines(text, f"template set {spec}")
    path = Path(spec)
    if not path.is_file():
        raise DiffDisError(
            f"unknown templates {spec!r}: give a built-in name ({', '.join(builtin_templates())}) or a file"
        )
    templates = read_text_file(path, "template")
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise DiffDisError(f"template {bad[0]!r} in {path} must contain '{{}}' exactly once (where the label goes)")
    return templates
