"""`diffdis classify` and `diffdis retrieve`: the text query diffused from noise, conditioned on the image."""

from __future__ import annotations

from pathlib import Path

import typer

from diffdis.data.label_sets import builtin_label_sets
from diffdis_cli.common import (
    DEVICE,
    DTYPE,
    MODEL,
    command,
    load_pipeline,
    model_fields,
    print_json,
    progress,
    quiet_libraries,
    resolve_placement,
)

LABELS_HELP = f"A built-in label set ({', '.join(builtin_label_sets())}), FILE.txt (one label a line) or a,b,c."

STEPS = typer.Option(None, "--num-inference-steps", help="Sampler steps for the text query. Default: the model's.")
GUIDANCE = typer.Option(None, "--guidance-scale", help="CFG scale over the image (1 = off; paper's w = s - 1).")
SCHEDULER = typer.Option(None, "--scheduler", help="ddim | ddpm | dpm++ | euler | unipc. Default: the model's.")
SEED = typer.Option(0, "--seed")
BATCH = typer.Option(64, "--batch-size", min=1, help="Images per forward pass.")
TOP_K = typer.Option(5, "--top-k", min=1)
JSON = typer.Option(False, "--json", help="Machine-readable output only.")


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*r)
    Console().print(table)


@command
def classify(
    images: list[Path] = typer.Argument(..., help="Image files."),
    model: Path | None = MODEL,
    labels: str = typer.Option(..., "--labels", help=LABELS_HELP),
    templates: str | None = typer.Option(
        None, "--templates", help="Built-in template set or a file (one '{}' per line)."
    ),
    num_inference_steps: int | None = STEPS,
    guidance_scale: float | None = GUIDANCE,
    scheduler: str | None = SCHEDULER,
    seed: int = SEED,
    batch_size: int = BATCH,
    top_k: int = TOP_K,
    json_out: bool = JSON,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Zero-shot classification: one sampler run per image, whatever the number of labels."""
    quiet_libraries()
    from diffdis.data.images import load_image
    from diffdis.data.label_sets import load_labels, load_templates
    from diffdis.pipeline import check_sampling_options

    check_sampling_options(num_inference_steps, guidance_scale, scheduler)
    placement = resolve_placement(device, dtype)
    label_names = load_labels(labels)
    template_list = load_templates(templates, labels)
    pictures = [load_image(p) for p in images]
    pipe = load_pipeline(model, *placement)
    with progress("classifying", enabled=not json_out) as update:
        scores = pipe.classify(
            pictures,
            label_names,
            template_list,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            scheduler=scheduler,
            seed=seed,
            batch_size=batch_size,
            callback=update,
        )
    k = min(top_k, len(label_names))
    values, indices = scores.topk(k, dim=-1)
    results = [
        {
            "image": str(path),
            "predictions": [{"label": label_names[i], "score": round(float(v), 6)} for v, i in zip(vs, ix)],
        }
        for path, vs, ix in zip(images, values.tolist(), indices.tolist())
    ]
    if json_out:
        print_json({**model_fields(pipe), "results": results})
        return
    rows = [[r["image"], *(f"{p['label']} ({p['score']:.3f})" for p in r["predictions"])] for r in results]
    _table("zero-shot classification", ["image", *(f"top-{i + 1}" for i in range(k))], rows)


@command
def retrieve(
    model: Path | None = MODEL,
    images: Path = typer.Option(..., "--images", help="Folder of images to search."),
    texts: Path | None = typer.Option(
        None, "--texts", help="Text file, one caption per line: rank texts for each image."
    ),
    query: str | None = typer.Option(None, "--query", help="A text: rank the images for it."),
    num_inference_steps: int | None = STEPS,
    guidance_scale: float | None = GUIDANCE,
    scheduler: str | None = SCHEDULER,
    seed: int = SEED,
    batch_size: int = BATCH,
    top_k: int = TOP_K,
    json_out: bool = JSON,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Image-text retrieval: --texts ranks the texts for each image, --query ranks the images for a text."""
    from diffdis.errors import UsageError

    if (texts is None) == (query is None):
        raise UsageError("give exactly one of --texts FILE or --query TEXT")
    if query is not None and not query.strip():
        raise UsageError("--query is empty: give the text to rank the images for")
    quiet_libraries()
    from diffdis.data.images import list_images, load_image
    from diffdis.data.label_sets import read_text_file
    from diffdis.pipeline import check_sampling_options

    check_sampling_options(num_inference_steps, guidance_scale, scheduler)
    placement = resolve_placement(device, dtype)
    candidates = read_text_file(texts, "texts") if texts is not None else [query]
    paths = list_images(images)
    pictures = [load_image(p) for p in paths]
    pipe = load_pipeline(model, *placement)
    with progress("embedding images", enabled=not json_out) as update:
        scores = pipe.retrieve(
            pictures,
            candidates,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            scheduler=scheduler,
            seed=seed,
            batch_size=batch_size,
            callback=update,
        )
    if texts is not None:
        values, indices = scores.topk(min(top_k, len(candidates)), dim=-1)
        results = [
            {"image": str(p), "matches": [{"text": candidates[i], "score": round(float(v), 6)} for v, i in zip(vs, ix)]}
            for p, vs, ix in zip(paths, values.tolist(), indices.tolist())
        ]
        rows = [[r["image"], r["matches"][0]["text"], f"{r['matches'][0]['score']:.3f}"] for r in results]
        header = ["image", "best text", "score"]
    else:
        values, indices = scores[:, 0].topk(min(top_k, len(paths)))
        results = [
            {
                "query": query,
                "matches": [
                    {"image": str(paths[i]), "score": round(float(v), 6)}
                    for v, i in zip(values.tolist(), indices.tolist())
                ],
            }
        ]
        rows = [[m["image"], f"{m['score']:.3f}"] for m in results[0]["matches"]]
        header = ["image", "score"]
    if json_out:
        print_json({**model_fields(pipe), "results": results})
    else:
        _table("retrieval", header, rows)
