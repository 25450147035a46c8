"""Result records: file names, exact shard merging, the CSV table."""

from __future__ import annotations

import csv

import pytest
import torch

from diffdis.errors import DiffDisError
from diffdis.eval.classify import classification_metrics, metrics_from_samples, sample_record
from diffdis.eval.results import merge_shards, output_path, read_records, write_record, write_table


def test_records_keep_enough_to_recompute_metrics():
    torch.manual_seed(0)
    logits, targets = torch.randn(40, 12), torch.randint(0, 12, (40,))
    samples = sample_record(logits, targets.tolist(), list(range(40)))
    assert metrics_from_samples(samples, 12) == pytest.approx(classification_metrics(logits, targets))


def test_output_paths():
    fields = dict(task="classify", data="world/train", scheduler="dpm++", steps=5)
    assert (
        str(output_path("r/{task}_{data}_{scheduler}_{steps}.json", **fields)) == "r/classify_world-train_dpm++_5.json"
    )
    sharded = output_path("r/{task}.json", **fields, num_shards=4, shard_index=2)
    assert str(sharded) == "r/classify_shard2of4.json"
    with pytest.raises(DiffDisError, match="unknown field"):
        output_path("{nope}.json", **fields)


def test_shards_merge_exactly(tmp_path):
    torch.manual_seed(0)
    logits, targets = torch.randn(9, 4), torch.randint(0, 4, (9,))
    base = {"task": "classify", "method": "diffdis", "scheduler": "ddim", "steps": 5, "num_classes": 4, "num_shards": 2}
    paths = []
    for i in range(2):
        rows = list(range(i, 9, 2))
        record = {
            **base,
            "shard_index": i,
            "n": len(rows),
            "seconds": 1.0 + i,
            "samples": sample_record(logits[rows], targets[rows].tolist(), rows),
        }
        paths.append(write_record(record, tmp_path / f"s{i}.json"))
    other = write_record({**base, "scheduler": "unipc", "num_shards": 1, "n": 9, "acc1": 0.5}, tmp_path / "u.json")
    merged = merge_shards(read_records([*paths, other]))
    assert len(merged) == 2
    run = next(r for r in merged if r["scheduler"] == "ddim")
    assert run["n"] == 9 and run["seconds_per_image"] == pytest.approx(3.0 / 9)
    for key, value in classification_metrics(logits, targets).items():
        assert run[key] == pytest.approx(value)
    with pytest.raises(DiffDisError, match="missing"):
        merge_shards(read_records(paths[:1]))
    assert merge_shards(read_records(paths[:1]), allow_partial=True)[0]["shards"] == "1/2"
    columns = write_table(merged, tmp_path / "t.csv")
    assert columns[:3] == ["task", "method", "scheduler"] and "samples" not in columns
    assert [r["scheduler"] for r in csv.DictReader(open(tmp_path / "t.csv"))] == ["ddim", "unipc"]
