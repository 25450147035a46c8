"""Frozen-encoder cache: what a frozen VAE and a frozen text encoder make of each row, computed once.

When both encoders are frozen (a latent model started from SD weights), running them every step is waste.
`write_cache` reads a source once, in order, and writes for each row the VAE posterior's mean and std
(unscaled, as `latent_dist.mean / .std`: the draw stays at train time), the text condition c and query e,
and the caption, into shards `shard-00000.safetensors`, ... (cache_shards.py); `null.safetensors` holds the
empty caption's c and e, so training needs no text encoder at all. `manifest.json` records the format, the
encoders' fingerprint, shapes and dtypes and the rows per shard. The cache is built in `OUTPUT.tmp-PID` and
renamed when complete: a folder named OUTPUT always holds a whole cache.

`CachedRows` gives random access to the rows; `sample_latents` draws z = scaling_factor * (mean + std * noise)
exactly as `LatentAutoencoder.encode(images, generator)` does for the same CPU generator.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from diffdis import __version__
from diffdis.atomic import write_json_atomic
from diffdis.data.cache_shards import REBUILD, ShardReader, ShardWriter
from diffdis.errors import DiffDisError, UsageError
from diffdis.model.autoencoder import LatentAutoencoder
from diffdis.model.text import tokenize

FORMAT, CACHE_VERSION = "diffdis-encoder-cache", 1
MANIFEST, NULL_FILE = "manifest.json", "null.safetensors"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PIXEL_MODEL = "pixel models need no VAE cache; the cache is for latent models (e.g. --init-from SD_DIR)"
_CONFIG_DROP = ("_name_or_path", "transformers_version", "architectures", "dtype", "torch_dtype", "_commit_hash")
_PARTS = {"vae": "vae differs", "text_encoder": "text encoder differs", "tokenizer": "tokenizer differs"}
_SETTINGS = {"text_pooling": "text pooling", "text_max_length": "caption length", "image_size": "image size"}


# ---- which encoders ---------------------------------------------------------------------------------------
def _hash_module(module: torch.nn.Module, config: dict[str, Any]) -> str:
    """sha256 over the config and every tensor (name, shape, bytes) in name order. Floating tensors are hashed
    as fp32, so the same weights loaded in fp16 or fp32 hash alike; the device does not matter."""
    plain = {k: v for k, v in dict(config).items() if not k.startswith("_") and k not in _CONFIG_DROP}
    h = hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode())
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach()
        t = (t.float() if t.is_floating_point() else t).cpu().contiguous().reshape(-1)
        h.update(f"\n{name}|{t.dtype}|{tuple(tensor.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy())  # one tensor at a time: memory stays at the largest tensor
    return h.hexdigest()


def _hash_tokenizer(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # truncation / padding are set by each call, not part of the vocabulary
        spec = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
    else:
        spec = {"class": type(tokenizer).__name__, "vocab": sorted(tokenizer.get_vocab().items())}
    spec["special_ids"] = [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id]
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def encoder_fingerprint(pipe) -> dict[str, Any]:
    """What identifies the encoders a cache depends on: the VAE (weights + config, scaling factor included),
    the text encoder (weights + config), the tokenizer, the pooling, the caption length and the image size.
    About 1.6 s for SD 1.5's VAE + CLIP text encoder on one core."""
    if not isinstance(pipe.autoencoder, LatentAutoencoder):
        raise UsageError(PIXEL_MODEL)
    text, vae = pipe.text_encoder, pipe.autoencoder.vae
    return {
        "vae": _hash_module(vae, vae.config),
        "text_encoder": _hash_module(text.model, text.model.config.to_dict()),
        "tokenizer": _hash_tokenizer(pipe.tokenizer),
        "text_pooling": text.pooling,
        "text_max_length": text.max_length,
        "image_size": int(pipe.config.image_size),
    }


# ---- writing ----------------------------------------------------------------------------------------------
def check_output_folder(output_dir: str | Path) -> None:
    """Refuse a folder that holds anything: a cache is written whole into a new or empty folder."""
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        what = "a cache" if is_cache(output_dir) else "files"
        raise UsageError(f"{output_dir} already holds {what}; choose a new --output-dir")


