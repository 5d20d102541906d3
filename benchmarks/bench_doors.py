"""Doors benchmark: per-image latency of detect + classify at 640 px on the CPU threads given
(default 2), video frames per second, and optionally training time per scale.

Baselines in the same run, on the same images: the same networks in PyTorch eager instead of
ONNX Runtime, the detector fed the 640 px image itself instead of its 320 px letterbox, and the original CNN and the frozen transfer model as the state
classifier instead of the default one (``pipeline.preferred_classifier``: the two-view or the
fine-tuned model, whichever ranked the real Valid crops better), and the other of those two. Uses the saved models (data/models/doors, or --models); real photos from ../shared/doors
when present.

    .venv/bin/python benchmarks/bench_doors.py [--images 30] [--threads 2] [--train-scales quick default]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _times(fn, items, repeat=1):
    out = []
    for it in items:
        fn(it)  # warm (first call per size builds buffers)
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn(it)
            out.append(1000 * (time.perf_counter() - t0))
    return out


def _summary(ms) -> str:
    ms = sorted(ms)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"median {statistics.median(ms):6.1f} ms   p90 {p90:6.1f} ms   ({len(ms)} runs)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="model folder (default: data/models/doors)")
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--video-seconds", type=float, default=10.0)
    ap.add_argument("--train-scales", nargs="*", default=[], help="also time `study doors train` at these scales")
    args = ap.parse_args()
    os.environ["STUDY_TORCH_THREADS"] = str(args.threads)

    import torch

    from study.doors import data, detect, pipeline

    torch.set_num_threads(args.threads)
    pipe = pipeline.DoorPipeline.load(args.models)
    cnn_pipe = pipeline.DoorPipeline.load(args.models, classifier="original_cnn")
    transfer_pipe = pipeline.DoorPipeline.load(args.models, classifier="transfer")
    others = {  # the other candidates for the demo's classifier, as baselines
        c: pipeline.DoorPipeline.load(args.models, classifier=c)
        for c in ("two_view", "finetuned")
        if c != pipeline.preferred_classifier(args.models)
        and (Path(args.models or pipeline.models_folder()) / c / "model.json").is_file()
    }
    eager_pipe = pipeline.DoorPipeline.load(args.models)  # the same weights in PyTorch eager
    eager_pipe.detector.session, eager_pipe.detector.eager = None, True
    if hasattr(eager_pipe.classifier, "session"):
        eager_pipe.classifier.session = None
    name = pipe.classifier.meta.get("kind", "?")
    images = [data.render(2024, k, data.STATES[k % 3], size=(640, 480))[0] for k in range(args.images // 2)]
    try:
        real = data.real_images()
        real = real[real.split == "Test"].head(args.images - len(images))
        images += [data.open_image(p, max_side=640) for p in real.path]
        origin = f"{len(images) - args.images // 2} real Test photos + {args.images // 2} synthetic scenes"
    except FileNotFoundError:
        origin = f"{len(images)} synthetic scenes (no real photos)"
    print(f"images: {origin}, longer side 640 px; {args.threads} torch threads; RSS {_rss_mb():.0f} MB")

    det = pipe.detector
    full = _times(lambda im: pipe.predict(im), images)
    only_detect = _times(lambda im: det.detect([im], confidence=pipe.confidence), images)
    n_doors = [len(pipe.predict(im)) for im in images]
    cnn = _times(lambda im: cnn_pipe.predict(im), images)
    frozen = _times(lambda im: transfer_pipe.predict(im), images)
    other_times = {c: _times(lambda im, p=p: p.predict(im), images) for c, p in others.items()}
    eager = _times(lambda im: eager_pipe.predict(im), images)
    big = detect.DoorDetector.load(Path(args.models or pipeline.models_folder()) / "detector")
    # baseline: the detector on the 640 px image itself (same weights, eager)
    big.input_size, big.session, big.eager = 640, None, True
    at640 = _times(lambda im: big.detect([im], confidence=pipe.confidence), images)
    eager_detect = _times(lambda im: eager_pipe.detector.detect([im], confidence=pipe.confidence), images)
    print(f"doors per image: mean {statistics.mean(n_doors):.2f}")
    engines = f"detector on {det.engine}, classifier on {getattr(pipe.classifier, 'engine', 'pytorch')}"
    print(f"detect + classify ({name}; {engines})")
    print(f"                               {_summary(full)}   target ≤ 50 ms")
    print(f"  detect only (320 letterbox)  {_summary(only_detect)}")
    print(f"  classify share               median {statistics.median(full) - statistics.median(only_detect):6.1f} ms")
    print(
        f"baseline: PyTorch eager        {_summary(eager)}   ratio {statistics.median(eager) / statistics.median(full):.2f}× slower"
    )
    print(f"  detect only, PyTorch eager   {_summary(eager_detect)}")
    print(
        f"baseline: detector at 640 px   {_summary(at640)}   ratio {statistics.median(at640) / statistics.median(eager_detect):.2f}× "
        "slower than at 320 (both PyTorch eager)"
    )
    print(
        f"baseline: original CNN states  {_summary(cnn)}   ratio {statistics.median(cnn) / statistics.median(full):.2f}×"
    )
    print(
        f"baseline: frozen transfer      {_summary(frozen)}   ratio {statistics.median(frozen) / statistics.median(full):.2f}×"
    )
    for c, ms in other_times.items():
        print(f"baseline: {c:<21} {_summary(ms)}   ratio {statistics.median(ms) / statistics.median(full):.2f}×")
    print(f"RSS after: {_rss_mb():.0f} MB")

    # video: a synthetic clip at 25 fps, 640×480
    n = int(args.video_seconds * 25)
    frames = [data.render(77, k // 25, ("closed", "semi", "open")[(k // 75) % 3], size=(640, 480))[0] for k in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        clip = pipeline.write_video(frames, Path(tmp) / "clip.mp4", fps=25).read_bytes()
    for label, kw in (("5 analysed fps (dashboard)", {"fps_target": 5.0}), ("every frame", {"every": 1})):
        t0 = time.perf_counter()
        res = pipe.predict_video(clip, max_frames=10_000, **kw)
        wall = time.perf_counter() - t0
        print(
            f"video {args.video_seconds:g} s 640×480 @25 fps, {label}: {len(res.frames)} frames in {wall:.1f} s → "
            f"{len(res.frames) / wall:.1f} analysed frames/s, {res.frames_read / wall:.1f} video frames/s "
            f"({wall / args.video_seconds:.2f}× real time)"
        )

    for scale in args.train_scales:
        from study.doors.train import train_all

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_all(scale, out=tmp, echo=lambda *a: None)
            print(
                f"training at scale {scale}: {time.perf_counter() - t0:.0f} s (data, CNN, transfer, fine-tuned, detector, evaluation)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
