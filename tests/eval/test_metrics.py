"""Metric values on hand-made score matrices with known answers."""

from __future__ import annotations

import pytest
import torch

from diffdis.errors import DiffDisError
from diffdis.eval.metrics import accuracy_topk, mean_per_class_recall, retrieval_recall


def test_accuracy_topk_known_values():
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    targets = torch.tensor([0, 2, 2, 2])  # rank 1, rank 2, rank 1, rank 3
    acc = accuracy_topk(logits, targets, ks=(1, 2, 5))
    assert acc == {1: 0.5, 2: 0.75, 5: 1.0}  # k=5 > C=3 is clipped: every row is a hit


def test_accuracy_ties_go_to_the_lower_index():
    logits = torch.zeros(2, 4)  # all tied: the ranking is 0, 1, 2, 3
    assert accuracy_topk(logits, torch.tensor([0, 3]), ks=(1, 3)) == {1: 0.5, 3: 0.5}


def test_mean_per_class_recall_weighs_classes_equally():
    # class 0: 3 of 3 right; class 1: 0 of 1 right; class 2 never occurs as a target and is ignored
    logits = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]])
    targets = torch.tensor([0, 0, 0, 1])
    assert mean_per_class_recall(logits, targets) == pytest.approx(0.5)
    assert accuracy_topk(logits, targets, ks=(1,))[1] == pytest.approx(0.75)


def test_retrieval_recall_with_several_captions_per_image():
    # 3 images, 5 texts: texts 0,1 -> image 0; texts 2,3 -> image 1; text 4 -> image 2
    text_image = torch.tensor([0, 0, 1, 1, 2])
    scores = torch.tensor(
        [
            [0.1, 0.9, 0.8, 0.0, 0.0],  # image 0: best text 1 (its own) -> i2t hit at 1
            [0.9, 0.0, 0.1, 0.2, 0.3],  # image 1: ranking 0, 4, 3, 2, 1 -> own texts first at rank 3
            [0.0, 0.0, 0.0, 0.0, 0.1],  # image 2: best text 4 (its own)
        ]
    )
    r = retrieval_recall(scores, text_image, ks=(1, 2, 3, 10))
    assert r["image_to_text_R@1"] == pytest.approx(2 / 3)
    assert r["image_to_text_R@2"] == pytest.approx(2 / 3)
    assert r["image_to_text_R@3"] == pytest.approx(1.0)
    # text->image: per text column, the ranking of images (ties go to the lower image index)
    # t0: [0.1, 0.9, 0.0] -> 1,0,2 (own 0 at rank 2); t1: 0,1,2 (rank 1); t2: 0,1,2 (own 1 at rank 2);
    # t3: 1,0,2 (rank 1); t4: 1,2,0 (own 2 at rank 2)
    assert r["text_to_image_R@1"] == pytest.approx(2 / 5)
    assert r["text_to_image_R@2"] == pytest.approx(1.0)
    assert r["text_to_image_R@10"] == pytest.approx(1.0)  # k > N_images is clipped
    assert r["text_retrieval_recall@1"] == r["image_to_text_R@1"]
    assert r["image_retrieval_recall@1"] == r["text_to_image_R@1"]


def test_retrieval_identity_is_perfect_and_shuffled_is_not():
    scores = torch.eye(4)
    r = retrieval_recall(scores, torch.arange(4), ks=(1,))
    assert r["image_to_text_R@1"] == 1.0 and r["text_to_image_R@1"] == 1.0
    r = retrieval_recall(scores, torch.tensor([1, 0, 3, 2]), ks=(1,))
    assert r["image_to_text_R@1"] == 0.0 and r["text_to_image_R@1"] == 0.0


def test_bad_shapes_are_refused():
    with pytest.raises(DiffDisError, match="rows"):
        accuracy_topk(torch.zeros(3, 2), torch.tensor([0, 1]))
    with pytest.raises(DiffDisError, match="one image index per text"):
        retrieval_recall(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(DiffDisError, match="indices"):
        retrieval_recall(torch.zeros(2, 2), torch.tensor([0, 2]))


def test_retrieval_recall_with_a_positive_matrix():
    # text 0 is true of images 0 and 1 (a generic caption); text 1 only of image 1; image 2 has no true text
    positive = torch.tensor([[True, False], [True, True], [False, False]])
    scores = torch.tensor(
        [
            [0.2, 0.9],  # image 0: text 1 first (false), text 0 second -> hit at 2
            [0.9, 0.1],  # image 1: text 0 first (true) -> hit at 1
            [0.5, 0.5],  # image 2: no true text, left out of image->text
        ]
    )
    r = retrieval_recall(scores, positive=positive, ks=(1, 2))
    assert r["image_to_text_R@1"] == pytest.approx(1 / 2)
    assert r["image_to_text_R@2"] == pytest.approx(1.0)
    # text 0 ranks images 1, 2, 0 -> image 1 is true -> hit at 1; text 1 ranks 0, 2, 1 -> its image 1 at rank 3
    assert r["text_to_image_R@1"] == pytest.approx(1 / 2)
    assert r["text_to_image_R@2"] == pytest.approx(1 / 2)
    # one positive per text gives exactly the text_image answer
    text_image = torch.tensor([1, 0])
    own = torch.zeros(3, 2, dtype=torch.bool)
    own[text_image, torch.arange(2)] = True
    assert retrieval_recall(scores, positive=own, ks=(1, 2)) == retrieval_recall(scores, text_image, ks=(1, 2))


def test_retrieval_recall_needs_exactly_one_kind_of_positive():
    with pytest.raises(DiffDisError, match="either"):
        retrieval_recall(torch.zeros(2, 2))
    with pytest.raises(DiffDisError, match="either"):
        retrieval_recall(torch.zeros(2, 2), torch.tensor([0, 1]), positive=torch.eye(2).bool())
    with pytest.raises(DiffDisError, match="shape"):
        retrieval_recall(torch.zeros(2, 2), positive=torch.ones(2, 3, dtype=torch.bool))
