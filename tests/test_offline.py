"""Safety: every command runs with the network blocked; model folders are read as safetensors and JSON only;
output names never come from prompts; the same seed gives the same bytes and scores."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from diffdis.config import save_config
from diffdis.data.shapes import make_shapes
from diffdis_cli.main import app
from tests.conftest import micro_config, save_untrained_micro_model

ROOT = Path(__file__).resolve().parents[1]

# Loaded by every Python process whose PYTHONPATH starts with its folder: any connection that is not to
# this machine (loopback, unix sockets: DeepSpeed's own rendezvous) and any name lookup of another host
# raises, and is written to BLOCKED_LOG so the test sees attempts a library swallowed.
SITECUSTOMIZE = """
import os, socket

_LOCAL = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "", None}
_log = os.environ["BLOCKED_LOG"]


def _refuse(what):
    with open(_log, "a") as f:
        f.write(repr(what) + "\\n")
    raise OSError(101, f"network blocked by the offline test: {what!r}")


def _host(address):
    return address[0] if isinstance(address, tuple) else None


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self, address):
    if self.family != socket.AF_UNIX and _host(address) not in _LOCAL:
        _refuse(address)
    return _connect(self, address)


def connect_ex(self, address):
    if self.family != socket.AF_UNIX and _host(address) not in _LOCAL:
        _refuse(address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL and not str(host).startswith("127."):
        _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
"""

# Every command, in one process (one import of torch), through the real Typer app.
DRIVER = """
import json, sys
from typer.testing import CliRunner
from diffdis_cli.main import app

runner, results = CliRunner(), {}
for name, args in json.loads(sys.argv[1]):
    result = runner.invoke(app, args)
    results[name] = [result.exit_code, result.output[-1500:], repr(result.exception)]
    print(name, result.exit_code, result.output[-300:], file=sys.stderr, flush=True)
print(json.dumps(results))
"""


def _offline_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_PROXY") and not k.endswith("_proxy")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
        BLOCKED_LOG=str(tmp_path / "blocked.log"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    return env


def test_the_block_works(tmp_path):
    env = _offline_env(tmp_path)
    code = "import socket; socket.create_connection(('example.com', 443), timeout=2)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "network blocked" in out.stderr
    assert "example.com" in (tmp_path / "blocked.log").read_text()


def test_every_command_works_with_the_network_blocked(tmp_path):
    env = _offline_env(tmp_path)
    save_config(micro_config(), tmp_path / "micro.json")
    (tmp_path / "texts.txt").write_text("a red circle\na blue square\n")
    train = [
        "--data",
        "data",
        "--preset",
        "micro.json",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--vocab-size",
        "300",
        "--warmup-steps",
        "0",
        "--checkpointing-steps",
        "1",
        "--json",
    ]
    commands = [
        ("env", ["env", "--json"]),
        ("data make", ["data", "make", "shapes", "--output-dir", "data", "--num-images", "8", "--size", "16"]),
        ("train", ["train", *train, "--output-dir", "run"]),
        ("resume", ["train", *train, "--output-dir", "run", "--max-steps", "3", "--resume-from-checkpoint", "latest"]),
        ("generate", ["generate", "a red circle", "--model", "run", "--num-inference-steps", "2", "--output", "g.png"]),
        (
            "classify",
            ["classify", "data/000000.png", "--model", "run", "--labels", "cifar10", "--num-inference-steps", "1"],
        ),
        (
            "retrieve texts",
            ["retrieve", "--model", "run", "--images", "data", "--texts", "texts.txt", "--num-inference-steps", "1"],
        ),
        (
            "retrieve query",
            ["retrieve", "--model", "run", "--images", "data", "--query", "a cross", "--num-inference-steps", "1"],
        ),
    ]
    try:
        import deepspeed  # noqa: F401

        commands += [
            ("train deepspeed", ["train", *train, "--output-dir", "ds", "--max-steps", "1", "--deepspeed", "zero2"]),
            ("export", ["export", "ds/checkpoints/checkpoint-1", "exported"]),
            (
                "generate exported",
                ["generate", "x", "--model", "exported", "--num-inference-steps", "1", "--output", "e.png"],
            ),
        ]
    except ImportError:
        pass
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(commands)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for name, (code, output, exception) in results.items():
        assert code == 0, (name, output, exception)
    blocked = tmp_path / "blocked.log"
    assert not blocked.exists(), blocked.read_text()
    assert (tmp_path / "g.png").is_file() and (tmp_path / "run" / "model_index.json").is_file()


def test_no_pickle_loading_outside_weights_only():
    """Model folders are safetensors + JSON; the one torch.load (optimiser state) is weights_only. The one
    pickle reader is CIFAR's restricted unpickler (diffdis/data/formats/safe_pickle.py), whose find_class
    answers only numpy's array rebuilders (tests/data/test_formats_cifar.py feeds it hostile pickles)."""
    restricted = ROOT / "diffdis" / "data" / "formats" / "safe_pickle.py"
    assert re.search(r"class \w+\(pickle\.Unpickler\):[\s\S]*def find_class", restricted.read_text())
    sources = [p for d in ("diffdis", "diffdis_cli") for p in (ROOT / d).rglob("*.py")]
    for path in sources:
        text = path.read_text()
        if path != restricted:
            assert not re.search(r"\bimport pickle\b|\bpickle\.load|\bdill\b|joblib\.load", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
        assert "use_safetensors=False" not in text and "safe_serialization=False" not in text, path


# ---- output names and determinism, in-process on an untrained micro model --------------------------------
runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model")
    save_untrained_micro_model(root / "m")
    make_shapes(root / "data", 6, seed=0, size=16)
    return root


@pytest.mark.parametrize("prompt", ["../../etc/x", "/abs/path", "x" * 5000, "ünïcødé 🐱 猫", "", "a\nb\0c", "--help"])
def test_prompts_never_name_files(prompt, model, tmp_path, monkeypatch):
    """The image goes to --output and nowhere else, whatever the prompt says."""
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    before = {p for p in tmp_path.parent.rglob("*")}
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(model / "m"),
            "--num-inference-steps",
            "1",
            "--output",
            "o.png",
            "--json",
            "--",
            prompt,
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images"] == ["o.png"]
    assert [p.name for p in out.iterdir()] == ["o.png"]
    assert {p for p in tmp_path.parent.rglob("*")} - before == {out / "o.png"}


def _generate(model: Path, name: str, *extra: str) -> bytes:
    result = runner.invoke(
        app,
        [
            "generate",
            "a red circle",
            "--model",
            str(model / "m"),
            "--num-inference-steps",
            "3",
            "--seed",
            "7",
            "--output",
            name,
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return Path(name).read_bytes()


def _scores(model: Path, *extra: str) -> list:
    images = sorted(str(p) for p in (model / "data").glob("*.png"))
    result = runner.invoke(
        app,
        [
            "classify",
            *images,
            "--model",
            str(model / "m"),
            "--labels",
            "red circle,blue square,cat",
            "--num-inference-steps",
            "3",
            "--seed",
            "7",
            "--top-k",
            "3",
            "--json",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return [[p["score"] for p in r["predictions"]] for r in json.loads(result.stdout)["results"]]


@pytest.mark.parametrize("scheduler", ["ddpm", "dpm++"])
def test_the_same_seed_gives_the_same_png_bytes(scheduler, model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _generate(model, "a.png", "--scheduler", scheduler) == _generate(model, "b.png", "--scheduler", scheduler)
    assert _generate(model, "c.png", "--scheduler", scheduler, "--seed", "8") != _generate(
        model, "a.png", "--scheduler", scheduler, "--overwrite"
    )


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm"])
def test_the_same_seed_gives_the_same_scores(scheduler, model):
    assert _scores(model, "--scheduler", scheduler) == _scores(model, "--scheduler", scheduler)


def test_batch_size_does_not_change_scores_with_a_deterministic_sampler(model):
    """Image i gets noise row i of the seed whatever the batch; only float summation order may differ."""
    one, all_ = _scores(model, "--batch-size", "1"), _scores(model, "--batch-size", "64")
    assert torch.allclose(torch.tensor(one), torch.tensor(all_), atol=1e-5)
