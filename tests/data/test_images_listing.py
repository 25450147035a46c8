from PIL import Image

from diffdis.data.images import list_images


def test_list_images_skips_a_writers_hidden_temporary(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "000000.png")
    Image.new("RGB", (4, 4)).save(tmp_path / ".000001.tmp-123.png")  # what diffdis.atomic writes before the rename
    assert [p.name for p in list_images(tmp_path)] == ["000000.png"]
