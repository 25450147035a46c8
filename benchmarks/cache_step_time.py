"""Seconds per training step with the frozen-encoder cache (`--data CACHE`) and without it (`--data IMAGES`).

    python benchmarks/cache_step_time.py                      # tiny at batch 8, then sd15-like at 256 px, batch 1
    python benchmarks/cache_step_time.py --geometries tiny --steps 50
For each geometry: a random SD v1 folder (tests/tiny_sd.py; for sd15-like its UNet, VAE and text encoder are
replaced by SD 1.5's geometry: the sd15 preset's configs, CLIP ViT-L/14 text tower, at --sd15-pixels), a shapes
dataset drawn at that pixel size, and one `Trainer` started from the folder (`--init-from`, frozen encoders,
--mixed-precision no, CPU). `write_cache` encodes the images once with the trainer's own encoders; then the
trainer alternates between the image batches (the VAE and the text encoder run every step) and the cache's
batches (neither runs), as `diffdis train --data IMAGES` and `--data CACHE` would build them, in the order
A B B A ... so both share the CPU's state and the model grows alike. A step is what `Trainer.run` times: the
batch fetch, `train_step` and the optimiser update. After --warmup steps of each (the first allocates AdamW's
state) the median of --steps steps, and of `Trainer._inputs` alone (the encoders, or the posterior draw from
the cache): the step ratio is noisy where other jobs share the CPU, the encoders' seconds much less so.
One JSON line per geometry, then one line of ratios (images / cache).

One trainer, not two: an sd15 trainer peaks at ~17 GiB (986M trained parameters with AdamW state), two do
not fit a 24 GiB machine. The sd15-like default, 256 px at batch 1, is what a 2-core machine steps in about a
minute: at batch 2 the UNet's forward alone took 17 s and the VAE encode 11 s, a step about two minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/tiny_sd.py: the random SD folder of the tests

from diffdis.config import TrainConfig, preset
from diffdis.data.cache import CachedRows, check_cache, write_cache
from diffdis.data.loader import cached_training_data
from diffdis.data.shapes import make_shapes
from diffdis.train.loop import Trainer
from tests.tiny_sd import SMALL_NEW, make_tiny_sd


@dataclass
class Geometry:
    name: str
    pixels: int  # image side; the latents are pixels / 8
    batch_size: int
    rows: int  # images in the dataset (and the cache)
    threads: int  # torch CPU threads


def make_sd_folder(geometry: Geometry, directory: Path) -> Path:
    """tests/tiny_sd.py's random SD folder; for sd15-like its unet/, vae/ and text_encoder/ are overwritten with
    random models of SD 1.5's geometry (tokenizer, scheduler and model_index.json stay: they fit any size)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    make_tiny_sd(directory)
    if geometry.name == "tiny":
        return directory
    sd15 = preset("sd15")
    tokenizer = CLIPTokenizer.from_pretrained(str(directory / "tokenizer"))
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(0)
    UNet2DConditionModel(**{**sd15.unet, "sample_size": geometry.pixels // 8}).save_pretrained(directory / "unet")
    AutoencoderKL(**{**sd15.vae, "sample_size": geometry.pixels}).save_pretrained(directory / "vae")
    CLIPTextModel(CLIPTextConfig(**sd15.text_encoder, **ids)).save_pretrained(directory / "text_encoder")
    return directory


def make_trainer(geometry: Geometry, sd: Path, images: Path, out: Path) -> Trainer:
    """`diffdis train --data IMAGES --init-from SD --mixed-precision no --device cpu`; the new modules (query
    transformer, predictor) at the sd15 preset's size for sd15-like, at the tests' toy size for tiny."""
    new_modules = preset("sd15") if geometry.name != "tiny" else preset("tiny", **SMALL_NEW)
    cfg = TrainConfig(
        data=str(images),
        output_dir=str(out),
        init_from=str(sd),
        batch_size=geometry.batch_size,
        max_steps=1000,
        warmup_steps=0,
        checkpointing_steps=1000,
        mixed_precision="no",
        device="cpu",
    )
    return Trainer(cfg, new_modules, log=lambda message: None)


def cached_data(trainer: Trainer, cache: Path):
    """The batches `Trainer` builds for `--data CACHE` (Trainer.build / _open_data), for this trainer's model."""
    check_cache(cache, trainer.pipe)  # the encoders that made the cache are this model's
    rows = CachedRows(cache)
    data = cached_training_data(rows, batch_size=trainer.cfg.batch_size, seed=trainer.cfg.seed)
    return rows, data


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)  # stdout holds only the JSON lines


def timed(function, seconds: list[float]):
    """`function`, appending the seconds of each call to `seconds`."""

    def call(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    return call


def time_steps(trainer: Trainer, sources: dict, warmup: int, steps: int) -> dict[str, dict[str, list[float]]]:
    """Alternate the sources step by step (A B B A ...). Per source and step after the warm-up: the seconds of
    the step, of its batch fetch, and of `Trainer._inputs` (the part the cache replaces: VAE encode + text
    encoder, or the posterior draw from the stored mean and std); the loss of every step (finite, or the
    comparison means nothing); the 1-minute load average after each step."""
    streams = {name: iter(data) for name, (_, data) in sources.items()}
    out = {name: {"step_s": [], "fetch_s": [], "inputs_s": [], "loss": [], "load": []} for name in sources}
    inputs_s: list[float] = []
    trainer._inputs = timed(trainer._inputs, inputs_s)  # this instance only; train_step calls it once a step
    for step in range(warmup + steps):
        for name in list(sources) if step % 2 == 0 else list(reversed(sources)):
            trainer.cache = sources[name][0]  # None: encode the images (Trainer._inputs); rows: read the cache
            started = time.perf_counter()
            batch = next(streams[name])
            fetched = time.perf_counter()
            logs = trainer.train_step(batch, step)
            trainer.backend.step()
            seconds = time.perf_counter() - started
            progress(f"step {step} {name}: {seconds:.2f} s (inputs {inputs_s[-1]:.2f} s)")
            record = out[name]
            if step >= warmup:
                record["step_s"].append(seconds)
                record["fetch_s"].append(fetched - started)
                record["inputs_s"].append(inputs_s[-1])
            record["loss"].append(logs["loss"])
            record["load"].append(os.getloadavg()[0])
    return out


def summary(times: dict[str, dict[str, list[float]]]) -> dict:
    """Medians per source, the ratio images / cache, and what the encoders cost inside the image steps."""
    median = {
        name: {k: statistics.median(v) for k, v in t.items() if k in ("step_s", "fetch_s", "inputs_s")}
        for name, t in times.items()
    }
    images, cache = median["images"], median["cache"]
    load = [x for t in times.values() for x in t["load"]]
    return {
        "step_s_images": round(images["step_s"], 3),
        "step_s_cache": round(cache["step_s"], 3),
        "step_time_ratio_images_over_cache": round(images["step_s"] / cache["step_s"], 3),
        "inputs_s_images": round(images["inputs_s"], 3),
        "inputs_s_cache": round(cache["inputs_s"], 4),
        "fetch_s_images": round(images["fetch_s"], 4),
        "fetch_s_cache": round(cache["fetch_s"], 4),
        "all_step_s_images": [round(s, 2) for s in times["images"]["step_s"]],
        "all_step_s_cache": [round(s, 2) for s in times["cache"]["step_s"]],
        "all_inputs_s_images": [round(s, 3) for s in times["images"]["inputs_s"]],
        "losses_finite": bool(torch.isfinite(torch.tensor([x for t in times.values() for x in t["loss"]])).all()),
        "loadavg_1m_min_max": [round(min(load), 2), round(max(load), 2)],
    }


def measure(geometry: Geometry, root: Path, warmup: int, steps: int) -> dict:
    torch.set_num_threads(geometry.threads)
    started = time.perf_counter()
    sd = make_sd_folder(geometry, root / "sd")
    images = make_shapes(root / "images", geometry.rows, seed=0, size=geometry.pixels)
    progress(f"{geometry.name}: SD folder and {geometry.rows} images in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    trainer = make_trainer(geometry, sd, images, root / "run")
    progress(f"{geometry.name}: trainer in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    cache = write_cache(trainer.pipe, str(images), root / "cache", batch_size=geometry.batch_size, log=lambda m: None)
    cache_write_s = time.perf_counter() - started
    progress(f"{geometry.name}: cache of {geometry.rows} rows in {cache_write_s:.0f} s")
    rows, cached = cached_data(trainer, cache)
    times = time_steps(trainer, {"images": (None, trainer.data), "cache": (rows, cached)}, warmup, steps)
    config = trainer.pipe.config
    return {
        "geometry": geometry.name,
        "pixels": geometry.pixels,
        "latents": f"{config.latent_size}x{config.latent_size}x{config.latent_channels}",
        "batch_size": geometry.batch_size,
        "trained_params_m": round(sum(p.numel() for p in trainer.params) / 1e6, 1),
        "steps_timed": steps,
        "warmup_steps": warmup,
        "threads": torch.get_num_threads(),
        **summary(times),
        "cache_rows": len(rows),
        "cache_write_s": round(cache_write_s, 2),
        "cache_mib": round(sum(f.stat().st_size for f in cache.iterdir()) / 2**20, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--geometries", default="tiny,sd15-like", help="comma-separated: tiny, sd15-like")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per source (default: tiny 20, sd15-like 4)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per source first")
    parser.add_argument(
        "--sd15-pixels", type=int, default=256, help="sd15-like image side (a multiple of 64); SD's own is 512"
    )
    parser.add_argument("--sd15-batch-size", type=int, default=1)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads for every geometry (default: 1 for tiny, whose kernels are too small to split and "
        "wait on busy cores; torch's default for sd15-like)",
    )
    parser.add_argument(
        "--work-dir", default=None, help="where the SD folders, images and caches go (default: a temporary folder)"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sd15 = (args.sd15_pixels, args.sd15_batch_size, 4 * args.sd15_batch_size, args.threads or torch.get_num_threads())
    geometries = {"tiny": Geometry("tiny", 16, 8, 64, args.threads or 1), "sd15-like": Geometry("sd15-like", *sd15)}
    names = [name.strip() for name in args.geometries.split(",") if name.strip()]
    unknown = [name for name in names if name not in geometries]
    if unknown:
        sys.exit(f"unknown geometry {unknown[0]!r}; choose from {', '.join(geometries)}")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="diffdis_cache_bench_"))
    ratios = {}
    try:
        for name in names:
            root = work / name
            shutil.rmtree(root, ignore_errors=True)
            steps = args.steps or (20 if name == "tiny" else 4)
            result = measure(geometries[name], root, args.warmup, steps)
            print(json.dumps(result), flush=True)
            ratios[name] = result["step_time_ratio_images_over_cache"]
            shutil.rmtree(root, ignore_errors=True)  # sd15-like: ~5 GiB of random weights
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"step_time_ratio_images_over_cache": ratios, "cpu_count": os.cpu_count()}))


if __name__ == "__main__":
    main()
