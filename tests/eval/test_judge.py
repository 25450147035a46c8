"""The judge: shapes and label names after a few steps, determinism, save/load, the shipped weights."""

from __future__ import annotations

import pytest
import torch

from diffdis.data.digits import DIGIT_NAMES
from diffdis.data.world_vocabulary import COLOURS, THINGS
from diffdis.errors import DiffDisError
from diffdis.eval.judge import (
    SHIPPED_DIR,
    JudgeConfig,
    augment,
    judge_accuracy,
    load_judge,
    read_labelled_folder,
    save_judge,
)
from diffdis.train.judge import train_judge

SMALL = JudgeConfig(widths=[8, 16])


@pytest.fixture(scope="module")
def tiny_judge():
    return train_judge(world_images=24, heldout_images=8, digits_limit=8, config=SMALL, epochs=1, batch_size=16)


@pytest.fixture(scope="module")
def world_images(tmp_path_factory):
    from diffdis.data.world import make_world

    return read_labelled_folder(make_world(tmp_path_factory.mktemp("w"), 6, seed=5, split="heldout", style="plain"))


def test_labels_cover_world_things_digits_and_colours():
    config = JudgeConfig()
    assert config.objects == [*THINGS, *DIGIT_NAMES] and len(config.objects) == 24
    assert config.colours == list(COLOURS)


def test_predict_and_features_shapes(tiny_judge, world_images):
    images, rows = world_images
    out = tiny_judge.predict(images)
    assert set(out) == {"object", "colour", "object_confidence", "colour_confidence"}
    assert len(out["object"]) == len(images) and all(o in SMALL.objects for o in out["object"])
    assert all(c in SMALL.colours for c in out["colour"])
    assert all(0.0 < p <= 1.0 for p in out["object_confidence"])
    assert tiny_judge.features(images).shape == (len(images), 16)
    accuracy = judge_accuracy(tiny_judge, images, rows)
    assert set(accuracy) == {"object", "colour"} and 0.0 <= accuracy["object"] <= 1.0


def test_training_is_deterministic_and_leaves_global_rng_alone(tiny_judge, world_images):
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    again = train_judge(world_images=24, heldout_images=8, digits_limit=8, config=SMALL, epochs=1, batch_size=16)
    assert torch.rand(1) == before  # only the generator passed around was used
    images, _ = world_images
    assert torch.equal(again.features(images), tiny_judge.features(images))


def test_save_load_round_trip(tiny_judge, world_images, tmp_path):
    images, _ = world_images
    loaded = load_judge(save_judge(tiny_judge, tmp_path / "judge"))
    assert loaded.config == tiny_judge.config
    assert torch.equal(loaded.features(images), tiny_judge.features(images))
    assert loaded.predict(images) == tiny_judge.predict(images)


def test_missing_judge_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DiffDisError, match="no judge in"):
        load_judge(tmp_path)


def test_augment_keeps_shape_and_range():
    pixels = torch.rand(4, 3, 32, 32) * 2 - 1
    out = augment(pixels, torch.Generator().manual_seed(0))
    assert out.shape == pixels.shape and out.min() >= -1 and out.max() <= 1


@pytest.mark.skipif(not (SHIPPED_DIR / "model.safetensors").is_file(), reason="shipped judge not trained yet")
def test_shipped_judge_loads_and_judges_world_images(world_images):
    judge = load_judge()
    images, rows = world_images
    assert judge.features(images).shape == (len(images), judge.feature_dim)
    assert judge_accuracy(judge, images, rows)["colour"] >= 5 / 6  # a trained judge, not random weights
