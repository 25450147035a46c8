"""CLIPScore with a CLIP folder on disk: a tiny random CLIPModel saved here (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from diffdis.errors import DiffDisError
from diffdis.eval.clip_score import ClipScorer
from diffdis_cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory, tokenizer) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = tmp_path_factory.mktemp("clip") / "clip"
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            **ids,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)) for _ in range(n)]


def test_score_is_100_times_the_clamped_cosine_of_clips_own_embeddings(clip_dir):
    scorer = ClipScorer.from_pretrained(clip_dir)
    prompts = ["a red circle", "a blue square", "a green triangle on a gray background", "cat", "dog", "a red circle"]
    batch = images(len(prompts))
    cosines = scorer.cosines(batch, prompts)
    model = scorer.model  # by hand: each tower, its projection, unit norm, the pairwise dot product
    text = scorer.tokenizer(prompts, padding=True, return_tensors="pt")
    pixels = scorer.image_processor(images=batch, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        image_embeds = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        text_embeds = model.text_projection(model.text_model(**text).pooler_output)
    expected = (F.normalize(image_embeds, dim=-1) * F.normalize(text_embeds, dim=-1)).sum(-1)
    assert torch.allclose(cosines, expected, atol=1e-5)
    assert (cosines < 0).any() and (cosines > 0).any()  # random weights: both signs, so the clamp is tested
    assert torch.allclose(scorer.scores(batch, prompts), 100 * expected.clamp_min(0), atol=1e-3)
    long_prompt = " ".join(["red"] * 40)  # longer than the 16 positions: cut, keeping its end token
    assert scorer.cosines(batch[:1], [long_prompt]).shape == (1,)
    with pytest.raises(DiffDisError, match="one prompt per image"):
        scorer.cosines(batch[:2], prompts[:1])


def test_wrong_folders_are_refused(tmp_path, clip_dir):
    with pytest.raises(DiffDisError, match="no CLIPModel folder"):
        ClipScorer.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(DiffDisError, match="not a CLIPModel with its tokenizer and image processor") as err:
        ClipScorer.from_pretrained(tmp_path)
    assert "\n" not in str(err.value)


def test_eval_generate_reports_clip_score(tmp_path, micro_model, clip_dir, monkeypatch):
    from diffdis.data.world import make_world

    monkeypatch.chdir(tmp_path)
    make_world(tmp_path / "world", 4, seed=0, size=16)
    common = [
        "eval",
        "generate",
        "--model",
        str(micro_model),
        "--prompts",
        "world",
        "--num-inference-steps",
        "1",
        "--features",
        "tests.eval.test_generate:colour_features",
    ]
    result = runner.invoke(app, [*common, "--clip-model", str(clip_dir), "--json"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert (
        0 <= record["clip_score"] <= 100
        and record["clip_model"] == str(clip_dir)
        and -1 <= record["diffdis_score"] <= 1
    )
    result = runner.invoke(app, [*common, "--clip-model", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no CLIPModel folder" in result.output
