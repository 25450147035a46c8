import json

import pytest
import torch
from safetensors import safe_open

from diffdis import default_model
from diffdis.data.world import make_world
from diffdis.data.world_vocabulary import heldout_combinations
from diffdis.errors import DiffDisError
from diffdis.pipeline import DiffDisPipeline


def test_packaged_copy_is_fp16_named_and_answers_like_the_original(trained_model, tmp_path):
    default_model.package_model(trained_model, tmp_path / "shipped", name="test-model", version="7")
    index = json.loads((tmp_path / "shipped" / "model_index.json").read_text())
    assert index["name"] == "test-model" and index["model_version"] == "7"
    inference = json.loads((tmp_path / "shipped" / "inference_config.json").read_text())
    assert inference["generate_guidance"] == default_model.GENERATE_GUIDANCE != 3.0  # not the source's default
    with safe_open(str(tmp_path / "shipped" / "discriminator" / "model.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    original, shipped = (
        DiffDisPipeline.from_pretrained(trained_model),
        DiffDisPipeline.from_pretrained(tmp_path / "shipped"),
    )
    assert shipped.dtype == torch.float32 and shipped.card["name"] == "test-model"
    e0, e1 = original.encode_text(["a red circle"])[1], shipped.encode_text(["a red circle"])[1]
    assert torch.allclose(e0, e1, atol=1e-2)  # only fp16 rounding of the stored weights between them


def test_omitted_model_means_the_shipped_one_and_a_missing_one_says_what_to_do(tmp_path, monkeypatch):
    assert default_model.resolve_model(tmp_path) == tmp_path
    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", tmp_path / "absent")
    with pytest.raises(DiffDisError, match="pass --model"):
        default_model.resolve_model(None)


@pytest.mark.skipif(not (default_model.DEFAULT_MODEL_DIR / "model_index.json").is_file(), reason="no shipped model")
def test_shipped_model_loads_and_answers(tmp_path):
    pipe = DiffDisPipeline.from_pretrained(default_model.resolve_model(None))
    assert pipe.card == {
        "name": default_model.MODEL_NAME,
        "model_version": default_model.MODEL_VERSION,
        "diffdis_version": pipe.card["diffdis_version"],
    }
    make_world(tmp_path / "w", 12, seed=5, split="heldout")  # the varied drawings the v4 and v5 models were trained on
    rows = [json.loads(line) for line in (tmp_path / "w" / "metadata.jsonl").read_text().splitlines()]
    assert all((r["object"], r["colour"]) in heldout_combinations() for r in rows)
    from PIL import Image

    images = [Image.open(tmp_path / "w" / r["file_name"]).convert("RGB") for r in rows]
    colours = sorted({r["colour"] for r in rows} | {"red", "green", "blue"})
    scores = pipe.classify(images, colours, ["a {} thing", "a {} object"], num_inference_steps=5)
    right = sum(colours[i] == r["colour"] for i, r in zip(scores.argmax(-1).tolist(), rows))
    assert right >= 10, f"{right}/12 colours right on unseen colour-object pairs"
    image = pipe.generate(["a red car"], num_inference_steps=5)[0]
    assert image.size == (pipe.config.image_size, pipe.config.image_size)