def _check_request(
    pipe, output_dir: Path, batch_size: int, shard_rows: int, condition_dtype: str, latent_dtype: str
) -> None:
    if not isinstance(pipe.autoencoder, LatentAutoencoder):
        raise UsageError(PIXEL_MODEL)
    if pipe.config.text_encoder_trainable:
        raise UsageError(
            "the cache needs a frozen text encoder; start from --init-from/--text-encoder without --train-text-encoder"
        )
    check_output_folder(output_dir)
    if batch_size < 1 or shard_rows < 1:
        raise UsageError(f"--batch-size and --shard-rows must be at least 1, got {batch_size} and {shard_rows}")
    for name, value, allowed in (("condition", condition_dtype, DTYPES), ("latent", latent_dtype, ("fp32", "fp16"))):
        if value not in allowed:
            raise UsageError(f"the {name} dtype must be one of {', '.join(allowed)}, got {value!r}")


def _cast(tensor: torch.Tensor, dtype: torch.dtype, what: str) -> torch.Tensor:
    out = tensor.detach().to("cpu", dtype)
    if not torch.isfinite(out).all():
        raise DiffDisError(f"the {what} overflows {dtype}; store it wider (fp32)")
    return out


@torch.no_grad()
def _encode(pipe, pixels: torch.Tensor, texts: list[str], device, dtypes: dict) -> dict[str, torch.Tensor]:
    vae, text = pipe.autoencoder.vae, pipe.text_encoder
    dist = vae.encode(pixels.to(device, vae.dtype)).latent_dist  # the call LatentAutoencoder.encode makes
    condition, query = text(tokenize(pipe.tokenizer, texts, text.max_length).to(device))  # (b, L, d), (b, d)
    return {
        "latent_mean": _cast(dist.mean, dtypes["latent"], "latent mean"),  # (b, C, h, w), unscaled
        "latent_std": _cast(dist.std, dtypes["latent"], "latent std"),
        "query": _cast(query, torch.float32, "text query"),
        "condition": _cast(condition, dtypes["condition"], "text condition"),
    }


def _write_rows(pipe, batches: Iterable[dict], writer: ShardWriter, device, dtypes, log) -> tuple[int, int]:
    """Encode and append every batch; returns (bad rows, rows seen) as the loader counted them."""
    size, bad, seen = int(pipe.config.image_size), 0, 0
    for batch in batches:
        pixels, texts = batch["pixels"], [str(t) for t in batch["text"]]
        bad, seen = bad + int(batch.get("bad", 0)), seen + int(batch.get("seen", len(texts)))  # counts per batch
        if not texts:
            continue
        if tuple(pixels.shape[1:]) != (3, size, size):
            shape = tuple(pixels.shape[1:])
            raise DiffDisError(f"the loader gave images of shape {shape}; the model needs (3, {size}, {size})")
        done = len(writer.shards)
        writer.add(_encode(pipe, pixels, texts, device, dtypes), texts)
        if len(writer.shards) > done:
            log(f"cached {writer.rows} rows in {len(writer.shards)} shards")
    writer.close()
    return bad, seen


