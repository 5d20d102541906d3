"""The doors report's figures: photos as JPEG (small reports), lines and matrices as PNG."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from study.doors import figures


def _photos(n=4, size=160, seed=0):
    rng = np.random.default_rng(seed)
    # photo-like content: smooth gradients plus noise (a PNG cannot compress it much)
    yy, xx = np.mgrid[0:size, 0:size]
    return [
        Image.fromarray(
            np.clip(np.stack([xx, yy, (xx + yy) // 2], -1) + rng.normal(0, 18, (size, size, 3)), 0, 255).astype(
                np.uint8
            )
        )
        for _ in range(n)
    ]


def test_a_gallery_is_a_jpeg_much_smaller_than_its_png():
    fig = figures.gallery(_photos(), [f"photo {k}" for k in range(4)], cols=2)
    assert len(fig.axes) == 4 and [ax.get_title() for ax in fig.axes] == [f"photo {k}" for k in range(4)]
    data, fmt = figures.encode(fig)
    assert fmt == "jpeg" and data[:2] == b"\xff\xd8"
    import io

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=figures.DPI)
    assert len(data) < 0.5 * len(png.getvalue())


def test_curves_and_matrices_stay_png_with_their_numbers():
    states = ["closed", "open", "semi"]
    cm = pd.DataFrame([[5, 1, 0], [2, 7, 0], [0, 1, 3]], index=states, columns=states)
    results = {
        ("a", "real Test"): {"confusion": cm},
        ("b", "real Test"): {"confusion": cm * 2},
        ("a", "synthetic Test"): {"confusion": cm},
        ("b", "synthetic Test"): {"confusion": cm},
    }
    fig = figures.confusion_grid(results, ["a", "b"], states)
    assert len(fig.axes) == 4 and not figures.has_photos(fig)
    assert figures.encode(fig)[1] == "png"
    b_real = fig.axes[1]  # row b (second), column "real Test" (first of the sorted test sets)
    assert b_real.get_title() == "b\nreal Test" and sorted(int(t.get_text()) for t in b_real.texts) == sorted(
        (cm * 2).to_numpy().ravel()
    )
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
    fig = figures.learning_curves(history)
    assert figures.encode(fig)[1] == "png" and list(fig.axes[0].lines[1].get_ydata()) == [1.1, 0.7]
    det = {"real Test": {"recall": [0, 0.5], "precision": [1, 0.6], "ap": 0.42}}
    fig = figures.detector_curves(det, {"score_loss": [3, 2], "box_loss": [1, 0.5]})
    assert "AP 0.42" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_the_report_picks_errors_and_says_the_numbers(monkeypatch):
    from study.doors import report

    crops = pd.DataFrame({"state": ["closed", "open", "open"], "image": ["a", "b", "c"]})
    proba = np.array([[0.9, 0.1, 0.0], [0.7, 0.3, 0.0], [0.2, 0.8, 0.0]])
    results = {("finetuned", "real Test"): {"crops": crops, "pred": ["closed", "closed", "open"], "proba": proba}}
    images, titles = report.errors(results)
    assert images == ["b"] and titles == ["finetune real: open → closed 70%"]  # names cut to 8 characters
    summary = pd.DataFrame(
        [
            {
                "model": "finetuned",
                "test set": "real Test",
                "accuracy": 0.874,
                "balanced accuracy": 0.8,
                "semi recall": 0.0,
            }
        ]
    )
    det = {
        "real Test": {
            "ap": 0.317,
            "truths": 118,
            "images": [None] * 243,
            "false_positives": pd.DataFrame(
                {
                    "score": [0.9, 0.2],
                    "on": ["cabinetDoor", "nothing"],
                    "image": [0, 0],
                    "x0": [0, 0],
                    "y0": [0, 0],
                    "x1": [1, 1],
                    "y1": [1, 1],
                }
            ),
        }
    }
    assert report.headline(summary, det) == {
        "fine-tuned accuracy, real Test": 0.874,
        "detector AP@0.5, real Test": 0.317,
    }
    det["real Test"]["images"] = [Image.new("RGB", (4, 4))] * 243
    sentence, shown, _ = report.false_positives(det)
    assert "score ≥ 0.3 on the real Test photos: 1; 1 on cabinetDoor" in sentence and len(shown) == 1
    points = pd.DataFrame([{"model": "finetuned", "test set": "real Test", "open recall": 0.62, "closed recall": 0.94}])

    compared = report.Comparison({"finetuned": None}, None, {}, "finetuned", results, summary, points, "")
    clock = report.Clock()
    assert clock("detector", lambda a, b: a + b, 1, b=2) == 3 and 0 <= clock["detector"] <= clock.total
    clock.seconds = {"original_cnn": 1, "transfer": 2, "finetuned": 3, "detector": 4}

    def conclusions():
        return report.conclusions(compared, clock, 3, det, "onnxruntime", pd.DataFrame({"ms": [30.0, 35.0]}), "quick")

    monkeypatch.setenv("STUDY_TORCH_THREADS", "2")
    monkeypatch.delenv("STUDY_RUN_JOBS", raising=False)
    lines = conclusions()
    assert (
        "open-or-ajar recall 0.62 at closed recall 0.94" in lines[1]
        and "AP@0.5 on real Test: 0.317 (118 doors in 243" in lines[3]
    )
    assert "2 threads, onnxruntime): median 32 ms over 2 images" in lines[4] and "beside" not in lines[4] + lines[5]
    assert "original CNN 1 s (3 epochs), transfer 2 s, fine-tuned 3 s, detector 4 s." in lines[2]  # from the clock
    # run by `study run --jobs 2`: one thread, and the timings say they shared the machine
    monkeypatch.setenv("STUDY_TORCH_THREADS", "1")
    monkeypatch.setenv("STUDY_RUN_JOBS", "2")
    lines = conclusions()
    assert "1 thread, onnxruntime while another step of the study ran beside this one" in lines[4]
    assert "on 1 of the machine's threads beside another step" in lines[5]
