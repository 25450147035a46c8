"""The bad inputs of the commands that use a model folder (classify, generate, retrieve, export): image files,
labels and templates, model folders, sampling options, output files, retrieval inputs.
"""

from __future__ import annotations

import shutil

from PIL import Image

from tests.cli.bad_inputs import (
    CLASSIFY,
    GENERATE,
    Case,
    _bomb,
    _copy_model,
    _edit_json,
    _truncated_png,
    _with,
    img,
)
from tests.conftest import micro_config

MODEL_CASES: dict[str, Case] = {
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
    # -- export --
    "export-existing-output": Case(["export", "ckpt", "{w}/m"], 2, "pass --overwrite"),
}
