"""The FID Inception-v3 (TensorFlow's 2015-12-05 graph) in plain torch, for `--inception-weights PATH`.

Published FIDs use the 2048-d pool3 features of that network. pytorch-fid and torch-fidelity ship the same
torch port of its weights (`pt_inception-2015-12-05-6726825d.pth`, and torch-fidelity's
`weights-inception-2015-12-05-6726825d.pth`): a state dict of torchvision's Inception3 module tree with 1,008
classes and no auxiliary head. The network differs from torchvision's in its pooling: the avg-pool branches of
the A, C and first E blocks leave padding out of the mean (as TensorFlow does), and the last E block max-pools.
Both tools import torchvision, which does not import beside the CPU torch wheel, so the network is rebuilt here
with the same module names and the file loads strictly. Nothing is downloaded: the user brings the file.

Three input pipelines, as the three tools feed the network (`style`):
- "torch-fidelity" (default): uint8 pixels, TensorFlow 1.x bilinear resize to 299 (source = target * in/out,
  no half-pixel offset), then (x - 128) / 128: the TensorFlow graph's own preprocessing, so FID tracks TF FID
  (clean-fid's "legacy_tensorflow" mode does the same).
- "clean-fid": clean-fid's default "clean" mode: each channel resized by PIL's bicubic filter in float, clipped
  to [0, 255], then (x - 128) / 128 (clean-fid's network is the same TensorFlow graph, as TorchScript).
- "pytorch-fid": pixels / 255, torch's half-pixel bilinear resize to 299, then 2x - 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from diffdis.errors import DiffDisError

STYLES = ("torch-fidelity", "clean-fid", "pytorch-fid")
SIZE = 299


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU: the unit every Inception block is made of."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool whose mean leaves the zero padding out (TensorFlow's SAME pooling)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = BasicConv2d(cin, 48, 1), BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_tf(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool_tf(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = BasicConv2d(cin, 192, 1), BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """`max_pool`: the last block of the FID network max-pools its pool branch (a quirk of the TF graph)."""

    def __init__(self, cin: int, max_pool: bool = False) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_tf(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """pool3 features (N, 2048) of the FID network; module names match the pt_inception state dict."""

    def __init__(self, style: str = "torch-fidelity") -> None:
        super().__init__()
        if style not in STYLES:
            raise DiffDisError(f"unknown Inception input style {style!r}; choose one of: {', '.join(STYLES)}")
        self.style = style
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b, self.Mixed_6c = InceptionC(768, 128), InceptionC(768, 160)
        self.Mixed_6d, self.Mixed_6e = InceptionC(768, 160), InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b, self.Mixed_7c = InceptionE(1280), InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)  # unused for FID; kept so the published state dict loads strictly

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8-valued (N, 3, H, W) pixels -> the network's 299x299 input, as the chosen tool does it."""
        x = pixels.float()
        if self.style == "clean-fid":
            return (resize_bicubic_pil(x, SIZE, SIZE) - 128) / 128
        if self.style == "pytorch-fid":
            x = F.interpolate(x / 255.0, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
            return 2 * x - 1
        return (resize_bilinear_tf1(x, SIZE, SIZE) - 128) / 128

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.preprocess(pixels))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed (N, 3, 299, 299) input, on any device and in any dtype -> (N, 2048) pool3 features
        in the network's dtype, on its device (the input is moved there)."""
        weight = self.Conv2d_1a_3x3.conv.weight
        x = x.to(weight.device, weight.dtype)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def resize_bilinear_tf1(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """TensorFlow 1.x `resize_bilinear(align_corners=False)`: source = target * in / out (no half-pixel shift),
    neighbours clamped at the last row/column. torch's own bilinear modes use other corner mappings."""

    def axis(size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale = torch.tensor(size_in / size_out, dtype=torch.float32, device=x.device)  # a float32 product, as TF
        src = torch.arange(size_out, dtype=torch.float32, device=x.device) * scale
        lo = src.long()
        return lo, (lo + 1).clamp_max(size_in - 1), src - lo.float()

    (y0, y1, dy), (x0, x1, dx) = axis(x.shape[-2], height), axis(x.shape[-1], width)
    top, bottom = x[..., y0, :], x[..., y1, :]
    top = top[..., x0] + (top[..., x1] - top[..., x0]) * dx
    bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * dx
    return top + (bottom - top) * dy[:, None]


def resize_bicubic_pil(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """clean-fid's resize: every channel of every image through PIL's bicubic filter as a float ('F') image,
    so nothing is quantised to uint8 in between, then clipped to [0, 255]. PIL runs on the CPU: the result is
    moved back to `x`'s device."""
    out = np.empty((*x.shape[:2], height, width), dtype=np.float32)
    for n, image in enumerate(x.detach().float().cpu().numpy()):
        for c, channel in enumerate(image):
            out[n, c] = np.asarray(Image.fromarray(channel).resize((width, height), Image.Resampling.BICUBIC))
    return torch.from_numpy(out.clip(0, 255)).to(x.device)


def load_fid_inception(
    path: str | Path, style: str = "torch-fidelity", device: str | torch.device = "cpu"
) -> FIDInceptionV3:
    """The FID network with the weights in `path` (.pth as pytorch-fid / torch-fidelity ship it, or .safetensors),
    in fp32 on `device` (FID features in a lower precision would not be comparable with published ones)."""
    path = Path(path)
    if not path.is_file():
        raise DiffDisError(
            f"--inception-weights {path}: no such file (pytorch-fid's pt_inception-2015-12-05-6726825d.pth)"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise DiffDisError(
            f"--inception-weights {path}: cannot read it as a torch state dict ({type(err).__name__})"
        ) from err
    model = FIDInceptionV3(style)
    if not isinstance(state, dict):
        raise DiffDisError(f"--inception-weights {path}: holds a {type(state).__name__}, not a state dict")
    expected = model.state_dict()
    for key in expected:  # a BatchNorm counter older exports leave out; torch fills it in the same way
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, torch.tensor(0))
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or extra or wrong:
        example = (missing or extra or wrong)[0]
        raise DiffDisError(
            f"--inception-weights {path}: not the FID Inception-v3 (pt_inception-2015-12-05) weights: "
            f"{len(missing)} missing, {len(extra)} unexpected, {len(wrong)} misshapen keys (e.g. {example})"
        )
    model.load_state_dict(state)
    return model.to(device).eval().requires_grad_(False)


def random_fid_inception(seed: int = 0, style: str = "torch-fidelity") -> FIDInceptionV3:
    """A stand-in with random weights, for tests and checks without the real file: BatchNorm statistics are set
    from one batch of random images, so activations stay in the range trained weights give."""
    generator = torch.Generator().manual_seed(seed)
    model = FIDInceptionV3(style)
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            m.weight.data = torch.randn(m.weight.shape, generator=generator) * (2 / m.weight[0].numel()) ** 0.5
        elif isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0  # the running statistics become this one batch's
            m.weight.data = torch.rand(m.weight.shape, generator=generator) + 0.5
            m.bias.data = torch.rand(m.bias.shape, generator=generator) * 0.4 - 0.2
    model.train()
    with torch.no_grad():
        model(torch.randint(0, 256, (4, 3, 48, 48), generator=generator))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    return model.eval().requires_grad_(False)


def inception_features(model: FIDInceptionV3, batch_size: int = 32):
    """An extractor for `diffdis.eval.fid`: PIL images (any sizes) -> (N, 2048) float64 pool3 features on the
    CPU, whatever the model's device and dtype (images are resized on the CPU, then moved to the model)."""

    @torch.no_grad()
    def extract(images: Sequence[Image.Image]) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch_size):
            chunk = [
                torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
                for im in images[start : start + batch_size]
            ]
            # each image is resized on its own, so images of different sizes can share a batch
            x = torch.cat([model.preprocess(p[None]) for p in chunk])
            out.append(model.trunk(x).float().cpu().numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros((0, 2048))

    return extract