def write_cache(
    pipe,
    data: str,
    output_dir: str | Path,
    *,
    batch_size: int = 64,
    shard_rows: int = 10_000,
    num_workers: int = 0,
    image_column: str = "image",
    caption_column: str = "text",
    max_bad_fraction: float = 0.01,
    device: str | torch.device | None = None,
    condition_dtype: str = "fp16",
    latent_dtype: str = "fp32",
    encoders: str = "",
    log: Callable[[str], None] = print,
) -> Path:
    """Encode every row of `data` once with `pipe`'s frozen encoders (moved to `device`; default: where the VAE
    is) and write a cache to `output_dir`. `encoders` says where they came from (e.g. "--init-from SD_DIR")."""
    # One pass, one function: the shard writer, the manifest and the rename into place share the same state.
    from diffdis.data import loader  # streams the source once, in order, decoding on the workers

    output_dir = Path(output_dir)
    _check_request(pipe, output_dir, batch_size, shard_rows, condition_dtype, latent_dtype)
    fingerprint = encoder_fingerprint(pipe)
    device = torch.device(device) if device is not None else next(pipe.autoencoder.vae.parameters()).device
    pipe.autoencoder.to(device)
    pipe.text_encoder.to(device)
    for stale in output_dir.parent.glob(f"{output_dir.name}.tmp-*"):
        log(f"note: {stale} is left from an interrupted cache write; delete it to free its space")
    tmp = output_dir.parent / f"{output_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        writer = ShardWriter(tmp, shard_rows)
        batches = loader.one_pass_batches(
            data,
            image_size=int(pipe.config.image_size),
            batch_size=batch_size,
            num_workers=num_workers,
            image_column=image_column,
            caption_column=caption_column,
            max_bad_fraction=max_bad_fraction,
            log=log,
        )
        dtypes = {"condition": DTYPES[condition_dtype], "latent": DTYPES[latent_dtype]}
        bad, seen = _write_rows(pipe, batches, writer, device, dtypes, log)
        if writer.rows == 0:
            raise DiffDisError(f"{data} gave no usable rows; nothing to cache")
        with torch.no_grad():
            null = pipe.text_encoder(tokenize(pipe.tokenizer, [""], pipe.text_encoder.max_length).to(device))
        # bytes written by Python, so the file takes the umask's permissions like the shards (save_file: 0600)
        (tmp / NULL_FILE).write_bytes(save({"condition": null[0].float().cpu(), "query": null[1].float().cpu()}))
        shapes = {name: list(shape) for name, (_, shape) in writer.row_shapes.items()}
        manifest = {
            "format": FORMAT,
            "format_version": CACHE_VERSION,
            "diffdis_version": __version__,
            "fingerprint": fingerprint,
            "encoders": encoders,
            "source": data,
            "image_column": image_column,
            "caption_column": caption_column,
            "rows": writer.rows,
            "bad_rows": bad,
            "seen_rows": seen,
            "shard_rows": shard_rows,
            "shards": writer.shards,
            "latent": {
                "shape": shapes["latent_mean"],
                "dtype": latent_dtype,
                "scaled": False,
                "scaling_factor": pipe.autoencoder.scaling_factor,
            },
            "condition": {"shape": shapes["condition"], "dtype": condition_dtype},
            "query": {"shape": shapes["query"], "dtype": "fp32"},
            "null": NULL_FILE,
        }
        write_json_atomic(tmp / MANIFEST, manifest, indent=2)
        # The folder is renamed by hand, not with atomic_path: its OUTPUT.tmp-PID name is how a later run
        # finds what an interrupted one left (above). It replaces an empty output_dir (checked above).
        os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"cached {writer.rows} rows ({bad} bad rows skipped) in {len(writer.shards)} shards to {output_dir}")
    return output_dir


