"""examples/gpu_check.py: one JSON line of positive numbers (its
toy run), failed cases reported, one line without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "gpu_check.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], check=False, env=env or ENV, capture_output=True, text=True, timeout=240
    )


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0():
    done = run(env={**ENV, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "gpu_check: no CUDA GPU visible; nothing measured\n"


def test_the_toy_run_prints_one_json_line_of_positive_numbers():
    pytest.importorskip("deepspeed")
    done = run(
        "--allow-cpu",
        "--tiny",
        "--batch-size",
        "4",
        "--warmup",
        "1",
        "--steps",
        "1",
        "--generate-batch",
        "1",
        "--classify-images",
        "2",
        "--peak-tflops",
        "1",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout[-2000:]
    report = json.loads(lines[0])
    assert report["device"] == ("cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name())
    assert report["peak_tflops"] == 1.0 and report["peak_tflops_source"] == "--peak-tflops"
    assert report["train"].keys() == {"plain", "plain_checkpointing", "zero2"}
    for name, case in report["train"].items():
        assert "error" not in case, (name, case)
        for key in ("samples_per_s", "s_per_step", "peak_memory_gib", "mfu"):
            assert case[key] > 0, (name, key)
    assert report["model_tflops_per_step"] > report["vae_encode_tflops_per_step"] > 0
    assert report["generate_images_per_s"] > 0 and report["generate"]["steps"] == 25
    assert report["classify_images_per_s"] > 0 and report["classify"]["steps"] == 5
    assert report["seconds"] > 0


def test_a_case_that_fails_is_reported_and_the_rest_still_prints():
    done = run("--allow-cpu", "--tiny", "--data", "no-such-data-folder", "--batch-size", "4", "--steps", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert all("no-such-data-folder" in case["error"] for case in report["train"].values()), report["train"]
    assert report["generate_images_per_s"] is None and report["classify_images_per_s"] is None
