"""DiffDisPipeline: one model folder, four jobs (generate, embed images, classify, retrieve).

Guidance uses one convention for both directions (diffusers'): out = f(null) + s * (f(cond) - f(null)),
s = 1 means no guidance. For discrimination the condition is the image, so the paper's Algorithm 3 weight
is w = s - 1. Every call builds fresh schedulers and a fresh CPU `torch.Generator(seed)`: same seed, same answer,
on every device (noise is drawn on the CPU, then moved).

Devices and dtypes: the networks run on `pipe.device` in `pipe.dtype` (the VAE in fp32 under fp16); sampler
state stays fp32 and only the network input is cast, so a bf16/fp16 run loses precision in the network
alone. Embeddings come back fp32 on the model device; `classify`/`retrieve` scores and images on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from diffdis.config import InferenceConfig, ModelConfig, inference_defaults
from diffdis.data.transforms import image_to_tensor, tensor_to_images
from diffdis.device import resolve_device, resolve_dtype
from diffdis.diffusion.sample import SCHEDULERS, make_scheduler, sample
from diffdis.errors import UsageError
from diffdis.model.autoencoder import build_autoencoder
from diffdis.model.text import build_text_model, text_encoder_for, tokenize
from diffdis.model.unet import DiffDisModel
from diffdis.model_folder import Components, load_folder, place, save_folder

Progress = Callable[[int, int], None] | None


def zero_shot_weights(encode_text: Callable, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """(K, d): each label's template embeddings normalised, averaged, renormalised (open_clip recipe).
    `encode_text(texts)` returns (anything, (N, d) embeddings): a DiffDis pipeline's or a baseline's."""
    prompts = [t.replace("{}", label) for label in labels for t in templates]
    _, queries = encode_text(prompts)
    per_label = queries.view(len(labels), len(templates), -1)
    return F.normalize(F.normalize(per_label, dim=-1).mean(dim=1), dim=-1)


def placement(device: str | torch.device, dtype: str | torch.dtype) -> tuple[torch.device, torch.dtype]:
    """torch objects for a device and dtype given as objects or as `--device`/`--dtype` strings ("auto" ...)."""
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    return device, resolve_dtype(dtype, device) if isinstance(dtype, str) else dtype


def _check_sampling(steps: int, guidance: float) -> None:
    if steps < 1:
        raise UsageError(f"num-inference-steps must be at least 1, got {steps}")
    if not 0.0 <= guidance <= 50.0:
        raise UsageError(f"guidance-scale must be between 0 and 50, got {guidance}")


def check_sampling_options(steps: int | None, guidance: float | None, scheduler: str | None) -> None:
    """Refuse bad sampler options before a model is loaded (None: the model's default)."""
    _check_sampling(1 if steps is None else steps, 1.0 if guidance is None else guidance)
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {scheduler!r}; choose one of: {', '.join(SCHEDULERS)}")


class DiffDisPipeline(Components):
    @classmethod
    def build(cls, config: ModelConfig, tokenizer, inference: InferenceConfig | None = None) -> DiffDisPipeline:
        """A randomly initialised model in eval mode (seed torch first for a repeatable init)."""
        text_encoder = text_encoder_for(config, build_text_model(config.text_encoder, tokenizer), tokenizer)
        pipe = cls(
            DiffDisModel(config),
            text_encoder,
            tokenizer,
            build_autoencoder(config.vae, config.patch_size),
            inference or inference_defaults(config),
        )
        for module in (pipe.model, pipe.text_encoder, pipe.autoencoder):
            module.eval()
        return pipe

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu", dtype: str | torch.dtype = torch.float32
    ) -> DiffDisPipeline:
        """Load a model folder onto `device` in `dtype` (objects, or strings such as "auto", "cuda:1", "bf16")."""
        parts = load_folder(Path(directory), *placement(device, dtype))
        return cls(**vars(parts))

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> DiffDisPipeline:
        """Move every network (None keeps the current device / dtype); the VAE stays fp32 under fp16."""
        device, dtype = placement(self.device if device is None else device, self.dtype if dtype is None else dtype)
        place(self, device, dtype)
        return self

    def save_pretrained(self, directory: str | Path) -> None:
        save_folder(self, Path(directory))

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ---- text -------------------------------------------------------------------------------------------
    def token_ids(self, texts: Sequence[str]) -> torch.Tensor:
        return tokenize(self.tokenizer, list(texts), self.text_encoder.max_length).to(self.device)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """(c (N, L, d) in the model dtype, e (N, d) unit norm in fp32) for each text, on the model device."""
        parts = [self.text_encoder(self.token_ids(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]).float()

    def zero_shot_classifier(self, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        return zero_shot_weights(self.encode_text, labels, templates)

    # ---- generation -------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        num_images_per_prompt: int = 1,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        scheduler: str | None = None,
        seed: int = 0,
        callback: Progress = None,
        negative_prompt: str = "",
    ) -> list[Image.Image]:
        """`negative_prompt` takes the null caption's place in classifier-free guidance ("" is the null caption)."""
        inf = self.inference
        steps = inf.generate_steps if num_inference_steps is None else num_inference_steps
        scale = inf.generate_guidance if guidance_scale is None else guidance_scale
        _check_sampling(steps, scale)
        prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        condition, _ = self.encode_text(list(prompts) + [negative_prompt])
        cond, null = condition[:-1], condition[-1:].expand(len(prompts), -1, -1)
        generator = torch.Generator().manual_seed(seed)
        size, channels = self.config.latent_size, self.config.latent_channels
        noise = torch.randn((len(prompts), channels, size, size), generator=generator).to(self.device)  # fp32 state

        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            x = x.to(self.dtype)
            if scale == 1.0:
                return self.model.predict_noise(x, t, cond).float()
            eps = self.model.predict_noise(torch.cat([x, x]), t, torch.cat([cond, null])).float()
            eps_cond, eps_null = eps.chunk(2)
            return eps_null + scale * (eps_cond - eps_null)

        sampler = make_scheduler(scheduler or inf.generate_scheduler, self.config.schedule)
        latents = sample(denoise, noise, sampler, steps, "epsilon", generator, callback, self.config.clip_sample)
        return tensor_to_images(self.autoencoder.decode(latents))

    # ---- discrimination ---------------------------------------------------------------------------------
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N, C, h, w) clean latents in the model dtype; pixels go in fp32 (the VAE casts to its own dtype)."""
        pixels = torch.stack([image_to_tensor(im, self.config.image_size) for im in images])
        return self.autoencoder.encode(pixels.to(self.device)).to(self.dtype)

    @torch.no_grad()
    def image_queries(
        self,
        images: Sequence[Image.Image],
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        scheduler: str | None = None,
        seed: int = 0,
        batch_size: int = 64,
        callback: Progress = None,
    ) -> torch.Tensor:
        """(N, d) unit-norm fp32 e0 for each image, on the model device: the text query diffused from noise,
        conditioned on the image (paper Algorithm 3). Image i always gets noise row i of the seed, whatever the
        batch size."""
        inf = self.inference
        steps = inf.query_steps if num_inference_steps is None else num_inference_steps
        scale = inf.query_guidance if guidance_scale is None else guidance_scale
        _check_sampling(steps, scale)
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((len(images), self.config.query_dim), generator=generator)
        # c is masked in discrimination mode: the null caption's c, or no cross-attention at all [ours]
        null_condition = self.encode_text([""])[0] if self.config.disc_condition == "null_text" else None
        out, done = [], 0
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            chunk_noise = noise[start : start + len(chunk)]
            queries = self._denoise_queries(chunk, chunk_noise, steps, scale, scheduler, null_condition, generator)
            out.append(queries)
            done += len(chunk)
            if callback is not None:
                callback(done, len(images))
        return torch.cat(out)

    def _denoise_queries(self, images, noise, steps, scale, scheduler, null_condition, generator) -> torch.Tensor:
        cfg = self.config
        latents = self.encode_images(images)
        if scale != 1.0:
            latents = torch.cat([latents, torch.zeros_like(latents)])  # the null image is all zeros
        condition = None if null_condition is None else null_condition.expand(latents.shape[0], -1, -1)
        # one-way fusion: the image stream does not see e_t, so it runs once per image, not once per step
        cache = self.model.cache_image_stream(latents, condition) if cfg.fusion == "one-way" else None

        def predict(xs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if cache is not None:
                return self.model.predict_query_cached(cache, xs, t)
            return self.model.predict_query(latents, xs, t, condition)

        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            xs = (torch.cat([x, x]) if scale != 1.0 else x).to(self.dtype)
            pred = F.normalize(predict(xs, t.reshape(1).to(x.device)).float(), dim=-1)
            if scale != 1.0:
                pred_img, pred_null = pred.chunk(2)
                pred = pred_null + scale * (pred_img - pred_null)
            return (cfg.gamma * F.normalize(pred, dim=-1)).to(x.dtype)  # x0 = gamma * e0

        sampler = make_scheduler(scheduler or self.inference.query_scheduler, cfg.query_noise_schedule)
        x0 = sample(denoise, noise.to(self.device, torch.float32), sampler, steps, "sample", generator)  # fp32 state
        return F.normalize(x0.float(), dim=-1)

    def classify(
        self,
        images: Sequence[Image.Image],
        labels: Sequence[str],
        templates: Sequence[str] = ("a photo of a {}.",),
        **sampling,
    ) -> torch.Tensor:
        """(N, K) fp32 cosine scores on the CPU. The label embeddings are made once; the cost per image does
        not grow with K."""
        classifier = self.zero_shot_classifier(labels, templates)
        return (self.image_queries(images, **sampling) @ classifier.T).cpu()

    def retrieve(self, images: Sequence[Image.Image], texts: Sequence[str], **sampling) -> torch.Tensor:
        """(N_images, N_texts) fp32 cosine scores on the CPU between each image's e0 and each text's e."""
        _, text_queries = self.encode_text(list(texts))
        return (self.image_queries(images, **sampling) @ text_queries.T).cpu()
