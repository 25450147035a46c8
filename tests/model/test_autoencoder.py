"""Latent-space models: an AutoencoderKL image encoder, frozen, saved as vae/ in the model folder."""

import torch

from diffdis.diffusion.schedule import training_scheduler
from diffdis.model.autoencoder import IdentityAutoencoder, LatentAutoencoder
from diffdis.pipeline import DiffDisPipeline
from diffdis.train.losses import UnifiedLossSettings, unified_loss
from tests.conftest import micro_config

VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "block_out_channels": [8, 8],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 16,
    "scaling_factor": 0.5,
}


def latent_config():
    cfg = micro_config(vae=VAE)
    cfg.unet.update(in_channels=4, out_channels=4, sample_size=8)
    return cfg


def test_identity_autoencoder_is_identity():
    x = torch.randn(2, 3, 4, 4)
    ae = IdentityAutoencoder()
    assert ae.encode(x) is x and ae.decode(x) is x


def test_latent_model_trains_saves_loads_and_answers(tokenizer, tmp_path):
    cfg = latent_config()
    assert cfg.latent_size == 8 and cfg.latent_channels == 4
    pipe = DiffDisPipeline.build(cfg, tokenizer)
    assert isinstance(pipe.autoencoder, LatentAutoencoder)
    assert not any(p.requires_grad for p in pipe.autoencoder.parameters())  # the VAE stays frozen
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    ids, null = pipe.token_ids(["a", "b", "c", "d"]), pipe.token_ids([""])
    loss, logs = unified_loss(
        pipe.model,
        pipe.text_encoder,
        pipe.autoencoder,
        training_scheduler(cfg.schedule),
        ids,
        null,
        images,
        UnifiedLossSettings(),
        torch.Generator().manual_seed(0),
    )
    assert torch.isfinite(loss) and "loss_alignment" in logs
    pipe.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    again = DiffDisPipeline.from_pretrained(tmp_path / "m")
    out = again.generate(["a red circle"], num_inference_steps=2)
    assert out[0].size == (16, 16)
    from diffdis.data.transforms import tensor_to_images

    pictures = tensor_to_images(images)
    assert torch.equal(pipe.image_queries(pictures, 2), again.image_queries(pictures, 2))


def test_patch_autoencoder_folds_pixels_losslessly():
    x = torch.randn(2, 3, 8, 8)
    ae = IdentityAutoencoder(patch_size=4)
    z = ae.encode(x)
    assert z.shape == (2, 48, 2, 2) and torch.equal(ae.decode(z), x)
    assert torch.equal(z[0, :16, 0, 0].view(4, 4), x[0, 0, :4, :4])  # channel block c holds colour c's patch


def test_patch_model_trains_saves_loads_and_answers(tokenizer, tmp_path):
    cfg = micro_config(patch_size=2)
    cfg.unet.update(in_channels=12, out_channels=12, sample_size=8)
    assert cfg.latent_size == 8 and cfg.latent_channels == 12
    pipe = DiffDisPipeline.build(cfg, tokenizer)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    ids, null = pipe.token_ids(["a", "b", "c", "d"]), pipe.token_ids([""])
    loss, _ = unified_loss(
        pipe.model,
        pipe.text_encoder,
        pipe.autoencoder,
        training_scheduler(cfg.schedule),
        ids,
        null,
        images,
        UnifiedLossSettings(),
        torch.Generator().manual_seed(0),
    )
    assert torch.isfinite(loss)
    pipe.save_pretrained(tmp_path / "m")
    again = DiffDisPipeline.from_pretrained(tmp_path / "m")
    assert again.autoencoder.patch_size == 2
    assert again.generate(["a red circle"], num_inference_steps=2)[0].size == (16, 16)


def test_bad_patch_sizes_are_refused():
    import pytest

    from diffdis.errors import UsageError

    with pytest.raises(UsageError, match="divisor"):
        micro_config(patch_size=3)
    with pytest.raises(UsageError, match="latent model"):
        micro_config(patch_size=2, vae=VAE)
