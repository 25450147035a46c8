"""What the `diffdis eval` commands share: options, progress bars, the records printed as JSON or a table.
(Sweeps, records and their files are the library's: diffdis.eval.sweep, generate_run, results.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from diffdis_cli.common import print_json, progress

DATA = typer.Option(
    ...,
    "--data",
    help="Data on disk (a folder or file in any --data-format layout; PATH@SPLIT "
    "chooses a split: CIFAR test (default) or train, Karpathy test (default), val, train, restval), or "
    "built-in sets NAME, NAME/SPLIT or NAME:N joined by +: world (held-out split), digits (test split), "
    "world:500+digits.",
)
DATA_FORMAT = typer.Option(
    "auto",
    "--data-format",
    help="Layout of the data on disk (for generate: --prompts and "
    "--reference): auto (detected) | metadata (metadata.jsonl) | imagefolder (class folders) | "
    "imagenet-devkit | cifar-bin | cifar-python | parquet | karpathy | coco-captions.",
)
IMAGE_ROOT = typer.Option(
    None,
    "--image-root",
    help="Folder of the images when the data is an annotation file "
    "(karpathy, coco-captions) or the ImageNet devkit. Default: found beside it.",
)
SCHEDULERS = typer.Option(None, "--scheduler", help="Comma list, e.g. ddim,dpm++,unipc. Default: the model's.")
STEPS = typer.Option(None, "--num-inference-steps", help="Comma list, e.g. 1,2,5,10,25,50. Default: the model's.")
GUIDANCE = typer.Option(
    None, "--guidance-scale", help="Comma list of CFG scales over the image (1 = off). Default: the model's."
)
SEED = typer.Option(0, "--seed")
BATCH = typer.Option(64, "--batch-size", min=1, help="Images per forward pass.")
MAX_SAMPLES = typer.Option(None, "--max-samples", min=1, help="Evaluate only the first N samples.")
# diffdis.eval.results.DEFAULT_OUTPUT, spelt out: importing it would load torch for `diffdis --help`
DEFAULT_OUTPUT = "results/{task}_{data}_{scheduler}_{steps}.json"
JSON = typer.Option(False, "--json", help="Print the records as JSON (without per-sample results).")


NUM_SHARDS = typer.Option(1, "--num-shards", min=1, help="Split the samples into K shards ...")
SHARD_INDEX = typer.Option(0, "--shard-index", min=0, help="... and evaluate shard I (merge them with `eval build`).")


def bars(json_out: bool) -> Callable[[str], Any]:
    """The library's `progress` argument: a rich bar per stage on stderr, none under --json."""
    return lambda description: progress(description, enabled=not json_out)


def report(records: list[dict[str, Any]], keys: list[str], json_out: bool) -> None:
    """The records as JSON (per-sample results left out) or as a table on stdout."""
    if json_out:
        print_json([{k: v for k, v in r.items() if k != "samples"} for r in records])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="results")
    for key in keys:
        table.add_column(key)
    for r in records:
        table.add_row(*(f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys))
    Console().print(table)
