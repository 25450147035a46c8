"""Streamed webdataset shards: time to the first batch and peak RSS on 1,000 vs 100,000 rows (goal: each ratio
<= 1.3), and samples/s of the streamed DataLoader with 0 vs 2 workers. Prints one JSON line.

    python benchmarks/stream_data.py [--rows 1000 100000] [--workdir /tmp/stream_bench]
    python benchmarks/stream_data.py --train [--repeats 3] [--train-batch 32] [--preset tiny-patch2]

`--train` instead times `python -m diffdis_cli train --max-steps 1` on the same shards: launch to the first
step (OUTPUT_DIR/logs.jsonl appearing), launch to exit (that plus the final save), and the process's peak RSS.
A from-scratch model trains its BPE tokenizer on the stream's first 10,000 captions, which by design differ
between 1,000 and 100,000 rows; a separate child times that part alone, so its share can be read off.

Each case runs in a fresh subprocess (its peak RSS from os.wait4 on that child), `--repeats` times, small and
large alternating; the median run counts, as the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(args: argparse.Namespace) -> None:
    """One case: build the stream, time the first batch, then (`--batches`) the steady rate."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets  # noqa: F401  (imports cost the same for any row count: keep them out of the timing)
    import torchdata.stateful_dataloader  # noqa: F401

    from diffdis.data.loader import training_data

    start = time.perf_counter()
    data = training_data(
        args.data,
        image_size=args.size,
        batch_size=args.batch,
        num_workers=args.workers,
        shuffle_buffer=1000,
        log=lambda _: None,
    )
    batches = iter(data)
    next(batches)
    first = time.perf_counter() - start
    rate = None
    if args.batches:
        start = time.perf_counter()
        for _ in range(args.batches):
            next(batches)
        rate = args.batches * args.batch / (time.perf_counter() - start)
    print(json.dumps({"first_batch_s": first, "samples_per_s": rate}))


def tokenizer_child(args: argparse.Namespace) -> None:
    """The train command's data-dependent setup alone: read the first captions, train the BPE tokenizer."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets  # noqa: F401

    from diffdis.config import preset
    from diffdis.data.loader import training_data
    from diffdis.model.text import train_tokenizer
    from diffdis.train.build import tokenizer_corpus

    max_length = preset(args.preset).text_encoder["max_position_embeddings"]
    start = time.perf_counter()
    data = training_data(args.data, image_size=args.size, batch_size=args.batch, log=lambda _: None)
    captions = data.captions()
    read = time.perf_counter() - start
    train_tokenizer(tokenizer_corpus(captions), 4096, max_length)
    print(json.dumps({"captions": len(captions), "captions_s": read, "tokenizer_s": time.perf_counter() - start}))


def run_train(data: Path, output: Path, preset: str, batch: int) -> dict:
    """One `diffdis train --max-steps 1` in a fresh process: seconds to logs.jsonl (the first step), to exit,
    and the process's peak RSS."""
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "diffdis_cli",
        "train",
        "--data",
        str(data),
        "--output-dir",
        str(output / "model"),
        "--preset",
        preset,
        "--max-steps",
        "1",
        "--batch-size",
        str(batch),
        "--checkpointing-steps",
        "1000",
        "--json",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    logs, first_step = output / "model" / "logs.jsonl", None
    with open(output / "stdout.txt", "wb") as out, open(output / "stderr.txt", "wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT, env=env)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if first_step is None and logs.exists():
                first_step = time.perf_counter() - start
            if pid:
                break
            time.sleep(0.02)
    total = time.perf_counter() - start
    if status or first_step is None:
        raise SystemExit(f"{' '.join(command)} failed ({status}):\n{(output / 'stderr.txt').read_text()[-2000:]}")
    step = json.loads(logs.read_text().splitlines()[0])
    shutil.rmtree(output / "model")  # the saved model and checkpoint: ~0.2 GB a run
    rss = usage.ru_maxrss / 1024
    seconds = step["seconds_per_step"]  # the first batch's fetch plus forward/backward: the rest is setup
    setup = first_step - seconds
    return {"first_step_s": first_step, "setup_s": setup, "process_s": total, "step_s": seconds, "peak_rss_mb": rss}


def run_case(data: Path, size: int, workers: int = 0, batches: int = 0, batch: int = 64) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--data",
        str(data),
        "--size",
        str(size),
        "--workers",
        str(workers),
        "--batches",
        str(batches),
        "--batch",
        str(batch),
    ]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"case {command} failed with status {status}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    return {**result, "process_s": time.perf_counter() - start, "peak_rss_mb": usage.ru_maxrss / 1024}


