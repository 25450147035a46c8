"""The frozen-encoder cache: rows hold what the encoders make, z is drawn as training draws it, the cache
knows which encoders made it, and a failed write leaves nothing behind."""

from __future__ import annotations

import copy
import itertools
import json
import pickle
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from diffdis.config import preset
from diffdis.data.cache import CachedRows, check_cache, encoder_fingerprint, is_cache, sample_latents, write_cache
from diffdis.data.transforms import image_to_tensor
from diffdis.errors import DiffDisError
from diffdis.model.autoencoder import IdentityAutoencoder
from diffdis.pretrained import build_pretrained, init_from_sd
from tests.tiny_sd import make_tiny_sd

runner = CliRunner()


def _read_rows(folder: Path) -> tuple[torch.Tensor, list[str]]:
    from PIL import Image

    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines() if line.strip()]
    pixels = torch.stack([image_to_tensor(Image.open(folder / r["file_name"]), 16) for r in rows])
    return pixels, [r["text"] for r in rows]


def _stand_in_loader() -> types.ModuleType:
    """diffdis.data.loader's one_pass_batches for an image folder, used only while the real one is missing."""
    module = types.ModuleType("diffdis.data.loader")

    def one_pass_batches(data, *, image_size, batch_size, **options):
        pixels, texts = _read_rows(Path(data))
        for i in range(0, len(texts), batch_size):
            chunk = texts[i : i + batch_size]
            yield {"pixels": pixels[i : i + batch_size], "text": chunk, "bad": 0, "seen": len(chunk)}

    module.one_pass_batches = one_pass_batches
    return module


@pytest.fixture(scope="module", autouse=True)
def loader():
    with pytest.MonkeyPatch.context() as patch:
        try:
            from diffdis.data import loader as module
        except ImportError:
            module = _stand_in_loader()
            patch.setitem(sys.modules, "diffdis.data.loader", module)
        yield module


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory) -> Path:
    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def sd_pipe(sd_dir):
    return build_pretrained(preset("sd15"), str(sd_dir), "", False, log=lambda m: None)


@pytest.fixture(scope="module")
def cache_dir(sd_pipe, shapes_dir, tmp_path_factory) -> Path:
    # 24 rows in batches of 5 and shards of 7: batches straddle shard ends, the last shard is short
    out = tmp_path_factory.mktemp("caches") / "cache"
    return write_cache(sd_pipe, str(shapes_dir), out, batch_size=5, shard_rows=7, log=lambda m: None)


def test_cache_rows_are_the_encoders_outputs(sd_pipe, cache_dir, shapes_dir):
    rows = CachedRows(cache_dir)
    manifest = rows.manifest
    assert is_cache(cache_dir) and len(rows) == 24 == manifest["rows"]
    assert [s["rows"] for s in manifest["shards"]] == [7, 7, 7, 3] and manifest["bad_rows"] == 0
    shards = [f"shard-{i:05d}.safetensors" for i in range(4)]
    assert sorted(p.name for p in cache_dir.iterdir()) == ["manifest.json", "null.safetensors", *shards]
    pixels, texts = _read_rows(shapes_dir)
    picks = [20, 3, 0, 6, 7, 3]  # any order, across shards, with a repeat
    batch = rows.batch(picks)
    assert batch["text"] == [texts[i] for i in picks]
    assert batch["latent_mean"].shape == batch["latent_std"].shape == (6, 4, 8, 8)
    assert batch["condition"].shape == (6, 16, 32) and batch["query"].shape == (6, 32)
    assert all(v.dtype == torch.float32 for k, v in batch.items() if k != "text")
    with torch.no_grad():
        dist = sd_pipe.autoencoder.vae.encode(pixels[picks]).latent_dist
        condition, query = sd_pipe.encode_text([texts[i] for i in picks])
    torch.testing.assert_close(batch["latent_mean"], dist.mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batch["latent_std"], dist.std, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batch["query"], query, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batch["condition"], condition, rtol=1e-3, atol=1e-3)  # stored fp16
    again = pickle.loads(pickle.dumps(rows))  # a spawned DataLoader worker gets a copy without open files
    assert torch.equal(again.batch([6])["condition"], batch["condition"][3:4])
    null_condition, null_query = rows.null_condition()
    c, e = sd_pipe.encode_text([""])
    assert torch.equal(null_condition, c) and torch.equal(null_query, e)


