"""The doors report's selections and conclusions (notebook 50): which errors and false positives
to show, the pipeline's timed demo, the conclusions in numbers and the headline for the index."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from study.compute import cpu_threads, steps_beside
from study.doors import classify, data, figures, pipeline, train

DEMO_CONFIDENCE = 0.3  # the report's demo keeps boxes scored at least this

ORDER = ("two_view", "finetuned", "transfer", "original_cnn")
LABELS = {"original_cnn": "original CNN", "transfer": "transfer", "finetuned": "fine-tuned", "two_view": "two-view"}
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
    comparison: "Comparison",
    clock: "Clock",
    epochs: int,
    det_results: dict,
    engine: str,
    latency: pd.DataFrame,
    scale: str,
) -> list[str]:
    """The report's closing lines: accuracy per test set, the real operating points against the
    targets, training times, AP, the deployed pipeline's latency and the notebook's own run time."""
    summary, points, seconds = comparison.summary, comparison.points, clock.seconds
    models = list(comparison.models)
    lines = []
    for test in ("synthetic Test", "real Test"):
        if (summary["test set"] == test).any():
            lines.append(
                f"- **{test}** accuracy ({' / '.join(LABELS.get(m, m) for m in models)}): "
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
        f"- Training time: original CNN {seconds['original_cnn']:.0f} s ({epochs} epoch{'s' if epochs != 1 else ''}), "
        + ", ".join(f"{LABELS[k]} {seconds[k]:.0f} s" for k in ("transfer", "finetuned", "two_view") if k in seconds)
        + f", detector {seconds['detector']:.0f} s."
    )
    for k, v in det_results.items():
        lines.append(f"- Detector AP@0.5 on {k}: {v['ap']:.3f} ({v['truths']} doors in {len(v['images'])} photos).")
    threads, beside = cpu_threads(), steps_beside() > 1
    shared = " while another step of the study ran beside this one" if beside else ""
    lines.append(
        f"- Pipeline latency (detect + classify of the saved models, one image, {threads} thread"
        f"{'s' if threads > 1 else ''}, {engine}{shared}): median {latency.ms.median():.0f} ms over {len(latency)} "
        "images (target 50 ms on 2 threads; benchmarks/bench_doors.py times 30, alone)."
    )
    lines.append(
        f"- Notebook run time: {clock.total:.0f} s at scale {scale}"
        + (f", on {threads} of the machine's threads beside another step (`study run --jobs`)." if beside else ".")
    )
    return lines


def headline(summary: pd.DataFrame, det_results: dict, chosen: str = "finetuned") -> dict:
    """The index page's numbers: the demo's classifier's accuracy and the detector's AP."""
    test = "real Test" if (summary["test set"] == "real Test").any() else "synthetic Test"
    return {
        f"{LABELS.get(chosen, chosen)} accuracy, {test}": pick(summary, chosen, test, "accuracy"),
        **{f"detector AP@0.5, {k}": v["ap"] for k, v in det_results.items()},
    }


# ---------------------------------------------------------------------------------------------
# The notebook's parts: each returns what the report shows, as objects to ``display``.
def say(text: str | list[str]) -> None:
    """Markdown in the report (a list: one line each)."""
    display(Markdown("\n".join(text) if isinstance(text, list) else text))


def show(fig) -> None:
    """A figure in the report: photos as JPEG, charts as PNG (``figures.for_report``)."""
    display(figures.for_report(fig))


class Clock:
    """Seconds each named step of the notebook took, and the notebook's own run time so far."""

    def __init__(self):
        self.start, self.seconds = time.perf_counter(), {}

    def __call__(self, name: str, fit, *args, **kwargs):
        """What ``fit(*args, **kwargs)`` returns; its seconds are kept under ``name``."""
        t0 = time.perf_counter()
        out = fit(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - t0
        return out

    def __getitem__(self, name: str) -> float:
        return self.seconds[name]

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


@dataclass
class Comparison:
    """The classifiers side by side on the same crops: ``seen`` holds each model's probabilities
    (each crop scored once per model across the report's tables), ``aucs`` the selection AUCs
    (real Valid crops when present), ``chosen`` the demo's classifier, ``results`` the Test
    evaluations and their tables, ``sentence`` why the demo uses ``chosen``."""

    models: dict
    seen: classify.Predictions
    aucs: dict
    chosen: str
    results: dict
    summary: pd.DataFrame
    points: pd.DataFrame
    sentence: str


def compare(models: dict, d, use_real: bool = True) -> Comparison:
    """The trained ``models`` evaluated on the Test crops and ranked on the selection crops."""
    seen = classify.Predictions(models)  # the CNN's Valid probabilities: from its fit
    aucs = train.selection_aucs(models, d, use_real, seen)
    chosen = train.preferred(aucs)
    results = train.evaluate_classifiers(models, d, use_real, seen)
    summary, points = classifier_tables(results)
    return Comparison(models, seen, aucs, chosen, results, summary, points, chosen_sentence(chosen, aucs, d, use_real))


def describe(d, scale: str) -> str:
    real = "absent" if d.real_images is None else f"{len(d.real_images):,} used"
    head = f"Scale **{scale}**: {len(d.crops):,} classifier crops and {len(d.scenes):,} full scenes ({d.source}); real photos: {real}"
    return "  \n".join([head] + d.notes)


def data_view(d, sets: dict) -> list:
    """Crops per state and set, and the real photos by split."""

    counts = pd.concat({name: df.groupby("state").size() for name, df in sets.items()}, axis=1)
    counts = counts.reindex(list(data.STATES)).fillna(0).astype(int)
    counts.loc["total"] = counts.sum()
    if d.real_images is None:
        return [counts]
    real = d.real_images
    splits = real.split.value_counts().reindex(["Train", "Valid", "Test"])
    sentence = (
        "Real photos by split (detector): "
        + ", ".join(
            f"{s} {n} photos / {int(real[real.split == s].doors.map(len).sum())} doors" for s, n in splits.items()
        )
        + ". States of the agreed real crops: "
        + ", ".join(f"{k} {v}" for k, v in d.real_crops.state.value_counts().items())
        + " (semi-open doors are rare in real photos, as the data's README warns)."
    )
    return [counts, Markdown(sentence)]


def examples(d, seed: int) -> tuple[list, list[str]]:
    """Synthetic scenes of each state with their box, then two real crops per state."""

    rendered = [data.render(seed, k, s) for k, s in enumerate(data.STATES * 2)]
    images = [pipeline.annotate(im, [pipeline.Detection(sc.box, 1.0, sc.state, 1.0)]) for im, sc in rendered]
    titles = [f"synthetic {sc.state} {sc.angle:.0f}°" for _, sc in rendered]
    if d.real_crops is not None:
        picks = pd.concat([g.head(2) for _, g in d.real_crops.groupby("state")])
        images += list(picks.image)
        titles += [f"real {s}" for s in picks.state]
    return images, titles


def cnn_view(cnn, seconds: float) -> list:

    layers = pd.DataFrame(
        [
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "output": str(layer.output.shape),
                "parameters": layer.count_params(),
            }
            for layer in cnn.model.layers
        ]
    )
    sentence = (
        f"{cnn.meta['train_rows']:,} training crops (of {cnn.meta['train_crops_available']:,}"
        f"{'; a stratified sample, for time' if cnn.meta['train_rows'] < cnn.meta['train_crops_available'] else ''}), {cnn.epochs} epoch{'s' if cnn.epochs != 1 else ''} of batch 16 in {seconds:.0f} s; best validation accuracy "
        f"{max(cnn.history_['val_accuracy']):.3f} at epoch {cnn.meta['best_epoch']} (that checkpoint is kept). "
        "The random rotation, zoom, shear and shift layers act in training only."
    )
    return [layers, Markdown(sentence)]


