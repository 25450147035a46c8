"""Text encoder T: one caption gives the condition c (L x d) and the global text query e (1 x d).

For CLIP text models e is the EOT-token state after the final layer norm, L2-normalised [ours]; other
encoders (BERT, MiniLM, ...) pool their token states as configured (`ModelConfig.text_pooling`: mean, cls or
the model's pooler). A from-scratch model gets a byte-level BPE tokenizer trained offline on the captions
(any input string still tokenises: unseen words fall back to bytes); a pretrained one brings its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoModel,
    AutoTokenizer,
    CLIPTextConfig,
    CLIPTextModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

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


def load_text_model(path: Path) -> tuple[PreTrainedModel, dict[str, list[str]]]:
    """Any local transformers text model (CLIPTextModel, BERT, MiniLM, ...) and its loading info
    (missing_keys: made fresh, unexpected_keys: in the files but unused)."""
    try:
        model, info = AutoModel.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise DiffDisError(f"cannot load a transformers text model from {path}: {str(err).splitlines()[0]}") from err
    return model, info


def text_pooling(folder: Path, model_type: str) -> str:
    """CLIP: the EOT state; a sentence-transformers folder: its own pooling; other encoders: mean [ours]."""
    if model_type == "clip_text_model":
        return "eot"
    pooling = folder / "1_Pooling" / "config.json"
    if pooling.is_file():
        try:
            modes = json.loads(pooling.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DiffDisError(f"cannot read {pooling}: {err}") from err
        if modes.get("pooling_mode_cls_token"):
            return "cls"
    return "mean"


def check_text_encoder_folder(text_dir: Path) -> None:
    """Refuse a missing --text-encoder before any data is read."""
    if not Path(text_dir).is_dir():
        raise DiffDisError(f"--text-encoder {text_dir}: no such folder (give a local transformers text model)")


def load_text_tower(text_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, list[str]]]:
    """The `--text-encoder` folder's model, tokenizer and loading info, or a one-line error saying what is wrong."""
    check_text_encoder_folder(text_dir)
    text_model, info = load_text_model(text_dir)
    if not hasattr(text_model.config, "hidden_size") or not hasattr(text_model.config, "max_position_embeddings"):
        raise DiffDisError(
            f"{text_dir} is a {text_model.config.model_type} model without hidden_size / positions; give a text encoder"
        )
    tokenizer = load_tokenizer(text_dir)
    if tokenizer.pad_token_id is None:
        raise DiffDisError(f"the tokenizer in {text_dir} has no pad token; captions are padded to a fixed length")
    return text_model, tokenizer, info


class TextEncoder(nn.Module):
    """Wraps a transformers text model; returns (c, e) with e unit-norm."""

    def __init__(
        self,
        model: PreTrainedModel,
        pooling: str = "eot",
        max_length: int | None = None,
        pad_token_id: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self._max_length = max_length
        self.pad_token_id = pad_token_id

    @property
    def max_length(self) -> int:
        return int(self._max_length or self.model.config.max_position_embeddings)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pooling == "eot":
            # No padding mask, as in SD: the causal mask already hides the pads that follow the EOT token.
            out = self.model(input_ids=input_ids)
            condition, pooled = out.last_hidden_state, out.pooler_output  # (B, L, d), (B, d)
        else:  # bidirectional encoders must not attend to pads
            mask = (
                (input_ids != self.pad_token_id).long() if self.pad_token_id is not None else torch.ones_like(input_ids)
            )
            out = self.model(input_ids=input_ids, attention_mask=mask)
            condition = out.last_hidden_state
            if self.pooling == "mean":
                weights = mask[..., None].to(condition.dtype)
                pooled = (condition * weights).sum(1) / weights.sum(1).clamp(min=1)
            elif self.pooling == "cls":
                pooled = condition[:, 0]
            else:
                pooled = out.pooler_output
        query = F.normalize(pooled.float(), dim=-1).to(condition.dtype)  # (B, d)
        return condition, query


def text_encoder_for(config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> TextEncoder:
    """The TextEncoder a ModelConfig describes, around `model` and its `tokenizer`."""
    return TextEncoder(model, config.text_pooling, config.text_max_length, tokenizer.pad_token_id)
