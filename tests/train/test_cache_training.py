"""`diffdis train --data CACHE`: a frozen-encoder cache stands in for the VAE and the text encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffdis.data.cache import write_cache
from diffdis.errors import DiffDisError
from diffdis.pretrained import build_pretrained
from diffdis.train.loop import Trainer
from tests.conftest import micro_config, micro_train_config
from tests.tiny_sd import SMALL_NEW, make_tiny_sd


@pytest.fixture(scope="module")
def sd_and_cache(shapes_dir, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cached")
    sd = make_tiny_sd(root / "tiny-sd")
    pipe = build_pretrained(micro_config(**SMALL_NEW), str(sd), "", False, log=lambda m: None)
    return sd, write_cache(pipe, str(shapes_dir), root / "cache", batch_size=8, shard_rows=10, log=lambda m: None)


def _trainer(data: Path, out: Path, sd: Path, **overrides) -> Trainer:
    cfg = micro_train_config(data, out, init_from=str(sd), max_steps=2, checkpointing_steps=2, **overrides)
    return Trainer(cfg, micro_config(**SMALL_NEW), log=lambda m: None)


def test_training_on_the_cache_runs_neither_encoder_and_matches_the_encoders(shapes_dir, sd_and_cache, tmp_path):
    sd, cache = sd_and_cache
    cached = _trainer(cache, tmp_path / "cached", sd)
    calls = {"vae": 0, "text": 0}
    cached.pipe.text_encoder.register_forward_hook(lambda *a: calls.__setitem__("text", calls["text"] + 1))
    encode = cached.pipe.autoencoder.vae.encode
    cached.pipe.autoencoder.vae.encode = lambda *a, **k: (calls.__setitem__("vae", calls["vae"] + 1), encode(*a, **k))[
        1
    ]
    curve_cached: list[float] = []
    cached.run(lambda s, n, logs: curve_cached.append(logs["loss"]))
    assert calls == {"vae": 0, "text": 0}
    assert (tmp_path / "cached" / "model_index.json").is_file()

    curve: list[float] = []
    _trainer(shapes_dir, tmp_path / "encoders", sd).run(lambda s, n, logs: curve.append(logs["loss"]))
    # same rows, same noise, same posterior draws: equal up to c stored in fp16
    assert curve_cached == pytest.approx(curve, rel=2e-3)


def test_a_cache_is_refused_for_other_encoders_and_a_text_encoder_that_trains(sd_and_cache, tmp_path):
    sd, cache = sd_and_cache
    other = make_tiny_sd(tmp_path / "other-sd", seed=1)
    with pytest.raises(DiffDisError, match="made by other encoders"):
        _trainer(cache, tmp_path / "a", other)
    with pytest.raises(DiffDisError, match="frozen text encoder"):
        _trainer(cache, tmp_path / "b", sd, train_text_encoder=True)
    with pytest.raises(DiffDisError, match="frozen-encoder cache"):
        Trainer(micro_train_config(cache, tmp_path / "c"), micro_config(), log=lambda m: None)
