"""The DiffDis network (paper Fig. 2): one SD UNet, two streams.

- `predict_noise`: generation mode, the stock diffusers `UNet2DConditionModel` forward (exactly SD, same cost).
- `predict_query`: discrimination mode. The clean image runs the shared down + middle blocks at image
  timestep 0 [ours]; every SD transformer there is paired with a `DualStreamBlock` that carries the text
  query; then the query transformer reads [text token; middle-block image tokens] and a linear predictor
  gives the clean query e0_hat. The up path is never run.

Gradient checkpointing covers both: diffusers' own flag for `predict_noise`, and `predict_query` (which calls
the UNet's resnets by hand, out of diffusers' reach) routes each resnet, fusion block and query-transformer
block through `torch.utils.checkpoint`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn
from torch.utils.checkpoint import checkpoint

from diffdis.config import ModelConfig
from diffdis.errors import DiffDisError
from diffdis.model.dual_stream import DualStreamBlock, attend_with_cached, image_keys_values


def _call(fn: Callable, *args):
    return fn(*args)


_checkpointed = partial(checkpoint, use_reentrant=False)  # recompute fn(*args) in backward instead of storing


class QueryTransformer(nn.Module):
    """M self-attention blocks over [text-query token; projected middle-block image tokens] + predictor.

    `one_way` [ours]: as in the fusion blocks, image tokens attend only to image tokens and the text token to all,
    so the image side (and its keys and values) is computed once per image and a sampler step runs one token.
    """

    def __init__(
        self, query_dim: int, image_channels: int, width: int, layers: int, head_dim: int, one_way: bool = False
    ) -> None:
        super().__init__()
        if width % head_dim:
            raise DiffDisError(f"query transformer width {width} is not a multiple of head dim {head_dim}")
        self.one_way = one_way
        self.query_in = nn.Linear(query_dim, width)
        self.image_in = nn.Linear(image_channels, width)
        self.blocks = nn.ModuleList(
            BasicTransformerBlock(width, width // head_dim, head_dim, activation_fn="gelu") for _ in range(layers)
        )
        self.norm_out = nn.LayerNorm(width)
        self.predictor = nn.Linear(width, query_dim)

    def forward(
        self, query_input: torch.Tensor, image: torch.Tensor, run: Callable = _call, record: list | None = None
    ) -> torch.Tensor:
        # query_input (B, d); image (B, C, H, W) -> e0_hat (B, d). `run(block, x)` calls a block (or checkpoints it).
        # `record` (one-way): collects each layer's image keys and values for `text_only`.
        image_tokens = self.image_in(image.flatten(2).transpose(1, 2))  # (B, HW, W)
        text = self.query_in(query_input)[:, None]  # (B, 1, W)
        if self.one_way:
            for block in self.blocks:
                image_tokens, text = run(self._one_way_layer, block, image_tokens, text, record)
            return self.predictor(self.norm_out(text[:, 0]))
        tokens = torch.cat([text, image_tokens], dim=1)  # (B, 1+HW, W)
        for block in self.blocks:
            tokens = run(block, tokens)
        return self.predictor(self.norm_out(tokens[:, 0]))

    @staticmethod
    def _one_way_layer(
        block: BasicTransformerBlock, image: torch.Tensor, text: torch.Tensor, record: list | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The image tokens go through `block` exactly as `block(image)`; the text token reads them."""
        image_normed, text_normed = block.norm1(image), block.norm1(text)
        if record is not None:
            record.append(image_keys_values(block.attn1, image_normed))
        text = text + block.attn1(text_normed, encoder_hidden_states=torch.cat([text_normed, image_normed], dim=1))
        return block(image), text + block.ff(block.norm3(text))

    def text_only(self, query_input: torch.Tensor, cached: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """One-way: e0_hat from the image keys and values recorded by `forward`; only the text token runs."""
        text = self.query_in(query_input)[:, None]
        for block, (keys, values) in zip(self.blocks, cached, strict=True):
            text = text + attend_with_cached(block.attn1, block.norm1(text), keys, values)
            text = text + block.ff(block.norm3(text))
        return self.predictor(self.norm_out(text[:, 0]))


class LogitScale(nn.Module):
    """The InfoNCE temperature: exp(learnable log scale), clamped. A module (not a bare parameter), so
    ZeRO-3 gathers it like every other weight when it is called."""

    def __init__(self, init: float, maximum: float) -> None:
        super().__init__()
        self.log_value = nn.Parameter(torch.tensor([math.log(init)]))  # 1-d: DeepSpeed cannot broadcast 0-d
        self.maximum = maximum

    def forward(self) -> torch.Tensor:
        return self.log_value.exp().clamp(max=self.maximum)[0]


def _fusion_sites(unet: UNet2DConditionModel) -> list[tuple[str, nn.Module]]:
    """(key, Transformer2DModel) for every SD transformer on the shared down path and in the middle."""
    sites = []
    for i, block in enumerate(unet.down_blocks):
        for j, attn in enumerate(getattr(block, "attentions", None) or []):
            sites.append((f"down_{i}_{j}", attn))
    for j, attn in enumerate(getattr(unet.mid_block, "attentions", None) or []):
        sites.append((f"mid_{j}", attn))
    return sites


class DiscriminativeBranch(nn.Module):
    """Every module the paper adds to SD; saved on its own as `discriminator/` in a model folder."""

    def __init__(self, config: ModelConfig, unet: UNet2DConditionModel) -> None:
        super().__init__()
        d = config.query_dim
        self.query_time_proj = Timesteps(d, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.query_time_embedding = TimestepEmbedding(d, d)
        self.fusion = nn.ModuleDict(
            {
                key: DualStreamBlock(d, attn.config.in_channels, len(attn.transformer_blocks), config.fusion)
                for key, attn in _fusion_sites(unet)
            }
        )
        mid_channels = unet.config.block_out_channels[-1]
        self.query_transformer = QueryTransformer(
            d,
            mid_channels,
            config.query_transformer_width,
            config.query_transformer_layers,
            config.query_transformer_head_dim,
            one_way=config.fusion == "one-way",
        )
        self.logit_scale = LogitScale(config.logit_scale_init, config.logit_scale_max)


class DiffDisModel(nn.Module):
    def __init__(self, config: ModelConfig, unet: UNet2DConditionModel | None = None) -> None:
        super().__init__()
        self.config = config
        self.unet = unet if unet is not None else UNet2DConditionModel(**config.unet)
        if self.unet.config.class_embed_type or self.unet.config.addition_embed_type:
            raise DiffDisError("UNets with class or addition embeddings (e.g. SDXL) are not supported")
        if self.unet.mid_block is None:
            raise DiffDisError("the UNet needs a middle block: the query transformer reads its output")
        self.discriminator = DiscriminativeBranch(config, self.unet)
        self.gradient_checkpointing = False

    def enable_gradient_checkpointing(self) -> None:
        """Keep fewer activations and recompute them in backward, in both passes (same outputs and gradients)."""
        self.unet.enable_gradient_checkpointing()  # predict_noise: diffusers' own, whenever grad is on
        self.gradient_checkpointing = True  # predict_query: see `_runner`

    def disable_gradient_checkpointing(self) -> None:
        self.unet.disable_gradient_checkpointing()
        self.gradient_checkpointing = False

    def _runner(self, recording: bool) -> Callable:
        """How predict_query calls each resnet, fusion block and query-transformer block: `run(fn, *args)`,
        through activation checkpointing when it is on, in training, with grad and not recording a cache."""
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled() and not recording:
            return _checkpointed
        return _call

    def logit_scale(self) -> torch.Tensor:
        return self.discriminator.logit_scale()

    def predict_noise(
        self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor
    ) -> torch.Tensor:
        """Generation mode: eps_hat = Phi_u(z_t, t_z, c). No text token: this is SD's UNet forward."""
        return self.unet(noisy_latents, timesteps, encoder_hidden_states=condition).sample

    def predict_query(
        self,
        latents: torch.Tensor,  # (B, C, h, w) clean image latents z
        noisy_query: torch.Tensor,  # (B, d) e_t
        timesteps: torch.Tensor,  # (B,) t_e
        condition: torch.Tensor | None,  # (B, L, d_c) the null-text c, or None to skip cross-attention
        cache: dict[str, list[torch.Tensor] | torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Discrimination mode: e0_hat = Phi_theta(e_t, t_e, z), shape (B, d), not normalised.

        With fusion="one-way", a dict passed as `cache` is filled with the image stream (see `cache_image_stream`).
        """
        unet, branch = self.unet, self.discriminator
        batch = latents.shape[0]
        zero_t = torch.zeros(batch, dtype=torch.long, device=latents.device)
        image_temb = unet.time_embedding(unet.get_time_embed(sample=latents, timestep=zero_t))
        if unet.time_embed_act is not None:
            image_temb = unet.time_embed_act(image_temb)
        query_temb = self._query_time_embedding(timesteps, noisy_query)
        hidden_query = torch.zeros_like(noisy_query)  # h_e before the first block
        record = cache is not None and self.config.fusion == "one-way"
        run = self._runner(record)

        h = unet.conv_in(latents)
        for i, block in enumerate(unet.down_blocks):
            attentions = getattr(block, "attentions", None)
            for j, resnet in enumerate(block.resnets):
                h = run(resnet, h, image_temb)
                if attentions is not None:
                    u = hidden_query + noisy_query + query_temb
                    key = f"down_{i}_{j}"
                    seen = cache.setdefault(key, []) if record else None
                    h, hidden_query = run(branch.fusion[key], attentions[j], h, u, condition, seen)
            for downsampler in block.downsamplers or []:
                h = downsampler(h)
        mid = unet.mid_block
        h = run(mid.resnets[0], h, image_temb)
        for j, (attn, resnet) in enumerate(zip(mid.attentions, mid.resnets[1:])):
            u = hidden_query + noisy_query + query_temb
            seen = cache.setdefault(f"mid_{j}", []) if record else None
            h, hidden_query = run(branch.fusion[f"mid_{j}"], attn, h, u, condition, seen)
            h = run(resnet, h, image_temb)
        seen = cache.setdefault("query_transformer", []) if record else None
        return branch.query_transformer(hidden_query + noisy_query + query_temb, h, run, seen)

    def _query_time_embedding(self, timesteps: torch.Tensor, noisy_query: torch.Tensor) -> torch.Tensor:
        """(B, d): the text stream's own timestep embedding Embed(t_e)."""
        branch = self.discriminator
        proj = branch.query_time_proj(timesteps.expand(noisy_query.shape[0])).to(noisy_query.dtype)
        return branch.query_time_embedding(proj)

    def cache_image_stream(self, latents: torch.Tensor, condition: torch.Tensor | None) -> dict:
        """One-way fusion only: run the image stream once per image (our extension, PAPER.md §3)."""
        if self.config.fusion != "one-way":
            raise DiffDisError("only fusion='one-way' models can cache the image stream")
        cache: dict = {}
        zeros = torch.zeros(latents.shape[0], self.config.query_dim, device=latents.device, dtype=latents.dtype)
        self.predict_query(latents, zeros, torch.zeros(1, device=latents.device), condition, cache)
        return cache

    def predict_query_cached(self, cache: dict, noisy_query: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Same as `predict_query` for a one-way model, from `cache_image_stream`: only the text stream runs."""
        query_temb = self._query_time_embedding(timesteps, noisy_query)
        hidden_query = torch.zeros_like(noisy_query)
        for key, transformer in _fusion_sites(self.unet):
            u = hidden_query + noisy_query + query_temb
            hidden_query = self.discriminator.fusion[key].text_only(transformer, cache[key], u)
        return self.discriminator.query_transformer.text_only(
            hidden_query + noisy_query + query_temb, cache["query_transformer"]
        )
