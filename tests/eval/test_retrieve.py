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


def test_shards_of_images_merge_into_the_recall_of_all_images():
    from diffdis.eval.metrics import retrieval_recall
    from diffdis.eval.retrieve import recall_from_samples, shard_samples

    torch.manual_seed(0)
    text_image = [i // 3 for i in range(21)] + [0, 6]  # 7 images with 3 captions each, two with a fourth
    scores = torch.randint(0, 4, (7, 23)).float() / 4  # few values: many ties, broken by index
    expected = retrieval_recall(scores, torch.tensor(text_image))
    for num_shards in (1, 2, 3, 7):
        shards = [
            shard_samples(scores[i::num_shards], list(range(7))[i::num_shards], text_image) for i in range(num_shards)
        ]
        assert recall_from_samples(shards) == expected
    # a partial merge: only the texts whose image is there count for text->image
    part = shard_samples(scores[0::2], [0, 2, 4, 6], text_image)
    keep = [j for j, i in enumerate(text_image) if i % 2 == 0]
    alone = retrieval_recall(scores[0::2][:, keep], torch.tensor([text_image[j] // 2 for j in keep]))
    got = recall_from_samples([part])
    assert all(got[f"text_to_image_R@{k}"] == alone[f"text_to_image_R@{k}"] for k in (1, 5, 10))
