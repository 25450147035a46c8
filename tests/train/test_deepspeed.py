"""DeepSpeed ZeRO on CPU (gloo), 2 processes under torchrun: same curve as one process, exact resume, export."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("deepspeed")

from diffdis.config import TrainConfig  # noqa: E402
from diffdis.errors import DiffDisError  # noqa: E402
from diffdis.train.deepspeed import deepspeed_config  # noqa: E402
from diffdis.train.loop import Trainer  # noqa: E402
from tests.conftest import micro_config, micro_train_config  # noqa: E402

DRIVER = Path(__file__).with_name("ds_driver.py")
# float32 sums in another order (gradient all-reduce, gathered InfoNCE): agreement to ~1e-6 was measured;
# 1e-4 leaves room for other BLAS builds without hiding a wrong batch, noise or loss (those differ by >1%).
RTOL = 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**overrides) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return env | ({"DS_DRIVER_OVERRIDES": json.dumps(overrides)} if overrides else {})


def torchrun(data: Path, out: Path, stage: str, steps: int, resume: bool = False, **overrides) -> dict:
    curve = out.with_suffix(".curve.json")
    args = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        str(DRIVER),
        str(data),
        str(out),
        stage,
        str(steps),
        str(curve),
    ] + (["resume"] if resume else [])
    done = subprocess.run(args, env=_env(**overrides), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(curve.read_text())


def two_nodes(
    data: Path, outs: tuple[Path, Path], steps: int, resume: bool = False
) -> list[subprocess.CompletedProcess]:
    """Two "nodes" of one process each on localhost, as `torchrun --nnodes 2 --node-rank R` on two machines."""
    port = str(_free_port())
    procs = []
    for rank, out in enumerate(outs):
        args = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "2",
            "--nproc_per_node",
            "1",
            "--node_rank",
            str(rank),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            port,
            str(DRIVER),
            str(data),
            str(out),
            "zero2",
            str(steps),
            str(out.with_suffix(f".curve-{rank}.json")),
        ] + (["resume"] if resume else [])
        procs.append(subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=600), *p.communicate()) for p in procs]


@pytest.fixture(scope="module")
def single_process_curve(shapes_dir, tmp_path_factory) -> list[float]:
    cfg = micro_train_config(
        shapes_dir,
        tmp_path_factory.mktemp("single"),
        max_steps=4,
        checkpointing_steps=100,
        lr_scheduler="constant",
        warmup_steps=0,
    )
    curve: list[float] = []
    Trainer(cfg, micro_config(), log=lambda m: None).run(lambda s, n, logs: curve.append(logs["loss"]))
    return curve


def test_zero2_two_ranks_follow_the_single_process_curve(shapes_dir, tmp_path, single_process_curve):
    result = torchrun(shapes_dir, tmp_path / "z2", "zero2", 3)
    assert result["curve"] == pytest.approx(single_process_curve[:3], rel=RTOL)
    assert (tmp_path / "z2" / "model_index.json").is_file()


def test_zero3_resume_continues_the_curve_and_exports(shapes_dir, tmp_path, single_process_curve):
    first = torchrun(shapes_dir, tmp_path / "z3", "zero3", 2)
    second = torchrun(shapes_dir, tmp_path / "z3", "zero3", 4, resume=True)
    assert second["start"] == 2
    assert first["curve"] + second["curve"] == pytest.approx(single_process_curve, rel=RTOL)

    from diffdis.pipeline import DiffDisPipeline
    from diffdis.train.deepspeed import export_checkpoint

    exported = export_checkpoint(tmp_path / "z3" / "checkpoints" / "checkpoint-4", tmp_path / "exported")
    for part in (
        "unet/diffusion_pytorch_model.safetensors",
        "discriminator/model.safetensors",
        "text_encoder/model.safetensors",
    ):
        a, b = load_file(exported / part), load_file(tmp_path / "z3" / part)  # shards consolidated == gathered
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    pipe = DiffDisPipeline.from_pretrained(exported)
    assert pipe.generate(["a red circle"], num_inference_steps=2)[0].size == (16, 16)
    from PIL import Image

    scores = pipe.classify(
        [Image.open(shapes_dir / "000000.png")], ["red circle", "blue square"], num_inference_steps=2
    )
    assert scores.shape == (1, 2)


def test_accumulation_across_ranks_follows_the_single_process_curve(shapes_dir, tmp_path, single_process_curve):
    """2 ranks x 2 micro-batches of 2 rows: InfoNCE still over the 8 rows of the global batch."""
    result = torchrun(shapes_dir, tmp_path / "k2", "zero2", 3, gradient_accumulation_steps=2)
    assert result["curve"] == pytest.approx(single_process_curve[:3], rel=RTOL)


def test_bf16_keeps_an_fp32_ema_that_moves(shapes_dir, tmp_path):
    """DeepSpeed casts the weights to bf16; the EMA stays fp32 (built before the cast), so it takes updates
    a bf16 shadow would round away, and the saved model holds it."""
    result = torchrun(
        shapes_dir, tmp_path / "bf16", "zero2", 4, mixed_precision="bf16", ema_decay=0.999, learning_rate=5e-3
    )
    ema = result["ema"]
    assert ema["weight_dtypes"] == ["torch.bfloat16"] and ema["dtypes"] == ["torch.float32"]
    assert ema["moved"] > 1e-4  # the average followed the weights
    assert ema["below_bf16"] > 0  # and holds precision a bf16 tensor cannot


def test_two_nodes_train_checkpoint_and_resume(shapes_dir, tmp_path, single_process_curve):
    out = tmp_path / "nodes"
    for steps, resume in ((2, False), (4, True)):
        done = two_nodes(shapes_dir, (out, out), steps, resume)
        assert all(d.returncode == 0 for d in done), "".join(d.stderr[-2000:] for d in done)
    second = json.loads(out.with_suffix(".curve-0.json").read_text())  # the resumed run, rank 0
    assert second["start"] == 2 and second["world_size"] == 2
    assert (out / "checkpoints" / "checkpoint-4").is_dir() and (out / "model_index.json").is_file()
    assert second["curve"] == pytest.approx(single_process_curve[2:], rel=RTOL)


def test_node_local_output_folders_are_refused_in_one_line(shapes_dir, tmp_path):
    done = two_nodes(shapes_dir, (tmp_path / "node0", tmp_path / "node1"), 2)
    assert all(d.returncode != 0 for d in done)
    assert "needs a shared filesystem" in done[1].stderr
    assert not (tmp_path / "node0" / "checkpoints").exists()


def test_flags_fill_the_deepspeed_config():
    cfg = TrainConfig(batch_size=8, learning_rate=2e-4, max_grad_norm=0.5, mixed_precision="bf16")
    ds = deepspeed_config("zero3", cfg, world_size=2)
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["gradient_clipping"] == 0.5
    assert ds["optimizer"]["params"]["lr"] == 2e-4 and ds["bf16"]["enabled"] is True
    assert ds["zero_optimization"]["stage"] == 3
    assert "offload_optimizer" in deepspeed_config("zero2-offload", cfg, 2)["zero_optimization"]


@pytest.mark.parametrize(
    "content, message",
    [
        ({"gradient_clipping": 2.0}, "contradicts"),
        ({"optimizer": {"type": "AdamW", "params": {"lr": 0.1}}}, "contradicts"),
        ({"train_batch_size": 64}, "train_batch_size"),
        ({"scheduler": {"type": "WarmupLR"}}, "--lr-scheduler"),
        ("{broken", "not valid JSON"),
    ],
)
def test_user_json_that_contradicts_the_flags_is_refused(tmp_path, content, message):
    path = tmp_path / "ds.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DiffDisError, match=message):
        deepspeed_config(str(path), TrainConfig(batch_size=8), world_size=2)


def test_user_json_extras_are_kept_and_bad_specs_refused(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(
        json.dumps({"zero_optimization": {"stage": 2}, "gradient_clipping": 1.0, "communication_data_type": "fp32"})
    )
    ds = deepspeed_config(str(path), TrainConfig(batch_size=8), world_size=2)
    assert ds["communication_data_type"] == "fp32" and ds["zero_optimization"] == {"stage": 2}
    with pytest.raises(DiffDisError, match="divisible"):
        deepspeed_config("zero2", TrainConfig(batch_size=7), world_size=2)
    with pytest.raises(DiffDisError, match="neither"):
        deepspeed_config("zero4", TrainConfig(batch_size=8), world_size=2)