def test_shards_are_plain_safetensors_and_narrower_dtypes_read_back(sd_pipe, cache_dir, shapes_dir, tmp_path):
    from safetensors.torch import load_file

    shard, rows = load_file(str(cache_dir / "shard-00001.safetensors")), CachedRows(cache_dir)  # rows 7..13
    batch = rows.batch(list(range(7, 14)))
    assert shard["condition"].dtype == torch.float16 and torch.equal(shard["condition"].float(), batch["condition"])
    assert torch.equal(shard["latent_mean"], batch["latent_mean"]) and torch.equal(shard["query"], batch["query"])
    offsets, raw = shard["text_offsets"].tolist(), shard["text_bytes"].numpy().tobytes()
    assert [raw[a:b].decode() for a, b in itertools.pairwise(offsets)] == batch["text"]
    (tmp_path / "narrow").mkdir()  # an empty folder is fine
    narrow = write_cache(
        sd_pipe,
        str(shapes_dir),
        tmp_path / "narrow",
        batch_size=12,
        condition_dtype="bf16",
        latent_dtype="fp16",
        log=lambda m: None,
    )
    small = CachedRows(narrow)
    assert (small.manifest["condition"]["dtype"], small.manifest["latent"]["dtype"]) == ("bf16", "fp16")
    picks = [0, 23, 5]
    for key, value in small.batch(picks).items():
        if key != "text":
            torch.testing.assert_close(value, rows.batch(picks)[key], rtol=1e-2, atol=1e-2)
    broken = tmp_path / "broken"
    shutil.copytree(cache_dir, broken)
    with open(broken / "shard-00002.safetensors", "r+b") as f:
        f.truncate(f.seek(0, 2) - 100)
    with pytest.raises(DiffDisError, match="truncated"):
        CachedRows(broken).batch([15])


def test_sample_latents_draws_what_the_autoencoder_draws(sd_pipe, cache_dir, shapes_dir):
    pixels, _ = _read_rows(shapes_dir)
    expected = sd_pipe.autoencoder.encode(pixels[:5], torch.Generator().manual_seed(7))
    with torch.no_grad():  # the same posterior, the same generator state: bit for bit
        dist = sd_pipe.autoencoder.vae.encode(pixels[:5]).latent_dist
    scale = sd_pipe.autoencoder.scaling_factor
    assert torch.equal(sample_latents(dist.mean, dist.std, scale, torch.Generator().manual_seed(7)), expected)
    rows = CachedRows(cache_dir)  # from the cache (encoded in other batches): within fp32 rounding
    batch = rows.batch(list(range(5)))
    z = sample_latents(batch["latent_mean"], batch["latent_std"], rows.scaling_factor, torch.Generator().manual_seed(7))
    torch.testing.assert_close(z, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        sample_latents(batch["latent_mean"], batch["latent_std"], scale), sd_pipe.autoencoder.encode(pixels[:5])
    )


def test_fingerprint_survives_a_folder_round_trip_and_sees_each_part(sd_pipe, tmp_path):
    fingerprint = encoder_fingerprint(sd_pipe)
    sd_pipe.save_pretrained(tmp_path / "model")  # training saves, a later run loads: the same encoders
    from diffdis.pipeline import DiffDisPipeline

    assert encoder_fingerprint(DiffDisPipeline.from_pretrained(tmp_path / "model")) == fingerprint
    other = copy.deepcopy(sd_pipe)
    with torch.no_grad():
        other.autoencoder.vae.decoder.conv_out.bias[0] += 1e-3  # one weight of the decoder
    changed = encoder_fingerprint(other)
    assert changed["vae"] != fingerprint["vae"] and {k: v for k, v in changed.items() if k != "vae"} == {
        k: v for k, v in fingerprint.items() if k != "vae"
    }
    other = copy.deepcopy(sd_pipe)
    other.tokenizer.add_tokens(["zebra"])
    changed = encoder_fingerprint(other)
    assert changed["tokenizer"] != fingerprint["tokenizer"] and changed["text_encoder"] == fingerprint["text_encoder"]


