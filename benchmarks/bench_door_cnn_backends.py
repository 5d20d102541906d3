"""Benchmark: the original study's door CNN trained on each Keras 3 backend, in one run.

Keras picks its backend once per process, so each backend trains in its own subprocess on the same
seeded synthetic crops (140 px, batch 16, the original augmentation) with the same thread count,
and the script prints seconds per crop and epoch and the ratio to PyTorch (the project's backend).
TensorFlow is not a project dependency: install it aside and point at it, e.g.

    pip install --target /tmp/tf tensorflow-cpu   # then remove /tmp/tf/numpy* and /tmp/tf/keras*
    .venv/bin/python benchmarks/bench_door_cnn_backends.py --crops 200 --epochs 2 --tensorflow-path /tmp/tf

Measured here (2 cores, 200 crops × 2 epochs): PyTorch 0.284 s, TensorFlow-CPU 2.21 0.214 s per crop
and epoch (1.33× faster), for a 1.5 GB install: the project keeps PyTorch (see README).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _train(crops: int, epochs: int, threads: int) -> dict:
    """Runs inside the subprocess: fit the CNN and report its timing."""
    sys.path.insert(0, str(SRC))
    if os.environ["KERAS_BACKEND"] == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from study.doors import classify, data

    states = [data.STATES[k % 3] for k in range(crops)]
    images = [data.render(3, k, states[k], size=(320, 240))[0].crop((40, 20, 200, 230)) for k in range(crops)]
    model = classify.OriginalCNN(epochs=epochs).fit(images, states, images[:32], states[:32])
    seconds = model.meta["fit_seconds"]
    return {"crops": crops, "epochs": epochs, "fit_seconds": seconds, "per_crop_epoch": seconds / crops / epochs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tensorflow-path", help="a folder holding tensorflow(-cpu), added to PYTHONPATH for its run")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_train(args.crops, args.epochs, args.threads)))
        return 0
    results = {}
    for backend in ("torch", "tensorflow"):
        env = {
            **os.environ,
            "KERAS_BACKEND": backend,
            "STUDY_TORCH_THREADS": str(args.threads),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        if backend == "tensorflow":
            if args.tensorflow_path:
                env["PYTHONPATH"] = os.pathsep.join(p for p in (args.tensorflow_path, env.get("PYTHONPATH")) if p)
            probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True)
            if probe.returncode:
                print("tensorflow: not importable (give --tensorflow-path): skipped")
                continue
        run = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                backend,
                "--crops",
                str(args.crops),
                "--epochs",
                str(args.epochs),
                "--threads",
                str(args.threads),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode:
            print(f"{backend}: failed\n{run.stderr[-2000:]}")
            continue
        results[backend] = json.loads(run.stdout.strip().splitlines()[-1])
        r = results[backend]
        print(
            f"{backend:<11} {r['crops']} crops × {r['epochs']} epochs in {r['fit_seconds']:.1f} s → "
            f"{r['per_crop_epoch']:.3f} s per crop and epoch"
        )
    if {"torch", "tensorflow"} <= set(results):
        ratio = results["torch"]["per_crop_epoch"] / results["tensorflow"]["per_crop_epoch"]
        print(f"TensorFlow is {ratio:.2f}× as fast as PyTorch for this CNN")
    return 0


if __name__ == "__main__":
    sys.exit(main())
