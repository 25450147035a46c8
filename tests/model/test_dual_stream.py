import copy

import pytest
import torch
from diffusers import UNet2DConditionModel

from diffdis.model.unet import DiffDisModel
from tests.conftest import micro_config


def _inputs(batch=2, d=32):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(batch, 3, 16, 16, generator=g)
    c = torch.randn(batch, 16, 32, generator=g)
    e = torch.randn(batch, d, generator=g)
    t = torch.tensor([10, 500])
    return z, c, e, t


def _randomise_new_modules(model):
    """FC-out starts at zero; give it weights so the text stream is visible in these tests."""
    for block in model.discriminator.fusion.values():
        torch.nn.init.normal_(block.fc_out.weight, std=0.2)


def test_generation_mode_is_exactly_the_diffusers_unet():
    model = DiffDisModel(micro_config()).eval()
    plain = UNet2DConditionModel(**micro_config().unet).eval()
    plain.load_state_dict(model.unet.state_dict())
    z, c, _, t = _inputs()
    with torch.no_grad():
        assert torch.equal(model.predict_noise(z, t, c), plain(z, t, encoder_hidden_states=c).sample)


def test_generation_mode_ignores_the_text_stream():
    model = DiffDisModel(micro_config()).eval()
    z, c, _, t = _inputs()
    with torch.no_grad():
        before = model.predict_noise(z, t, c)
        for p in model.discriminator.parameters():
            p.add_(torch.randn_like(p))
        assert torch.equal(before, model.predict_noise(z, t, c))


def test_query_prediction_shape_and_dependence_on_image():
    model = DiffDisModel(micro_config()).eval()
    _randomise_new_modules(model)
    z, c, e, t = _inputs()
    with torch.no_grad():
        out = model.predict_query(z, e, t, c)
        assert out.shape == (2, 32)
        assert not torch.allclose(out, model.predict_query(torch.zeros_like(z), e, t, c))
        assert model.predict_query(z, e, t, None).shape == (2, 32)  # disc_condition="skip"


def _image_stream_after_fusion(fusion: str, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = DiffDisModel(micro_config(fusion=fusion)).eval()
    key = next(k for k in model.discriminator.fusion if k.startswith("down"))
    block = model.discriminator.fusion[key]
    transformer = model.unet.down_blocks[1].attentions[0]
    hidden = torch.randn(2, 32, 8, 8, generator=torch.Generator().manual_seed(2))
    c = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return block(transformer, hidden, query, c)


@pytest.mark.parametrize("fusion, image_depends_on_text", [("joint", True), ("one-way", False)])
def test_image_tokens_see_the_text_token_only_in_joint_fusion(fusion, image_depends_on_text):
    q1, q2 = torch.randn(2, 32), torch.randn(2, 32)
    image1, text1 = _image_stream_after_fusion(fusion, q1)
    image2, text2 = _image_stream_after_fusion(fusion, q2)
    assert image1.shape == (2, 32, 8, 8) and text1.shape == (2, 32)
    assert (not torch.allclose(image1, image2)) == image_depends_on_text


def test_one_way_image_stream_equals_sd_transformer():
    """In one-way fusion the image stream is exactly SD's Transformer2DModel: cacheable per image."""
    torch.manual_seed(0)
    model = DiffDisModel(micro_config(fusion="one-way")).eval()
    block = next(v for k, v in model.discriminator.fusion.items() if k.startswith("down"))
    transformer = model.unet.down_blocks[1].attentions[0]
    hidden, c = torch.randn(2, 32, 8, 8), torch.randn(2, 16, 32)
    with torch.no_grad():
        image, _ = block(transformer, hidden, torch.randn(2, 32), c)
        assert torch.allclose(image, transformer(hidden, encoder_hidden_states=c).sample, atol=1e-6)


def test_fc_out_is_zero_initialised_and_text_token_reads_the_image():
    model = DiffDisModel(micro_config()).eval()
    block = next(iter(model.discriminator.fusion.values()))
    transformer = model.unet.down_blocks[1].attentions[0]
    hidden, q = torch.randn(2, 32, 8, 8), torch.randn(2, 32)
    with torch.no_grad():
        _, text = block(transformer, hidden, q, None)
        assert torch.count_nonzero(text) == 0
        torch.nn.init.normal_(block.fc_out.weight)
        _, a = block(transformer, hidden, q, None)
        _, b = block(transformer, torch.randn(2, 32, 8, 8), q, None)  # (GroupNorm hides affine changes)
        assert not torch.allclose(a, b)


def test_gradients_reach_shared_and_new_modules():
    model = DiffDisModel(micro_config())
    _randomise_new_modules(model)
    z, c, e, t = _inputs()
    model.predict_query(z, e, t, c).pow(2).sum().backward()
    assert model.discriminator.query_transformer.predictor.weight.grad.abs().sum() > 0
    assert model.unet.conv_in.weight.grad.abs().sum() > 0  # the shared image stream learns from L_ITA
    assert model.unet.up_blocks[0].resnets[0].conv1.weight.grad is None  # the up path is never run
    assert all(b.fc_in.weight.grad.abs().sum() > 0 for b in copy.copy(model.discriminator.fusion).values())


def test_one_way_cached_image_stream_gives_the_same_prediction():
    model = DiffDisModel(micro_config(fusion="one-way")).eval()
    _randomise_new_modules(model)
    z, c, e, t = _inputs()
    with torch.no_grad():
        cache = model.cache_image_stream(z, c)
        for t_e in (torch.tensor([10, 500]), torch.tensor([999])):
            direct = model.predict_query(z, e, t_e, c)
            assert torch.allclose(model.predict_query_cached(cache, e, t_e), direct, atol=1e-5)


def test_joint_models_cannot_cache():
    from diffdis.errors import DiffDisError

    model = DiffDisModel(micro_config()).eval()
    z, c, _, _ = _inputs()
    with pytest.raises(DiffDisError, match="one-way"):
        model.cache_image_stream(z, c)


def test_attention_with_cached_image_keys_values_equals_diffusers_attention():
    from diffusers.models.attention_processor import Attention

    from diffdis.model.dual_stream import attend_with_cached, image_keys_values

    attn = Attention(32, heads=4, dim_head=8).eval()
    text, image = torch.randn(3, 1, 32), torch.randn(3, 20, 32)
    with torch.no_grad():
        expected = attn(text, encoder_hidden_states=torch.cat([text, image], dim=1))
        assert torch.allclose(attend_with_cached(attn, text, *image_keys_values(attn, image)), expected, atol=1e-6)


def test_one_way_query_transformer_image_side_ignores_the_query():
    """The one-way query transformer caches: its prediction from the recorded keys and values equals the full
    forward for any query, so the image tokens never read the text token."""
    from diffdis.model.unet import QueryTransformer

    qt = QueryTransformer(32, 16, 32, 3, 8, one_way=True).eval()
    image = torch.randn(2, 16, 4, 4)
    record: list = []
    with torch.no_grad():
        qt(torch.zeros(2, 32), image, record=record)
        for _ in range(2):
            q = torch.randn(2, 32)
            assert torch.allclose(qt.text_only(q, record), qt(q, image), atol=1e-5)
