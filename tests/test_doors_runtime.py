"""ONNX Runtime runs the doors' exported networks with PyTorch's outputs; without the file the
same model runs in PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from study.doors import backbone, runtime


def test_an_exported_network_gives_pytorch_outputs_for_any_batch(tmp_path):
    torch = backbone.torch_cpu()
    net = backbone.imagenet()

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.features(x)

    path = runtime.export(Features(), torch.zeros(1, 3, 96, 96), tmp_path / runtime.ONNX_FILE, ["features"])
    assert path.is_file() and not list(tmp_path.glob("*.tmp"))
    session = runtime.session_for(tmp_path)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (3, 3, 96, 96)).astype(np.float32))
    with torch.no_grad():
        expected = net.features(x).numpy()
    got = session(x)[0]
    assert got.shape == (3, backbone.FEATURES)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert not np.allclose(got[0], got[1])  # different inputs, different features: not a constant
    with pytest.raises(Exception, match="dimension|shape|Got"):
        session(np.zeros((1, 3, 64, 64), np.float32))  # the size it was exported for, only


def test_a_folder_without_the_exported_network_runs_in_pytorch(tmp_path):
    assert runtime.session_for(tmp_path) is None


@pytest.mark.parametrize("part, variant", [("pyramid", "lite0"), ("pyramid", "lite2"), ("trunk11", "lite0")])
def test_the_imagenet_parts_that_make_training_features_match_pytorch(part, variant, tmp_path, monkeypatch):
    from study import paths

    monkeypatch.setattr(paths, "ONNX_CACHE", tmp_path)  # exported here and now, not read from a cache
    runtime.imagenet_part.cache_clear()
    torch = backbone.torch_cpu()
    net = backbone.imagenet(variant)
    run = runtime.imagenet_part(part, 128, variant)
    assert [p.name for p in tmp_path.glob("*.onnx")] == [
        f"efficientnet-{variant}-{part}-128px-torch{torch.__version__}.onnx"
    ]
    assert runtime.imagenet_part(part, 128, variant) is run  # exported (or read from the cache) once per process
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (2, 3, 128, 128)).astype(np.float32))
    with torch.no_grad():
        expected = [net.pyramid(x)[16], net.pyramid(x)[32]] if part == "pyramid" else [net.trunk(x, 11)]
    got = run(x)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == tuple(e.shape)
        np.testing.assert_allclose(g, e.numpy(), atol=1e-4, rtol=1e-4)
    runtime.imagenet_part.cache_clear()  # later tests must not hold a session on a deleted folder
