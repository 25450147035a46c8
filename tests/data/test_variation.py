"""The built-in drawings vary (issue #17), and the plain style still draws the worlds before version 2."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from diffdis.data.digits import make_digits
from diffdis.data.variation import Variation, draw_variation, vary_digit
from diffdis.data.world import make_world
from diffdis.errors import DiffDisError


def _rows(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def test_plain_style_draws_the_version_1_world_and_digits_byte_for_byte(tmp_path):
    """The hash was taken from diffdis before the varied style existed (make_world(.., 6, seed=3), digits test[:5])."""
    world = make_world(tmp_path / "w", 6, seed=3, split="train", style="plain")
    digits = make_digits(tmp_path / "d", "test", limit=5)
    digest = hashlib.sha256()
    for folder in (world, digits):
        for path in sorted(folder.iterdir()):
            digest.update(path.read_bytes())
    assert digest.hexdigest() == "9bf62c5fb0830e6a02ddddfae0a473dad7f8946092866f5d43d567809573d7b7"


def test_varied_world_records_and_spreads_its_variation(tmp_path):
    rows = _rows(make_world(tmp_path / "w", 60, seed=0))
    slants = [r["slant"] for r in rows]
    assert min(slants) < -0.2 and max(slants) > 0.2
    assert 0.5 <= min(r["stroke"] for r in rows) and max(r["stroke"] for r in rows) <= 2.5
    assert 0.2 < np.mean([r["clutter"] > 0 for r in rows]) < 0.8
    assert any(r["blur"] > 0 for r in rows) and any(r["noise"] > 0 for r in rows)
    again = _rows(make_world(tmp_path / "again", 60, seed=0))
    assert again == rows  # a seed still fixes everything


def test_clutter_noise_and_slant_change_the_picture_but_not_its_object():
    def rng():
        return np.random.default_rng(0)

    from diffdis.data.world_drawing import draw_thing

    plain = np.asarray(draw_thing("cat", "red", "gray", "medium", "centre", False, 0, rng(), 32)).astype(int)
    varied = np.asarray(
        draw_thing(
            "cat",
            "red",
            "gray",
            "medium",
            "centre",
            False,
            0,
            rng(),
            32,
            variation=Variation(slant=0.3, clutter=3, noise=6.0),
        )
    ).astype(int)
    assert np.abs(plain - varied).mean() > 3

    def red(a):
        return (np.abs(a - (220, 40, 40)).sum(-1) < 60).sum()

    assert red(varied) > 0.5 * red(plain)  # the red cat is still there


def test_varied_digits_are_smaller_than_the_frame_and_train_only_by_default(tmp_path):
    train = make_digits(tmp_path / "train", "train", limit=40)
    test = make_digits(tmp_path / "test", "test", limit=40)
    plain_train = make_digits(tmp_path / "plain", "train", limit=40, style="plain")

    def ink_extent(folder) -> float:  # mean fraction of the frame the strokes span (bounding box side)
        sides = []
        for row in _rows(folder):
            ink = np.asarray(Image.open(folder / row["file_name"]).convert("L")) > 100
            ys, xs = np.nonzero(ink)
            sides.append(max(np.ptp(xs), np.ptp(ys)) / ink.shape[0])
        return float(np.mean(sides))

    assert ink_extent(train) < ink_extent(plain_train) - 0.1
    assert ink_extent(test) == pytest.approx(ink_extent(make_digits(tmp_path / "t2", "test", limit=40, style="plain")))
    assert [r["text"] for r in _rows(train)] == [r["text"] for r in _rows(plain_train)]  # captions do not move
    image = vary_digit(Image.new("L", (8, 8), 255), np.random.default_rng(0), 32)
    assert image.size == (32, 32) and image.mode == "RGB"


def test_unknown_styles_are_refused():
    with pytest.raises(DiffDisError, match="style"):
        make_world("/nonexistent", 1, style="wild")
    with pytest.raises(DiffDisError, match="style"):
        make_digits("/nonexistent", "train", style="wild")
    assert isinstance(draw_variation(np.random.default_rng(1)), Variation)
