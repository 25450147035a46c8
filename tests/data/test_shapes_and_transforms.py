import numpy as np
import torch
from PIL import Image

from diffdis.data.shapes import COLOURS, make_shapes
from diffdis.data.transforms import image_grid, image_to_tensor, tensor_to_images


def test_shapes_world_is_deterministic_and_captions_match(tmp_path):
    a, b = make_shapes(tmp_path / "a", 12, seed=5), make_shapes(tmp_path / "b", 12, seed=5)
    assert (a / "metadata.jsonl").read_text() == (b / "metadata.jsonl").read_text()
    assert (a / "000003.png").read_bytes() == (b / "000003.png").read_bytes()
    import json

    for line in (a / "metadata.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert row["colour"] in row["text"] and row["shape"] in row["text"]
        pixels = np.asarray(Image.open(a / row["file_name"])).reshape(-1, 3)
        assert (np.abs(pixels.astype(int) - COLOURS[row["colour"]]).sum(1) < 30).any()  # the colour is drawn


def test_image_to_tensor_handles_modes_and_shapes():
    for image in (
        Image.new("L", (40, 20), 128),
        Image.new("RGBA", (20, 40), (255, 0, 0, 0)),
        Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)),
        Image.new("P", (9, 9)),
    ):
        t = image_to_tensor(image, 16)
        assert t.shape == (3, 16, 16) and t.min() >= -1 and t.max() <= 1
    transparent = image_to_tensor(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), 4)
    assert torch.allclose(transparent, torch.ones_like(transparent))  # alpha composited on white
    assert torch.allclose(
        image_to_tensor(Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)), 4), torch.ones(3, 4, 4)
    )


def test_tensor_to_images_round_trip():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    again = tensor_to_images(image_to_tensor(image, 16)[None])[0]
    assert np.array_equal(np.asarray(image), np.asarray(again))


def test_image_grid_fills_rows_left_to_right_on_white():
    images = [Image.new("RGB", (2, 3), (i * 50, 0, 0)) for i in range(5)]
    grid = image_grid(images)  # about square: 3 columns, 2 rows
    assert grid.size == (6, 6)
    assert grid.getpixel((2, 0)) == (50, 0, 0) and grid.getpixel((0, 3)) == (150, 0, 0)
    assert grid.getpixel((5, 5)) == (255, 255, 255)  # the empty sixth cell
    assert image_grid(images, columns=5).size == (10, 3)
