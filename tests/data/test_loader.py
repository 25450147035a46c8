"""TrainingData: resume (streamed and map-style), DataLoader workers, one pass over a source."""

import io
import itertools

import pytest
import torch

from diffdis.data.captions import load_captioned
from diffdis.data.loader import batch_indices, one_pass_batches, training_data
from diffdis.errors import DiffDisError
from tests.data.shards import write_shards


def take(data, n: int) -> list[dict]:
    return list(itertools.islice(data, n))


def texts(batches) -> list[str]:
    return [t for b in batches for t in b["text"]]


def saved(state: dict) -> dict:
    """Through torch.save and a weights_only load, as a checkpoint would."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stream_resume_is_exact_without_a_shuffle_buffer(tmp_path, num_workers):
    write_shards(tmp_path, 2, 6)  # 12 rows, batches of 4: the continuation crosses two epochs
    options = {"image_size": 8, "batch_size": 4, "num_workers": num_workers, "shuffle_buffer": 1, "seed": 3}
    straight = take(training_data(str(tmp_path), **options), 7)
    first = training_data(str(tmp_path), **options)
    assert texts(take(first, 2)) == texts(straight[:2])
    resumed = take(training_data(str(tmp_path), state=saved(first.state_dict()), **options), 5)
    assert texts(resumed) == texts(straight[2:])
    assert all(torch.equal(a["pixels"], b["pixels"]) for a, b in zip(resumed, straight[2:]))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stream_resume_skips_at_most_the_shuffle_buffer_and_repeats_nothing(tmp_path, num_workers):
    write_shards(tmp_path, 4, 25)  # 100 rows
    buffer = 8
    options = {"image_size": 8, "batch_size": 4, "num_workers": num_workers, "shuffle_buffer": buffer}
    first = training_data(str(tmp_path), **options)
    before = texts(take(first, 5))
    after = texts(take(training_data(str(tmp_path), state=saved(first.state_dict()), **options), 24))
    epoch = before + list(itertools.takewhile(lambda t, seen=set(before): not (t in seen or seen.add(t)), after))
    assert len(set(epoch)) == len(epoch)  # no row of the epoch comes twice
    assert len(after) - (len(epoch) - len(before)) >= 4  # ... and the epoch did end inside `after`
    assert 100 - len(epoch) <= buffer * max(1, num_workers)  # the rows that sat in the buffers are skipped


def test_two_workers_serve_every_row_and_the_bad_row_counts(tmp_path):
    write_shards(tmp_path, 4, 5, bad=[7])
    options = {"image_size": 8, "batch_size": 2, "num_workers": 2, "shuffle_buffer": 1, "max_bad_fraction": 0.5}
    data = training_data(str(tmp_path), **options)
    batches = take(data, 8)  # 4 from each worker: 8 of the 10 rows of its two shards
    assert len(set(texts(batches))) == 16 and "row 7" not in texts(batches)
    assert sum(b["bad"] for b in batches) == 1


def test_saved_state_must_match_the_run(tmp_path, shapes_dir):
    write_shards(tmp_path, 2, 4)
    state = saved(training_data(str(tmp_path), image_size=8, batch_size=2).state_dict())
    with pytest.raises(DiffDisError, match="made with .*'batch_size': 2.*this run has .*'batch_size': 4"):
        training_data(str(tmp_path), image_size=8, batch_size=4, state=state)
    with pytest.raises(DiffDisError, match="is a stream's, but"):
        training_data(str(shapes_dir), image_size=8, batch_size=2, state=state)
    with pytest.raises(DiffDisError, match="does not divide among 3 processes"):
        training_data(str(tmp_path), image_size=8, batch_size=4, world_size=3)


def test_map_style_batches_through_workers_match_the_main_process_and_start_at_start_step(shapes_dir):
    options = {"image_size": 16, "batch_size": 8, "seed": 1, "start_step": 3}
    main = training_data(str(shapes_dir), num_workers=0, **options)
    assert not main.streaming and main.num_rows == 24
    workers = training_data(str(shapes_dir), num_workers=2, **options)
    expected, got = take(main, 4), take(workers, 4)
    for a, b in zip(expected, got):
        assert torch.equal(a["pixels"], b["pixels"]) and a["text"] == b["text"] and (b["bad"], b["seen"]) == (0, 8)
    assert workers.state_dict() == {"step": 7}
    rows = load_captioned(str(shapes_dir))[batch_indices(3, 24, 8, 1)]
    assert expected[0]["text"] == rows["text"]
    resumed = take(training_data(str(shapes_dir), num_workers=0, state=saved(workers.state_dict()), **options), 1)
    assert torch.equal(resumed[0]["pixels"], take(main, 1)[0]["pixels"])  # main went on to step 7 too
    half = take(training_data(str(shapes_dir), num_workers=0, rank=1, world_size=2, **options), 1)[0]
    assert half["text"] == expected[0]["text"][4:] and torch.equal(half["pixels"], expected[0]["pixels"][4:])
    assert main.captions(3) == load_captioned(str(shapes_dir))["text"][:3]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_one_pass_reads_every_usable_row_once(tmp_path, num_workers):
    write_shards(tmp_path, 3, 5, bad=[4])
    batches = list(
        one_pass_batches(
            str(tmp_path), image_size=8, batch_size=4, num_workers=num_workers, max_bad_fraction=0.2, log=lambda _: None
        )
    )
    expected = [f"row {i}" for i in range(15) if i != 4]
    if num_workers == 0:
        assert texts(batches) == expected and [len(b["text"]) for b in batches] == [4, 4, 4, 2]
    assert sorted(texts(batches)) == sorted(expected)


def test_one_pass_over_a_map_style_source(shapes_dir):
    batches = list(one_pass_batches(str(shapes_dir), image_size=16, batch_size=10, num_workers=2))
    assert sorted(texts(batches)) == sorted(load_captioned(str(shapes_dir))["text"])
    single = list(one_pass_batches(str(shapes_dir), image_size=16, batch_size=10))
    assert texts(single) == load_captioned(str(shapes_dir))["text"] and single[0]["pixels"].shape == (10, 3, 16, 16)
