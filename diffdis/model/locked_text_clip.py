"""The CLIP baseline with a frozen pretrained text tower (`diffdis eval train-clip --text-encoder DIR`).

A DiffDis model trained with `--text-encoder` learns to map images onto that encoder's frozen, unit-norm
caption embeddings e. Against a CLIP whose text tower starts from scratch it has a head start that says
nothing about diffusion; the fair baseline locks the same encoder, pooled the same way (`TextEncoder`), and
trains only a ViT image tower (CLIPVisionModelWithProjection, the scratch baseline's image side) and
CLIPModel's learnable temperature against it, with CLIPModel's symmetric contrastive loss. This is LiT ("locked-image
tuning", Zhai et al. 2022) with the text side locked instead of the image side.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, PreTrainedTokenizerBase
from transformers.models.clip.modeling_clip import CLIPOutput

from diffdis.model.text import TextEncoder, load_text_model

LOGIT_SCALE_INIT = 2.6592  # CLIPConfig's logit_scale_init_value: the scratch baseline's start
PARTS = ("vision", "text_encoder", "tokenizer", "logit_scale.safetensors")


class LockedTextClip(nn.Module):
    """A trainable ViT and temperature against a frozen `TextEncoder`; answers like CLIPModel
    (`get_text_features`, `get_image_features`, `forward(..., return_loss=True)` with `.loss`)."""

    def __init__(self, vision: CLIPVisionModelWithProjection, text: TextEncoder) -> None:
        super().__init__()
        self.vision, self.text = vision, text.requires_grad_(False).eval()
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    @classmethod
    def build(cls, text: TextEncoder, image_size: int, patch_size: int, width: int, layers: int, heads: int):
        """A fresh ViT sized like the scratch baseline's, projecting to the text encoder's width."""
        vision = CLIPVisionConfig(
            hidden_size=width,
            intermediate_size=4 * width,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            image_size=image_size,
            patch_size=patch_size,
            projection_dim=text.dim,
        )
        return cls(CLIPVisionModelWithProjection(vision), text)

    def train(self, mode: bool = True) -> LockedTextClip:
        super().train(mode)
        self.text.eval()  # locked: no dropout in the text tower, ever
        return self

    def get_text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, d) unit-norm caption embeddings: the frozen encoder's e, exactly as DiffDis sees it. Pad columns
        after the batch's longest caption are cut first: pads are masked (or, causally, never seen) and positions
        are absolute, so e does not change, and short captions cost a quarter of the padded length."""
        if self.text.pad_token_id is not None:
            used = (input_ids != self.text.pad_token_id).any(0).nonzero()
            input_ids = input_ids[:, : int(used.max()) + 1] if len(used) else input_ids
        with torch.no_grad():
            return self.text(input_ids)[1].float()

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision(pixel_values=pixel_values).image_embeds

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor, return_loss: bool = True) -> CLIPOutput:
        image = F.normalize(self.get_image_features(pixel_values).float(), dim=-1)
        text = self.get_text_features(input_ids)
        logits_per_image = self.logit_scale.exp() * image @ text.T
        loss = None
        if return_loss:  # CLIPModel's: cross-entropy over captions per image and over images per caption
            labels = torch.arange(len(image), device=image.device)
            loss = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2
        return CLIPOutput(loss=loss, logits_per_image=logits_per_image, logits_per_text=logits_per_image.T)

    def save(self, directory: Path, tokenizer: PreTrainedTokenizerBase) -> None:
        """vision/, text_encoder/ and tokenizer/ as transformers folders, the temperature beside them."""
        self.vision.save_pretrained(directory / "vision", safe_serialization=True)
        self.text.model.save_pretrained(directory / "text_encoder", safe_serialization=True)
        tokenizer.save_pretrained(directory / "tokenizer")
        save_file({"logit_scale": self.logit_scale.detach().reshape(1)}, str(directory / "logit_scale.safetensors"))

    @classmethod
    def load(cls, directory: Path, pooling: str, max_length: int, tokenizer: PreTrainedTokenizerBase):
        vision = CLIPVisionModelWithProjection.from_pretrained(directory / "vision", local_files_only=True)
        text_model, _ = load_text_model(directory / "text_encoder")
        model = cls(vision, TextEncoder(text_model, pooling, max_length, tokenizer.pad_token_id))
        model.logit_scale.data.copy_(load_file(str(directory / "logit_scale.safetensors"))["logit_scale"][0])
        return model