# ---- reading ----------------------------------------------------------------------------------------------
def is_cache(path: str | Path) -> bool:
    """A folder with a cache manifest (whether it is whole and fits a model is `check_cache`'s question)."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not is_cache(path):
        raise DiffDisError(f"{path} is not a diffdis encoder cache (no {MANIFEST}); write one with diffdis data cache")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DiffDisError(f"{path}/{MANIFEST} is corrupt ({str(err).splitlines()[0]}); {REBUILD}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DiffDisError(f"{path}/{MANIFEST} is not a diffdis encoder cache manifest; {REBUILD}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > CACHE_VERSION:
        raise DiffDisError(
            f"{path} was written by a newer diffdis (cache format {version}, this one reads "
            f"{CACHE_VERSION}); upgrade diffdis"
        )
    missing = [
        k for k in ("fingerprint", "rows", "shards", "latent", "condition", "query", "null") if k not in manifest
    ]
    if missing:
        raise DiffDisError(f"{path}/{MANIFEST} is corrupt (no {missing[0]}); {REBUILD}")
    return manifest


def check_cache(path: str | Path, pipe) -> dict[str, Any]:
    """The manifest of the cache at `path`, or one line saying why `pipe` cannot train on it."""
    manifest = read_manifest(path)
    made, now = manifest["fingerprint"], encoder_fingerprint(pipe)
    differences = [_PARTS[k] for k in _PARTS if made.get(k) != now[k]]
    differences += [f"{_SETTINGS[k]} {made.get(k)} vs {now[k]}" for k in _SETTINGS if made.get(k) != now[k]]
    if differences:
        made_by = f" ({manifest['encoders']})" if manifest.get("encoders") else ""
        raise DiffDisError(
            f"{path} was made by other encoders ({', '.join(differences)}); rebuild it with diffdis data cache "
            f"--model/--init-from of this model, or train with the encoders that made it{made_by}"
        )
    return manifest


class CachedRows:
    """Random access to a cache's rows. Shard files are opened lazily in each process (at most `max_open` at a
    time), so DataLoader workers forked or spawned from the main process open their own."""

    def __init__(self, path: str | Path, max_open: int = 64) -> None:
        self.path, self.max_open = Path(path), max_open
        self.manifest = m = read_manifest(self.path)
        try:
            latent = (tuple(m["latent"]["shape"]), DTYPES[m["latent"]["dtype"]])
            condition = (tuple(m["condition"]["shape"]), DTYPES[m["condition"]["dtype"]])
            self.fields = {
                "latent_mean": latent,
                "latent_std": latent,
                "query": (tuple(m["query"]["shape"]), torch.float32),
                "condition": condition,
            }
            self.files = [self.path / shard["file"] for shard in m["shards"]]
            self.starts = [0]
            for shard in m["shards"]:
                self.starts.append(self.starts[-1] + int(shard["rows"]))
        except (KeyError, TypeError, ValueError) as err:
            raise DiffDisError(f"{self.path}/{MANIFEST} is corrupt ({type(err).__name__}: {err}); {REBUILD}") from err
        for file in [*self.files, self.path / m["null"]]:
            if not file.is_file():
                raise DiffDisError(f"{self.path} is incomplete: {file.name} is missing; {REBUILD}")
        self._open: dict[int, ShardReader] = {}  # least recently used first
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self.starts[-1]

    @property
    def scaling_factor(self) -> float:
        return float(self.manifest["latent"]["scaling_factor"])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": {}}

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            for shard in self._open.values():
                shard.close()

    def _shard(self, k: int) -> ShardReader:
        if self._pid != os.getpid():  # a forked worker: open its own descriptors
            self._open, self._pid = {}, os.getpid()
        shard = self._open.pop(k, None) or ShardReader(self.files[k])
        self._open[k] = shard
        if len(self._open) > self.max_open:
            self._open.pop(next(iter(self._open))).close()
        return shard

    def _runs(self, rows: list[int]) -> list[tuple[int, int, int]]:
        """Sorted distinct rows as (shard, first, end) runs of consecutive rows inside one shard."""
        runs: list[tuple[int, int, int]] = []
        for row in rows:
            shard = bisect.bisect_right(self.starts, row) - 1
            local = row - self.starts[shard]
            if runs and runs[-1][0] == shard and runs[-1][2] == local:
                runs[-1] = (shard, runs[-1][1], local + 1)
            else:
                runs.append((shard, local, local + 1))
        return runs

    def batch(self, indices: list[int]) -> dict[str, Any]:
        """{"latent_mean", "latent_std": (b, C, h, w), "condition": (b, L, d), "query": (b, d), all float32;
        "text": b captions} for the rows `indices` (any order, repeats allowed)."""
        outside = [i for i in indices if not 0 <= i < len(self)]
        if outside:
            raise IndexError(f"row {outside[0]} is outside the cache's {len(self)} rows")
        rows = sorted(set(indices))
        runs = self._runs(rows)
        stored: dict[str, torch.Tensor] = {}
        for name, (shape, dtype) in self.fields.items():  # each run read straight into its place
            stored[name] = torch.empty((len(rows), *shape), dtype=dtype)
            at = 0
            for shard, first, end in runs:
                self._shard(shard).read(name, first, end, stored[name][at : at + end - first])
                at += end - first
        texts = [text for shard, first, end in runs for text in self._shard(shard).texts(first, end)]
        where = {row: i for i, row in enumerate(rows)}
        take = torch.tensor([where[i] for i in indices], dtype=torch.long)
        out: dict[str, Any] = {name: tensor[take].float() for name, tensor in stored.items()}
        out["text"] = [texts[i] for i in take.tolist()]
        return out

    def null_condition(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(c (1, L, d), e (1, d)) of the empty caption, float32: the condition dropped in CFG training."""
        null = load_file(str(self.path / self.manifest["null"]))
        return null["condition"], null["query"]


def sample_latents(
    mean: torch.Tensor, std: torch.Tensor, scaling_factor: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = scaling_factor * (mean + std * noise), noise drawn as diffusers' DiagonalGaussianDistribution.sample
    draws it (randn of the mean's shape and dtype on the generator's device, then moved): the same generator in
    the same state gives the same z as LatentAutoencoder.encode. Without a generator: the mode, as encode."""
    if generator is None:
        return mean * scaling_factor
    noise = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=mean.dtype).to(mean.device)
    return (mean + std * noise) * scaling_factor
