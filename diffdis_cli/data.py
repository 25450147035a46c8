"""`diffdis data`: built-in offline datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from diffdis_cli.common import command, err_console

app = typer.Typer(help="Built-in datasets, generated offline.", no_args_is_help=True)
WORLDS = ("shapes",)


@app.command("make")
@command
def make(
    name: str = typer.Argument(..., help="Dataset name: shapes."),
    out: Path = typer.Option(..., "--out", help="Folder to write (image files + metadata.jsonl)."),
    num_images: int = typer.Option(1000, "--num-images", min=1),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a built-in captioned dataset as an image folder with metadata.jsonl."""
    from diffdis.errors import UsageError

    if name not in WORLDS:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(WORLDS)}")
    if (out / "metadata.jsonl").exists():
        raise UsageError(f"{out} already holds a dataset; choose another --out")
    from diffdis.data.shapes import make_shapes

    make_shapes(out, num_images, seed)
    err_console.print(f"wrote {num_images} images and metadata.jsonl to {out}", highlight=False)
