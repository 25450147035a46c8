"""What the `diffdis eval` commands share: options, sweep parsing, the record's common fields, output."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from diffdis_cli.common import model_fields, print_json

DATA = typer.Option(..., "--data", help="Data on disk (a folder or file in any --data-format layout; PATH@SPLIT "
                    "chooses a split: CIFAR test (default) or train, Karpathy test (default), val, train, restval), or "
                    "built-in: world (held-out split), digits (test split), NAME/SPLIT, NAME:N.")  # fmt: skip
DATA_FORMAT = typer.Option("auto", "--data-format", help="Layout of the data on disk (for generate: --prompts and "
                           "--reference): auto (detected) | metadata (metadata.jsonl) | imagefolder (class folders) | "
                           "imagenet-devkit | cifar-bin | cifar-python | parquet | karpathy | coco-captions.")  # fmt: skip
IMAGE_ROOT = typer.Option(None, "--image-root", help="Folder of the images when the data is an annotation file "
                          "(karpathy, coco-captions) or the ImageNet devkit. Default: found beside it.")  # fmt: skip
SCHEDULERS = typer.Option(None, "--scheduler", help="Comma list, e.g. ddim,dpm++,unipc. Default: the model's.")
STEPS = typer.Option(None, "--num-inference-steps", help="Comma list, e.g. 1,2,5,10,25,50. Default: the model's.")
GUIDANCE = typer.Option(None, "--guidance-scale", help="Comma list of CFG scales over the image (1 = off). Default: the model's.")
SEED = typer.Option(0, "--seed")
BATCH = typer.Option(64, "--batch-size", min=1, help="Images per forward pass.")
MAX_SAMPLES = typer.Option(None, "--max-samples", min=1, help="Evaluate only the first N samples.")
JSON = typer.Option(False, "--json", help="Print the records as JSON (without per-sample results).")


NUM_SHARDS = typer.Option(1, "--num-shards", min=1, help="Split the samples into K shards ...")
SHARD_INDEX = typer.Option(0, "--shard-index", min=0, help="... and evaluate shard I (merge them with `eval build`).")


def check_shard(num_shards: int, shard_index: int) -> None:
    if shard_index >= num_shards:
        from diffdis.errors import UsageError

        raise UsageError(f"--shard-index {shard_index} must be below --num-shards {num_shards}")


def parse_list(value: str | None, default: Any, cast: type, flag: str) -> list:
    """A comma-list option as `cast` values; [default] when it is not given."""
    from diffdis.errors import UsageError

    if value is None:
        return [default]
    try:
        items = [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError as err:
        raise UsageError(f"{flag} {value!r}: give a comma-separated list ({err})") from None
    if not items:
        raise UsageError(f"{flag} is empty")
    return items


def check_sweep(schedulers: str | None, steps: str | None, guidance: str | None) -> None:
    """Refuse a bad scheduler, step count or scale before data and model are loaded."""
    from diffdis.pipeline import check_sampling_options

    for scheduler in parse_list(schedulers, None, str, "--scheduler"):
        check_sampling_options(None, None, scheduler)
    for n in parse_list(steps, None, int, "--num-inference-steps"):
        check_sampling_options(n, None, None)
    for scale in parse_list(guidance, None, float, "--guidance-scale"):
        check_sampling_options(None, scale, None)


def with_guidance(template: str, scales: list[float]) -> str:
    """A sweep over guidance scales needs {guidance} in the file name, or runs would overwrite each other."""
    if len(scales) < 2 or "{guidance}" in template:
        return template
    path = Path(template)
    return str(path.with_name(f"{path.stem}_g{{guidance}}{path.suffix}"))


def common_fields(pipe: Any, model: Path | None, data_name: str, seed: int) -> dict[str, Any]:
    """What every record says about the run: model, data, seed, versions, device, when."""
    from diffdis import __version__

    card = model_fields(pipe)
    return {"model": str(model) if model is not None else "default", "model_name": card["model"],
            "model_version": card["model_version"],
            "data": data_name, "seed": seed, "diffdis_version": __version__,
            "device": str(pipe.device), "dtype": str(pipe.dtype).removeprefix("torch."),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip


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



def save_record(record: dict[str, Any], template: str, scheduler: str, steps: Any, method: str, guidance: Any,
                num_shards: int = 1, shard_index: int = 0) -> dict[str, Any]:  # fmt: skip
    """Write `record` where the --output template puts it; the record with its "path"."""
    from diffdis.eval.results import output_path, write_record

    path = output_path(template, task=record["task"], data=record["data"], scheduler=scheduler, steps=steps, method=method,
                       guidance=guidance, shard=shard_index, num_shards=num_shards, shard_index=shard_index)  # fmt: skip
    write_record(record, path)
    return {**record, "path": str(path)}
