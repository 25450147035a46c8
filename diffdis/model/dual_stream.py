"""The dual-stream deep-fusion block (paper Fig. 3).

One `DualStreamBlock` sits beside each SD `Transformer2DModel` of the shared down path and middle block.
The image side (norm1/attn1, norm2/attn2 = cross-attention, norm3/ff) is SD's own `BasicTransformerBlock`,
passed in at call time: SD weights are stored once, in the UNet, and generation mode (no text token) is
exactly SD. This module owns only what the paper adds:

    u = h_e + e_t + Embed(t_e)                  skip connection, made by the caller, re-injected each block
    X = [FC_in(u); h_z]                         (B, 1+HW, C)
    K times (K = SD depth):
        joint self-attention over all 1+HW tokens (SD's attn1 weights; text token has its own norm)
        image tokens -> cross-attention to c -> image FFN (SD's)
        text token   -> no cross-attention   -> its own FFN
    h_e' = FC_out(text token)                   zero-init, C -> d

fusion="one-way" [ours]: image tokens attend only to image tokens (exactly SD's self-attention), while the
text token attends to all; the image stream then does not depend on e_t and can be cached per image.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import BasicTransformerBlock, FeedForward
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn


class DualStreamBlock(nn.Module):
    def __init__(self, query_dim: int, width: int, depth: int, fusion: str = "joint") -> None:
        super().__init__()
        self.fusion = fusion
        self.fc_in = nn.Linear(query_dim, width)
        self.norm_attn = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.norm_ff = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.ff = nn.ModuleList(FeedForward(width, activation_fn="geglu") for _ in range(depth))
        self.fc_out = nn.Linear(width, query_dim)
        nn.init.zeros_(self.fc_out.weight)  # [ours] new modules start silent
        nn.init.zeros_(self.fc_out.bias)

    def forward(
        self,
        transformer: Transformer2DModel,
        hidden_states: torch.Tensor,  # (B, C, H, W) image features entering the SD transformer
        query_input: torch.Tensor,  # (B, d) u = h_e + e_t + Embed(t_e)
        condition: torch.Tensor | None,  # (B, L, d_c) c, or None to skip cross-attention
        record: list[torch.Tensor] | None = None,  # one-way: collects what the text token attends to
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, height, width = hidden_states.shape
        residual = hidden_states
        image, inner_dim = transformer._operate_on_continuous_inputs(hidden_states)  # (B, HW, C)
        text = self.fc_in(query_input)[:, None, :]  # (B, 1, C)
        for i, block in enumerate(transformer.transformer_blocks):
            image, text = self._inner(i, block, image, text, condition, record)
        out = transformer._get_output_for_continuous_inputs(image, residual, batch, height, width, inner_dim)
        return out, self.fc_out(text[:, 0])

    def text_only(
        self, transformer: Transformer2DModel, cached_image: list[torch.Tensor], query_input: torch.Tensor
    ) -> torch.Tensor:
        """One-way fusion over a cached image stream: only the text token runs. Returns the new h_e (B, d).

        `cached_image[i]` is the normalised image tokens (B, HW, C) of inner block i, recorded once per image.
        """
        text = self.fc_in(query_input)[:, None, :]
        for i, block in enumerate(transformer.transformer_blocks):
            text_normed = self.norm_attn[i](text)
            text = text + block.attn1(text_normed, encoder_hidden_states=torch.cat([text_normed, cached_image[i]], 1))
            text = text + self.ff[i](self.norm_ff[i](text))
        return self.fc_out(text[:, 0])

    def _inner(
        self,
        i: int,
        block: BasicTransformerBlock,
        image: torch.Tensor,  # (B, HW, C)
        text: torch.Tensor,  # (B, 1, C)
        condition: torch.Tensor | None,
        record: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        image_normed = block.norm1(image)
        text_normed = self.norm_attn[i](text)
        tokens = torch.cat([text_normed, image_normed], dim=1)  # (B, 1+HW, C)
        if self.fusion == "joint":
            attended = block.attn1(tokens)
            text_attn, image_attn = attended[:, :1], attended[:, 1:]
        else:  # one-way: the image stream is SD's own self-attention, blind to the text token
            image_attn = block.attn1(image_normed)
            text_attn = block.attn1(text_normed, encoder_hidden_states=tokens)
            if record is not None:
                record.append(image_normed)
        image = image + image_attn
        text = text + text_attn
        if block.attn2 is not None and condition is not None:
            image = image + block.attn2(block.norm2(image), encoder_hidden_states=condition)
        image = image + block.ff(block.norm3(image))
        text = text + self.ff[i](self.norm_ff[i](text))
        return image, text
