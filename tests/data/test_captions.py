import json

import pandas as pd
import pytest
from PIL import Image

from diffdis.data.captions import load_captioned
from diffdis.errors import DiffDisError


def test_image_folder_with_metadata(shapes_dir):
    ds = load_captioned(str(shapes_dir))
    assert len(ds) == 24 and set(ds.column_names) == {"image", "text"}
    assert isinstance(ds[0]["image"], Image.Image)


def test_csv_and_parquet_with_custom_columns(shapes_dir, tmp_path):
    rows = [json.loads(line) for line in (shapes_dir / "metadata.jsonl").read_text().splitlines()]
    table = pd.DataFrame(
        {"path": [str(shapes_dir / r["file_name"]) for r in rows], "caption": [r["text"] for r in rows]}
    )
    table.to_csv(tmp_path / "d.csv", index=False)
    ds = load_captioned(str(tmp_path / "d.csv"), image_column="path", caption_column="caption")
    assert ds[3]["text"] == rows[3]["text"] and ds[3]["image"].size == (16, 16)
    table.to_parquet(tmp_path / "d.parquet")
    assert len(load_captioned(str(tmp_path / "d.parquet"), "path", "caption")) == 24


def test_relative_paths_in_a_table_resolve_against_its_folder(shapes_dir, tmp_path):
    import shutil

    shutil.copy(shapes_dir / "000000.png", tmp_path / "a.png")
    pd.DataFrame({"image": ["a.png"], "text": ["a thing"]}).to_csv(tmp_path / "d.csv", index=False)
    assert load_captioned(str(tmp_path / "d.csv"))[0]["image"].size == (16, 16)


def test_bad_data_sources(tmp_path, shapes_dir):
    with pytest.raises(DiffDisError, match="no metadata.jsonl"):
        load_captioned(str(tmp_path))
    with pytest.raises(DiffDisError, match="cannot use"):
        load_captioned(str(tmp_path / "x.txt"))
    with pytest.raises(DiffDisError, match="no column 'caption'"):
        load_captioned(str(shapes_dir), caption_column="caption")


def test_builtin_names_are_written_once_to_the_cache_and_joined(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFDIS_CACHE", str(tmp_path))
    ds = load_captioned("shapes:12+digits:5")
    assert len(ds) == 17 and set(ds.column_names) == {"image", "text"}
    from diffdis.data.builtin import VERSIONS

    expected = [f"digits-v{VERSIONS['digits']}-train-5", f"shapes-v{VERSIONS['shapes']}-train-12"]
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == expected
    stamp = (tmp_path / "datasets" / "shapes-v1-train-12" / "metadata.jsonl").stat().st_mtime_ns
    assert len(load_captioned("shapes:12")) == 12
    assert (tmp_path / "datasets" / "shapes-v1-train-12" / "metadata.jsonl").stat().st_mtime_ns == stamp  # reused
    with pytest.raises(DiffDisError, match="cannot use"):
        load_captioned("shapes:many")
