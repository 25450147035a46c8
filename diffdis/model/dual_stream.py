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
text token attends to all; the image stream then does not depend on e_t and can be cached per image, down to
the keys and values the text token reads (`image_keys_values`), so a sampler step runs one token, not HW.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import BasicTransformerBlock, FeedForward
from diffusers.models.attention_processor import Attention
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
        self,
        transformer: Transformer2DModel,
        cached_image: list[tuple[torch.Tensor, torch.Tensor]],
        query_input: torch.Tensor,
    ) -> torch.Tensor:
        """One-way fusion over a cached image stream: only the text token runs. Returns the new h_e (B, d).

        `cached_image[i]` is the image tokens' (keys, values) in inner block i's self-attention, made once per image.
        """
        text = self.fc_in(query_input)[:, None, :]
        for i, block in enumerate(transformer.transformer_blocks):
            text_normed = self.norm_attn[i](text)
            text = text + attend_with_cached(block.attn1, text_normed, *cached_image[i])
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
                record.append(image_keys_values(block.attn1, image_normed))
        image = image + image_attn
        text = text + text_attn
        if block.attn2 is not None and condition is not None:
            image = image + block.attn2(block.norm2(image), encoder_hidden_states=condition)
        image = image + block.ff(block.norm3(image))
        text = text + self.ff[i](self.norm_ff[i](text))
        return image, text


def image_keys_values(attn: Attention, image_normed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, heads, HW, head_dim) keys and values of the image tokens: what a one-way text token attends to."""
    return _heads(attn, attn.to_k(image_normed)), _heads(attn, attn.to_v(image_normed))


def attend_with_cached(
    attn: Attention, text_normed: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """`attn(text_normed, encoder_hidden_states=[text_normed; image])` with the image's keys and values given:
    the same numbers as diffusers' call (plain SD/ViT attention: no q/k norms, residual or rescale). The one
    query token's softmax over [itself; image] is merged from two parts, so the cached keys are never copied."""
    query = _heads(attn, attn.to_q(text_normed)) * attn.scale  # (B, heads, 1, head_dim)
    own_key, own_value = _heads(attn, attn.to_k(text_normed)), _heads(attn, attn.to_v(text_normed))
    own = (query * own_key).sum(-1, keepdim=True)  # (B, heads, 1, 1)
    image = query @ keys.transpose(-1, -2)  # (B, heads, 1, HW)
    top = torch.maximum(own, image.amax(-1, keepdim=True))
    own, image = (own - top).exp(), (image - top).exp()
    out = (own * own_value + image @ values) / (own + image.sum(-1, keepdim=True))
    out = out.transpose(1, 2).reshape(text_normed.shape[0], -1, attn.heads * out.shape[-1]).to(query.dtype)
    return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


def _heads(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    batch, length, _ = x.shape
    return x.view(batch, length, attn.heads, -1).transpose(1, 2)
