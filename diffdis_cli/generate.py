"""`diffdis generate`: text-to-image with classifier-free guidance."""

from __future__ import annotations

from pathlib import Path

import typer

from diffdis_cli.common import (
    DEVICE,
    DTYPE,
    MODEL,
    command,
    err_console,
    load_pipeline,
    model_fields,
    print_json,
    progress,
    resolve_placement,
)
from diffdis_cli.paths import check_writable_folder


def output_paths(output: Path, count: int, overwrite: bool) -> list[Path]:
    from diffdis.errors import UsageError

    if output.suffix.lower() != ".png":
        raise UsageError(f"--output must end in .png, got {output}")
    if not output.parent.is_dir():
        raise UsageError(f"output folder {output.parent} does not exist")
    check_writable_folder(output.parent, "--output")
    paths = [output] if count == 1 else [output.with_name(f"{output.stem}-{i}.png") for i in range(count)]
    taken = [p for p in paths if p.exists()]
    if taken and not overwrite:
        raise UsageError(f"{taken[0]} exists; pass --overwrite or choose another --output")
    return paths


@command
def generate(
    prompt: str = typer.Argument(..., help="What to draw."),
    model: Path | None = MODEL,
    num_inference_steps: int | None = typer.Option(None, "--num-inference-steps", help="Default: the model's."),
    guidance_scale: float | None = typer.Option(None, "--guidance-scale", help="CFG scale s (1 = off). Default: the model's."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="ddim | ddpm | dpm++ | euler | unipc. Default: the model's."),
    seed: int = typer.Option(0, "--seed"),
    num_images: int = typer.Option(1, "--num-images", min=1),
    output: Path = typer.Option(Path("out.png"), "--output", help="PNG path; with --num-images K: out-0.png ... out-(K-1).png."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    json_out: bool = typer.Option(False, "--json", help="Print only the written paths as JSON."),
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Generate images from a text prompt."""
    from diffdis.pipeline import check_sampling_options

    check_sampling_options(num_inference_steps, guidance_scale, scheduler)
    paths = output_paths(output, num_images, overwrite)
    pipe = load_pipeline(model, *resolve_placement(device, dtype))
    with progress("sampling", enabled=not json_out) as update:
        images = pipe.generate([prompt], num_images, num_inference_steps, guidance_scale, scheduler, seed, update)
    for image, path in zip(images, paths):
        tmp = path.with_name(f".{path.name}.tmp")
        image.save(tmp, format="PNG")
        tmp.replace(path)
    if json_out:
        print_json({**model_fields(pipe), "prompt": prompt, "seed": seed, "images": [str(p) for p in paths]})
    else:
        for p in paths:
            err_console.print(f"wrote {p}", highlight=False)