def test_check_cache_refuses_other_encoders_in_one_line(sd_pipe, cache_dir, tmp_path):
    assert check_cache(cache_dir, sd_pipe)["rows"] == 24
    other, _ = init_from_sd(make_tiny_sd(tmp_path / "other-sd", seed=1), preset("sd15"))
    with pytest.raises(DiffDisError) as err:
        check_cache(cache_dir, other)
    message = str(err.value)
    assert "\n" not in message and "vae differs, text encoder differs" in message and "tokenizer" not in message
    assert "diffdis data cache" in message


@pytest.mark.parametrize(
    "manifest, words",
    [
        (None, "not a diffdis encoder cache"),
        ("{not json", "corrupt"),
        ({"format": "diffdis-encoder-cache", "format_version": 99}, "newer diffdis"),
    ],
)
def test_a_missing_corrupt_or_newer_manifest_is_one_line(sd_pipe, cache_dir, tmp_path, manifest, words):
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in cache_dir.iterdir():
        if item.name != "manifest.json":
            (broken / item.name).symlink_to(item)
    if manifest is not None:
        (broken / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    for call in (lambda: check_cache(broken, sd_pipe), lambda: CachedRows(broken)):
        with pytest.raises(DiffDisError, match=words) as err:
            call()
        assert "\n" not in str(err.value)


def test_a_write_that_fails_midway_leaves_nothing(sd_pipe, shapes_dir, loader, tmp_path, monkeypatch):
    real = loader.one_pass_batches

    def dies_after_two_batches(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 2:
                raise RuntimeError("killed")
            yield batch

    monkeypatch.setattr(loader, "one_pass_batches", dies_after_two_batches)
    with pytest.raises(RuntimeError, match="killed"):
        write_cache(sd_pipe, str(shapes_dir), tmp_path / "cache", batch_size=5, shard_rows=7, log=lambda m: None)
    assert list(tmp_path.iterdir()) == []


def test_refusals_before_any_work(sd_pipe, cache_dir, shapes_dir, tmp_path):
    with pytest.raises(DiffDisError, match="already holds a cache"):
        write_cache(sd_pipe, str(shapes_dir), cache_dir, log=lambda m: None)
    trainable = types.SimpleNamespace(
        autoencoder=sd_pipe.autoencoder, config=types.SimpleNamespace(text_encoder_trainable=True)
    )
    with pytest.raises(DiffDisError, match="needs a frozen text encoder"):
        write_cache(trainable, str(shapes_dir), tmp_path / "c", log=lambda m: None)
    pixels = types.SimpleNamespace(
        autoencoder=IdentityAutoencoder(), config=types.SimpleNamespace(text_encoder_trainable=False)
    )
    with pytest.raises(DiffDisError, match="pixel models need no VAE cache"):
        write_cache(pixels, str(shapes_dir), tmp_path / "c", log=lambda m: None)
    assert not (tmp_path / "c").exists()


def test_cli_writes_a_cache_and_refuses_bad_requests(sd_dir, shapes_dir, tmp_path):
    from diffdis_cli.main import app
    from tests.conftest import save_untrained_micro_model

    out = tmp_path / "cache"
    args = [
        "data",
        "cache",
        "--data",
        str(shapes_dir),
        "--output-dir",
        str(out),
        "--init-from",
        str(sd_dir),
        "--batch-size",
        "8",
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 24 and summary["shards"] == 1 and is_cache(out)
    trainable, _ = init_from_sd(sd_dir, preset("sd15"), train_text_encoder=True)
    trainable.save_pretrained(tmp_path / "trainable")
    cases = [
        (args, "already holds a cache"),
        (
            [
                "data",
                "cache",
                "--data",
                str(shapes_dir),
                "--output-dir",
                str(tmp_path / "c2"),
                "--model",
                str(tmp_path / "trainable"),
            ],
            "needs a frozen text encoder",
        ),
        (
            [
                "data",
                "cache",
                "--data",
                str(shapes_dir),
                "--output-dir",
                str(tmp_path / "c3"),
                "--model",
                str(save_untrained_micro_model(tmp_path / "pixel")),
            ],
            "pixel models need no VAE cache",
        ),
        (
            ["data", "cache", "--data", str(shapes_dir), "--output-dir", str(tmp_path / "c4")],
            "--model DIR or --init-from",
        ),
        ([*args[:5], str(tmp_path / "c5"), "--init-from", str(sd_dir), "--device", "bogus"], "--device"),
    ]
    for argv, words in cases:
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, (argv, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], result.output
    assert not any((tmp_path / name).exists() for name in ("c2", "c3", "c4", "c5"))
