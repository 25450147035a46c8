"""`diffdis env --estimate-memory`: DeepSpeed's model-states formulas over meta-device parameter counts."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from diffdis.config import preset
from diffdis.memory import estimate, parameter_counts, zero2_model_states, zero3_model_states
from diffdis_cli.main import app


def test_sd15_counts_are_the_sd_unet_plus_new_modules_plus_clip():
    counts = parameter_counts(preset("sd15"))
    frozen_text = parameter_counts(preset("sd15"), train_text_encoder=False)
    clip_text = 123_060_480  # CLIP ViT-L/14 text tower (SD v1's text encoder)
    vae = 83_653_863  # SD's AutoencoderKL
    assert counts.trained - frozen_text.trained == clip_text
    assert frozen_text.frozen == vae + clip_text and counts.frozen == vae
    assert 859_520_964 + 50e6 < frozen_text.trained < 859_520_964 + 200e6  # SD v1.5 UNet + the new modules
    assert 1e6 < counts.largest_layer < 60e6


@pytest.mark.parametrize("gpus", [1, 8])
@pytest.mark.parametrize("offload", [False, True])
def test_formulas_are_deepspeeds(gpus, offload):
    stage_1_and_2 = pytest.importorskip("deepspeed.runtime.zero.stage_1_and_2")
    stage3 = pytest.importorskip("deepspeed.runtime.zero.stage3")
    p, largest = 1_000_000_007, 13_107_200
    assert zero2_model_states(p, gpus, 2, offload) == stage_1_and_2.estimate_zero2_model_states_mem_needs(
        p, gpus, 2, offload
    )
    ours = zero3_model_states(p, largest, gpus, 2, offload, offload)
    assert (
        ours == stage3.estimate_zero3_model_states_mem_needs(p, largest, gpus, 2, offload, offload, zero_init=False)[:2]
    )


def test_more_gpus_need_less_memory_each_and_cli_prints_every_preset():
    counts = parameter_counts(preset("sd15"), train_text_encoder=False)
    one, eight = estimate(counts, 1), estimate(counts, 8)
    for a, b in zip(one, eight):
        assert b["gpu_gib_per_gpu"] <= a["gpu_gib_per_gpu"]
    assert one[1]["gpu_gib_per_gpu"] > 15  # ZeRO-2 on one GPU: ~18 bytes per trained parameter
    result = CliRunner().invoke(app, ["env", "--estimate-memory", "--preset", "sd15", "--num-gpus", "8", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [row["deepspeed"] for row in data["estimates"]] == [
        "zero1",
        "zero2",
        "zero2-offload",
        "zero3",
        "zero3-offload",
    ]
    assert data["trained_parameters"] == parameter_counts(preset("sd15")).trained
