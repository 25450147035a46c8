import torch

from diffdis.eval.retrieve import world_truth_recall

ROW = {"object": "automobile", "colour": "red", "background": "gray", "size": "small", "position": "left"}
OTHER = {**ROW, "object": "truck", "colour": "blue"}


def test_world_rows_get_any_true_and_ceiling_keys():
    # image 0 is a red car, image 1 a blue truck; "a red car" is image 0's own caption, "a blue truck" image 1's
    scores = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # each image ranks the other's caption first
    out = world_truth_recall([ROW, OTHER], ["a red car", "a blue truck"], [0, 1], scores, ks=(1,))
    assert out["any_true_image_to_text_R@1"] == 0.0 and out["own_caption_ceiling_image_to_text_R@1"] == 1.0
    out = world_truth_recall([ROW, ROW], ["a red car", "a small red car"], [0, 1], scores, ks=(1,))
    assert out["any_true_image_to_text_R@1"] == 1.0  # both captions are true of both images
    assert out["own_caption_ceiling_image_to_text_R@1"] == 0.5


def test_other_data_and_edited_captions_get_nothing():
    scores = torch.eye(2)
    assert world_truth_recall([{"label": "a"}, {"label": "b"}], ["a", "b"], [0, 1], scores) == {}
    assert world_truth_recall([ROW, OTHER], ["a red car on the moon", "a blue truck"], [0, 1], scores) == {}
