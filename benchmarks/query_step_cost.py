"""What a 25-step text-query classification costs per image, against an image-encoder pass (issue #17, item 4).

    python benchmarks/query_step_cost.py                       # random tiny-patch2 weights: time only
    python benchmarks/query_step_cost.py --preset tiny --steps 25 --batch-size 64 --repeat 5

Three per-image times, at the same batch size, on the same threads:
  image_stream   one pass of a one-way model's image stream (`cache_image_stream`: UNet down + middle blocks
                 and the fusion blocks' image side), the part a one-way model runs once per image;
  classify       `DiffDisPipeline.image_queries` with --steps sampler steps on that model (image stream cached,
                 then steps x text-stream passes; CFG doubles the text-stream batch), pixels to unit-norm e0;
  clip_image     one transformers `CLIPVisionModel` + projection pass of a ViT sized to about the image stream's
                 parameter count (the image tower a CLIP of that size pays per image).
It also times the joint-fusion model's classification, where the image stream reruns at every step.
Prints one JSON line with the times (median of --repeat after a warm-up) and the ratios.
"""

from __future__ import annotations

import argparse
import json

import torch
from eval_ratios import median_seconds  # benchmarks/: run as a script, its folder is on sys.path
from PIL import Image
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from diffdis.config import preset
from diffdis.model.text import train_tokenizer
from diffdis.pipeline import DiffDisPipeline


def image_stream_parameters(pipe: DiffDisPipeline) -> int:
    """UNet conv_in, time embedding, down and middle blocks, and the image side of the fusion blocks."""
    unet = pipe.model.unet
    modules = [unet.conv_in, unet.time_embedding, unet.down_blocks, unet.mid_block]
    count = sum(p.numel() for m in modules for p in m.parameters())
    return count + sum(p.numel() for p in pipe.model.discriminator.fusion.parameters())


def clip_vision_of_size(target: int, image_size: int, patch_size: int) -> CLIPVisionModelWithProjection:
    """A CLIP ViT (6 layers, MLP ratio 4) whose width brings its parameter count closest to `target`."""
    best = None
    for width in range(64, 1025, 64):
        cfg = CLIPVisionConfig(
            hidden_size=width,
            intermediate_size=4 * width,
            num_hidden_layers=6,
            num_attention_heads=max(1, width // 64),
            image_size=image_size,
            patch_size=patch_size,
            projection_dim=256,
        )
        count = 12 * 6 * width**2 + width * (3 * patch_size**2 + 256)
        if best is None or abs(count - target) < abs(best[0] - target):
            best = (count, cfg)
    return CLIPVisionModelWithProjection(best[1]).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny-patch2")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument(
        "--guidance", type=float, default=1.0, help="query CFG scale; != 1 doubles the text-stream batch"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clip-patch-size", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer = train_tokenizer(
        ["a red circle", "a blue square"], 300, preset(args.preset).text_encoder["max_position_embeddings"]
    )
    pipes = {
        fusion: DiffDisPipeline.build(preset(args.preset, fusion=fusion), tokenizer) for fusion in ("one-way", "joint")
    }
    one_way = pipes["one-way"]
    size = one_way.config.image_size
    images = [Image.new("RGB", (size, size), (10 * i % 255, 80, 160)) for i in range(args.batch_size)]
    latents = one_way.encode_images(images)
    null_c = one_way.encode_text([""])[0].expand(len(images), -1, -1)
    b = args.batch_size
    with torch.inference_mode():
        t_stream = median_seconds(lambda: one_way.model.cache_image_stream(latents, null_c), args.repeat) / b
        sampling = {
            "num_inference_steps": args.steps,
            "guidance_scale": args.guidance,
            "scheduler": "ddim",
            "batch_size": b,
        }
        t_classify = median_seconds(lambda: one_way.image_queries(images, **sampling), args.repeat) / b
        t_joint = median_seconds(lambda: pipes["joint"].image_queries(images, **sampling), max(1, args.repeat // 2)) / b
        stream_params = image_stream_parameters(one_way)
        clip = clip_vision_of_size(stream_params, size, args.clip_patch_size)
        pixels = torch.randn(b, 3, size, size)
        t_clip = median_seconds(lambda: clip(pixel_values=pixels).image_embeds, args.repeat) / b
    clip_params = sum(p.numel() for p in clip.parameters())
    record = {
        "preset": args.preset,
        "steps": args.steps,
        "guidance": args.guidance,
        "batch_size": b,
        "threads": torch.get_num_threads(),
        "image_stream_params": stream_params,
        "clip_vision_params": clip_params,
        "clip_vision_width": clip.config.hidden_size,
        "ms_per_image": {
            "image_stream": 1e3 * t_stream,
            "classify_one_way": 1e3 * t_classify,
            "classify_joint": 1e3 * t_joint,
            "clip_image": 1e3 * t_clip,
        },
        "classify_one_way_over_image_stream": t_classify / t_stream,
        "classify_one_way_over_clip_image": t_classify / t_clip,
        "classify_joint_over_image_stream": t_joint / t_stream,
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
