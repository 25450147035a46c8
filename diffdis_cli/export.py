"""`diffdis export`: a DeepSpeed run or checkpoint to a model folder, or a model to a diffusers folder."""

from __future__ import annotations

from pathlib import Path

import typer

from diffdis_cli.common import command, err_console, quiet_libraries


@command
def export(
    source: Path = typer.Argument(
        ...,
        help="A DeepSpeed checkpoint (OUTPUT_DIR/checkpoints/checkpoint-N) "
        "or a training OUTPUT_DIR (its checkpoints/latest); "
        "with --format diffusers, a model folder.",
    ),
    out_dir: Path | None = typer.Argument(None, help="Where to write (or --output-dir)."),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="The folder to write (same as the second argument)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", hidden=True, help="Old spelling of --output-dir."),
    export_format: str = typer.Option(
        "diffdis",
        "--format",
        help="diffdis: a model folder from a DeepSpeed checkpoint | "
        "diffusers: a StableDiffusionPipeline folder (generation only).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model folder."),
) -> None:
    """Consolidate a DeepSpeed ZeRO checkpoint into a model folder, or export a model's generation part
    as a standard diffusers StableDiffusionPipeline folder (--format diffusers)."""
    from diffdis.errors import UsageError

    given = {str(p) for p in (out_dir, output_dir, output) if p is not None}
    if len(given) > 1:
        raise UsageError(f"two output folders given ({' and '.join(sorted(given))}); give one with --output-dir")
    target = output_dir or output or out_dir
    if target is None:
        raise UsageError("give the output folder: diffdis export SOURCE --output-dir DIR")
    if export_format not in ("diffdis", "diffusers"):
        raise UsageError(f"--format must be diffdis or diffusers, got {export_format!r}")
    if (target / "model_index.json").exists() and not overwrite:
        raise UsageError(f"{target} already holds a model; pass --overwrite or choose another folder")
    quiet_libraries()
    if export_format == "diffusers":
        from diffdis.export_diffusers import export_diffusers
        from diffdis.pipeline import DiffDisPipeline

        model = (
            source / "model" if not (source / "model_index.json").exists() and (source / "model").is_dir() else source
        )
        export_diffusers(DiffDisPipeline.from_pretrained(model), target, model)
        err_console.print(f"StableDiffusionPipeline folder saved to {target}", highlight=False)
        return
    from diffdis.train.checkpoint import export_source
    from diffdis.train.deepspeed import export_checkpoint

    checkpoint = export_source(source)
    if checkpoint != source:
        err_console.print(f"exporting {checkpoint}", highlight=False)
    export_checkpoint(checkpoint, target)
    err_console.print(f"model saved to {target}", highlight=False)
