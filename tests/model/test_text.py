import torch

from diffdis.model.text import TextEncoder, build_text_model, load_tokenizer, tokenize


def test_tokenizer_handles_any_string_and_keeps_eot(tokenizer):
    texts = ["a red circle", "Ünïcödé ✓ 😀 中文", "", "word " * 100]
    ids = tokenize(tokenizer, texts, 16)
    assert ids.shape == (4, 16)
    for row in ids:
        assert row[0] == tokenizer.bos_token_id
        assert (row == tokenizer.eos_token_id).sum() == 1
    assert (
        tokenizer.decode(tokenize(tokenizer, ["A Red Circle"], 16)[0], skip_special_tokens=True).strip()
        == "a red circle"
    )


def test_tokenizer_save_load_round_trip(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    texts = ["a blue square", "zebra 42 ∞"]
    assert torch.equal(tokenize(tokenizer, texts, 16), tokenize(again, texts, 16))


def test_text_encoder_gives_condition_and_unit_query(tokenizer, config):
    encoder = TextEncoder(build_text_model(config.text_encoder, tokenizer)).eval()
    ids = tokenize(tokenizer, ["a red circle", "a red circle on a gray background"], 16)
    c, e = encoder(ids)
    assert c.shape == (2, 16, 32) and e.shape == (2, 32)
    assert torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    # e is the EOT state after the final layer norm: tokens after EOT (pads) do not change it
    padded = ids.clone()
    padded[padded == tokenizer.pad_token_id] = 5
    assert torch.allclose(encoder(padded)[1], e, atol=1e-6)
