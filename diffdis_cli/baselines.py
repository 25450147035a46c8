"""`diffdis eval train-clip`: the CLIP baseline (transformers'
CLIPModel) on the same data and steps as a DiffDis run."""

from __future__ import annotations

from pathlib import Path

import typer

from diffdis.paths import check_writable_folder
from diffdis_cli.common import command, err_console, print_json, quiet_libraries, step_progress


@command
def train_clip(
    data: str = typer.Option(..., "--data", help="The DiffDis run's training data (folder, file or built-in sets)."),
    output_dir: Path = typer.Option(
        ..., "--output-dir", help="Where the CLIPModel folder goes (evaluate it with --method clip)."
    ),
    max_steps: int = typer.Option(1000, "--max-steps"),
    batch_size: int = typer.Option(32, "--batch-size"),
    learning_rate: float = typer.Option(5e-4, "--learning-rate"),
    warmup_steps: int = typer.Option(50, "--warmup-steps"),
    lr_scheduler: str = typer.Option("cosine", "--lr-scheduler"),
    vision_layers: int = typer.Option(6, "--vision-layers", help="ViT blocks (width 256, patches of 4)."),
    text_encoder: str = typer.Option(
        "",
        "--text-encoder",
        help="The local text model the DiffDis run used with --text-encoder: frozen here too; only the ViT trains.",
    ),
    seed: int = typer.Option(0, "--seed"),
    resume_from_checkpoint: str | None = typer.Option(
        None, "--resume-from-checkpoint", help="'latest' or a checkpoint folder: continue a killed run."
    ),
    bad_rows: str = typer.Option("error", "--bad-rows", help="error | skip."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    json_out: bool = typer.Option(False, "--json", help="Print only a JSON summary at the end."),
) -> None:
    """Train the CLIP baseline: a ViT + text transformer with CLIPModel's own contrastive loss (return_loss=True)."""
    quiet_libraries()
    from diffdis.device import resolve_device
    from diffdis.errors import DiffDisError
    from diffdis.model.clip import MARKER, ClipBaselineConfig
    from diffdis.train.checkpoint import check_new_run
    from diffdis.train.clip import train_clip as run

    if (output_dir / MARKER).exists():
        raise DiffDisError(f"{output_dir} already holds a CLIP baseline; choose another --output-dir")
    check_new_run(output_dir, resume_from_checkpoint is not None, MARKER)
    check_writable_folder(output_dir, "--output-dir")
    resolve_device(device)
    cfg = ClipBaselineConfig(
        device=device,
        data=data,
        output_dir=str(output_dir),
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        lr_scheduler=lr_scheduler,
        vision_layers=vision_layers,
        text_encoder=text_encoder,
        seed=seed,
        bad_rows=bad_rows,
    )
    log = (lambda msg: None) if json_out else (lambda msg: err_console.print(msg, highlight=False))
    with step_progress("training CLIP", not json_out, log, 50) as (on_step, last):
        out = run(cfg, on_step, log, resume_from_checkpoint=resume_from_checkpoint)
    if json_out:
        print_json({"model": str(out), **last})
    else:
        err_console.print(f"CLIP baseline saved to {out}", highlight=False)
