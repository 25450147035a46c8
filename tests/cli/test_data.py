"""`diffdis data make`: --output-dir like every command that writes a folder; --out still works, hidden."""

from __future__ import annotations

from typer.testing import CliRunner


def test_output_dir_and_its_old_name(tmp_path):
    from diffdis_cli.main import app

    runner = CliRunner()
    new = runner.invoke(app, ["data", "make", "shapes", "--output-dir", str(tmp_path / "a"), "--num-images", "2"])
    old = runner.invoke(app, ["data", "make", "shapes", "--out", str(tmp_path / "b"), "--num-images", "2"])
    assert new.exit_code == old.exit_code == 0, new.output + old.output
    assert (tmp_path / "a" / "metadata.jsonl").read_bytes() == (tmp_path / "b" / "metadata.jsonl").read_bytes()
    both = runner.invoke(app, ["data", "make", "shapes", "--output-dir", str(tmp_path / "c"), "--out", "d"])
    assert both.exit_code == 2 and "not both" in both.output and not (tmp_path / "c").exists()
    neither = runner.invoke(app, ["data", "make", "shapes"])
    assert neither.exit_code == 2 and "--output-dir" in neither.output
    assert "--out " not in runner.invoke(app, ["data", "make", "--help"]).output
