import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from diffdis.train.attention_kernel import training_attention


def _attention_ops(context) -> set[str]:
    """Names of the SDPA kernels run by one forward + backward of attention over short sequences."""
    q, k, v = (torch.randn(2, 4, 65, 32, requires_grad=True) for _ in range(3))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with context:
            out = F.scaled_dot_product_attention(q, k, v)
        out.sum().backward()
    return {e.key for e in prof.key_averages() if "attention" in e.key}


def test_training_on_cpu_runs_the_math_kernel_not_flash():
    from contextlib import nullcontext

    assert any("flash" in name for name in _attention_ops(nullcontext()))  # PyTorch's CPU default, the slow backward
    assert not any("flash" in name for name in _attention_ops(training_attention(torch.device("cpu"))))


def test_math_kernel_gives_the_same_gradients():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 17, 16, requires_grad=True) for _ in range(3))
    grads = []
    for context in (training_attention(torch.device("cpu")), training_attention(torch.device("cuda"))):
        with context:
            out = F.scaled_dot_product_attention(q, k, v)
        grads.append(torch.autograd.grad(out.square().sum(), (q, k, v)))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_other_devices_keep_pytorchs_choice():
    assert torch.backends.cuda.flash_sdp_enabled()
    with training_attention(torch.device("cuda")):
        assert torch.backends.cuda.flash_sdp_enabled()
    with training_attention(torch.device("cpu")):
        assert not torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()
    assert torch.backends.cuda.flash_sdp_enabled()  # restored on exit
