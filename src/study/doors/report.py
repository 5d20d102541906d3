"""The doors report's selections and conclusions (notebook 50): which errors and false positives
to show, the pipeline's timed demo, the conclusions in numbers and the headline for the index."""

from __future__ import annotations

import time

import pandas as pd

ORDER = ("finetuned", "transfer", "original_cnn")
TESTS = ("real Test", "synthetic Test")


def errors(results: dict, per: int = 2) -> tuple[list, list[str]]:
    """Up to ``per`` misclassified crops per (model, test set): images and their titles."""
    images, titles = [], []
    for name in ORDER:
        for test in TESTS:
            r = results.get((name, test))
            if r is None:
                continue
            wrong = [k for k, (t, p) in enumerate(zip(r["crops"].state, r["pred"])) if t != p][:per]
            for k in wrong:
                images.append(r["crops"].image.iloc[k])
                titles.append(
                    f"{name[:8]} {test.split()[0]}: {r['crops'].state.iloc[k]} → {r['pred'][k]} {r['proba'][k].max():.0%}"
                )
    return images, titles


def false_positives(det_results: dict, min_score: float = 0.3, shown: int = 6) -> tuple[str, list, list[str]]:
    """A sentence counting the detector's confident false positives on the real Test photos by what
    they sit on, and crops of the first ``shown``."""
    if "real Test" not in det_results:
        return "No real photos: the detector is evaluated on synthetic scenes only.", [], []
    fp = det_results["real Test"]["false_positives"]
    strong = fp[fp.score >= min_score]
    sentence = (
        f"False positives with score ≥ {min_score} on the real Test photos: {len(strong)}; "
        + ", ".join(f"{n} on {k}" for k, n in strong.on.value_counts().items())
        + ". DoorDetect labels cabinet and refrigerator doors (their own classes) but not windows, so a box on a "
        "window counts as 'no labelled object'."
    )
    rows, ims = strong.head(shown), det_results["real Test"]["images"]
    return (
        sentence,
        [ims[r.image].crop((r.x0, r.y0, r.x1, r.y1)) for r in rows.itertuples()],
        [f"score {r.score:.2f}, {r.on}" for r in rows.itertuples()],
    )


def timed_demo(pipe, images, annotate) -> tuple[list, pd.DataFrame]:
    """Each image through the pipeline (once to warm, once timed): annotated images and latencies."""
    annotated, rows = [], []
    for im in images:
        pipe.predict(im)
        t0 = time.perf_counter()
        found = pipe.predict(im)
        rows.append({"size": f"{im.width}×{im.height}", "doors": len(found), "ms": 1000 * (time.perf_counter() - t0)})
        annotated.append(annotate(im, found))
    return annotated, pd.DataFrame(rows)


def pick(summary: pd.DataFrame, name: str, test: str, col: str) -> float:
    row = summary[(summary.model == name) & (summary["test set"] == test)]
    return float(row[col].iloc[0]) if len(row) else float("nan")


def conclusions(
    summary: pd.DataFrame,
    points: pd.DataFrame,
    models: list[str],
    seconds: dict,
    epochs: int,
    det_results: dict,
    engine: str,
    latency: pd.DataFrame,
    total: float,
    scale: str,
) -> list[str]:
    lines = []
    for test in ("synthetic Test", "real Test"):
        if (summary["test set"] == test).any():
            lines.append(
                f"- **{test}** accuracy (original CNN / transfer / fine-tuned): "
                + " / ".join(f"{pick(summary, m, test, 'accuracy'):.3f}" for m in models)
                + "; balanced accuracy "
                + " / ".join(f"{pick(summary, m, test, 'balanced accuracy'):.3f}" for m in models)
                + "; semi-open recall "
                + " / ".join(f"{pick(summary, m, test, 'semi recall'):.3f}" for m in models)
                + "."
            )
    for name in models:
        row = points[(points.model == name) & (points["test set"] == "real Test")]
        if len(row):
            lines.append(
                f"- **{name}** on real Test: open-or-ajar recall {row['open recall'].iloc[0]:.2f} at closed recall "
                f"{row['closed recall'].iloc[0]:.2f} (target 0.80 at 0.90; not done below 0.60 / 0.85)."
            )
    lines.append(
        f"- Training time: original CNN {seconds['original_cnn']:.0f} s ({epochs} epochs), transfer "
        f"{seconds['transfer']:.0f} s, fine-tuned {seconds['finetuned']:.0f} s, detector {seconds['detector']:.0f} s."
    )
    for k, v in det_results.items():
        lines.append(f"- Detector AP@0.5 on {k}: {v['ap']:.3f} ({v['truths']} doors in {len(v['images'])} photos).")
    lines.append(
        f"- Pipeline latency (detect + classify of the saved models, one image, 2 threads, {engine}): "
        f"median {latency.ms.median():.0f} ms over {len(latency)} images (target 50 ms; benchmarks/bench_doors.py times 30)."
    )
    lines.append(f"- Notebook run time: {total:.0f} s at scale {scale}.")
    return lines


def headline(summary: pd.DataFrame, det_results: dict) -> dict:
    test = "real Test" if (summary["test set"] == "real Test").any() else "synthetic Test"
    return {
        f"fine-tuned accuracy, {test}": pick(summary, "finetuned", test, "accuracy"),
        **{f"detector AP@0.5, {k}": v["ap"] for k, v in det_results.items()},
    }
