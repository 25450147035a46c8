"""The catalogue of bad inputs (issue #7): each answers with one line that says what is wrong and what to do,
a non-zero exit code (2 for usage errors), no traceback, and no partial output left behind. Images in odd
modes (grayscale, alpha, 16-bit, palette, CMYK) are not bad: they are converted to RGB and work."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from diffdis.config import save_config
from diffdis.data.shapes import make_shapes
from diffdis_cli.main import app
from tests.conftest import micro_config, save_untrained_micro_model
from tests.data.shards import write_shards

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """An untrained micro model folder (bad inputs need no trained one), its config, a small dataset, an image."""
    root = tmp_path_factory.mktemp("world")
    save_untrained_micro_model(root / "m")
    save_config(micro_config(), root / "micro.json")
    make_shapes(root / "data", 8, seed=0, size=16)
    Image.new("RGB", (20, 16), (200, 30, 30)).save(root / "ok.png")
    return root


# ---- builders of bad files ------------------------------------------------------------------------------
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:700])


def _bomb(path: Path) -> None:
    """A valid 1x1 PNG whose header claims 100000 x 100000 pixels (a decompression bomb)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    struct.pack_into(">II", data, 16, 100_000, 100_000)  # IHDR width, height
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _truncated_png(path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])


def _copy_model(w: Path, d: Path) -> Path:
    shutil.copytree(w / "m", d / "m")
    return d / "m"


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **changes}))


