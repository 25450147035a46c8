"""An independent judge for 32x32 images: a small CNN that names what is drawn and its colour.

It scores generated images (did "a red car" give a red car?) and supplies features for FID. It never
shares data or weights with a DiffDis model: it learns from world images drawn with its own seeds (DiffDis's
default model trains on seed 0) plus the digits train split. Unlike DiffDis it also sees the held-out colour x
object pairs (a heldout split, seed 1235): it must name a red airplane to judge whether DiffDis can draw one,
and a judge trained on the train split alone named only 32% of held-out-pair objects (colour is a shortcut).

One "object" head covers everything a world or digits prompt can ask for: the 14 world things (10 CIFAR-10
objects + 4 shapes) and the 10 digit names, 24 classes, so a single call judges any prompt. The colour head
has the 11 world colours; digits have no colour label (white on black), so they do not train it and its
answer for a digit means nothing.

This file is the network, its augmentation, scoring and the folder; it trains on the one training loop
(`diffdis.train.judge`, run by benchmarks/train_judge.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from diffdis.data.digits import DIGIT_NAMES
from diffdis.data.transforms import image_to_tensor
from diffdis.data.world_vocabulary import COLOURS, THINGS
from diffdis.errors import DiffDisError

SHIPPED_DIR = Path(__file__).parent / "judge_weights"  # not judge/: a folder named like judge.py confuses type checkers
IGNORE = -100  # cross_entropy's ignore_index: the colour of a digit


@dataclass
class JudgeConfig:
    """The label names (in head order) and the geometry; saved as config.json beside the weights."""

    objects: list[str] = field(default_factory=lambda: [*THINGS, *DIGIT_NAMES])
    colours: list[str] = field(default_factory=lambda: list(COLOURS))
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # one stage per width, halving the size
    image_size: int = 32


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Judge(nn.Module):
    """conv stages (one conv at full size, two after) -> global average pool (the features) -> two linear heads."""

    def __init__(self, config: JudgeConfig | None = None) -> None:
        super().__init__()
        self.config = config or JudgeConfig()
        layers, cin = [], 3
        for i, width in enumerate(self.config.widths):
            layers += [_conv(cin, width)] + ([_conv(width, width)] if i else []) + [nn.MaxPool2d(2)]
            cin = width
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, D)
        self.object_head = nn.Linear(cin, len(self.config.objects))
        self.colour_head = nn.Linear(cin, len(self.config.colours))

    @property
    def feature_dim(self) -> int:
        return self.config.widths[-1]

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        """pixels (B, 3, H, W) in [-1, 1] -> (object logits (B, O), colour logits (B, K))."""
        features = self.trunk(pixels)
        return self.object_head(features), self.colour_head(features)

    def to_pixels(self, images: Sequence[Image.Image] | Tensor) -> Tensor:
        """PIL images (any size or mode) or an already-made (B, 3, H, W) tensor in [-1, 1] (any device or
        dtype), as the judge's own device and dtype."""
        weight = next(self.parameters())
        if isinstance(images, Tensor):
            return images.to(weight.device, weight.dtype)
        if len(images) == 0:
            raise DiffDisError("the judge was given no images")
        pixels = torch.stack([image_to_tensor(im, self.config.image_size) for im in images])
        return pixels.to(weight.device, weight.dtype)

    @torch.no_grad()
    def features(self, images: Sequence[Image.Image] | Tensor, batch_size: int = 256) -> Tensor:
        """(N, D) fp32 penultimate activations (global-average-pooled, after ReLU), on the judge's device:
        the FID feature space."""
        self.eval()
        pixels = self.to_pixels(images)
        return torch.cat([self.trunk(pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)]).float()

    @torch.no_grad()
    def logits(self, images: Sequence[Image.Image] | Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor]:
        """(object logits (N, O), colour logits (N, K)) in fp32 on the CPU: small, and compared with CPU labels."""
        self.eval()
        pixels = self.to_pixels(images)
        parts = [self(pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)]
        return torch.cat([p[0] for p in parts]).float().cpu(), torch.cat([p[1] for p in parts]).float().cpu()

    def predict(self, images: Sequence[Image.Image] | Tensor) -> dict[str, list]:
        """{"object": names, "colour": names, "object_confidence": probs, "colour_confidence": probs}."""
        object_logits, colour_logits = self.logits(images)
        object_p, object_i = object_logits.softmax(-1).max(-1)
        colour_p, colour_i = colour_logits.softmax(-1).max(-1)
        return {
            "object": [self.config.objects[i] for i in object_i.tolist()],
            "colour": [self.config.colours[i] for i in colour_i.tolist()],
            "object_confidence": object_p.tolist(),
            "colour_confidence": colour_p.tolist(),
        }


