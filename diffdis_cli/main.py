"""diffdis: generate images from text, classify and retrieve images by diffusing text queries."""

from __future__ import annotations

import platform
from importlib import metadata

import typer

from diffdis_cli import data, discriminate, generate, train
from diffdis_cli.common import command, print_json

app = typer.Typer(
    help="DiffDis: one diffusion UNet that generates images from text and classifies / retrieves images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("train")(train.train)
app.command("export")(train.export)
app.command("generate")(generate.generate)
app.command("classify")(discriminate.classify)
app.command("retrieve")(discriminate.retrieve)
app.add_typer(data.app, name="data")


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
def env(json_out: bool = typer.Option(False, "--json", help="Machine-readable output only.")) -> None:
    """Versions of diffdis and the libraries it runs on, and the compute it sees."""
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
        **{name: version_of(name) for name in ("torch", "diffusers", "transformers", "datasets", "deepspeed", "safetensors")},
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu_threads": torch.get_num_threads(),
    }
    if json_out:
        print_json(info)
        return
    for key, value in info.items():
        typer.echo(f"{key:14s} {value}")


def main() -> None:
    app()
