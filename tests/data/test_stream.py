"""Streamed sources: detection, rank split, bad rows, bad inputs, json captions, parquet."""

import io
import itertools
import tarfile

import pandas as pd
import pytest
import torch
from PIL import Image

from diffdis.data import stream
from diffdis.data.loader import is_streaming_source, one_pass_batches, training_data
from diffdis.errors import DiffDisError
from tests.data.shards import write_shards


def texts(batches) -> list[str]:
    return [t for b in batches for t in b["text"]]


def rows(n: int, skip=()) -> list[str]:
    return [f"row {i}" for i in range(n) if i not in skip]


def test_brace_patterns_expand_with_padding():
    assert stream.expand_braces("d/{000..002}.tar") == ["d/000.tar", "d/001.tar", "d/002.tar"]
    assert stream.expand_braces("{a,b}/{8..10}.tar") == [
        "a/8.tar",
        "a/9.tar",
        "a/10.tar",
        "b/8.tar",
        "b/9.tar",
        "b/10.tar",
    ]


def test_which_sources_stream(tmp_path, shapes_dir):
    write_shards(tmp_path / "tars", 2, 2)
    pd.DataFrame({"image": [b""], "text": ["x"]}).to_parquet(tmp_path / "one.parquet")
    (tmp_path / "pq").mkdir()
    pd.DataFrame({"image": [b""], "text": ["x"]}).to_parquet(tmp_path / "pq" / "a.parquet")
    streamed = [
        "tars",
        "tars/{00000..00001}.tar",
        "tars/*.tar",
        "tars/*",
        "tars/00000.tar",
        "one.parquet",
        "pq",
        "pq/*.parquet",
    ]
    for data in streamed:
        assert is_streaming_source(str(tmp_path / data)), data
    pd.DataFrame({"image": ["a.png"], "text": ["x"]}).to_csv(tmp_path / "d.csv")
    for data in [str(shapes_dir), str(tmp_path / "d.csv"), "world:2000+digits", "digits"]:
        assert not is_streaming_source(data), data


def test_an_img2dataset_folder_streams_its_tars_not_the_metadata_beside_them(tmp_path):
    write_shards(tmp_path, 2, 3)
    for shard in range(2):
        pd.DataFrame({"key": ["0"], "caption": ["x"]}).to_parquet(tmp_path / f"{shard:05d}.parquet")
        (tmp_path / f"{shard:05d}_stats.json").write_text("{}")
    for data in (tmp_path, tmp_path / "*"):
        assert is_streaming_source(str(data))
        assert texts(one_pass_batches(str(data), image_size=8, batch_size=4)) == rows(6)


def test_batches_have_the_promised_shapes_and_types(tmp_path):
    write_shards(tmp_path, 2, 5)
    batch = next(iter(training_data(str(tmp_path), image_size=8, batch_size=4, shuffle_buffer=4)))
    assert batch["pixels"].dtype == torch.float32 and batch["pixels"].shape == (4, 3, 8, 8)
    assert -1 <= batch["pixels"].min() and batch["pixels"].max() <= 1
    assert len(batch["text"]) == 4 and all(t.startswith("row ") for t in batch["text"])
    assert (batch["bad"], batch["seen"]) == (0, 4)