# ---- data -------------------------------------------------------------------------------------------------


def read_labelled_folder(folder: Path) -> tuple[list[Image.Image], list[dict]]:
    """A built-in dataset folder (world or digits) as images and its metadata rows."""
    folder = Path(folder)
    meta = folder / "metadata.jsonl"
    if not meta.is_file():
        raise DiffDisError(f"{folder} has no metadata.jsonl; make it with `diffdis data make world|digits`")
    rows = [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
    images = []
    for row in rows:
        with Image.open(folder / row["file_name"]) as image:
            images.append(image.convert("RGB"))
    return images, rows


def targets_for(rows: Sequence[dict], config: JudgeConfig) -> tuple[Tensor, Tensor]:
    """(object index, colour index or IGNORE) per metadata row: world rows name object and colour, digits rows
    a label_name."""
    objects, colours = [], []
    for row in rows:
        name = row.get("object", row.get("label_name"))
        if name not in config.objects:
            raise DiffDisError(f"the judge knows no object {name!r}; it judges world and digits images only")
        objects.append(config.objects.index(name))
        colours.append(config.colours.index(row["colour"]) if "colour" in row else IGNORE)
    return torch.tensor(objects), torch.tensor(colours)


def augment(pixels: Tensor, generator: torch.Generator, max_shift: int = 3, max_noise: float = 0.12) -> Tensor:
    """Light, label-preserving: a whole-pixel shift (border pixels repeat), a little blur now and then, and
    Gaussian noise of a random strength, since samples from a briefly trained diffusion model are noisy.
    No colour jitter: colour is a label."""
    b, _, h, w = pixels.shape
    shift = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=generator).float()
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2], theta[:, 1, 2] = 2 * shift[:, 0] / w, 2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    out = F.grid_sample(pixels, grid, mode="nearest", padding_mode="border", align_corners=False)
    blur = (torch.rand(b, 1, 1, 1, generator=generator) < 0.2) * torch.rand(b, 1, 1, 1, generator=generator) * 0.6
    out = out + blur * (F.avg_pool2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), 3, stride=1) - out)
    noise = torch.randn(out.shape, generator=generator) * torch.rand(b, 1, 1, 1, generator=generator) * max_noise
    return (out + noise).clamp(-1, 1)


# ---- scoring ----------------------------------------------------------------------------------------------


@torch.no_grad()
def judge_accuracy(judge: Judge, images: Sequence[Image.Image], rows: Sequence[dict]) -> dict[str, float]:
    """Object accuracy on all rows; colour accuracy on the rows that have a colour."""
    object_targets, colour_targets = targets_for(rows, judge.config)
    object_logits, colour_logits = judge.logits(images)
    out = {"object": (object_logits.argmax(-1) == object_targets).float().mean().item()}
    has_colour = colour_targets != IGNORE
    if has_colour.any():
        out["colour"] = (colour_logits.argmax(-1) == colour_targets)[has_colour].float().mean().item()
    return out


# ---- folder -----------------------------------------------------------------------------------------------


def save_judge(judge: Judge, directory: str | Path) -> Path:
    """config.json + model.safetensors (fp32, a few MB at most)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(
        json.dumps(dataclasses.asdict(judge.config), indent=2) + "\n", encoding="utf-8"
    )
    state = {k: v.detach().cpu().contiguous() for k, v in judge.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory


def load_judge(directory: str | Path | None = None, device: str | torch.device = "cpu") -> Judge:
    """A saved judge in eval mode; None loads the one shipped with diffdis (benchmarks/train_judge.py)."""
    directory = SHIPPED_DIR if directory is None else Path(directory)
    files = (directory / "config.json", directory / "model.safetensors")
    if not all(f.is_file() for f in files):
        hint = "run benchmarks/train_judge.py to make it" if directory == SHIPPED_DIR else "save one with save_judge"
        raise DiffDisError(f"no judge in {directory} (config.json + model.safetensors); {hint}")
    try:
        config = JudgeConfig(**json.loads(files[0].read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as err:
        raise DiffDisError(f"{files[0]} is not a judge config ({err})") from err
    judge = Judge(config)
    judge.load_state_dict(load_file(str(files[1])))
    return judge.to(device).eval()
