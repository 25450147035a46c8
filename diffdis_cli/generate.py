"""`diffdis generate`: text-to-image with classifier-free guidance."""

from __future__ import annotations

from pathlib import Path

import typer

from diffdis.paths import check_writable_folder
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
    guidance_scale: float | None = typer.Option(
        None, "--guidance-scale", help="CFG scale s (1 = off). Default: the model's."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="ddim | ddpm | dpm++ | euler | unipc. Default: the model's."
    ),
    negative_prompt: str = typer.Option(
        "", "--negative-prompt", help="What to steer away from (replaces the empty caption in CFG)."
    ),
    seed: int = typer.Option(0, "--seed"),
    num_images: int = typer.Option(1, "--num-images", min=1),
    output: Path = typer.Option(
        Path("out.png"),
        "--output",
        help="PNG path; with --num-images K: out-0.png ... out-(K-1).png and a grid, out-grid.png.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    json_out: bool = typer.Option(False, "--json", help="Print only the written paths as JSON."),
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Generate images from a text prompt. Each PNG keeps how it was made in a text chunk (`diffdis`)."""
    from diffdis import __version__
    from diffdis.data.transforms import image_grid
    from diffdis.pipeline import check_sampling_options
    from diffdis.png_record import save_png

    check_sampling_options(num_inference_steps, guidance_scale, scheduler)
    paths = output_paths(output, num_images, overwrite)
    grid_path = output.with_name(f"{output.stem}-grid.png") if num_images > 1 else None
    if grid_path is not None and grid_path.exists() and not overwrite:
        from diffdis.errors import UsageError

        raise UsageError(f"{grid_path} exists; pass --overwrite or choose another --output")
    pipe = load_pipeline(model, *resolve_placement(device, dtype))
    with progress("sampling", enabled=not json_out) as update:
        images = pipe.generate(
            [prompt], num_images, num_inference_steps, guidance_scale, scheduler, seed, update, negative_prompt
        )
    inf = pipe.inference
    record = {
        **model_fields(pipe),
        "diffdis_version": __version__,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "seed": seed,
        "num_images": num_images,
        "scheduler": scheduler or inf.generate_scheduler,
        "steps": num_inference_steps or inf.generate_steps,
        "guidance": inf.generate_guidance if guidance_scale is None else guidance_scale,
    }
    for index, (image, path) in enumerate(zip(images, paths)):
        save_png(image, path, {**record, "index": index})  # image `index` of the seed's batch
    if grid_path is not None:
        save_png(image_grid(images), grid_path, record)
    if json_out:
        extra = {"grid": str(grid_path)} if grid_path is not None else {}
        print_json({**model_fields(pipe), "prompt": prompt, "seed": seed, "images": [str(p) for p in paths], **extra})
    else:
        for p in paths + ([grid_path] if grid_path is not None else []):
            err_console.print(f"wrote {p}", highlight=False)
