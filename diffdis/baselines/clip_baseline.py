"""The CLIP baseline of `diffdis eval`: transformers' own CLIPModel trained on the same data and steps
(`diffdis.train.clip`, with CLIPModel's built-in contrastive loss), or a ViT against the same frozen pretrained
text encoder a DiffDis run used (`LockedTextClip`). `ClipBaseline` answers the calls the eval
harness makes of a DiffDis pipeline (`image_queries`, `encode_text`, `zero_shot_classifier`), so DiffDis and
CLIP are scored by the same code on the same labels and templates. open_clip is not used: it needs torchvision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from transformers import CLIPModel

from diffdis.config import InferenceConfig
from diffdis.data.transforms import image_to_tensor
from diffdis.errors import UsageError
from diffdis.model.clip import MARKER, ClipBaselineConfig, is_clip_baseline, load_clip_config
from diffdis.model.locked_text_clip import LockedTextClip
from diffdis.model.text import load_tokenizer, tokenize
from diffdis.pipeline import placement, zero_shot_weights


def _projected(out: Any) -> torch.Tensor:
    """get_*_features returns the projected tensor (transformers 4) or an output whose pooler_output it is (5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClipBaseline:
    """A trained baseline folder, answering the eval harness like a DiffDis pipeline (one pass per image)."""

    def __init__(self, model: CLIPModel | LockedTextClip, tokenizer, cfg: ClipBaselineConfig, name: str) -> None:
        self.model, self.tokenizer, self.cfg = model.eval(), tokenizer, cfg
        self.card = {"name": name, "model_version": "clip-baseline"}
        # the harness sweeps sampler settings; CLIP has none, so every run is one encoder pass
        self.inference = InferenceConfig(query_scheduler="none", query_steps=1, query_guidance=1.0)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: str | torch.dtype = torch.float32
    ) -> ClipBaseline:
        """A baseline folder on `device` in `dtype` (objects, or `--device`/`--dtype` strings)."""
        device, dtype = placement(device, dtype)
        folder = Path(path)
        if not is_clip_baseline(folder):
            raise UsageError(
                f"{folder} is not a CLIP baseline folder (no {MARKER}); train one with diffdis eval train-clip"
            )
        cfg = load_clip_config(folder)
        tokenizer = load_tokenizer(folder / "tokenizer")
        if cfg.text_encoder:  # a ViT against a frozen pretrained text tower
            model = LockedTextClip.load(folder, cfg.text_pooling, cfg.max_length, tokenizer)
        else:
            model = CLIPModel.from_pretrained(folder, local_files_only=True)
        return cls(model.to(device=device, dtype=dtype), tokenizer, cfg, folder.resolve().name)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> tuple[None, torch.Tensor]:
        """(None, e (N, d) unit norm, fp32 on the model device): CLIP has no token condition c."""
        parts = []
        for i in range(0, len(texts), batch_size):
            ids = tokenize(self.tokenizer, list(texts[i : i + batch_size]), self.cfg.max_length).to(self.device)
            parts.append(F.normalize(_projected(self.model.get_text_features(input_ids=ids)).float(), dim=-1))
        return None, torch.cat(parts)

    def zero_shot_classifier(self, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        return zero_shot_weights(self.encode_text, labels, templates)

    @torch.no_grad()
    def image_queries(
        self, images: Sequence[Image.Image], batch_size: int = 64, callback=None, **_sampling: Any
    ) -> torch.Tensor:
        """(N, d) unit-norm fp32 image embeddings on the model device; the sampler arguments DiffDis takes are
        accepted and unused."""
        out, done = [], 0
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            pixels = torch.stack([image_to_tensor(im, self.cfg.image_size) for im in chunk]).to(self.device, self.dtype)
            out.append(F.normalize(_projected(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1))
            done += len(chunk)
            if callback is not None:
                callback(done, len(images))
        return torch.cat(out)
