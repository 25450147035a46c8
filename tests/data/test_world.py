import json
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from diffdis.data.captions import load_captioned
from diffdis.data.label_sets import load_labels
from diffdis.data.world import make_world
from diffdis.data.world_drawing import clashes
from diffdis.data.world_vocabulary import (
    COLOUR_WORDS,
    COLOURS,
    OBJECT_WORDS,
    OBJECTS,
    POSITIONS,
    SIZES,
    THINGS,
    heldout_combinations,
)
from diffdis.errors import DiffDisError


def rows(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def mentions(text: str, words: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text) for w in words)


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("train"), 160, seed=0)


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    a, b, c = (make_world(tmp_path / n, 10, seed=s) for n, s in (("a", 5), ("b", 5), ("c", 6)))
    assert (a / "metadata.jsonl").read_bytes() == (b / "metadata.jsonl").read_bytes()
    assert all((a / r["file_name"]).read_bytes() == (b / r["file_name"]).read_bytes() for r in rows(a))
    assert (a / "metadata.jsonl").read_bytes() != (c / "metadata.jsonl").read_bytes()
    assert any((a / r["file_name"]).read_bytes() != (c / r["file_name"]).read_bytes() for r in rows(a))


def test_captions_name_their_object_and_colour_and_the_colour_is_drawn(train):
    for row in rows(train)[:60]:
        text, thing, colour = row["text"], row["object"], row["colour"]
        assert mentions(text, OBJECT_WORDS[thing]), text
        assert not any(mentions(text, OBJECT_WORDS[other]) for other in THINGS if other != thing), text
        assert mentions(text, COLOUR_WORDS[colour]), text
        image = Image.open(train / row["file_name"])
        assert image.size == (32, 32) and image.mode == "RGB"
        pixels = np.asarray(image).reshape(-1, 3).astype(int)
        assert (np.abs(pixels - COLOURS[colour]).sum(1) < 30).sum() >= 4, row  # the object is filled with its colour
        assert not clashes(colour, row["background"])


def test_heldout_pairs_never_train_and_every_object_and_colour_keeps_partners(train, tmp_path):
    heldout = heldout_combinations()
    assert len(heldout) == 22 and ("airplane", "red") in heldout  # a fixed, documented set
    for name in (*THINGS, *COLOURS):
        partners = {pair for pair in ((t, c) for t in THINGS for c in COLOURS) if name in pair}
        assert len(partners - heldout) >= len(partners) * 0.7
    seen = {(r["object"], r["colour"]) for r in rows(train)}
    assert not seen & heldout and {r["split"] for r in rows(train)} == {"train"}
    assert {t for t, _ in seen} == set(THINGS) and {c for _, c in seen} == set(COLOURS)
    unseen = make_world(tmp_path / "heldout", 30, seed=1, split="heldout")
    assert {(r["object"], r["colour"]) for r in rows(unseen)} <= heldout
    assert {r["split"] for r in rows(unseen)} == {"heldout"}


def test_sizes_positions_flips_and_backgrounds_vary(train):
    metadata = rows(train)
    assert {r["size"] for r in metadata} == set(SIZES)
    assert len({r["position"] for r in metadata}) >= 7 and {r["position"] for r in metadata} <= set(POSITIONS)
    assert {r["flipped"] for r in metadata} == {True, False}
    assert min(r["angle"] for r in metadata) < -10 and max(r["angle"] for r in metadata) > 10
    assert len({r["background"] for r in metadata}) >= 8
    assert all(r["position"] == "centre" for r in metadata if r["size"] == "large")


def test_label_files_and_bad_arguments(tmp_path):
    assert load_labels("world_objects") == list(OBJECTS) and load_labels("world_colours") == list(COLOURS)
    with pytest.raises(DiffDisError, match="heldout"):
        make_world(tmp_path, 1, split="test")


def test_folder_loads_as_a_captioned_dataset(tmp_path):
    ds = load_captioned(str(make_world(tmp_path / "w", 6, seed=2, size=24)))
    assert len(ds) == 6 and ds.column_names == ["image", "text"] and ds[0]["image"].size == (24, 24)


def test_cli_makes_world_and_digits_and_rejects_a_bad_split(tmp_path):
    from diffdis_cli.main import app

    runner = CliRunner()
    made = runner.invoke(
        app, ["data", "make", "world", "--output-dir", str(tmp_path / "w"), "--num-images", "3", "--split", "heldout"]
    )
    assert made.exit_code == 0, made.output
    assert {r["split"] for r in rows(tmp_path / "w")} == {"heldout"}
    digits = runner.invoke(
        app, ["data", "make", "digits", "--output-dir", str(tmp_path / "d"), "--num-images", "5", "--split", "test"]
    )
    assert digits.exit_code == 0 and len(rows(tmp_path / "d")) == 5
    bad = runner.invoke(app, ["data", "make", "world", "--output-dir", str(tmp_path / "x"), "--split", "test"])
    assert bad.exit_code == 2 and "heldout" in bad.output


def test_cli_style_chooses_varied_or_plain_drawings(tmp_path):
    from diffdis_cli.main import app

    runner = CliRunner()
    for style in ("plain", "varied"):
        made = runner.invoke(
            app, ["data", "make", "world", "--output-dir", str(tmp_path / style), "--num-images", "3", "--style", style]
        )
        assert made.exit_code == 0, made.output
    assert all("slant" not in r for r in rows(tmp_path / "plain")) and all(
        "slant" in r for r in rows(tmp_path / "varied")
    )
    assert (tmp_path / "plain" / "metadata.jsonl").read_bytes() == (
        make_world(tmp_path / "p2", 3, style="plain") / "metadata.jsonl"
    ).read_bytes()
    wild = runner.invoke(app, ["data", "make", "world", "--output-dir", str(tmp_path / "w"), "--style", "wild"])
    assert wild.exit_code != 0 and "style" in wild.output and not (tmp_path / "w" / "metadata.jsonl").exists()
    shapes = runner.invoke(app, ["data", "make", "shapes", "--output-dir", str(tmp_path / "s"), "--style", "plain"])
    assert shapes.exit_code == 2 and "one style" in shapes.output
