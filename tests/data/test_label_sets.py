import pytest

from diffdis.data.label_sets import (
    DEFAULT_TEMPLATES,
    builtin_label_sets,
    builtin_templates,
    load_labels,
    load_templates,
)
from diffdis.errors import DiffDisError

# The paper's 12 zero-shot datasets and their class counts (Caltech-101 as CLIP_benchmark has it, with "background").
PAPER_SIZES = {
    "cifar10": 10,
    "cifar100": 100,
    "caltech101": 102,
    "cars": 196,
    "flowers": 102,
    "food101": 101,
    "sun397": 397,
    "dtd": 47,
    "fgvc_aircraft": 100,
    "pets": 37,
    "eurosat": 10,
    "imagenet1k": 1000,
}


def test_builtin_label_sets_have_their_sizes():
    sizes = {name: len(load_labels(name)) for name in builtin_label_sets()}
    assert sizes == {**PAPER_SIZES, "mnist": 10, "digits": 10, "world_objects": 10, "world_colours": 11}
    assert load_labels("cifar10")[1] == "automobile"


@pytest.mark.parametrize("name, size", PAPER_SIZES.items())
def test_paper_label_sets_load_with_their_own_templates(name, size):
    labels = load_labels(name)
    assert len(labels) == size
    assert len(set(labels)) == (998 if name == "imagenet1k" else size)  # upstream ImageNet repeats 2 names
    templates = load_templates(None, name)
    assert templates == load_templates(DEFAULT_TEMPLATES[name]) and len(set(templates)) == len(templates)
    assert all(t.count("{}") == 1 for t in templates)


def test_paper_label_sets_keep_the_dataset_index_order():
    # spot checks where an index order is easy to get wrong (see labels/SOURCES.md)
    assert load_labels("caltech101")[:3] == ["background", "off-center face", "centered face"]
    assert load_labels("food101")[16:18] == ["cheese plate", "cheesecake"]  # Python's sorted() of the raw names
    assert load_labels("sun397")[206:208] == ["jail indoor", "jail cell"]  # ClassName.txt order, not CLIP's
    assert load_labels("eurosat")[:3] == ["annual crop land", "forest", "brushland or shrubland"]
    assert load_labels("pets")[:2] == ["Abyssinian", "American Bulldog"]
    assert load_labels("cars")[0] == "AM General Hummer SUV 2000" and load_labels("fgvc_aircraft")[-1] == "Yak-42"
    sizes = {name: len(load_templates(None, name)) for name in PAPER_SIZES}
    assert sizes == {
        "cifar10": 18,
        "cifar100": 18,
        "caltech101": 34,
        "cars": 8,
        "flowers": 1,
        "food101": 1,
        "sun397": 2,
        "dtd": 8,
        "fgvc_aircraft": 2,
        "pets": 1,
        "eurosat": 3,
        "imagenet1k": 7,
    }


def test_default_templates_name_builtin_files():
    assert set(DEFAULT_TEMPLATES) <= set(builtin_label_sets())
    assert set(DEFAULT_TEMPLATES.values()) <= set(builtin_templates())
    assert (DEFAULT_TEMPLATES["cifar10"], DEFAULT_TEMPLATES["cifar100"]) == ("cifar", "cifar")
    assert DEFAULT_TEMPLATES["imagenet1k"] == "imagenet_simple"


def test_builtin_templates_each_hold_one_placeholder():
    own = set(PAPER_SIZES) - {"cifar10", "cifar100", "imagenet1k"}  # the datasets with a template file of their name
    assert {"cifar", "imagenet", "imagenet_simple", "mnist", "simple", *own} <= set(builtin_templates())
    for name in builtin_templates():
        assert all(t.count("{}") == 1 for t in load_templates(name))
    assert len(load_templates("imagenet")) == 80 and len(load_templates(None, "cifar10")) == 18


def test_labels_from_a_list_and_a_file(tmp_path):
    assert load_labels("cat, dog,bird") == ["cat", "dog", "bird"]
    long = [f"a rather long label number {i}" for i in range(40)]  # longer than a file name may be
    assert load_labels(",".join(long)) == long
    f = tmp_path / "l.txt"
    f.write_text("\ufeffcat\n\ndog\n", encoding="utf-8")
    assert load_labels(str(f)) == ["cat", "dog"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cat,cat,dog", "duplicate"),
        ("cifar11", "unknown label set"),
        ("only", "unknown label set"),
        ("missing.txt", "does not exist"),
        ("cat,", "at least two"),
    ],
)
def test_bad_labels(spec, message):
    with pytest.raises(DiffDisError, match=message):
        load_labels(spec)


def test_bad_label_file_encoding_and_templates(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\nna\xefve\n".encode("latin-1"))
    with pytest.raises(DiffDisError, match="not UTF-8"):
        load_labels(str(latin))
    bad = tmp_path / "t.txt"
    bad.write_text("a photo of a cat\n")
    with pytest.raises(DiffDisError, match="exactly once"):
        load_templates(str(bad))
    with pytest.raises(DiffDisError, match="unknown templates"):
        load_templates("nope")


def test_the_tokenizer_corpus_is_pinned_and_not_every_builtin_set():
    """Adding a label set must not change the tokenizer (and so the model) a recipe trains from scratch."""
    from diffdis.train.build import TOKENIZER_LABEL_SETS, tokenizer_corpus

    corpus = tokenizer_corpus(["a red cat"])
    assert corpus[0] == "a red cat" and "airplane" in corpus
    assert set(TOKENIZER_LABEL_SETS) < set(builtin_label_sets())
    pinned = {label for name in TOKENIZER_LABEL_SETS for label in load_labels(name)}
    assert set(load_labels("sun397")) - pinned and not (set(load_labels("sun397")) - pinned) & set(corpus)
