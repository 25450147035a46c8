import json

import pytest
import torch

from diffdis.data.world import make_world
from diffdis.data.world_truth import caption_attributes, own_caption_ceiling, truth_matrix
from diffdis.errors import DiffDisError


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = make_world(tmp_path_factory.mktemp("world"), 200, seed=3)
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def test_every_caption_states_only_what_its_image_shows(world):
    for row in world:
        stated = caption_attributes(row["text"])
        assert stated["object"] == row["object"] and stated["colour"] == row["colour"], row
        assert all(row[attribute] == value for attribute, value in stated.items()), row
    stated = [caption_attributes(r["text"]) for r in world]
    assert any("background" in s for s in stated) and any("position" in s for s in stated)
    assert any("size" in s for s in stated) and any(set(s) == {"object", "colour"} for s in stated)


def test_background_phrases_are_not_read_as_colours():
    assert caption_attributes("a white car on a black background") == {
        "colour": "white",
        "object": "automobile",
        "background": "dark",
    }
    assert caption_attributes("a tiny crimson plane in the sky, in the top left corner") == {
        "size": "small",
        "colour": "red",
        "object": "airplane",
        "background": "sky",
        "position": "top left",
    }
    with pytest.raises(DiffDisError, match="not a world caption: 'on' is not in its grammar"):
        caption_attributes("a red car on the moon")


def test_truth_matrix_marks_every_caption_true_of_its_own_image_and_generic_ones_of_many(world):
    texts = [r["text"] for r in world]
    truth = truth_matrix(world, texts)
    assert truth.diagonal().all()
    own_only = torch.eye(len(world), dtype=torch.bool)
    assert (truth & ~own_only).any()  # generic captions ("a red car") are true of other red cars too
    red_cars = [i for i, r in enumerate(world) if (r["object"], r["colour"]) == ("automobile", "red")]
    generic = truth_matrix(world, ["a red car"])[:, 0]
    assert generic.nonzero().flatten().tolist() == red_cars


def test_own_caption_ceiling_on_a_hand_made_truth():
    # 3 images; text 0 (image 0's) is true of images 0 and 1, text 1 (image 1's) of image 1, text 2 of all three
    truth = torch.tensor([[True, False, True], [True, True, True], [False, False, True]])
    ceiling = own_caption_ceiling(truth, torch.tensor([0, 1, 2]), ks=(1, 2))
    # images have 2, 3, 1 true texts -> R@1 = (1/2 + 1/3 + 1) / 3; texts are true of 2, 1, 3 images
    assert ceiling["image_to_text_R@1"] == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert ceiling["image_to_text_R@2"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert ceiling["text_to_image_R@1"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    with pytest.raises(DiffDisError, match="not true of its own image"):
        own_caption_ceiling(truth, torch.tensor([2, 1, 0]))
