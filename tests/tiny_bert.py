"""A tiny random sentence-transformers-style BERT folder (BertModel, a WordPiece vocabulary, mean pooling), laid out
like all-MiniLM-L6-v2, so the `--text-encoder` paths run in every test session, not only where the real one is
installed."""

from __future__ import annotations

import json
from pathlib import Path

import torch

WORDS = (
    "a an the on of background shape thing object red orange yellow green blue purple pink brown black white gray "
    "beige circle square triangle cross star car cat dog zero one two"
).split()


def make_tiny_bert(directory: Path, hidden: int = 32, seed: int = 0) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), model_max_length=32)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(directory, safe_serialization=True)
    (directory / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return directory
