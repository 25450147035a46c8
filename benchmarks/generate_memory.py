"""Peak memory of `diffdis eval generate` with FID on N vs 10N images: it should not grow with N.

    python benchmarks/generate_memory.py                  # 500 vs 5,000 images
    python benchmarks/generate_memory.py --small 200 --large 2000 --pythonpath /tmp/other_checkout

Each size runs `diffdis eval generate` in a fresh process on an untrained micro model (16x16 pixels, 1 sampler
step: the images are noise, which is all a memory measurement needs), prompts and reference images from the
built-in world (`--prompts world:N`, streamed as reference too), FID with the shipped judge's features. The
images are written to disk and read back a block at a time, so the peak resident memory (the child's
ru_maxrss, from os.wait4) should be about the same for both sizes. Prints one JSON line.
`--pythonpath` runs another copy of the code (e.g. `git archive HEAD | tar -x -C DIR`) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, float, float]:
    """(stdout, peak resident MiB, seconds) of one child process, which must succeed. The child is reaped with
    os.wait4, which returns its own resource usage (Linux: ru_maxrss in KiB)."""
    start = time.perf_counter()
    with open(cwd / "stdout.txt", "w+b") as out, open(cwd / "stderr.txt", "w+b") as err:
        child = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        seconds = time.perf_counter() - start
        out.seek(0), err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(args[3:6])} failed:\n{err.read().decode()[-2000:]}")
        return out.read().decode(), usage.ru_maxrss / 1024, seconds


def measure(n: int, model: Path, work: Path, env: dict[str, str], batch_size: int) -> dict[str, float]:
    args = [
        sys.executable,
        "-m",
        "diffdis_cli",
        "eval",
        "generate",
        "--model",
        str(model),
        "--prompts",
        f"world:{n}",
        "--num-prompts",
        str(n),
        "--num-inference-steps",
        "1",
        "--batch-size",
        str(batch_size),
        "--device",
        "cpu",
        "--output",
        str(work / f"gen_{n}.json"),
        "--json",
    ]
    stdout, peak, seconds = run_child(args, env, work)
    record = json.loads(stdout)[0]
    return {"peak_rss_mib": round(peak, 1), "seconds": round(seconds, 1), "fid": record["fid"], "n": record["n"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pythonpath", default=str(ROOT), help="The diffdis code to run (default: this checkout).")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.conftest import save_untrained_micro_model  # the micro geometry the tests use, random weights

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = save_untrained_micro_model(work / "model")
        env = {
            **os.environ,
            "PYTHONPATH": args.pythonpath,
            "DIFFDIS_CACHE": str(work / "cache"),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
        }
        small = measure(args.small, model, work, env, args.batch_size)
        large = measure(args.large, model, work, env, args.batch_size)
    print(
        json.dumps(
            {
                "small": {"images": args.small, **small},
                "large": {"images": args.large, **large},
                "peak_rss_ratio": round(large["peak_rss_mib"] / small["peak_rss_mib"], 3),
                "peak_rss_growth_mib": round(large["peak_rss_mib"] - small["peak_rss_mib"], 1),
                "code": args.pythonpath,
            }
        )
    )


if __name__ == "__main__":
    main()