def fit_transfer(sets: dict, seed: int = 7):
    """The EfficientNet-Lite0 features + logistic regression classifier, fitted on the Train crops
    (C chosen on Valid)."""

    tr, va = sets["Train"], sets["Valid"]
    return classify.TransferClassifier(seed=seed).fit(list(tr.image), list(tr.state), list(va.image), list(va.state))


def transfer_view(transfer, seconds: float, train_rows: int) -> list:

    sentence = (
        f"Features of {train_rows * (1 + transfer.augment_copies):,} crops (each crop and {transfer.augment_copies} "
        f"augmented copies) and the regression in {seconds:.0f} s; C = {transfer.meta['C']} has the lowest validation "
        "log loss. Balanced class weights make each semi-open crop count as much as the frequent closed ones."
    )
    return [pd.DataFrame(transfer.meta["c_trials"]), Markdown(sentence)]


def finetuned_view(finetuned, seconds: float) -> list:

    m = finetuned.meta
    sentence = (
        f"Frozen-stage maps of {m['train_rows']:,} crops × {finetuned.views} views cached in {m['cache_seconds']:.0f} s; "
        f"{m.get('epochs_run', finetuned.epochs)} of at most {finetuned.epochs} epochs (it stops "
        f"{m.get('patience')} epochs after the best), {seconds:.0f} s in all. Kept epoch {m['best_epoch']} (highest AUC of P(not closed) "
        f"on the {m['chosen_on']} crops). " + decision_sentence(finetuned)
    )
    return [pd.DataFrame(m["history"]).set_index("epoch"), Markdown(sentence)]


