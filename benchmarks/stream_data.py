"""Streamed webdataset shards: time to the first batch and peak RSS on 1,000 vs 100,000 rows (goal: each ratio
<= 1.3), and samples/s of the streamed DataLoader with 0 vs 2 workers. Prints one JSON line.

    python benchmarks/stream_data.py [--rows 1000 100000] [--workdir /tmp/stream_bench]

Each case runs in a fresh subprocess (its peak RSS from os.wait4 on that child), `--repeats` times, small and
large alternating; the median run counts, as the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
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
    data = training_data(args.data, image_size=args.size, batch_size=args.batch, num_workers=args.workers,
                         shuffle_buffer=1000, log=lambda _: None)  # fmt: skip
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


def run_case(data: Path, size: int, workers: int = 0, batches: int = 0, batch: int = 64) -> dict:
    command = [sys.executable, __file__, "--child", "--data", str(data), "--size", str(size), "--workers", str(workers),
               "--batches", str(batches), "--batch", str(batch)]  # fmt: skip
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
    args = parser.parse_args()
    if args.child:
        return child(args)
    workdir = Path(args.workdir)
    small, large = (shards(workdir, n, 32) for n in args.rows)
    result: dict = {"rows": args.rows, "image_size": 32, "batch_size": 64, "shuffle_buffer": 1000}
    runs: dict[str, list] = {"small": [], "large": []}
    for _ in range(args.repeats):  # alternate, so a busy spell on the machine hits both
        for name, folder in (("small", small), ("large", large)):
            runs[name].append(run_case(folder, 32))
    for name, cases in runs.items():
        result[name] = {key: statistics.median(case[key] for case in cases) for key in ("first_batch_s", "process_s", "peak_rss_mb")}
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


if __name__ == "__main__":
    main()
