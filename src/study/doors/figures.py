"""Figures of the doors report (notebook 50): photo galleries, confusion matrices, curves.

Figures holding photos are encoded as JPEG, the others (lines, matrices) as PNG: the galleries of
real photos as PNG made report 50 weigh 3.1 MB."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

JPEG_QUALITY = 82
DPI = 90


def gallery(images, titles, cols: int = 6, size: float = 2.2) -> Figure:
    """Images in a grid, each with its title."""
    images, titles = list(images), list(titles)
    rows = max(1, math.ceil(len(images) / cols))
    fig = Figure(figsize=(cols * size, rows * size))
    for k, (im, title) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(im)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def confusion_grid(results: dict, models: list[str], states) -> Figure:
    """One confusion matrix per (model, test set) of ``results`` (values hold ``confusion``, a
    frame true × predicted): a row per model, a column per test set, counts written in the cells."""
    tests = sorted({test for _, test in results})
    fig = Figure(figsize=(4 * len(tests), 3.4 * len(models)))
    for (name, test), r in results.items():
        ax = fig.add_subplot(len(models), len(tests), models.index(name) * len(tests) + tests.index(test) + 1)
        cm = np.asarray(r["confusion"], dtype=float)
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, int(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        ax.set_xticks(range(len(states)), states)
        ax.set_yticks(range(len(states)), states)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}\n{test}", fontsize=9)
    fig.tight_layout()
    return fig


def learning_curves(history) -> Figure:
    """Loss and accuracy per epoch, train and validation (a Keras history)."""
    h = pd.DataFrame(history)
    epochs = np.arange(1, len(h) + 1)
    fig = Figure(figsize=(10, 3.2))
    for k, (metric, label) in enumerate([("loss", "categorical cross-entropy"), ("accuracy", "accuracy")]):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.plot(epochs, h[metric], marker="o", label="train")
        ax.plot(epochs, h["val_" + metric], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.legend()
    fig.tight_layout()
    return fig


def detector_curves(det_results: dict, history: dict) -> Figure:
    """Precision-recall of each evaluated set (AP in the legend) and the training losses."""
    fig = Figure(figsize=(11, 3.6))
    ax = fig.add_subplot(1, 2, 1)
    for name, v in det_results.items():
        ax.plot(v["recall"], v["precision"], label=f"{name} (AP {v['ap']:.2f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall, IoU ≥ 0.5")
    ax.legend()
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(history["score_loss"], label="score (focal)")
    ax.plot(history["box_loss"], label="box (1 − GIoU)")
    ax.set_xlabel("epoch")
    ax.set_title("detector training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def has_photos(fig: Figure) -> bool:
    """Whether the figure shows colour images (photos), not only lines or matrices."""
    return any(np.ndim(im.get_array()) == 3 for ax in fig.axes for im in ax.get_images())


def encode(fig: Figure) -> tuple[bytes, str]:
    """(bytes, format): JPEG for figures with photos, PNG otherwise."""
    buf = io.BytesIO()
    if has_photos(fig):
        fig.savefig(buf, format="jpeg", dpi=DPI, pil_kwargs={"quality": JPEG_QUALITY, "optimize": True})
        return buf.getvalue(), "jpeg"
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue(), "png"


def for_report(fig: Figure):
    """The figure as an image output of the notebook (the report embeds it)."""
    from IPython.display import Image

    data, fmt = encode(fig)
    return Image(data=data, format=fmt)
