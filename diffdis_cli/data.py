"""`diffdis data`: built-in offline datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from diffdis.paths import check_writable_folder
from diffdis_cli.common import command, err_console, print_json, quiet_libraries

app = typer.Typer(help="Built-in datasets, generated offline; the frozen-encoder cache.", no_args_is_help=True)


@app.command("make")
@command
def make(
    name: str = typer.Argument(
        ..., help="Dataset: shapes (toy shapes), world (CIFAR-10 objects and shapes), digits (scikit-learn digits)."
    ),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="Folder to write (image files + metadata.jsonl); required."
    ),
    num_images: int | None = typer.Option(
        None, "--num-images", min=1, help="Images to write (default 1000); digits: at most this many of the split."
    ),
    seed: int = typer.Option(0, "--seed", help="Drawing seed; for digits, the train/test split seed."),
    split: str | None = typer.Option(
        None, "--split", help="world: train or heldout (unseen colour x object pairs); digits: train or test."
    ),
    size: int = typer.Option(32, "--size", min=8, help="Image side in pixels."),
    style: str | None = typer.Option(
        None,
        "--style",
        help="world, digits: varied (default; digits test: plain) or plain (version 1, as the shipped v3 model saw).",
    ),
    out: Path | None = typer.Option(None, "--out", hidden=True, help="The old name of --output-dir."),
) -> None:
    """Write a built-in captioned dataset as an image folder with metadata.jsonl."""
    from diffdis.data.builtin import make_dataset
    from diffdis.errors import UsageError

    if output_dir is None and out is None:
        raise UsageError("give the folder to write: --output-dir DIR")
    if output_dir is not None and out is not None:
        raise UsageError("give --output-dir or its old name --out, not both")
    output_dir = output_dir or out
    check_writable_folder(output_dir, "--output-dir" if out is None else "--out")
    written = make_dataset(name, output_dir, num_images, seed, split or "train", size, style)
    err_console.print(f"wrote {written} images and metadata.jsonl to {output_dir}", highlight=False)


@app.command("cache")
@command
def cache(
    data: str = typer.Option(
        ...,
        "--data",
        help="Images to encode, as for diffdis train --data: a folder, parquet, tar shards, world:5000+digits, ...",
    ),
    output_dir: Path = typer.Option(
        ..., "--output-dir", help="A new folder for the cache (pass it to diffdis train --data)."
    ),
    model: Path | None = typer.Option(None, "--model", help="A model folder whose frozen encoders make the cache."),
    init_from: str | None = typer.Option(
        None, "--init-from", help="A diffusers Stable Diffusion v1 folder, as for diffdis train --init-from."
    ),
    text_encoder: str | None = typer.Option(
        None, "--text-encoder", help="With --init-from: a local transformers text model, as for diffdis train."
    ),
    preset: str = typer.Option(
        "tiny", "--preset", help="The --preset you will train with (with --text-encoder it caps the caption length)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    shard_rows: int = typer.Option(10_000, "--shard-rows", min=1, help="Rows per shard file."),
    num_workers: int = typer.Option(
        0, "--num-workers", min=0, help="DataLoader workers that read and decode the images."
    ),
    image_column: str = typer.Option("image", "--image-column"),
    caption_column: str = typer.Option("text", "--caption-column"),
    max_bad_fraction: float = typer.Option(
        0.01, "--max-bad-fraction", help="Stop when more than this fraction of rows is unusable."
    ),
    device: str = typer.Option("auto", "--device", help="Where the encoders run: auto | cpu | cuda | cuda:N."),
    json_out: bool = typer.Option(False, "--json", help="Print only a JSON summary at the end."),
) -> None:
    """Encode a dataset once with frozen encoders (VAE posterior
    mean and std, text c and e) so training runs neither."""
    from diffdis.errors import UsageError

    if (model is None) == (init_from is None):
        raise UsageError("give the encoders: --model DIR or --init-from SD_DIR (one of them)")
    if text_encoder and not init_from:
        raise UsageError(
            "--text-encoder needs --init-from SD_DIR here: alone it makes a model without a pretrained VAE"
        )
    quiet_libraries()
    from diffdis.data.cache import check_output_folder, read_manifest, write_cache
    from diffdis.device import resolve_device

    where = resolve_device(device)
    check_output_folder(output_dir)
    check_writable_folder(output_dir, "--output-dir")
    log = (lambda msg: None) if json_out else (lambda msg: err_console.print(msg, highlight=False))
    if model is not None:
        from diffdis.pipeline import DiffDisPipeline

        pipe, encoders = DiffDisPipeline.from_pretrained(model), f"--model {model}"
    else:
        from diffdis.config import preset as make_preset
        from diffdis.pretrained import build_pretrained

        pipe = build_pretrained(make_preset(preset), init_from, text_encoder or "", False, log)
        encoders = " ".join(
            filter(None, (f"--init-from {init_from}", text_encoder and f"--text-encoder {text_encoder}"))
        )
    out = write_cache(
        pipe,
        data,
        output_dir,
        batch_size=batch_size,
        shard_rows=shard_rows,
        num_workers=num_workers,
        image_column=image_column,
        caption_column=caption_column,
        max_bad_fraction=max_bad_fraction,
        device=where,
        encoders=encoders,
        log=log,
    )
    manifest = read_manifest(out)
    size = sum(f.stat().st_size for f in out.iterdir())
    summary = {
        "cache": str(out),
        "rows": manifest["rows"],
        "bad_rows": manifest["bad_rows"],
        "shards": len(manifest["shards"]),
        "bytes": size,
        "bytes_per_row": round(size / manifest["rows"]),
    }
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"wrote {summary['rows']} rows ({size / 2**20:.1f} MiB) to {out}", highlight=False)
