"""diffdis: generate images from text, classify and retrieve images by diffusing text queries."""

from __future__ import annotations

import platform
from importlib import metadata

import typer

from diffdis_cli import data, discriminate, export, generate, train
from diffdis_cli import eval as eval_commands
from diffdis_cli.common import command, print_json

app = typer.Typer(
    help="DiffDis: one diffusion UNet that generates images from text and classifies / retrieves images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("train")(train.train)
app.command("train-autoencoder")(train.train_autoencoder)
app.command("export")(export.export)
app.command("generate")(generate.generate)
app.command("classify")(discriminate.classify)
app.command("retrieve")(discriminate.retrieve)
app.add_typer(data.app, name="data")
app.add_typer(eval_commands.app, name="eval")


def _version(value: bool) -> None:
    if value:
        from diffdis import __version__

        typer.echo(f"diffdis {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    ctx.obj = {"debug": debug}


@app.command("env")
@command
def env(
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output only."),
    estimate_memory: bool = typer.Option(
        False, "--estimate-memory", help="Print the ZeRO memory estimate for training --preset instead."
    ),
    preset: str = typer.Option(
        "sd15", "--preset", help="With --estimate-memory: tiny | sd15 | a model_config.json file."
    ),
    num_gpus: int = typer.Option(1, "--num-gpus", min=1, help="With --estimate-memory: GPUs per node."),
    num_nodes: int = typer.Option(1, "--num-nodes", min=1, help="With --estimate-memory: nodes."),
    frozen_text_encoder: bool = typer.Option(
        False,
        "--frozen-text-encoder",
        help="With --estimate-memory: the text encoder is pretrained and frozen (--init-from).",
    ),
) -> None:
    """Versions of diffdis and the libraries it runs on, and the compute it sees."""
    if estimate_memory:
        _estimate_memory(preset, num_gpus, num_nodes, frozen_text_encoder, json_out)
        return
    import torch

    from diffdis import __version__

    def version_of(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    info = {
        "diffdis": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        **{
            name: version_of(name)
            for name in ("torch", "diffusers", "transformers", "datasets", "deepspeed", "safetensors")
        },
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu_threads": torch.get_num_threads(),
        **_default_model(),
    }
    if json_out:
        print_json(info)
        return
    for key, value in info.items():
        typer.echo(f"{key:22s} {value}")


def _estimate_memory(preset: str, num_gpus: int, num_nodes: int, frozen_text_encoder: bool, json_out: bool) -> None:
    """DeepSpeed's model-states estimate per --deepspeed preset (diffdis/memory.py)."""
    from diffdis.config import preset as make_preset
    from diffdis.memory import estimate, parameter_counts

    counts = parameter_counts(make_preset(preset), False if frozen_text_encoder else None)
    rows = estimate(counts, num_gpus, num_nodes)
    if json_out:
        print_json(
            {
                "preset": preset,
                "num_gpus": num_gpus,
                "num_nodes": num_nodes,
                "trained_parameters": counts.trained,
                "frozen_parameters": counts.frozen,
                "largest_layer_parameters": counts.largest_layer,
                "estimates": rows,
            }
        )
        return
    typer.echo(
        f"preset {preset}: {counts.trained / 1e6:.1f}M trained parameters, {counts.frozen / 1e6:.1f}M frozen, "
        f"{num_gpus} GPU(s) x {num_nodes} node(s)"
    )
    typer.echo(f"{'--deepspeed':16s}{'GiB per GPU':>14s}{'CPU GiB per node':>18s}")
    for row in rows:
        typer.echo(f"{row['deepspeed']:16s}{row['gpu_gib_per_gpu']:14.2f}{row['cpu_gib_per_node']:18.2f}")
    typer.echo(
        "model states (DeepSpeed's estimators) + frozen parts in fp32; activations come on top and grow with "
        "the per-GPU batch: measure them with examples/gpu_check.py"
    )


def _default_model() -> dict[str, str | None]:
    """The model commands use without --model: its name, version and folder (None where not installed)."""
    import json

    from diffdis.default_model import DEFAULT_MODEL_DIR

    index = DEFAULT_MODEL_DIR / "model_index.json"
    card = json.loads(index.read_text()) if index.is_file() else {}
    return {
        "default_model": card.get("name"),
        "default_model_version": card.get("model_version"),
        "default_model_path": str(DEFAULT_MODEL_DIR) if card else None,
    }


def main() -> None:
    app()
