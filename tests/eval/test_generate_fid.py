"""`diffdis eval fid-stats` and the streamed, resumable, sharded `eval generate` on a random micro model:
FID from a saved .npz equals FID from the images it was made from, kept images are not made again and equal
a fresh run's, shards merge into the unsharded run's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from diffdis.data.world import make_world
from diffdis.eval.judge import Judge, save_judge
from diffdis.eval.results import merge_shards, read_records
from diffdis_cli.main import app

runner = CliRunner()
COLOUR = "tests.eval.test_generate:colour_features"  # 6-d: 12 images give a full-rank covariance
PROMPTS = ["a red circle", "a blue square", "a green star", "a red square", "a blue circle"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, micro_model) -> Path:
    root = tmp_path_factory.mktemp("fid")
    (root / "model").symlink_to(micro_model, target_is_directory=True)
    make_world(root / "world", 12, seed=0, size=16)
    save_judge(Judge(), root / "judge")
    save_judge(Judge(), root / "judge2")  # drawn after the first: other weights, features of the same size
    (root / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    (root / "prompts6.txt").write_text("\n".join([*PROMPTS, "a green circle"]) + "\n")
    return root


def run(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    return out[0] if isinstance(out, list) else out


def refused(args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


GEN = ["eval", "generate", "--model", "model", "--num-inference-steps", "1"]


def test_fid_from_saved_statistics_equals_fid_from_the_images(setup, monkeypatch):
    monkeypatch.chdir(setup)
    summary = run("eval", "fid-stats", "--data", "world", "--output", "stats/world.npz", "--features", COLOUR)
    assert summary["n"] == 12 and summary["feature_dim"] == 6 and summary["features"] == COLOUR
    with np.load("stats/world.npz") as f:
        assert f["mu"].dtype == np.float64 and f["sigma"].shape == (6, 6) and str(f["features"]) == COLOUR
    common = [*GEN, "--prompts", "world", "--features", COLOUR, "--batch-size", "4", "--output-dir", "images"]
    folder = run(*common, "--output", "folder.json")
    saved = run(*common, "--reference", "stats/world.npz", "--output", "saved.json")
    assert folder["n"] == saved["n"] == 12 and folder["n_reference"] == saved["n_reference"] == 12
    assert saved["n_generated"] == 0 and saved["seconds_per_image"] is None  # the images were kept, not made again
    assert saved["fid"] == pytest.approx(folder["fid"], rel=1e-9, abs=1e-12) and folder["fid"] > 0
    assert saved["reference"] == "stats/world.npz" and folder["reference"] == "world"
    assert sorted(p.name for p in Path("images").iterdir()) == [f"{i:06d}.png" for i in range(12)]


def test_statistics_of_other_features_and_bad_files_are_refused(setup, monkeypatch):
    monkeypatch.chdir(setup)
    run("eval", "fid-stats", "--data", "world", "--output", "judge.npz", "--features", "judge:judge")
    np.savez("foreign.npz", mean=np.zeros(3))
    base = [*GEN, "--prompts", "prompts.txt", "--output", "x.json", "--output-dir", "never"]
    refused([*base, "--reference", "judge.npz", "--features", COLOUR], 1, "holds 128-d statistics but this run's")
    refused([*base, "--reference", "judge.npz", "--features", "judge:judge2"], 1, "was made with judge:judge features")
    refused([*base, "--reference", "foreign.npz"], 1, "needs arrays 'mu' and 'sigma'")
    refused(
        [*base, "--reference", "judge.npz", "--max-reference", "4", "--features", "judge:judge"], 1, "--max-reference"
    )
    refused(["eval", "fid-stats", "--data", "world", "--output", "ref.json"], 2, "must end in .npz")
    refused(
        ["eval", "fid-stats", "--data", "world", "--output", "r.npz", "--max-samples", "1"], 2, "at least two images"
    )
    assert not Path("never").exists() and not Path("x.json").exists()  # refused before anything was made
    same = run(*base[:-4], "--reference", "judge.npz", "--features", "judge:judge", "--output", "y.json")
    assert np.isfinite(same["fid"])  # the same weights by another path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_images_resume_and_do_not_depend_on_shards(setup, monkeypatch):
    monkeypatch.chdir(setup)
    common = [*GEN, "--prompts", "prompts.txt", "--reference", "world", "--features", COLOUR, "--batch-size", "2"]
    first = run(*common, "--output", "r/a.json")
    folder = Path("r/a_images")  # the default: beside the record
    files = sorted(folder.glob("*.png"))
    assert first["n_generated"] == 5 and [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
    before = {f.name: (f.stat().st_mtime_ns, pixels(f)) for f in files}
    (folder / "000003.png").unlink()
    again = run(*common, "--output", "r/a.json")
    assert again["n_generated"] == 1 and again["fid"] == pytest.approx(first["fid"], rel=1e-12)
    for f in sorted(folder.glob("*.png")):  # kept files untouched; the remade one is the same image
        assert np.array_equal(pixels(f), before[f.name][1])
        assert f.name == "000003.png" or f.stat().st_mtime_ns == before[f.name][0]
    for shard in ("0", "1"):  # blocks of 2 shared out in turn, into one folder
        run(*common, "--num-shards", "2", "--shard-index", shard, "--output", "r/s.json", "--output-dir", "r/shared")
    for f in files:
        assert np.array_equal(pixels(Path("r/shared") / f.name), before[f.name][1])
    grown = run(*common, "--prompts", "prompts6.txt", "--output", "r/a.json", "--output-dir", str(folder))
    assert grown["n_generated"] == 1 and grown["n"] == 6  # image 4's block gains a prompt: image 4 is kept ...
    run(*common, "--prompts", "prompts6.txt", "--output", "r/fresh.json")  # ... and equals a fresh run's image 4
    assert np.array_equal(pixels(Path("r/fresh_images/000004.png")), pixels(folder / "000004.png"))
    refused([*common[:5], "2", *common[6:], "--output", "r/a.json"], 1, "was made with steps 1, this run has 2")
    refused([*common, "--seed", "1", "--output", "r/a.json"], 1, "was made with seed 0")
    (folder / "000001.png").write_text("not a png")
    refused([*common, "--output", "r/a.json"], 1, "000001.png is not an image this command wrote")


def test_shards_merge_into_the_unsharded_run(setup, monkeypatch):
    monkeypatch.chdir(setup)
    for features in (COLOUR, "judge:judge"):
        common = [*GEN, "--prompts", "world", "--features", features, "--batch-size", "2"]
        whole = run(*common, "--output", "m/whole.json")
        for shard in ("0", "1", "2"):
            record = run(*common, "--num-shards", "3", "--shard-index", shard, "--output", "m/part.json")
            assert record["n"] == 4 and (Path("m") / record["features_stats"]).is_file()
        parts = [Path(f"m/part_shard{i}of3.json") for i in range(3)]
        (merged,) = merge_shards(read_records(parts))
        assert merged["n"] == 12 and merged["shards"] == "3/3" and "features_stats" not in merged
        for key in ("diffdis_score", "judge_object_accuracy", "judge_colour_accuracy"):
            assert (key in merged) == (key in whole)
            assert key not in whole or merged[key] == pytest.approx(whole[key], rel=1e-9)
        # judge features are 128-d from 12 images: a singular covariance, whose square root is less exact
        assert merged["fid"] == pytest.approx(whole["fid"], rel=1e-9 if features == COLOUR else 1e-4)
        result = runner.invoke(app, ["eval", "build", *map(str, parts), "--output", "m/table.csv"])
        assert result.exit_code == 0, result.output
        refused(["eval", "build", *map(str, parts[:2]), "--output", "m/t.csv"], 1, "shards [2] of 3 are missing")
    assert "judge_object_accuracy" in merged  # the judge's features: it also checked the prompts


def test_bad_shards_are_refused(setup, monkeypatch):
    monkeypatch.chdir(setup)
    base = [*GEN, "--prompts", "prompts.txt", "--reference", "world", "--features", COLOUR]
    refused([*base, "--num-shards", "2", "--shard-index", "2"], 2, "must be below --num-shards")
    refused([*base, "--num-shards", "3", "--shard-index", "2", "--batch-size", "2"], 2, "fewer than two prompts")
