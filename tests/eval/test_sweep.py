"""The eval sweeps as library calls (diffdis.eval.sweep, generate_run): the same records, keys and files as the
CLI on the same seed, shaped as results.RECORD_KEYS says; bad options refused before anything loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffdis.data.world import make_world
from diffdis.errors import UsageError
from diffdis.eval.fid import choose_features
from diffdis.eval.generate_run import generate_eval, load_generate_job
from diffdis.eval.results import DEFAULT_OUTPUT, OPTIONAL_KEYS, RECORD_KEYS
from diffdis.eval.sweep import (
    SamplerGrid,
    check_options,
    classify_sweep,
    load_classify_data,
    load_retrieve_data,
    no_progress,
    retrieve_sweep,
    with_guidance,
)
from diffdis.pipeline import DiffDisPipeline
from diffdis_cli.main import app

runner = CliRunner()
TIMINGS = ("created", "seconds", "seconds_per_image", "seconds_label_embeddings")  # differ from run to run
COLOUR = "tests.eval.test_generate:colour_features"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, micro_model) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    (root / "model").symlink_to(micro_model, target_is_directory=True)
    make_world(root / "world", 6, seed=0, size=16)
    return root


def cli(*args: str) -> list[dict]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    return out if isinstance(out, list) else [out]


def untimed(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMINGS}


def assert_same(library: list[dict], command: list[dict]) -> None:
    """The library's records equal the CLI's (which print without "samples"), and so do the files they wrote."""
    assert len(library) == len(command)
    for lib, cmd in zip(library, command):
        assert list(cmd) == [k for k in lib if k != "samples"]  # the same keys, in the same order
        assert lib["path"].replace("lib/", "cmd/") == cmd["path"]  # the same name in another folder
        assert untimed({k: v for k, v in lib.items() if k != "samples"}) == {**untimed(cmd), "path": lib["path"]}
        lib_file, cmd_file = (json.loads(Path(r["path"]).read_text()) for r in (lib, cmd))
        assert untimed(lib_file) == untimed(cmd_file) and "path" not in lib_file


def assert_schema(record: dict) -> None:
    required, optional = RECORD_KEYS[record["task"]], OPTIONAL_KEYS[record["task"]]
    assert [k for k in record if k in required] == list(required)  # all of them, in the schema's order
    assert set(record) - set(required) <= {*optional, "path"}


def test_classify_sweep_equals_the_command(setup, monkeypatch):
    monkeypatch.chdir(setup)
    pipe = DiffDisPipeline.from_pretrained("model")
    data = load_classify_data("world", "world_colours", num_shards=2, shard_index=1)
    grid = SamplerGrid(schedulers=["ddim", "dpm++"], steps=[1], guidance=[1.0, 2.0])
    records = classify_sweep(pipe, data, grid, model=Path("model"), output="lib/{task}_{scheduler}.json")
    command = cli(
        "eval",
        "classify",
        "--model",
        "model",
        "--data",
        "world",
        "--labels",
        "world_colours",
        "--scheduler",
        "ddim,dpm++",
        "--num-inference-steps",
        "1",
        "--guidance-scale",
        "1,2",
        "--num-shards",
        "2",
        "--shard-index",
        "1",
        "--output",
        "cmd/{task}_{scheduler}.json",
    )
    assert_same(records, command)
    assert [Path(r["path"]).name for r in records] == [
        f"classify_{s}_g{g}_shard1of2.json" for s in ("ddim", "dpm++") for g in (1.0, 2.0)
    ]
    for r in records:
        assert_schema(r)
        assert r["n"] == 3 and r["num_classes"] == 11 and len(r["samples"]["index"]) == 3
        assert r["query_passes_per_image"] == (1 if r["guidance"] == 1.0 else 2)


def test_diffusion_classifier_records(setup, monkeypatch):
    monkeypatch.chdir(setup)
    pipe = DiffDisPipeline.from_pretrained("model")
    data = load_classify_data("world", "red,green,blue", drop_unknown=True, max_samples=2)
    logs: list[str] = []
    records = classify_sweep(
        pipe,
        data,
        model=Path("model"),
        method="diffusion-classifier",
        dc_timesteps=[2, 3],
        output="lib/dc_{steps}.json",
        log=logs.append,
    )
    command = cli(
        "eval",
        "classify",
        "--model",
        "model",
        "--data",
        "world",
        "--labels",
        "red,green,blue",
        "--drop-unknown",
        "--max-samples",
        "2",
        "--method",
        "diffusion-classifier",
        "--dc-timesteps",
        "2,3",
        "--output",
        "cmd/dc_{steps}.json",
    )
    assert_same(records, command)
    assert [r["unet_passes_per_image"] for r in records] == [2 * 3, 3 * 3] and len(logs) == 2
    for r in records:
        assert_schema(r)
        assert r["scheduler"] == "dc" and r["guidance"] is None and "query_passes_per_image" not in r


def test_retrieve_sweep_equals_the_command(setup, monkeypatch):
    monkeypatch.chdir(setup)
    pipe = DiffDisPipeline.from_pretrained("model")
    bars: list[str] = []

    def progress(description: str):  # a bar per run, as the CLI draws them
        bars.append(description)
        return no_progress(description)

    for shards in (1, 2):
        data = load_retrieve_data("world", num_shards=shards)
        records = retrieve_sweep(
            pipe, data, SamplerGrid(steps=[1, 2]), model=Path("model"), output="lib/r.json", progress=progress
        )
        command = cli(
            "eval",
            "retrieve",
            "--model",
            "model",
            "--data",
            "world",
            "--num-inference-steps",
            "1,2",
            "--num-shards",
            str(shards),
            "--output",
            "cmd/r.json",
        )
        assert_same(records, command)
        for r in records:
            assert_schema(r)
            assert r["n"] == 6 // shards and r["num_texts"] == 6 and ("samples" in r) == (shards > 1)
    assert bars == ["ddim 1 steps s=1.0", "ddim 2 steps s=1.0"] * 2


def test_generate_eval_equals_the_command(setup, monkeypatch):
    monkeypatch.chdir(setup)
    pipe = DiffDisPipeline.from_pretrained("model")
    job = load_generate_job("world", num_prompts=4, batch_size=2, num_shards=2)
    record = generate_eval(pipe, job, choose_features(COLOUR), model=Path("model"), steps=1, output="lib/gen.json")
    (command,) = cli(
        "eval",
        "generate",
        "--model",
        "model",
        "--prompts",
        "world",
        "--num-prompts",
        "4",
        "--batch-size",
        "2",
        "--num-shards",
        "2",
        "--features",
        COLOUR,
        "--num-inference-steps",
        "1",
        "--output",
        "cmd/gen.json",
    )
    beside = ("images", "grid", "path")  # files beside each record: the same names in another folder
    assert [record[k].replace("lib/", "cmd/") for k in beside] == [command[k] for k in beside]
    assert list(record) == list(command)
    assert untimed(record) == {**untimed(command), **{k: record[k] for k in beside}}
    lib_file, cmd_file = (json.loads(Path(r["path"]).read_text()) for r in (record, command))
    assert untimed(lib_file) == {**untimed(cmd_file), "images": record["images"], "grid": record["grid"]}
    assert_schema(record)
    assert record["n"] == 2 and record["n_generated"] == 2 and Path("lib", record["features_stats"]).is_file()


def test_bad_options_are_refused_before_anything_loads():
    assert check_options("classify", "diffdis", 1, 0, "ddim,dpm++", "1,2", None) == SamplerGrid(
        ["ddim", "dpm++"], [1, 2]
    )
    assert check_options("classify", "diffusion-classifier", 1, 0, "nope", "x") == SamplerGrid()  # it has no sampler
    for args, message in (
        (("classify", "nope", 1, 0), "must be diffdis, diffusion-classifier or clip"),
        (("retrieve", "diffusion-classifier", 1, 0), "must be diffdis or clip"),
        (("retrieve", "diffdis", 2, 2), "--shard-index 2 must be below --num-shards 2"),
        (("classify", "diffdis", 1, 0, "ddim,nope"), "unknown scheduler"),
        (("classify", "diffdis", 1, 0, None, "5,x"), "comma-separated"),
        (("classify", "diffdis", 1, 0, None, None, ","), "--guidance-scale is empty"),
        (("retrieve", "clip", 1, 0, None, "5"), "encodes each image once"),
    ):
        with pytest.raises(UsageError, match=message):
            check_options(*args)


def test_output_names():
    assert with_guidance("r/{task}.json", [1.0]) == "r/{task}.json"
    assert with_guidance("r/{task}.json", [1.0, 2.0]) == "r/{task}_g{guidance}.json"
    assert with_guidance("r/{guidance}/{task}.json", [1.0, 2.0]) == "r/{guidance}/{task}.json"
    from diffdis_cli.eval_common import DEFAULT_OUTPUT as CLI_DEFAULT  # spelt out there, to keep --help light

    assert CLI_DEFAULT == DEFAULT_OUTPUT
