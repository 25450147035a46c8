"""Cost and accuracy ratios of DiffDis inference, all measured in one run on one model.

    python benchmarks/eval_ratios.py                                  # a fresh random tiny-preset model
    python benchmarks/eval_ratios.py --model DIR --data world:200 --labels world_colours

Sections (each prints its ratio and the peak resident memory it reached):
  labels      classify time with 1000 labels vs 10 labels (imagenet1k names), per image and with the label
              embeddings included; the per-image cost should not grow with the number of labels.
  samplers    5-step DPM-Solver++ vs 50-step DDIM: accuracy and seconds per image on --data / --labels.
  one-way     a one-way fusion model (image stream cached once per image, `cache_image_stream`): a 25-step
              classification per image vs one text-encoder forward pass per text (what CLIP pays per image).
              Random weights of the same geometry when --model is a joint-fusion model: only time is measured.
  unet        one generation-mode UNet call (DiffDisModel.predict_noise) vs a plain diffusers
              UNet2DConditionModel with the same config and weights: the wrapper should cost nothing.
  training    one joint training step (L_IG + L_ITA, forward + backward + AdamW) vs a generation-only step.
Times are medians over --repeat runs after one warm-up. Memory: the process's peak RSS (VmHWM) during the
section, reset before each section through /proc/self/clear_refs (Linux); elsewhere ru_maxrss, which only grows.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from diffdis.config import preset
from diffdis.data.label_sets import load_labels, load_templates
from diffdis.diffusion.schedule import training_scheduler
from diffdis.eval.classify import classification_metrics
from diffdis.eval.data import label_targets, load_eval_data
from diffdis.model.text import train_tokenizer
from diffdis.pipeline import DiffDisPipeline
from diffdis.train.build import tokenizer_corpus
from diffdis.train.losses import UnifiedLossSettings, unified_loss


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class PeakMemory:
    """Peak resident memory (MiB) of the process while the block runs."""

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.reset = True
        except OSError:
            self.reset = False
        return self

    def __exit__(self, *exc: object) -> None:
        self.mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if self.reset:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.mib = int(line.split()[1]) / 1024

    def __str__(self) -> str:
        return f"peak RSS {self.mib:.0f} MiB" + ("" if self.reset else " (process peak so far)")


def random_pipeline(config) -> DiffDisPipeline:
    torch.manual_seed(0)
    corpus = tokenizer_corpus(["a photo of a red car on a blue background", *load_labels("imagenet1k")])
    tokenizer = train_tokenizer(corpus, 4096, config.text_encoder["max_position_embeddings"])
    return DiffDisPipeline.build(config, tokenizer)


def section_labels(pipe, images, repeat: int) -> None:
    names = load_labels("imagenet1k")
    template = ["a photo of a {}."]
    for_images = {}
    for count in (10, 1000):
        classifier = pipe.zero_shot_classifier(names[:count], template)
        for_images[count] = median_seconds(lambda c=classifier: pipe.image_queries(images) @ c.T, repeat) / len(images)
        total = median_seconds(lambda n=count: pipe.classify(images, names[:n], template), repeat)
        print(
            f"  {count:4d} labels: {for_images[count] * 1e3:.1f} ms/image after the label embeddings, "
            f"{total / len(images) * 1e3:.1f} ms/image with them"
        )
    print(f"  per-image cost, 1000 vs 10 labels: {for_images[1000] / for_images[10]:.2f}x")


def section_samplers(pipe, data: str, labels: str, limit: int) -> None:
    dataset = load_eval_data(data)
    names = load_labels(labels)
    rows, targets, column = label_targets(dataset, names, None, drop_unknown=True)
    rows, targets = rows[:limit], torch.tensor(targets[:limit])
    images = dataset.images(rows)
    classifier = pipe.zero_shot_classifier(names, load_templates(None, labels))
    out = {}
    for scheduler, steps in (("dpm++", 5), ("ddim", 50)):
        start = time.perf_counter()
        logits = pipe.image_queries(images, num_inference_steps=steps, scheduler=scheduler) @ classifier.T
        seconds = (time.perf_counter() - start) / len(images)
        out[scheduler] = (classification_metrics(logits, targets)["acc1"], seconds)
        print(
            f"  {scheduler} {steps:2d} steps: acc1 {out[scheduler][0]:.3f}, {seconds * 1e3:.1f} ms/image "
            f"({len(images)} {dataset.name} images, {labels} by {column})"
        )
    (a5, t5), (a50, t50) = out["dpm++"], out["ddim"]
    print(f"  accuracy 5-step DPM++ / 50-step DDIM: {a5 / a50 if a50 else float('nan'):.3f}; time {t5 / t50:.3f}x")


def section_one_way(pipe, images, repeat: int) -> None:
    if pipe.config.fusion != "one-way":
        pipe = random_pipeline(dataclasses.replace(pipe.config, fusion="one-way"))
        print("  (random weights, one-way fusion, same geometry)")
    ids = pipe.token_ids(["a photo of a red car on a blue background"] * len(images))
    with torch.no_grad():
        encoder = median_seconds(lambda: pipe.text_encoder(ids), repeat) / len(images)
    classify = median_seconds(lambda: pipe.image_queries(images, num_inference_steps=25), repeat) / len(images)
    print(
        f"  25-step cached classification {classify * 1e3:.1f} ms/image, text encoder {encoder * 1e3:.2f} ms/text: "
        f"{classify / encoder:.1f}x"
    )


def section_unet(pipe, batch: int, repeat: int) -> None:
    from diffusers import UNet2DConditionModel

    plain = UNet2DConditionModel(**pipe.config.unet).eval()
    plain.load_state_dict(pipe.model.unet.state_dict())
    cfg = pipe.config
    x = torch.randn(batch, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    t = torch.full((batch,), 500)
    c, _ = pipe.encode_text(["a red car"] * batch)
    with torch.no_grad():
        ours = median_seconds(lambda: pipe.model.predict_noise(x, t, c), repeat)
        theirs = median_seconds(lambda: plain(x, t, encoder_hidden_states=c).sample, repeat)
        same = torch.allclose(pipe.model.predict_noise(x, t, c), plain(x, t, encoder_hidden_states=c).sample, atol=1e-5)
    print(
        f"  DiffDisModel.predict_noise {ours * 1e3:.1f} ms vs diffusers UNet {theirs * 1e3:.1f} ms (batch {batch}): "
        f"{ours / theirs:.3f}x; same output: {same}"
    )


def section_training(pipe, batch: int, repeat: int) -> None:
    cfg = pipe.config
    params = list(pipe.model.parameters()) + list(pipe.text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    scheduler = training_scheduler(cfg.schedule)
    ids, null = pipe.token_ids(["a small red car on a blue background"] * batch), pipe.token_ids([""])
    images = torch.rand(batch, 3, cfg.image_size, cfg.image_size) * 2 - 1
    pipe.model.train()
    out = {}
    for tasks in ("both", "gen"):

        def step() -> None:
            loss, _ = unified_loss(
                pipe.model,
                pipe.text_encoder,
                pipe.autoencoder,
                scheduler,
                ids,
                null,
                images,
                UnifiedLossSettings(tasks=tasks),  # noqa: B023 (called within this iteration)
                torch.Generator().manual_seed(0),
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        out[tasks] = median_seconds(step, repeat)
    pipe.model.eval()
    print(
        f"  joint step {out['both']:.3f} s vs generation-only {out['gen']:.3f} s (batch {batch}): "
        f"{out['both'] / out['gen']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="A model folder. Default: a fresh random model of --preset.")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument(
        "--data", default="world:64", help="Labelled data for the sampler section (see `diffdis eval`)."
    )
    parser.add_argument("--labels", default="world_colours")
    parser.add_argument("--num-images", type=int, default=8, help="Images per timed call.")
    parser.add_argument("--max-samples", type=int, default=64, help="Images for the sampler accuracy section.")
    parser.add_argument("--batch-size", type=int, default=8, help="Batch of the UNet and training sections.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sections", default="labels,samplers,one-way,unet,training")
    parser.add_argument("--threads", type=int, help="torch CPU threads. Default: torch's choice.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pipe = DiffDisPipeline.from_pretrained(args.model) if args.model else random_pipeline(preset(args.preset))
    size = pipe.config.image_size
    images = [img.resize((size, size)) for img in load_eval_data(args.data).images(list(range(args.num_images)))]
    print(
        f"model {args.model or f'random {args.preset}'} "
        f"({pipe.config.fusion} fusion), {torch.get_num_threads()} threads"
    )
    sections = {
        "labels": lambda: section_labels(pipe, images, args.repeat),
        "samplers": lambda: section_samplers(pipe, args.data, args.labels, args.max_samples),
        "one-way": lambda: section_one_way(pipe, images, args.repeat),
        "unet": lambda: section_unet(pipe, args.batch_size, args.repeat),
        "training": lambda: section_training(pipe, args.batch_size, args.repeat),
    }
    for name in args.sections.split(","):
        print(f"[{name}]")
        with PeakMemory() as memory:
            sections[name]()
        print(f"  {memory}")


if __name__ == "__main__":
    main()
