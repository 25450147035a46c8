import pytest
from PIL import Image

from diffdis.errors import DiffDisError
from diffdis.png_record import read_png_record, save_png


def test_record_round_trips_through_the_png_and_plain_readers_see_it(tmp_path):
    image = Image.new("RGB", (8, 8), (200, 10, 10))
    record = {"prompt": "a red car", "negative_prompt": "", "seed": 3, "steps": 25, "guidance": 7.5}
    path = save_png(image, tmp_path / "a.png", record)
    assert read_png_record(path) == record
    with Image.open(path) as again:
        assert again.text["prompt"] == "a red car" and again.convert("RGB").tobytes() == image.tobytes()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_png_without_a_record_is_refused_in_one_line(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    with pytest.raises(DiffDisError, match="holds no diffdis record"):
        read_png_record(tmp_path / "plain.png")
