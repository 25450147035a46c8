import io

import pytest
import torch
from PIL import Image

from diffdis.errors import DiffDisError, UsageError
from diffdis.pipeline import DiffDisPipeline


@pytest.fixture(scope="module")
def pipe(trained_model):
    return DiffDisPipeline.from_pretrained(trained_model)


@pytest.fixture(scope="module")
def images(shapes_dir):
    return [Image.open(shapes_dir / f"{i:06d}.png").convert("RGB") for i in range(5)]


def _png_bytes(image):
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_save_load_round_trip_gives_identical_outputs(pipe, images, tmp_path):
    pipe.save_pretrained(tmp_path / "copy")
    again = DiffDisPipeline.from_pretrained(tmp_path / "copy")
    assert torch.equal(pipe.image_queries(images, 3, seed=1), again.image_queries(images, 3, seed=1))
    assert _png_bytes(pipe.generate(["a red circle"], num_inference_steps=3)[0]) == _png_bytes(
        again.generate(["a red circle"], num_inference_steps=3)[0]
    )
    assert again.config == pipe.config and again.inference == pipe.inference


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++", "euler"])
def test_same_seed_same_image_bytes(pipe, scheduler):
    a = pipe.generate(["a blue square"], 2, num_inference_steps=3, scheduler=scheduler, seed=7)
    b = pipe.generate(["a blue square"], 2, num_inference_steps=3, scheduler=scheduler, seed=7)
    c = pipe.generate(["a blue square"], 2, num_inference_steps=3, scheduler=scheduler, seed=8)
    assert [_png_bytes(x) for x in a] == [_png_bytes(x) for x in b]
    assert [_png_bytes(x) for x in a] != [_png_bytes(x) for x in c]
    assert a[0].size == (16, 16)


def test_classify_scores_repeat_and_do_not_depend_on_batching(pipe, images):
    labels, templates = ["red circle", "blue square", "green cross"], ["a {}", "a photo of a {}."]
    a = pipe.classify(images, labels, templates, num_inference_steps=3, guidance_scale=2.0, seed=3)
    b = pipe.classify(images, labels, templates, num_inference_steps=3, guidance_scale=2.0, seed=3)
    c = pipe.classify(images, labels, templates, num_inference_steps=3, guidance_scale=2.0, seed=3, batch_size=2)
    assert a.shape == (5, 3) and torch.equal(a, b)
    assert torch.allclose(a, c, atol=1e-5)
    assert (a.abs() <= 1 + 1e-6).all()


def test_zero_shot_classifier_follows_the_open_clip_recipe(pipe):
    labels, templates = ["cat", "dog"], ["a {}", "a photo of a {}."]
    weights = pipe.zero_shot_classifier(labels, templates)
    _, e = pipe.encode_text(["a cat", "a photo of a cat.", "a dog", "a photo of a dog."])
    expected = torch.nn.functional.normalize(e.view(2, 2, -1).mean(1), dim=-1)
    assert torch.allclose(weights, expected, atol=1e-6)


def test_retrieve_scores_every_pair(pipe, images):
    scores = pipe.retrieve(images, ["a red circle", "a blue square"], num_inference_steps=2)
    assert scores.shape == (5, 2)


def test_bad_sampling_settings_are_usage_errors(pipe, images):
    with pytest.raises(UsageError):
        pipe.generate(["x"], num_inference_steps=0)
    with pytest.raises(UsageError):
        pipe.image_queries(images, guidance_scale=-1)
    with pytest.raises(UsageError, match="unknown scheduler"):
        pipe.generate(["x"], scheduler="nope")


def test_incomplete_or_mismatched_model_folders_are_refused(trained_model, tmp_path):
    with pytest.raises(DiffDisError, match="does not exist"):
        DiffDisPipeline.from_pretrained(tmp_path / "missing")
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_model, broken, ignore=shutil.ignore_patterns("checkpoints"))
    (broken / "model_index.json").unlink()
    with pytest.raises(DiffDisError, match="model_index.json is missing"):
        DiffDisPipeline.from_pretrained(broken)
    mismatched = tmp_path / "mismatched"
    shutil.copytree(trained_model, mismatched, ignore=shutil.ignore_patterns("checkpoints"))
    cfg = (
        (mismatched / "model_config.json")
        .read_text()
        .replace('"query_transformer_width": 32', '"query_transformer_width": 64')
    )
    (mismatched / "model_config.json").write_text(cfg)
    with pytest.raises(DiffDisError, match="do not fit"):
        DiffDisPipeline.from_pretrained(mismatched)


def test_one_way_pipeline_classifies_with_the_cached_image_stream(tokenizer, images):
    from tests.conftest import micro_config

    pipe = DiffDisPipeline.build(micro_config(fusion="one-way"), tokenizer)
    for block in pipe.model.discriminator.fusion.values():
        torch.nn.init.normal_(block.fc_out.weight, std=0.2)
    calls = []
    original = pipe.model.predict_query
    pipe.model.predict_query = lambda *a, **k: calls.append(1) or original(*a, **k)
    scores = pipe.classify(images, ["red circle", "blue square"], num_inference_steps=4, guidance_scale=2.0)
    assert scores.shape == (5, 2) and torch.isfinite(scores).all()
    assert len(calls) == 1  # the image stream ran once (to fill the cache), not once per step


def test_the_query_sampler_walks_the_query_schedule_with_gamma(tokenizer, images, monkeypatch):
    """A model with its own query schedule and gamma = sqrt(d): the sampler runs over that schedule's timesteps
    and hands it x0 = gamma * normalize(e0_hat)."""
    import diffdis.pipeline as pipeline_module
    from tests.conftest import micro_config

    cfg = micro_config(
        query_scale="sqrt-d", query_schedule={"num_train_timesteps": 100, "beta_schedule": "squaredcos_cap_v2"}
    )
    pipe = DiffDisPipeline.build(cfg, tokenizer)
    seen = {}
    real_sample = pipeline_module.sample

    def spy(denoise, noise, sampler, steps, *args):
        seen["T"] = sampler.config.num_train_timesteps
        seen["timesteps"] = sampler.timesteps
        seen["x0_norm"] = denoise(noise, torch.tensor(99)).norm(dim=-1)
        return real_sample(denoise, noise, sampler, steps, *args)

    monkeypatch.setattr(pipeline_module, "sample", spy)
    queries = pipe.image_queries(images[:2], num_inference_steps=3, guidance_scale=1.0)
    assert seen["T"] == 100 and int(seen["timesteps"][0]) == 99
    assert torch.allclose(seen["x0_norm"], torch.full((2,), cfg.query_dim**0.5), atol=1e-3)
    assert torch.allclose(queries.norm(dim=-1), torch.ones(2), atol=1e-5)
