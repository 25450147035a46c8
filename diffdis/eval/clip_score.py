"""CLIPScore with a CLIP the user has on disk (`--clip-model DIR`: a transformers `CLIPModel` saved with
`save_pretrained`, beside its tokenizer and image processor, as the openai/clip-vit-* folders on the Hub are).

CLIPScore(image, prompt) = w * max(cos(E_image, E_prompt), 0), averaged over the images (Hessel et al. 2021).
The paper's w is 2.5; we report w = 100, torchmetrics' convention (`torchmetrics.multimodal.CLIPScore`), the
number text-to-image papers quote. torchmetrics clamps the mean rather than each pair; the two agree
whenever no pair has a negative cosine, as is the case for real CLIP models and captions. An over-long prompt
is cut to the text model's length keeping its end-of-text token (torchmetrics cuts it off).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from diffdis.errors import DiffDisError

WEIGHT = 100.0


class ClipScorer:
    """A CLIP model, its tokenizer and image processor, in eval mode on one device (fp32)."""

    def __init__(self, model: Any, tokenizer: Any, image_processor: Any) -> None:
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> ClipScorer:
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise DiffDisError(
                f"--clip-model {directory}: no CLIPModel folder (config.json) there; save one with save_pretrained"
            )
        try:
            model = CLIPModel.from_pretrained(str(directory), local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
            image_processor = AutoImageProcessor.from_pretrained(str(directory), local_files_only=True)
        except Exception as err:  # noqa: BLE001 - transformers raises many types for a wrong folder
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DiffDisError(
                f"--clip-model {directory}: not a CLIPModel with its tokenizer and image processor ({message})"
            ) from None
        return cls(model.to(device).eval(), tokenizer, image_processor)

    @torch.no_grad()
    def cosines(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        """(N,) cosine between each image and its own prompt, in CLIP's joint space."""
        if len(images) != len(prompts):
            raise DiffDisError(
                f"CLIPScore needs one prompt per image, got {len(images)} images and {len(prompts)} prompts"
            )
        device = next(self.model.parameters()).device
        length = self.model.config.text_config.max_position_embeddings
        text = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=length, return_tensors="pt")
        pixels = self.image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        out = self.model(
            input_ids=text["input_ids"].to(device),
            attention_mask=text["attention_mask"].to(device),
            pixel_values=pixels.to(device),
        )
        # image_embeds and text_embeds come back unit-norm
        return (out.image_embeds.float() * out.text_embeds.float()).sum(dim=-1).cpu()

    def scores(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        """(N,) CLIPScore per image: 100 * max(cos, 0)."""
        return WEIGHT * self.cosines(images, prompts).clamp_min(0)
