"""The bad inputs of `diffdis train` (training data, training options, streamed shards) and `diffdis data make`."""

from __future__ import annotations

from tests.cli.bad_inputs import GOOD_ROWS, TRAIN, Case, _dataset, _truncate, _truncated_png, _with
from tests.data.shards import write_shards

TRAIN_CASES: dict[str, Case] = {
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
    # -- data make --
    "data-make-unknown": Case(["data", "make", "mnist-world", "--output-dir", "out"], 2, "unknown dataset"),
    "data-make-existing": Case(["data", "make", "shapes", "--output-dir", "{w}/data"], 2, "already holds a dataset"),
}
