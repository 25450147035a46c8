"""What a training run leaves for a user to watch: logs.jsonl, TensorBoard events, validation samples and accuracy."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from diffdis.train.loop import Trainer
from diffdis.train.reporting import Reporter
from tests.conftest import micro_config, micro_train_config

KEYS = {"step", "loss", "loss_generative", "loss_alignment", "lr", "grad_norm", "samples_per_second", "peak_memory_gib"}


def test_logs_tensorboard_and_validation(shapes_dir, tmp_path):
    pytest.importorskip("tensorboard")
    cfg = micro_train_config(
        shapes_dir,
        tmp_path,
        max_steps=4,
        checkpointing_steps=4,
        log_every=2,
        report_to="tensorboard",
        validation_prompts=["a red circle", "a blue square"],
        validation_data=str(shapes_dir),
        validation_every=2,
        gradient_accumulation_steps=2,
        gradient_checkpointing=True,
    )
    Trainer(cfg, micro_config(), log=lambda m: None).run()
    lines = [json.loads(line) for line in (tmp_path / "logs.jsonl").read_text().splitlines()]
    train = [line for line in lines if "loss" in line]
    assert [line["step"] for line in train] == [2, 4]
    assert all(KEYS <= set(line) and line["samples_per_second"] > 0 and line["peak_memory_gib"] > 0 for line in train)
    validation = [line for line in lines if "validation/zero_shot_caption_top1" in line]
    assert [line["step"] for line in validation] == [2, 4]
    assert all(0.0 <= line["validation/zero_shot_caption_top1"] <= 1.0 for line in validation)
    grid = Image.open(tmp_path / "validation" / "step-4.png")
    assert grid.size == (32, 16)  # two 16x16 samples side by side
    assert json.loads((tmp_path / "validation" / "step-2.json").read_text())["step"] == 2
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_drops_the_log_lines_of_the_killed_run(tmp_path):
    first = Reporter(tmp_path)
    for step in (2, 4, 6):
        first.write(step, {"loss": float(step)})
    with open(tmp_path / "logs.jsonl", "a") as f:
        f.write('{"step": 8, "lo')  # cut by the kill
    Reporter(tmp_path, start_step=4).write(6, {"loss": 0.5})
    steps = [json.loads(line)["step"] for line in (tmp_path / "logs.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]
