"""--device / --dtype resolution: what "auto" means here, one-line refusals, and the CUDA branches, exercised
through monkeypatched torch.cuda so they are tested on a machine without a GPU (no device is touched)."""

from __future__ import annotations

import pytest
import torch

from diffdis.device import enable_tf32, resolve_device, resolve_dtype
from diffdis.errors import UsageError


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch believes in `count` GPUs (bf16-capable unless told otherwise); no CUDA call reaches a driver."""

    def install(count: int = 2, bf16: bool = True) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)

    return install


def test_auto_on_this_cpu_machine_is_cpu_and_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device = resolve_device("auto")
    assert device == torch.device("cpu") and resolve_device() == device and resolve_device("") == device
    assert resolve_dtype("auto", device) is torch.float32


@pytest.mark.parametrize("spec", ["cpu", "CPU", " cpu "])
def test_cpu_is_accepted_in_any_case(spec):
    assert resolve_device(spec) == torch.device("cpu")


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_refused_in_one_line(spec, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="no CUDA device is visible") as err:
        resolve_device(spec)
    message = str(err.value)
    assert "\n" not in message and "--device cpu or auto" in message and torch.__version__ in message
    assert err.value.exit_code == 2


def test_the_refusal_names_an_empty_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UsageError, match="CUDA_VISIBLE_DEVICES is empty"):
        resolve_device("cuda")


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cuda:-1", "tpu", "cpu:0"])
def test_unknown_devices_are_refused(spec):
    with pytest.raises(UsageError, match="choose auto, cpu, cuda or cuda:N"):
        resolve_device(spec)


def test_mps_is_refused_where_torch_has_none(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UsageError, match="no Apple MPS device"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")


def test_cuda_branches_with_a_fake_gpu(fake_cuda):
    fake_cuda(count=2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UsageError, match=r"only 2 CUDA device\(s\) are visible \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


def test_auto_dtype_on_a_gpu_is_bf16_where_native_else_fp32(fake_cuda):
    cuda = torch.device("cuda")
    fake_cuda(bf16=True)
    assert resolve_dtype("auto", cuda) is torch.bfloat16
    assert resolve_dtype("fp16", cuda) is torch.float16  # fp16 on a GPU: allowed when asked for
    fake_cuda(bf16=False)
    assert resolve_dtype("auto", cuda) is torch.float32


@pytest.mark.parametrize("spec, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("BF16", torch.bfloat16)])
def test_explicit_dtypes_on_cpu(spec, dtype):
    assert resolve_dtype(spec, "cpu") is dtype


def test_fp16_on_cpu_is_refused_in_one_line():
    with pytest.raises(UsageError, match="use --dtype bf16 or fp32") as err:
        resolve_dtype("fp16", torch.device("cpu"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("spec", ["float64", "int8", "half", "fp8"])
def test_unknown_dtypes_are_refused(spec):
    with pytest.raises(UsageError, match="choose auto, fp32, bf16 or fp16"):
        resolve_dtype(spec, "cpu")


def test_tf32_is_only_turned_on_for_cuda(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(torch, "set_float32_matmul_precision", calls.append)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)  # restored afterwards
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert enable_tf32(torch.device("cpu")) is False and enable_tf32() is False and calls == []
    assert enable_tf32("cuda:0") is True and calls == ["high"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert enable_tf32() is True and calls == ["high", "high"]
