import pytest

from diffdis.data.label_sets import builtin_label_sets, builtin_templates, load_labels, load_templates
from diffdis.errors import DiffDisError


def test_builtin_label_sets_have_their_sizes():
    sizes = {name: len(load_labels(name)) for name in builtin_label_sets()}
    assert sizes == {"cifar10": 10, "cifar100": 100, "imagenet1k": 1000, "mnist": 10, "digits": 10, "world_objects": 10,
                     "world_colours": 11}  # fmt: skip
    assert load_labels("cifar10")[1] == "automobile"


def test_builtin_templates_each_hold_one_placeholder():
    assert {"cifar", "imagenet", "imagenet_simple", "mnist", "simple"} <= set(builtin_templates())
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
    [("cat,cat,dog", "duplicate"), ("cifar11", "unknown label set"), ("only", "unknown label set"),
     ("missing.txt", "does not exist"), ("cat,", "at least two")],
)  # fmt: skip
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
