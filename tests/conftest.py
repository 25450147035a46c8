"""Shared fixtures: a micro model geometry (seconds to train), a tokenizer, a generated dataset."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from diffdis.config import ModelConfig, TrainConfig, preset  # noqa: E402
from diffdis.data.shapes import make_shapes  # noqa: E402
from diffdis.model.text import train_tokenizer  # noqa: E402


def micro_config(**overrides) -> ModelConfig:
    """The tiny preset's layout at toy width: 16x16 pixels, attention at 8x8 and in the middle block."""
    base = dict(
        image_size=16,
        unet={
            "sample_size": 16,
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
            "block_out_channels": [16, 32],
            "layers_per_block": 1,
            "attention_head_dim": 2,
            "cross_attention_dim": 32,
            "norm_num_groups": 8,
        },
        text_encoder={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "projection_dim": 32,
        },
        query_transformer_layers=2,
        query_transformer_width=32,
        query_transformer_head_dim=16,
    )
    return preset("tiny", **{**base, **overrides})


def save_untrained_micro_model(directory: Path) -> Path:
    """An untrained micro model folder, for tests that need *a* model but not a trained one."""
    from diffdis.pipeline import DiffDisPipeline

    torch.manual_seed(0)
    tokenizer = train_tokenizer(["a red circle", "a blue square", "a photo of a cat", "dog"] * 4, 300, 16)
    DiffDisPipeline.build(micro_config(), tokenizer).save_pretrained(directory)
    return directory


@pytest.fixture
def config() -> ModelConfig:
    return micro_config()


@pytest.fixture(scope="session")
def tokenizer():
    corpus = ["a red circle", "a blue square", "a green triangle on a gray background", "cat", "dog"] * 4
    return train_tokenizer(corpus, vocab_size=300, max_length=16)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes"), 24, seed=0, size=16)


def micro_train_config(data: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(
        data=str(data),
        output_dir=str(out),
        max_steps=4,
        batch_size=8,
        warmup_steps=1,
        checkpointing_steps=2,
        learning_rate=1e-3,
        vocab_size=300,
        seed=0,
    )
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="session")
def trained_model(shapes_dir, tmp_path_factory) -> Path:
    """A micro model folder trained for a few steps (session-wide: many tests only need *a* model)."""
    from diffdis.train.loop import train

    out = tmp_path_factory.mktemp("run")
    return train(micro_train_config(shapes_dir, out), micro_config(), log=lambda m: None)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)
