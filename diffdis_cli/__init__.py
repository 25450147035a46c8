"""The `diffdis` command: a thin Typer shell over the `diffdis` library."""
