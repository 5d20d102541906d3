"""The numerical runtimes both cases share: PyTorch's CPU thread count and Keras 3 on the PyTorch
backend. Neutral ground, so that ``study.churn`` and ``study.doors`` never import each other."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")


def cpu_threads() -> int:
    """CPU threads for PyTorch, Keras, ONNX Runtime, XGBoost, LightGBM and scikit-learn's forests
    ($STUDY_TORCH_THREADS, default 2: the project's machines have two cores, and two heavy jobs on
    them slow each other several-fold; ``study run --jobs 2`` gives each of its two kernels 1).
    The tree models' results do not depend on it (measured: identical predictions with 1 and 2)."""
    return int(os.environ.get("STUDY_TORCH_THREADS", "2"))


def steps_beside() -> int:
    """How many steps of the study ``study run --jobs`` runs at once ($STUDY_RUN_JOBS, 1 when run
    alone): a time measured inside a notebook then shares the machine with another step."""
    return int(os.environ.get("STUDY_RUN_JOBS", "1"))


def torch_cpu():
    """torch with its CPU thread count set (imported on first use)."""
    import torch

    torch.set_num_threads(cpu_threads())
    return torch


def keras_backend():
    """Keras on the PyTorch CPU backend, with the thread count set (imported on first use)."""
    import keras

    torch_cpu()
    return keras