@pytest.mark.parametrize("num_shards", [4, 3])  # 3 shards on 2 ranks: split by rows instead of by shards
def test_two_ranks_read_disjoint_rows_that_cover_the_stream(tmp_path, num_shards):
    write_shards(tmp_path, num_shards, 4)
    n = num_shards * 4
    seen = []
    for rank in range(2):
        data = training_data(str(tmp_path), image_size=8, batch_size=4, rank=rank, world_size=2, shuffle_buffer=1)
        assert data.streaming and data.num_rows is None
        seen.append(texts(itertools.islice(data, n // 4)))  # one epoch: n/2 rows per rank, 2 per batch
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(rows(n))


def test_bad_rows_are_skipped_and_counted(tmp_path):
    write_shards(tmp_path, 2, 10, bad=[3, 12])
    batches = list(
        one_pass_batches(str(tmp_path), image_size=8, batch_size=4, max_bad_fraction=0.2, log=lambda _: None)
    )
    assert texts(batches) == rows(20, skip={3, 12})
    assert sum(b["bad"] for b in batches) == 2 and sum(b["seen"] for b in batches) == 20
    data = training_data(str(tmp_path), image_size=8, batch_size=6, max_bad_fraction=0.3, shuffle_buffer=1)
    batches = list(itertools.islice(data, 3))
    assert sum(b["bad"] for b in batches) + sum(len(b["text"]) for b in batches) == sum(b["seen"] for b in batches)
    assert sum(b["bad"] for b in batches) == 2


def test_too_many_bad_rows_stop_the_run_in_one_line(tmp_path):
    write_shards(tmp_path, 1, 20, bad=range(0, 20, 4))
    data = training_data(str(tmp_path), image_size=8, batch_size=4, max_bad_fraction=0.1, shuffle_buffer=1)
    with pytest.raises(DiffDisError) as err:
        list(itertools.islice(data, 5))
    message = str(err.value)
    assert "\n" not in message and "rows read so far were unusable (first: 00000.tar/000000000" in message
    assert "--max-bad-fraction 0.1" in message


def test_a_stream_of_only_bad_rows_ends_instead_of_looping(tmp_path, monkeypatch):
    write_shards(tmp_path / "a", 1, 6, bad=range(6))
    data = training_data(str(tmp_path / "a"), image_size=8, batch_size=2, max_bad_fraction=1.0, shuffle_buffer=1)
    with pytest.raises(DiffDisError, match="none of the 6 rows of a whole pass over the data is usable"):
        next(iter(data))
    monkeypatch.setattr(stream, "MAX_BAD_IN_A_ROW", 5)
    write_shards(tmp_path / "b", 1, 12, bad=range(2, 12))
    data = training_data(str(tmp_path / "b"), image_size=8, batch_size=4, max_bad_fraction=1.0, shuffle_buffer=1)
    with pytest.raises(DiffDisError, match="5 rows in a row were unusable"):
        next(iter(data))


def test_bad_inputs_fail_before_the_first_batch_in_one_line(tmp_path):
    shards = write_shards(tmp_path / "ok", 2, 3)
    truncated = tmp_path / "trunc" / "00000.tar"
    truncated.parent.mkdir()
    truncated.write_bytes(shards[0].read_bytes()[:1500])
    garbage = tmp_path / "garbage" / "00000.tar"
    garbage.parent.mkdir()
    garbage.write_bytes(b"\x89PNG not a tar at all" * 100 + b"\0" * 1024)
    write_shards(tmp_path / "nocap", 1, 3, captions=None)
    cases = {
        str(tmp_path / "none" / "{00000..00009}.tar"): "matches no file",
        str(tmp_path / "ok" / "{00000..00002}.tar"): "00002.tar does not exist",
        str(truncated): "shard .*00000.tar is not a readable tar file",
        str(garbage): "shard .*00000.tar is not a readable tar file",
        str(tmp_path / "nocap"): "has images but no captions: no KEY.txt and no 'caption' in KEY.json",
    }
    for data, message in cases.items():
        with pytest.raises(DiffDisError, match=message) as err:
            next(iter(training_data(data, image_size=8, batch_size=2)))
        assert "\n" not in str(err.value)


def test_a_shard_damaged_in_the_middle_stops_the_run_in_one_line(tmp_path):
    (shard,) = write_shards(tmp_path, 1, 6)
    with tarfile.open(shard) as tar:
        offset = tar.getmembers()[9].offset  # the header of row 3's image
    data = bytearray(shard.read_bytes())
    data[offset : offset + 8] = b"garbage!"
    shard.write_bytes(bytes(data))
    with pytest.raises(
        DiffDisError, match=rf"shard .*00000.tar is damaged: no valid tar header at byte {offset}"
    ) as err:
        list(one_pass_batches(str(tmp_path), image_size=8, batch_size=2))
    assert "\n" not in str(err.value)


def test_json_captions(tmp_path):
    write_shards(tmp_path, 1, 5, captions="json", fmt="jpg")
    batches = list(one_pass_batches(str(tmp_path), image_size=8, batch_size=2))
    assert texts(batches) == rows(5) and [len(b["text"]) for b in batches] == [2, 2, 1]


def _png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), (i * 40, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_parquet_streams_bytes_image_structs_and_relative_paths(tmp_path):
    (tmp_path / "pics").mkdir()
    for i in range(3):
        (tmp_path / "pics" / f"{i}.png").write_bytes(_png(i))
    pd.DataFrame({"img": [_png(i) for i in range(4)], "caption": rows(4)}).to_parquet(tmp_path / "a.parquet")
    structs = [{"bytes": _png(i), "path": None} for i in range(2)] + [{"bytes": None, "path": "pics/2.png"}]
    pd.DataFrame({"img": structs, "caption": rows(7)[4:]}).to_parquet(tmp_path / "b.parquet")
    pd.DataFrame({"img": ["pics/0.png", "pics/1.png", "missing.png"], "caption": ["p0", "p1", "p2"]}).to_parquet(
        tmp_path / "c.parquet"
    )
    batches = list(
        one_pass_batches(
            str(tmp_path / "*.parquet"),
            image_size=8,
            batch_size=4,
            image_column="img",
            caption_column="caption",
            max_bad_fraction=0.2,
            log=lambda _: None,
        )
    )
    assert texts(batches) == rows(7) + ["p0", "p1"] and sum(b["bad"] for b in batches) == 1
    data = training_data(
        str(tmp_path / "a.parquet"), image_size=8, batch_size=2, image_column="img", caption_column="caption"
    )
    assert next(iter(data))["pixels"].shape == (2, 3, 8, 8)
    with pytest.raises(DiffDisError, match="has no column 'image'.*set --image-column"):
        training_data(str(tmp_path / "a.parquet"), image_size=8, batch_size=2)


def test_parquet_row_groups_are_shards_for_ranks_and_workers(tmp_path):
    table = pd.DataFrame({"image": [_png(i % 5) for i in range(40)], "text": rows(40)})
    table.to_parquet(tmp_path / "one.parquet", row_group_size=10)  # 4 row groups: 2 per rank, 1 per worker
    seen = []
    for rank in range(2):
        data = training_data(
            str(tmp_path / "one.parquet"),
            image_size=8,
            batch_size=4,
            rank=rank,
            world_size=2,
            num_workers=2,
            shuffle_buffer=1,
        )
        assert data.state_dict()["num_workers"] == 2
        seen.append(texts(itertools.islice(data, 10)))
    assert sorted(seen[0] + seen[1]) == sorted(rows(40))
    assert texts(one_pass_batches(str(tmp_path / "one.parquet"), image_size=8, batch_size=16)) == rows(40)


def test_captions_for_the_tokenizer_come_without_decoding_images(tmp_path):
    write_shards(tmp_path, 2, 4, bad=range(8))
    data = training_data(str(tmp_path), image_size=8, batch_size=2)
    assert data.captions(5) == rows(5)