def shards(workdir: Path, rows: int, size: int, fmt: str = "png") -> Path:
    from tests.data.shards import write_shards

    folder = workdir / f"{rows}_{size}_{fmt}"
    if not (folder / "done").exists():
        start = time.perf_counter()
        write_shards(folder, max(1, rows // 1000), min(rows, 1000), size=size, fmt=fmt, distinct=100)
        (folder / "done").write_text(f"{time.perf_counter() - start:.1f} s\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--data")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batches", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rows", type=int, nargs=2, default=[1000, 100_000])
    parser.add_argument("--workdir", default="/tmp/stream_bench")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train", action="store_true", help="time diffdis train to its first step instead")
    parser.add_argument("--preset", default="tiny-patch2")
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--tokenizer-child", action="store_true")
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.tokenizer_child:
        return tokenizer_child(args)
    workdir = Path(args.workdir)
    if args.train:
        return train_section(args, workdir)
    small, large = (shards(workdir, n, 32) for n in args.rows)
    result: dict = {"rows": args.rows, "image_size": 32, "batch_size": 64, "shuffle_buffer": 1000}
    runs: dict[str, list] = {"small": [], "large": []}
    for _ in range(args.repeats):  # alternate, so a busy spell on the machine hits both
        for name, folder in (("small", small), ("large", large)):
            runs[name].append(run_case(folder, 32))
    for name, cases in runs.items():
        result[name] = {
            key: statistics.median(case[key] for case in cases) for key in ("first_batch_s", "process_s", "peak_rss_mb")
        }
        result[name]["first_batch_s_all"] = [round(case["first_batch_s"], 2) for case in cases]
    for key in ("first_batch_s", "peak_rss_mb"):
        result[f"{key}_ratio"] = result["large"][key] / result["small"][key]
    throughput = {}
    for size, folder, batches in ((32, large, 200), (256, shards(workdir, 4000, 256, "jpg"), 40)):
        for workers in (0, 2):
            case = run_case(folder, size, workers=workers, batches=batches)
            throughput[f"size{size}_workers{workers}_samples_per_s"] = round(case["samples_per_s"], 1)
    result["throughput"] = throughput
    result["cpu_count"] = os.cpu_count()
    print(json.dumps(result))


def train_section(args: argparse.Namespace, workdir: Path) -> None:
    """`diffdis train --max-steps 1` on the small and the large shards, alternating, plus the tokenizer alone."""
    folders = dict(zip(("small", "large"), (shards(workdir, n, 32) for n in args.rows)))
    load_before = os.getloadavg()
    runs: dict[str, list] = {"small": [], "large": []}
    for _ in range(args.repeats):
        for name, folder in folders.items():
            case = run_train(folder, workdir / "train_out", args.preset, args.train_batch)
            command = [
                sys.executable,
                __file__,
                "--tokenizer-child",
                "--data",
                str(folder),
                "--preset",
                args.preset,
                "--batch",
                str(args.train_batch),
            ]
            out = subprocess.run(command, capture_output=True, check=True, cwd=ROOT).stdout
            tokenizer = json.loads(out.decode().splitlines()[-1])
            runs[name].append({**case, **tokenizer})
    result: dict = {
        "mode": "train",
        "rows": args.rows,
        "preset": args.preset,
        "batch_size": args.train_batch,
        "image_size": 32,
        "repeats": args.repeats,
    }
    keys = ("first_step_s", "setup_s", "process_s", "step_s", "peak_rss_mb", "captions_s", "tokenizer_s")
    for name, cases in runs.items():
        result[name] = {key: round(statistics.median(case[key] for case in cases), 3) for key in keys}
        result[name]["captions"] = cases[0]["captions"]
        for key in ("first_step_s", "setup_s", "step_s"):
            result[name][f"{key}_all"] = [round(case[key], 2) for case in cases]
    for key in ("first_step_s", "setup_s", "step_s", "process_s", "peak_rss_mb", "tokenizer_s"):
        result[f"{key}_ratio"] = round(result["large"][key] / result["small"][key], 3)
    # The first step less the tokenizer: the ratio if both trained it on the same number of captions.
    small, large = (result[name]["first_step_s"] - result[name]["tokenizer_s"] for name in ("small", "large"))
    result["first_step_s_without_tokenizer_ratio"] = round(large / small, 3)
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["cpu_count"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
