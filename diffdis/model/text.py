"""Text encoder T: one caption gives the condition c (L x d) and the global text query e (1 x d).

For CLIP text models e is the EOT-token state after the final layer norm, L2-normalised [ours].
A from-scratch model gets a byte-level BPE tokenizer trained offline on the captions (any input string
still tokenises: unseen words fall back to bytes).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from diffdis.errors import DiffDisError

BOS, EOS, PAD = "<|startoftext|>", "<|endoftext|>", "<|pad|>"
# Order matters: CLIPTextModel treats eos_token_id == 2 as a legacy config and pools at argmax(input_ids).
SPECIAL_TOKENS = [BOS, EOS, PAD]


def train_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int) -> PreTrainedTokenizerFast:
    """Train a lower-casing byte-level BPE tokenizer on `texts`, fully offline."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, tok.token_to_id(BOS)), (EOS, tok.token_to_id(EOS))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, model_max_length=max_length
    )


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    if not Path(path).is_dir():
        raise DiffDisError(f"missing tokenizer folder {path}")
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as err:  # transformers raises many types for a broken folder
        raise DiffDisError(f"cannot load the tokenizer in {path}: {err}") from err


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> torch.Tensor:
    """(B, L) token ids, padded to max_length; an over-long caption is cut but keeps its EOT token."""
    out = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return out["input_ids"]


def build_text_model(config: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> CLIPTextModel:
    """A CLIP-style text transformer from `config` (CLIPTextConfig kwargs), sized to the tokenizer."""
    cfg = CLIPTextConfig(
        **{**config, "vocab_size": len(tokenizer)},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(cfg)


class TextEncoder(nn.Module):
    """Wraps a transformers text model; returns (c, e) with e unit-norm."""

    def __init__(self, model: CLIPTextModel) -> None:
        super().__init__()
        self.model = model

    @property
    def max_length(self) -> int:
        return int(self.model.config.max_position_embeddings)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # No padding mask, as in SD: the causal mask already hides the pads that follow the EOT token.
        out = self.model(input_ids=input_ids)
        condition = out.last_hidden_state  # (B, L, d)
        query = F.normalize(out.pooler_output.float(), dim=-1).to(condition.dtype)  # (B, d)
        return condition, query
