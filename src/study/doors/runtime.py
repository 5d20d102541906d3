"""The saved door networks run by ONNX Runtime instead of PyTorch.

Why: on 2 CPU cores ONNX Runtime runs these depthwise networks about four times faster than
PyTorch eager (measured: the detector's backbone at 320 px 60 → 15 ms, a 160 px crop through the
fine-tuned classifier 21 → 5 ms), mostly by fusing each convolution with its batch norm and
ReLU6. A network is exported once, when its model is saved (``inference.onnx`` beside the
weights: a protobuf of operators and tensors, nothing executable, no pickle). PyTorch stays the
training engine and the reference: a folder without the file, or a machine without ONNX Runtime,
runs the same weights in PyTorch, and a test checks that both give the same outputs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from study.doors import backbone

ONNX_FILE = "inference.onnx"
INPUT = "image"
OPSET = 18


@contextlib.contextmanager
def _quiet():
    """The exporter's progress lines and its notices about optional torchvision operators, hidden."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            open(os.devnull, "w") as sink,
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export(module, example, path: str | Path, outputs: list[str], dynamic_batch: bool = True) -> Path:
    """``module`` (eval mode, float32 NCHW in) → an ONNX file at ``path``, written atomically.

    Traced by PyTorch's TorchScript exporter, then folded by onnxscript's optimizer (the pass the
    newer ``torch.export`` exporter ends with). Why not the newer exporter: it took 6–9 s per
    network here (capture and decompositions), against about 1.4 s for this path, and its network
    runs no faster (measured on the detector's backbone at 320 px, one thread: 17.1 vs 17.1 ms;
    without the optimizer's folding of the padding arithmetic, the traced network ran 23.7 ms).
    The networks are exported on every run that saves door models and once per machine for the
    frozen ImageNet parts, so this is the difference between a first quick run over and under
    3 min. PyTorch has called this exporter deprecated since 2.9; it ships in the pinned 2.13, and
    should it go, ``dynamo=True`` with ``dynamic_shapes`` for the batch is the replacement, at the
    cost above. Tests compare exported networks with PyTorch's outputs: the ImageNet features and
    parts at batches of 3 and 2 (exported at 1), the saved detector and fine-tuned classifier."""
    import onnx
    from onnxscript import optimizer

    torch = backbone.torch_cpu()
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {0: "batch"}
    axes = {name: batch for name in [INPUT, *outputs]} if dynamic_batch else None
    traced = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            traced,
            input_names=[INPUT],
            output_names=list(outputs),
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        model = optimizer.optimize(onnx.load_from_string(traced.getvalue()))
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return path


class Session:
    """An ONNX Runtime session on the CPU with the project's thread count; called with a float32
    NCHW batch, it returns the network's outputs as arrays."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = backbone.cpu_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # no busy-waiting between runs: the detector's and the classifier's sessions and PyTorch
        # share the same 2 cores (measured with spinning on: every run about twice as slow)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch) -> list[np.ndarray]:
        x = batch.numpy() if hasattr(batch, "numpy") else batch
        return self.session.run(None, {INPUT: np.ascontiguousarray(x, dtype=np.float32)})


def session_for(folder: str | Path) -> Session | None:
    """The folder's exported network, or None (no file, or ONNX Runtime not installed): PyTorch then."""
    path = Path(folder) / ONNX_FILE
    if not path.is_file():
        return None
    try:
        return Session(path)
    except ImportError:
        return None


def _part_module(part: str, variant: str):
    """A part of the ImageNet network as a module (what ``imagenet_part`` exports)."""
    torch = backbone.torch_cpu()
    net = backbone.imagenet(variant)

    class Part(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            if part == "pyramid":
                pyr = self.net.pyramid(x)
                return pyr[16], pyr[32]
            if part == "features":
                return self.net.features(x)
            return self.net.trunk(x, int(part.removeprefix("trunk")))

    return Part().eval()


@lru_cache(maxsize=8)
def imagenet_part(part: str, size: int | tuple, variant: str = "lite0"):
    """A function (float NCHW batch of ``size`` px squares, or (width, height) when a tuple → list
    of arrays) running a part of the
    frozen ImageNet network: ``"pyramid"`` (stride-16 and -32 maps), ``"features"`` (pooled 1280)
    or ``"trunk<n>"`` (stem and the first n blocks). These parts turn every training image and
    augmented view into features, so they run in ONNX Runtime too, exported once into
    ``paths.ONNX_CACHE``; PyTorch when ONNX Runtime is missing."""
    import torch

    from study import paths

    module = _part_module(part, variant)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:

        def run(x):
            with torch.no_grad():
                out = module(x)
            return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]

        return run
    outputs = ["f16", "f32"] if part == "pyramid" else [part]
    w, h = (size, size) if isinstance(size, int) else tuple(size)
    shape = f"{w}px" if w == h else f"{w}x{h}px"
    path = paths.ONNX_CACHE / f"efficientnet-{variant}-{part}-{shape}-torch{torch.__version__}.onnx"
    if not path.is_file():
        export(module, torch.zeros(1, 3, h, w), path, outputs)
    return Session(path)