def two_view_view(model, seconds: float) -> list:
    """The two-view model's strengths tried on the selection crops, and how it decides."""
    m = model.meta
    sentence = (
        f"Features of the door and its context for {m['train_rows']:,} Train crops and {m['valid_rows']:,} selection "
        f"crops in {m['feature_seconds']:.0f} s, {seconds:.0f} s in all. Closed or not: learnt from the "
        f"{m['closed_rows']}, C = {m['strength']:g} (highest AUC of P(not closed) on the {m['chosen_on']} crops); "
        f"ajar rather than open: {'learnt from every open or ajar Train crop' if m['ajar_stage'] else 'no ajar Train crop, never'}. "
        + decision_sentence(model)
    )
    return [pd.DataFrame(m["trials"]).set_index("strength"), Markdown(sentence)]


def chosen_sentence(chosen: str, aucs: dict, d, use_real: bool = True) -> str:
    """Which classifier the demo serves, and why (``train.selection_aucs``)."""
    va, on = train.selection_set(d, use_real)
    aucs = {n: aucs[n] for n in ORDER if n in aucs}
    if not all(a == a for a in aucs.values()):  # NaN: one kind of door only
        return f"The demo uses the **{LABELS.get(chosen, chosen)}** model."
    return (
        f"The demo and `study doors predict` use the **{LABELS.get(chosen, chosen)}** model: AUC of P(not closed) on "
        f"the {len(va)} {on} crops "
        + ", ".join(f"{LABELS.get(n, n)} {a:.3f}" for n, a in aucs.items())
        + " (the choice is between the fine-tuned and two-view models)."
    )


def decision_sentence(model) -> str:
    """How a model with an operating point (``classify.OperatingPoint``) turns probabilities into states."""
    on = model.meta["chosen_on"]
    return (
        f"Doors with P(not closed) ≥ {model.threshold:.3f} are called open or ajar, which keeps "
        f"{model.closed_recall:.0%} of the {on} closed doors closed. " + ajar_sentence(model.meta)
    )


def ajar_sentence(meta: dict) -> str:
    """How the fine-tuned model decides "ajar" (semi-open), from its calibration."""
    cal = meta.get("ajar_calibration")
    if not cal:
        return f"Ajar: at least {meta['semi_threshold']:.0%} of the open-or-ajar probability (not calibrated)."
    basis = f"on {cal['on']} ({cal['ajar']} ajar, {cal['open']} open"
    basis += (
        f", weighted to the real photos' {cal['prevalence']:.0%} ajar)" if cal.get("prevalence") is not None else ")"
    )
    if cal["never"]:
        return (
            f"Ajar is never said: no share of the open-or-ajar probability makes it right {cal['precision']:.0%} "
            f"of the time {basis}, so ajar doors are reported as open."
        )
    return (
        f"Ajar is said from {meta['semi_threshold']:.0%} of the open-or-ajar probability, where it is right at "
        f"least {cal['precision']:.0%} of the time {basis}."
    )