def _dataset(d: Path, w: Path, rows: list[dict]) -> None:
    shutil.copytree(w / "data", d / "data", ignore=shutil.ignore_patterns("metadata.jsonl"))
    (d / "data" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


GOOD_ROWS = [{"file_name": f"{i:06d}.png", "text": "a red circle"} for i in range(4)]
TRAIN = [
    "train",
    "--data",
    "{w}/data",
    "--output-dir",
    "out",
    "--preset",
    "{w}/micro.json",
    "--max-steps",
    "1",
    "--batch-size",
    "2",
    "--vocab-size",
    "300",
    "--warmup-steps",
    "0",
]
CLASSIFY = ["classify", "img.png", "--model", "{w}/m", "--labels", "a,b", "--num-inference-steps", "1"]
GENERATE = ["generate", "a red circle", "--model", "{w}/m", "--num-inference-steps", "1", "--output", "o.png"]


def _with(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


@dataclass
class Case:
    args: list[str]
    code: int
    message: str
    setup: Callable[[Path, Path], object] = lambda d, w: None  # (test folder, world)
    absent: list[str] = field(default_factory=lambda: ["out", "o.png"])  # nothing partial left behind
    one_line: bool = True  # our errors are one line; Click's own usage errors print a short box


def img(write: Callable[[Path], object]) -> Callable[[Path, Path], object]:
    return lambda d, w: write(d / "img.png")


CASES: dict[str, Case] = {
    # -- image files --
    "image-missing": Case(CLASSIFY, 1, "does not exist"),
    "image-not-an-image": Case(CLASSIFY, 1, "not a readable image", img(lambda p: p.write_text("hello"))),
    "image-zero-bytes": Case(CLASSIFY, 1, "not a readable image", img(lambda p: p.write_bytes(b""))),
    "image-truncated": Case(CLASSIFY, 1, "not a readable image", img(_truncated_png)),
    "image-decompression-bomb": Case(CLASSIFY, 1, "not a readable image", img(_bomb)),
    "image-is-a-folder": Case(CLASSIFY, 1, "is a folder", img(lambda p: p.mkdir())),
    # -- labels and templates --
    "labels-unknown-set": Case(_with(CLASSIFY, "--labels", "cifar11"), 1, "unknown label set", img(lambda p: None)),
    "labels-duplicate": Case(_with(CLASSIFY, "--labels", "cat,dog,cat"), 1, "duplicate labels"),
    "labels-only-one": Case(_with(CLASSIFY, "--labels", "cat,"), 1, "at least two labels"),
    "labels-file-empty": Case(
        _with(CLASSIFY, "--labels", "l.txt"), 1, "is empty", lambda d, w: (d / "l.txt").write_text("\n \n")
    ),
    "labels-file-missing": Case(_with(CLASSIFY, "--labels", "l.txt"), 1, "does not exist"),
    "labels-file-not-utf8": Case(
        _with(CLASSIFY, "--labels", "l.txt"),
        1,
        "not UTF-8",
        lambda d, w: (d / "l.txt").write_bytes("chat\nbœuf\n".encode("cp1252")),
    ),
    "labels-file-duplicate": Case(
        _with(CLASSIFY, "--labels", "l.txt"),
        1,
        "duplicate labels",
        lambda d, w: (d / "l.txt").write_text("cat\ndog\ncat\n"),
    ),
    "templates-without-braces": Case(
        [*CLASSIFY, "--templates", "t.txt"],
        1,
        "must contain '{}'",
        lambda d, w: (d / "t.txt").write_text("a photo of a {}\na photo\n"),
    ),
    "templates-two-braces": Case(
        [*CLASSIFY, "--templates", "t.txt"], 1, "exactly once", lambda d, w: (d / "t.txt").write_text("a {} or a {}\n")
    ),
    "templates-unknown": Case([*CLASSIFY, "--templates", "nope"], 1, "unknown templates"),
    # -- model folders --
    "model-missing": Case(_with(GENERATE, "--model", "nowhere"), 1, "does not exist"),
    "model-partial": Case(
        _with(GENERATE, "--model", "m"),
        1,
        "discriminator/model.safetensors is missing",
        lambda d, w: (_copy_model(w, d) / "discriminator" / "model.safetensors").unlink(),
    ),
    "model-newer-format": Case(
        _with(GENERATE, "--model", "m"),
        1,
        "newer diffdis",
        lambda d, w: _edit_json(_copy_model(w, d) / "model_index.json", format_version=99),
    ),
    "model-config-other-version": Case(
        _with(GENERATE, "--model", "m"),
        1,
        "unknown keys",
        lambda d, w: _edit_json(_copy_model(w, d) / "model_config.json", attention="x"),
    ),
    "model-config-bad-json": Case(
        _with(GENERATE, "--model", "m"),
        1,
        "not valid JSON",
        lambda d, w: (_copy_model(w, d) / "model_config.json").write_text("{'a': 1"),
    ),
    "model-index-bad-json": Case(
        _with(GENERATE, "--model", "m"),
        1,
        "not valid JSON",
        lambda d, w: (_copy_model(w, d) / "model_index.json").write_text("{"),
    ),
    "model-weights-do-not-fit": Case(
        _with(GENERATE, "--model", "m"),
        1,
        "do not fit model_config.json",
        lambda d, w: _edit_json(_copy_model(w, d) / "model_config.json", query_transformer_layers=3),
    ),
    "model-unet-does-not-fit": Case(
        _with(GENERATE, "--model", "m"),
        1,
        "does not fit model_config.json",
        lambda d, w: _edit_json(
            _copy_model(w, d) / "model_config.json", unet={**micro_config().unet, "layers_per_block": 2}
        ),
    ),
    "model-weights-truncated": Case(
        _with(GENERATE, "--model", "m"),
        1,
        "cannot load the weights",
        lambda d, w: (p := _copy_model(w, d) / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(
            p.read_bytes()[:1000]
        ),
    ),
    "model-tokenizer-missing": Case(
        _with(GENERATE, "--model", "m"),
        1,
        "tokenizer is missing",
        lambda d, w: shutil.rmtree(_copy_model(w, d) / "tokenizer"),
    ),
    # -- sampling options --
    "guidance-negative": Case([*GENERATE, "--guidance-scale", "-1"], 2, "guidance-scale must be between"),
    "guidance-huge": Case(
        [*CLASSIFY, "--guidance-scale", "1e9"], 2, "guidance-scale must be between", img(Image.new("RGB", (8, 8)).save)
    ),
    "steps-zero": Case(_with(GENERATE, "--num-inference-steps", "0"), 2, "num-inference-steps must be at least 1"),
    "scheduler-unknown": Case([*GENERATE, "--scheduler", "plms"], 2, "unknown scheduler 'plms'"),
    "num-images-zero": Case([*GENERATE, "--num-images", "0"], 2, "--num-images", one_line=False),
    "batch-size-zero": Case([*CLASSIFY, "--batch-size", "0"], 2, "--batch-size", one_line=False),
    # -- output files --
    "output-folder-missing": Case(_with(GENERATE, "--output", "no/such/o.png"), 2, "does not exist"),
    "output-folder-read-only": Case(_with(GENERATE, "--output", "ro/o.png"), 2, "cannot write"),
    "output-exists": Case(GENERATE, 2, "pass --overwrite", lambda d, w: (d / "o.png").write_bytes(b"mine"), absent=[]),
    "output-not-png": Case(_with(GENERATE, "--output", "o.jpg"), 2, "must end in .png"),
    # -- retrieval inputs --
    "retrieve-texts-and-query": Case(
        ["retrieve", "--model", "{w}/m", "--images", ".", "--query", "x", "--texts", "t"], 2, "exactly one"
    ),
    "retrieve-empty-query": Case(
        ["retrieve", "--model", "{w}/m", "--images", ".", "--query", " "], 2, "--query is empty"
    ),
    "retrieve-no-images": Case(["retrieve", "--model", "{w}/m", "--images", ".", "--query", "x"], 1, "no images"),
    "retrieve-images-folder-missing": Case(
        ["retrieve", "--model", "{w}/m", "--images", "nope", "--query", "x"], 1, "does not exist"
    ),
    "retrieve-texts-empty": Case(
        ["retrieve", "--model", "{w}/m", "--images", "{w}/data", "--texts", "t.txt"],
        1,
        "is empty",
        lambda d, w: (d / "t.txt").write_text(""),
    ),
    # -- training data --
    "data-missing": Case(_with(TRAIN, "--data", "nowhere"), 1, "cannot use"),
    "train-query-scale-zero": Case(
        TRAIN + ["--query-scale", "0"], 2, "--query-scale must be a positive number or 'sqrt-d'"
    ),
    "train-query-schedule-bad-name": Case(TRAIN + ["--query-schedule", "fast"], 2, "--query-schedule must be one of"),
    "train-query-schedule-bad-json": Case(
        TRAIN + ["--query-schedule", '{"beta_schedule": "x"}'], 2, "beta_schedule must be one of"
    ),
    "data-folder-without-metadata": Case(
        _with(TRAIN, "--data", "d"), 1, "has no metadata.jsonl", lambda d, w: (d / "d").mkdir()
    ),
    "data-metadata-bad-json": Case(
        _with(TRAIN, "--data", "data"),
        1,
        "cannot read image folder",
        lambda d, w: _dataset(d, w, GOOD_ROWS) or (d / "data" / "metadata.jsonl").write_text("{oops\n"),
    ),
    "data-empty": Case(
        _with(TRAIN, "--data", "data"), 1, "metadata.jsonl holds no rows", lambda d, w: _dataset(d, w, [])
    ),
    "data-row-without-caption": Case(
        _with(TRAIN, "--data", "data"),
        1,
        "has no caption; fix it, or pass --bad-rows skip",
        lambda d, w: _dataset(d, w, [*GOOD_ROWS, {"file_name": "000004.png"}]),
    ),
    "data-row-empty-caption": Case(
        _with(TRAIN, "--data", "data"),
        1,
        "training row 1 has no caption",
        lambda d, w: _dataset(d, w, [GOOD_ROWS[0], {"file_name": "000004.png", "text": " "}]),
    ),
    "data-row-missing-file": Case(
        _with(TRAIN, "--data", "data"),
        1,
        "which does not exist",
        lambda d, w: _dataset(d, w, [*GOOD_ROWS, {"file_name": "gone.png", "text": "x"}]),
    ),
    "data-row-corrupt-image": Case(
        _with(TRAIN, "--data", "data"),
        1,
        "unreadable image",
        lambda d, w: _dataset(d, w, GOOD_ROWS) or _truncated_png(d / "data" / "000002.png"),
    ),
    "data-csv-without-caption-column": Case(
        _with(TRAIN, "--data", "t.csv"),
        1,
        "set --caption-column",
        lambda d, w: (d / "t.csv").write_text("image,label\nx.png,cat\n"),
    ),
    "data-all-rows-bad-skip": Case(
        [*_with(TRAIN, "--data", "data"), "--bad-rows", "skip"],
        1,
        "none of the 2 training rows",
        lambda d, w: _dataset(d, w, [{"file_name": "000000.png", "text": ""}, {"file_name": "gone.png", "text": "x"}]),
    ),
    "batch-larger-than-data": Case(_with(TRAIN, "--batch-size", "64"), 1, "exceeds the 8 rows"),
    # -- training options --
    "max-steps-zero": Case(_with(TRAIN, "--max-steps", "0"), 2, "max-steps must be positive"),
    "batch-size-negative": Case(_with(TRAIN, "--batch-size", "-4"), 2, "batch-size must be positive"),
    "learning-rate-zero": Case([*TRAIN, "--learning-rate", "0"], 2, "learning-rate must be positive"),
    "learning-rate-nan": Case([*TRAIN, "--learning-rate", "nan"], 2, "learning-rate must be positive"),
    "warmup-negative": Case(_with(TRAIN, "--warmup-steps", "-1"), 2, "warmup-steps must not be negative"),
    "lr-scheduler-unknown": Case([*TRAIN, "--lr-scheduler", "exp"], 2, "unknown --lr-scheduler 'exp'"),
    "bad-rows-unknown": Case([*TRAIN, "--bad-rows", "ignore"], 2, "bad-rows must be 'error' or 'skip'"),
    "preset-unknown": Case(_with(TRAIN, "--preset", "huge"), 2, "unknown preset 'huge'"),
    "preset-json-other-version": Case(
        _with(TRAIN, "--preset", "c.json"),
        1,
        "unknown keys",
        lambda d, w: (d / "c.json").write_text('{"preset": "tiny", "width": 3}'),
    ),
    "deepspeed-bad-json": Case(
        [*TRAIN, "--deepspeed", "ds.json"], 1, "not valid JSON", lambda d, w: (d / "ds.json").write_text("{,}")
    ),
    "deepspeed-unknown": Case([*TRAIN, "--deepspeed", "zero9"], 1, "--deepspeed takes"),
    "resume-nothing": Case([*TRAIN, "--resume-from-checkpoint", "latest"], 1, "nothing to resume"),
    "resume-not-a-checkpoint": Case([*TRAIN, "--resume-from-checkpoint", "{w}/m"], 1, "not a complete checkpoint"),
    "output-dir-is-a-file": Case(TRAIN, 2, "is not a folder", lambda d, w: (d / "out").write_text("x"), absent=[]),
    "output-dir-read-only": Case(_with(TRAIN, "--output-dir", "ro/run"), 2, "cannot write", absent=["ro/run"]),
    "output-dir-holds-a-run": Case(
        _with(TRAIN, "--output-dir", "{w}/m"), 1, "--resume-from-checkpoint latest", absent=[]
    ),
    # -- streamed shards (img2dataset layout) --
    "shards-match-nothing": Case(_with(TRAIN, "--data", "none/{00000..00003}.tar"), 1, "matches no file"),
    "shard-truncated": Case(
        _with(TRAIN, "--data", "shards"),
        1,
        "is not a readable tar file",
        lambda d, w: _truncate(write_shards(d / "shards", 2, 4)[1]),
    ),
    "shard-without-captions": Case(
        _with(TRAIN, "--data", "shards"),
        1,
        "has images but no captions",
        lambda d, w: write_shards(d / "shards", 1, 4, captions=None),
    ),
    "shard-bad-rows-past-fraction": Case(
        [*_with(TRAIN, "--data", "shards"), "--max-bad-fraction", "0.1"],
        1,
        "--max-bad-fraction 0.1",
        lambda d, w: write_shards(d / "shards", 1, 8, bad=range(6)),
        one_line=False,
    ),  # after progress lines
    "accumulation-zero": Case(
        [*TRAIN, "--gradient-accumulation-steps", "0"], 2, "gradient-accumulation-steps must be at least 1"
    ),
    "accumulation-does-not-divide": Case(
        [*TRAIN, "--gradient-accumulation-steps", "3"], 2, "divisible by --gradient-accumulation-steps"
    ),
    "device-cuda-without-cuda": Case([*TRAIN, "--device", "cuda"], 2, "no CUDA device is visible"),
    "device-unknown": Case([*TRAIN, "--device", "tpu"], 2, "choose auto, cpu, cuda"),
    "mixed-precision-unknown": Case(
        [*TRAIN, "--mixed-precision", "fp8"], 2, "mixed-precision must be auto, no, bf16 or fp16"
    ),
    "preset-vae-without-weights": Case(_with(TRAIN, "--preset", "sd15"), 2, "pass --init-from SD_DIR"),
    "report-to-unknown": Case([*TRAIN, "--report-to", "wandb"], 2, "report-to must be none or tensorboard"),
    "validation-every-alone": Case(
        [*TRAIN, "--validation-every", "2"], 2, "needs --validation-prompts or --validation-data"
    ),
    "scratch-learning-rate-negative": Case(
        [*TRAIN, "--scratch-learning-rate", "-1"], 2, "scratch-learning-rate must be positive"
    ),
    # -- other commands --
    "data-make-unknown": Case(["data", "make", "mnist-world", "--output-dir", "out"], 2, "unknown dataset"),
    "data-make-existing": Case(["data", "make", "shapes", "--output-dir", "{w}/data"], 2, "already holds a dataset"),
    "export-existing-output": Case(["export", "ckpt", "{w}/m"], 2, "pass --overwrite"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, world, tmp_path, monkeypatch):
    case = CASES[name]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro").mkdir()
    real_access = __import__("os").access
    # tests run as root, which writes anywhere: a read-only folder is the one os.access says no for
    monkeypatch.setattr("os.access", lambda p, mode, **kw: Path(p).name != "ro" and real_access(p, mode, **kw))
    case.setup(tmp_path, world)
    result = runner.invoke(app, [a.replace("{w}", str(world)) for a in case.args])
    assert result.exit_code == case.code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert case.message in result.output and "Traceback" not in result.output, result.output
    if case.one_line:
        assert len(result.output.strip().splitlines()) == 1, result.output
    for path in case.absent:
        assert not (tmp_path / path).exists(), path


def test_debug_shows_the_traceback(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["--debug", "generate", "x", "--model", "nowhere"])
    assert result.exit_code != 0 and type(result.exception).__name__ == "DiffDisError"


def _mode_image(mode: str) -> Callable[[Path], object]:
    def write(path: Path) -> None:
        rng = np.random.default_rng(0)
        if mode == "I;16":
            Image.fromarray(rng.integers(0, 65535, (12, 10), dtype=np.uint16)).save(path)
        elif mode == "CMYK":
            Image.new("CMYK", (10, 12), (10, 200, 30, 5)).save(path.with_suffix(".jpg"))
            path.with_suffix(".jpg").rename(path)
        else:
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).convert(mode).save(path, format="PNG")

    return write


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "I;16", "P", "1", "CMYK"])
def test_odd_image_modes_are_converted_and_work(mode, world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _mode_image(mode)(tmp_path / "img.png")
    assert Image.open(tmp_path / "img.png").mode == mode
    result = runner.invoke(app, [*[a.replace("{w}", str(world)) for a in CLASSIFY], "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["results"][0]["predictions"]) == 2


def test_bad_rows_skip_trains_on_the_good_rows_and_says_how_many(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _dataset(tmp_path, world, [*GOOD_ROWS, {"file_name": "000004.png"}, {"file_name": "gone.png", "text": "x"}])
    result = runner.invoke(
        app, [*[a.replace("{w}", str(world)) for a in _with(TRAIN, "--data", "data")], "--bad-rows", "skip"]
    )
    assert result.exit_code == 0, result.output
    assert "skipping 2 of 6 training rows" in result.output
    assert (tmp_path / "out" / "model_index.json").is_file()


def test_the_catalogue_is_long_enough():
    assert len(CASES) >= 30
