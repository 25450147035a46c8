"""`diffdis data`: built-in offline datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from diffdis_cli.common import command, err_console

app = typer.Typer(help="Built-in datasets, generated offline.", no_args_is_help=True)


@app.command("make")
@command
def make(
    name: str = typer.Argument(
        ..., help="Dataset: shapes (toy shapes), world (CIFAR-10 objects and shapes), digits (scikit-learn digits)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder to write (image files + metadata.jsonl)."),
    num_images: int | None = typer.Option(
        None, "--num-images", min=1, help="Images to write (default 1000); digits: at most this many of the split."
    ),
    seed: int = typer.Option(0, "--seed", help="Drawing seed; for digits, the train/test split seed."),
    split: str | None = typer.Option(
        None, "--split", help="world: train or heldout (unseen colour x object pairs); digits: train or test."
    ),
    size: int = typer.Option(32, "--size", min=8, help="Image side in pixels."),
) -> None:
    """Write a built-in captioned dataset as an image folder with metadata.jsonl."""
    from diffdis.data.builtin import make_dataset

    written = make_dataset(name, out, num_images, seed, split or "train", size)
    err_console.print(f"wrote {written} images and metadata.jsonl to {out}", highlight=False)