def texture_view(d) -> list:
    """Open and ajar doors made from real closed Train doors, next to real open ones."""

    ex = train.texture_examples(d, 3)
    if not len(ex):
        return [Markdown("No real photos: nothing to synthesise from.")]
    real_open = d.real_crops[(d.real_crops.split == "Train") & (d.real_crops.state == "open")].head(6)
    images = list(ex.image) + list(real_open.image)
    titles = [f"made {s} {a:.0f}°" for s, a in zip(ex.state, ex.angle)] + ["real open"] * len(real_open)
    return [figures.for_report(figures.gallery(images, titles, cols=6))]


def classifier_tables(results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per model and test set: the scores, and the open-or-ajar operating point."""

    points = pd.DataFrame(
        [{"model": name, "test set": test, **train.state_operating_point(r)} for (name, test), r in results.items()]
    )
    return train.summary_table(results), points


def valid_confusions(
    models: dict, valid: pd.DataFrame, predictions: classify.Predictions | None = None
) -> pd.DataFrame:

    return pd.concat(
        {
            name: classify.evaluate(m, classify.inputs(m, valid), list(valid.state), predictions)["confusion"]
            for name, m in models.items()
        },
        axis=1,
    )


def detector_view(det, det_sets: dict, det_results: dict, seconds: float) -> list:
    from study.doors.backbone import NAMES

    ap = pd.DataFrame(
        [
            {
                "evaluated on": k,
                "photos": len(v["images"]),
                "doors": v["truths"],
                "AP@0.5": v["ap"],
                "recall at score ≥ 0.05": v["recall"][-1] if len(v["recall"]) else 0.0,
            }
            for k, v in det_results.items()
        ]
    )
    sentence = (
        f"{len(det_sets['Train']):,} training images (each, its mirror and {det.augment} random "
        f"view{'' if det.augment == 1 else 's'}), frozen {NAMES[det.backbone]} features "
        f"in {det.meta['feature_seconds']:.0f} s, head trained {det.epochs} epochs ({det.meta['hard_cells']:,} "
        f"hard-negative cells, weight {det.hard_negative:g}); {seconds:.0f} s in all."
    )
    return [ap, Markdown(sentence)]


def false_positives_view(det_results: dict) -> list:

    sentence, crops, titles = false_positives(det_results)
    shown = [figures.for_report(figures.gallery(crops, titles, cols=6, size=2.4))] if crops else []
    return [Markdown(sentence), *shown]


def demo_images(det_sets: dict, n: int = 3) -> list:
    """The first ``n`` real Test photos (when present) and ``n`` synthetic Test scenes."""
    return [im for im, _ in det_sets.get("real Test", [])[:n]] + [im for im, _ in det_sets["synthetic Test"][:n]]


def save(
    save_models: bool, models: dict, det, models_dir: str, results: dict, det_results: dict, chosen: str | None = None
) -> tuple[Path | None, str]:
    """Where the models were saved (``None`` when ``save_models`` is off) and a sentence saying so."""
    if not save_models:
        return None, "Models not saved (`save_models` is off)."
    target = train.save_all(
        models, det, models_dir or pipeline.models_folder(), train.metrics_of(results, det_results, chosen)
    )
    return target, f"Models saved to `{target}` (JSON + safetensors / .keras; no pickle)."


def deployed(det, models: dict, chosen: str, saved: Path | None) -> pipeline.DoorPipeline:
    """The pipeline as it runs once saved and loaded (networks in ONNX Runtime): loaded from the
    folder just saved, else saved to a temporary one (exporting both networks takes a few seconds)."""
    if saved is not None:
        return pipeline.DoorPipeline.load(saved, chosen, confidence=DEMO_CONFIDENCE)
    return pipeline.DoorPipeline.deployed(det, models[chosen], confidence=DEMO_CONFIDENCE)
