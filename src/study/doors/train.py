"""The doors study in functions: assemble the data, train the two classifiers and the detector,
evaluate them on synthetic and real photos, and save what the pipeline and dashboard load.

Data: the generated scenes (or a real DeepDoors2 folder) always; the DoorDetect photos of
``../shared/doors`` when present, split by photo (Train/Valid/Test, seeded). Their agreed door
states join the classifiers' training crops of the same split when ``use_real`` is set; the
detector trains on the real Train photos plus the synthetic Train scenes. Real Test photos are
never trained on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from study import paths
from study.doors import classify, data, detect, realistic
from study.doors.data import STATES, open_image

# at quick scale only part of the real Train photos feed the detector and classifiers (CI time)
REAL_TRAIN_LIMIT = {"tiny": 40, "quick": 160, "default": None, "full": None}
# Default scale: chosen on the real Valid photos (AP@0.5 after 12, 8 and 6 epochs of the head over the
# same cached features: 0.3125, 0.3149, 0.3149; the fewest of the best, 6, saves 86 s on one core;
# real Test, not used to choose: 0.368, 0.375, 0.384; measured 2026-12-02).
DETECTOR_EPOCHS = {"tiny": 5, "quick": 6, "default": 6, "full": 16}
# Random views per photo besides it and its mirror (DoorDetector's ``augment``). Quick scale: 1, chosen on
# the real Valid photos (AP@0.5 0.194 with 2, 0.208 with 1, 0.164 with 0; fit 47, 27, 19 s on one core;
# 2026-12-03); the default scale keeps 2.
DETECTOR_AUGMENT = {"tiny": 2, "quick": 1, "default": 2, "full": 2}
CNN_EPOCHS = {"tiny": 1, "quick": 1, "default": 3, "full": 12}
# The original CNN costs about 0.28 s per crop and epoch on 2 cores whatever the Keras backend
# (measured: PyTorch 0.284, TensorFlow-CPU 0.214), so at the default scale it trains on a seeded,
# class-stratified sample of the Train crops to hold the 15-minute budget of notebook 50; at the quick
# scale (a smoke run for the tests: 236 crops × 3 epochs took 221 s) 48 crops × 1 epoch. At the default
# scale 150 crops × 3 epochs (221 s beside another step, 2026-12-02; 300 crops took 351–381 s): the
# baseline learns nothing at either size (synthetic Test accuracy 0.333, 0.370 with 300; real Test open
# recall 0.00 with both), against 0.767 and 0.29 for 900 crops × 3 epochs (716 s alone).
CNN_TRAIN_CROPS = {"tiny": None, "quick": 48, "default": 150, "full": None}
# The detector's head costs about 7 ms per view and epoch: at the default scale it sees all the real
# Train photos and a seeded sample of the synthetic Train scenes.
DETECTOR_SYNTHETIC_SCENES = {"tiny": None, "quick": None, "default": 400, "full": None}
# kept (real Valid): epoch 1 at default; epoch 2 at quick, where 3 at most (was 4) keep the same model
# and save an epoch (about 4 s; 2026-12-03)
FINETUNE_EPOCHS = {"tiny": 1, "quick": 3, "default": 8, "full": 10}
FINETUNE_VIEWS = {"tiny": 2, "quick": 3, "default": 4, "full": 6}
SYNTHETIC_SCALE = {"tiny": "tiny", "quick": "quick", "default": "default", "full": "default"}


@dataclass
class DoorData:
    scale: str
    source: str  # "synthetic" or the DeepDoors2 folder
    crops: pd.DataFrame  # image, state, split, origin, path (synthetic or DeepDoors2 crops)
    scenes: pd.DataFrame  # full synthetic scenes: path, split, state, doors
    real_images: pd.DataFrame | None  # DoorDetect photos with split, doors, others (None if absent)
    real_crops: pd.DataFrame | None  # agreed-state real crops with the split of their photo
    notes: list = field(default_factory=list)

    def classifier_sets(self, use_real: bool = True) -> dict:
        """Train/Valid crops (synthetic + real Train/Valid when ``use_real``) and the test sets."""
        syn = self.crops
        real = self.real_crops if (use_real and self.real_crops is not None) else None
        parts = {}
        for split in ("Train", "Valid"):
            frames = [syn[syn.split == split]]
            if real is not None:
                frames.append(real[real.split == split])
            parts[split] = pd.concat(frames, ignore_index=True)
        parts["synthetic Test"] = syn[syn.split == "Test"].reset_index(drop=True)
        if self.real_crops is not None:
            parts["real Test"] = self.real_crops[self.real_crops.split == "Test"].reset_index(drop=True)
        return parts


def synthetic_folder(scale: str) -> Path:
    return paths.DOORS_SYNTHETIC / SYNTHETIC_SCALE.get(scale, scale)


def prepare(scale: str = "quick", source: str = "synthetic", use_real: bool = True, seed: int = 2017) -> DoorData:
    """Generate (once) and load the synthetic scenes of the scale, or read a DeepDoors2 folder;
    add the real photos of ../shared when present and ``use_real`` is set."""
    notes = []
    if source == "synthetic":
        folder = synthetic_folder(scale)
        meta = folder / "doors.json"
        if not meta.is_file() or json.loads(meta.read_text()).get("seed") != seed:
            data.generate(folder, SYNTHETIC_SCALE.get(scale, scale), seed=seed)
        crops = data.synthetic_crops(folder)
        scenes = data.synthetic_scenes(folder)
    else:
        crops = data.load_deepdoors2(source)
        crops["image"] = [open_image(p) for p in crops.path]
        crops["context"] = [data.scene_context(source, p, im) for p, im in zip(crops.path, crops.image)]
        crops["origin"] = "DeepDoors2"
        scenes = data.synthetic_scenes(synthetic_folder(scale)) if synthetic_folder(scale).is_dir() else pd.DataFrame()
        notes.append(f"classifier crops from the DeepDoors2 folder {source}")
    real_images = real_crops = None
    if use_real:
        try:
            real_images = data.real_images(seed=seed)
            real_crops = data.real_crops(seed=seed)
        except FileNotFoundError as exc:
            notes.append(f"real photos not used: {exc}")
        else:
            limit = REAL_TRAIN_LIMIT.get(scale)
            if limit:
                train_ids = real_images.index[real_images.split == "Train"][:limit]
                keep = real_images.split.ne("Train") | real_images.index.isin(train_ids)
                dropped = set(real_images.path[~keep])
                real_images = real_images[keep].reset_index(drop=True)
                real_crops = real_crops[~real_crops.path.isin(dropped)].reset_index(drop=True)
                notes.append(f"{scale} scale: {limit} of the real Train photos used")
    return DoorData(scale, source, crops, scenes, real_images, real_crops, notes)


def selection_set(d: DoorData, use_real: bool = True) -> tuple[pd.DataFrame, str]:
    """The crops that choose the fine-tuned model's epoch and threshold: the real Valid crops
    when the photos are present (the users' photos are real), else the synthetic Valid crops."""
    if use_real and d.real_crops is not None and (d.real_crops.split == "Valid").any():
        return d.real_crops[d.real_crops.split == "Valid"].reset_index(drop=True), "real Valid"
    return d.classifier_sets(use_real)["Valid"], "synthetic Valid"


def train_finetuned(
    d: DoorData, use_real: bool = True, epochs: int | None = None, seed: int = 7, progress=None, **options
) -> classify.FineTunedClassifier:
    """The fine-tuned EfficientNet-Lite0 on the Train crops (real crops weighted up), its epoch and
    operating point chosen on ``selection_set``."""
    tr = d.classifier_sets(use_real)["Train"]
    va, chosen_on = selection_set(d, use_real)
    origins = _origins(tr)
    model = classify.FineTunedClassifier(
        epochs=epochs or FINETUNE_EPOCHS.get(d.scale, 10),
        views=options.pop("views", FINETUNE_VIEWS.get(d.scale, 4)),
        seed=seed,
        **options,
    )
    model.fit(list(tr.image), list(tr.state), list(va.image), list(va.state), origins=origins, progress=progress)
    model.meta["chosen_on"] = chosen_on
    return calibrate_ajar(model, d, use_real)


def _origins(crops: pd.DataFrame) -> np.ndarray:
    """Each training crop's origin for the loss weights: real, real texture or synthetic."""
    return np.where(
        crops.origin.isin(["real", "DeepDoors2"]),
        "real",
        np.where(crops.origin.eq("real texture"), "real texture", "synthetic"),
    )


def calibrate_ajar(model, d: DoorData, use_real: bool = True):
    """Sets when ``model`` says "ajar". Ajar needs doors that are ajar: all Valid crops, synthetic
    and real (1 real ajar Valid door), weighted to the real Train and Valid photos' share of ajar
    doors among the open or ajar ones."""
    every = d.classifier_sets(use_real)["Valid"]
    prevalence = None
    if use_real and d.real_crops is not None:
        seen = d.real_crops[d.real_crops.split.isin(["Train", "Valid"]) & d.real_crops.state.isin(["open", "semi"])]
        prevalence = float((seen.state == "semi").mean()) if len(seen) else None
    model.calibrate_ajar(
        classify.inputs(model, every),
        list(every.state),
        "all Valid crops" if use_real else "synthetic Valid",
        prevalence,
    )
    return model


def train_two_view(d: DoorData, use_real: bool = True, progress=None, **options):
    """The two-view model (the door and its surroundings, frozen features, logistic regressions)
    on the Train crops, its strength and operating point chosen on ``selection_set``."""
    tr = d.classifier_sets(use_real)["Train"]
    va, chosen_on = selection_set(d, use_real)
    model = classify.TwoViewClassifier(**options)
    model.fit(
        classify.inputs(model, tr),
        list(tr.state),
        classify.inputs(model, va),
        list(va.state),
        origins=_origins(tr),
        progress=progress,
    )
    model.meta["chosen_on"] = chosen_on
    return calibrate_ajar(model, d, use_real)


def selection_aucs(
    models: dict, d: DoorData, use_real: bool = True, predictions: classify.Predictions | None = None
) -> dict:
    """Per model, how well its P(not closed) ranks the selection crops (real Valid when present):
    ROC AUC, NaN when those crops hold one kind only."""
    from sklearn.metrics import roc_auc_score

    va, _ = selection_set(d, use_real)
    closed = (va.state == "closed").to_numpy()
    if not 0 < closed.sum() < len(closed):
        return {name: float("nan") for name in models}
    predictions = predictions if predictions is not None else classify.Predictions()
    return {
        name: float(roc_auc_score(~closed, 1 - predictions.proba(m, classify.inputs(m, va))[:, 0]))
        for name, m in models.items()
    }


def preferred(aucs: dict, candidates=("two_view", "finetuned")) -> str:
    """The classifier the demo and ``study doors predict`` use: of ``candidates``, the one with the
    highest ``selection_aucs``; the first on ties (or when none can be measured)."""
    present = [n for n in candidates if n in aucs]
    return max(present, key=lambda n: (np.nan_to_num(aucs[n], nan=-1.0), -candidates.index(n)))


def texture_examples(d: DoorData, doors: int = 3, seed: int = 2017) -> pd.DataFrame:
    """Real-texture open and ajar doors made from the first ``doors`` real closed Train doors
    (backdrops from the real Train photos), for the report's grid; empty without real photos."""
    if d.real_crops is None or d.real_images is None:
        return pd.DataFrame(columns=["image", "state", "angle"])
    closed = d.real_crops[(d.real_crops.split == "Train") & (d.real_crops.state == "closed")].head(doors)
    return realistic.synthesise(closed, d.real_images[d.real_images.split == "Train"], seed=seed)


def state_operating_point(result: dict) -> dict:
    """Open-or-ajar recall and closed recall of one ``classify.evaluate`` result (the issue's
    targets: open recall ≥ 0.80 at closed recall ≥ 0.90)."""
    truth = np.asarray(result["crops"].state)
    pred = np.asarray(result["pred"])
    closed = truth == "closed"
    return {
        "open recall": float((pred[~closed] != "closed").mean()) if (~closed).any() else float("nan"),
        "closed recall": float((pred[closed] == "closed").mean()) if closed.any() else float("nan"),
    }


def stratified_sample(frame: pd.DataFrame, rows: int | None, by: str = "state", seed: int = 7) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``, each ``by`` group keeping its share (seeded); all of
    them when ``rows`` is None or not smaller."""
    if rows is None or len(frame) <= rows:
        return frame
    share = rows / len(frame)
    parts = [g.sample(n=max(1, int(round(len(g) * share))), random_state=seed) for _, g in frame.groupby(by, sort=True)]
    return pd.concat(parts).sort_index()


def train_original_cnn(
    d: DoorData, use_real: bool = True, epochs: int | None = None, seed: int = 7, verbose: int = 0
) -> classify.OriginalCNN:
    """The original study's CNN on the Train crops (a stratified sample of ``CNN_TRAIN_CROPS`` of
    them at the quick and default scales), its checkpoint chosen on the Valid crops, as the original did."""
    sets = d.classifier_sets(use_real)
    tr, va = stratified_sample(sets["Train"], CNN_TRAIN_CROPS.get(d.scale), seed=seed), sets["Valid"]
    cnn = classify.OriginalCNN(epochs=epochs or CNN_EPOCHS.get(d.scale, 10), seed=seed)
    cnn.fit(list(tr.image), list(tr.state), list(va.image), list(va.state), verbose=verbose)
    cnn.meta["train_crops_available"] = len(sets["Train"])
    return cnn


def train_classifiers(
    d: DoorData, cnn_epochs: int | None = None, use_real: bool = True, seed: int = 7, verbose: int = 0
) -> dict:
    """The four classifiers on the same crops: {"original_cnn": OriginalCNN, "transfer":
    TransferClassifier, "finetuned": FineTunedClassifier, "two_view": TwoViewClassifier}."""
    sets = d.classifier_sets(use_real)
    tr, va = sets["Train"], sets["Valid"]
    cnn = train_original_cnn(d, use_real, cnn_epochs, seed, verbose)
    transfer = classify.TransferClassifier(seed=seed).fit(
        list(tr.image), list(tr.state), list(va.image), list(va.state)
    )
    return {
        "original_cnn": cnn,
        "transfer": transfer,
        "finetuned": train_finetuned(d, use_real, seed=seed),
        "two_view": train_two_view(d, use_real),
    }


def evaluate_classifiers(
    models: dict, d: DoorData, use_real: bool = True, predictions: classify.Predictions | None = None
) -> dict:
    """{(model, test set): classify.evaluate(...)} on the synthetic Test crops and the real Test crops."""
    sets = d.classifier_sets(use_real)
    out = {}
    for name, model in models.items():
        for test in ("synthetic Test", "real Test"):
            if test in sets and len(sets[test]):
                res = classify.evaluate(model, classify.inputs(model, sets[test]), list(sets[test].state), predictions)
                res["crops"] = sets[test]
                out[(name, test)] = res
    return out


def summary_table(results: dict) -> pd.DataFrame:
    """One row per (model, test set): accuracy, balanced accuracy, per-class precision and recall."""
    rows = []
    for (name, test), r in results.items():
        pc = r["per_class"]
        present = pc[pc.support > 0]
        row = {
            "model": name,
            "test set": test,
            "crops": int(pc.support.sum()),
            "accuracy": r["accuracy"],
            "balanced accuracy": float(present.recall.mean()) if len(present) else np.nan,
        }
        for s in STATES:
            row[f"{s} precision"] = pc.loc[s, "precision"] if pc.loc[s, "support"] or pc.loc[s, "precision"] else np.nan
            row[f"{s} recall"] = pc.loc[s, "recall"] if pc.loc[s, "support"] else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def detector_sets(d: DoorData) -> dict:
    """(image, boxes) pairs: Train = real Train photos (with their cabinet and refrigerator door
    boxes as a third item) + synthetic Train scenes (a stratified sample of
    ``DETECTOR_SYNTHETIC_SCENES`` at the default scale); evaluated on the real Valid photos (what
    the detector's settings are chosen on), the real Test photos (held out) and the synthetic Test
    scenes."""

    def pairs(df):
        return [(open_image(p), b) for p, b in zip(df.path, df.doors)]

    scenes = d.scenes[d.scenes.split == "Train"] if len(d.scenes) else d.scenes
    scenes = stratified_sample(scenes, DETECTOR_SYNTHETIC_SCENES.get(d.scale), seed=7) if len(scenes) else scenes
    sets = {"Train": pairs(scenes) if len(scenes) else []}
    sets["synthetic Test"] = pairs(d.scenes[d.scenes.split == "Test"]) if len(d.scenes) else []
    if d.real_images is not None:
        real_train = d.real_images[d.real_images.split == "Train"]
        # the real Train photos also carry their cabinet and refrigerator doors (hard negatives)
        sets["Train"] += [
            (open_image(p), b, o) for p, b, o in zip(real_train.path, real_train.doors, real_train.others)
        ]
        sets["real Valid"] = pairs(d.real_images[d.real_images.split == "Valid"])
        sets["real Test"] = pairs(d.real_images[d.real_images.split == "Test"])
    return sets


def train_detector(d: DoorData, epochs: int | None = None, seed: int = 7, progress: bool = False, **options):
    sets = detector_sets(d)
    options.setdefault("augment", DETECTOR_AUGMENT.get(d.scale, 2))
    det = detect.DoorDetector(epochs=epochs or DETECTOR_EPOCHS.get(d.scale, 30), seed=seed, **options)
    det.fit(sets["Train"], progress=progress)
    return det, sets


def evaluate_detector(det, sets: dict, d: DoorData, confidence: float = 0.05) -> dict:
    """AP@0.5 and the precision-recall curve per evaluated set (real Valid, which chooses the
    settings, beside the held-out real Test), and on the real Test photos what the false positives
    overlap (labelled cabinet or refrigerator doors, or nothing labelled)."""
    out = {}
    for name in ("real Valid", "real Test", "synthetic Test"):
        if not sets.get(name):
            continue
        images = [im for im, _ in sets[name]]
        dets = det.detect(images, confidence=confidence)
        res = detect.average_precision(dets, [b for _, b in sets[name]])
        res["detections"], res["images"] = dets, images
        if name == "real Test":
            others = list(d.real_images[d.real_images.split == "Test"].others)
            fp = res["matches"][~res["matches"].matched].copy()
            fp["on"] = [
                (
                    "cabinet or refrigerator door"
                    if len(others[r.image]) and detect.iou([r.x0, r.y0, r.x1, r.y1], others[r.image]).max() >= 0.3
                    else "no labelled object"
                )
                for r in fp.itertuples()
            ]
            res["false_positives"] = fp
        out[name] = res
    return out


def save_all(models: dict, det, out: str | Path, metrics: dict) -> Path:
    """Write detector/, one folder per classifier (original_cnn/, transfer/, finetuned/,
    two_view/) and metrics.json under ``out``."""
    out = Path(out)
    det.save(out / "detector")
    for name, model in models.items():
        model.save(out / name)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    return out


def metrics_of(cls_results: dict, det_results: dict, chosen: str | None = None) -> dict:
    """What metrics.json holds; ``chosen``: the classifier the demo uses (``preferred``)."""
    table = summary_table(cls_results)
    return {
        **({"preferred_classifier": chosen} if chosen else {}),
        "classifiers": table.to_dict(orient="records"),
        "detector": {k: {"ap50": v["ap"], "truths": v["truths"]} for k, v in det_results.items()},
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def train_all(
    scale: str = "quick",
    out: str | Path | None = None,
    source: str = "synthetic",
    use_real: bool = True,
    cnn_epochs: int | None = None,
    detector_epochs: int | None = None,
    seed: int = 2017,
    echo=print,
) -> dict:
    """What ``study doors train`` does: data, the classifiers, the detector, evaluation, saved models."""
    from study.doors.pipeline import models_folder

    out = Path(out) if out else models_folder()
    t0 = time.perf_counter()
    d = prepare(scale, source, use_real, seed)
    for n in d.notes:
        echo(n)
    echo(
        f"data ready in {time.perf_counter() - t0:.0f} s: {len(d.crops)} crops, {len(d.scenes)} scenes, "
        f"{0 if d.real_images is None else len(d.real_images)} real photos"
    )
    models = train_classifiers(d, cnn_epochs, use_real)
    echo(
        f"classifiers trained: CNN {models['original_cnn'].meta['fit_seconds']} s, "
        f"transfer {models['transfer'].meta['fit_seconds']} s, fine-tuned {models['finetuned'].meta['fit_seconds']} s, "
        f"two-view {models['two_view'].meta['fit_seconds']} s"
    )
    det, sets = train_detector(d, detector_epochs)
    echo(f"detector trained in {det.meta['fit_seconds']} s")
    seen = classify.Predictions(models)
    cls_results = evaluate_classifiers(models, d, use_real, seen)
    det_results = evaluate_detector(det, sets, d)
    metrics = metrics_of(cls_results, det_results, preferred(selection_aucs(models, d, use_real, seen)))
    save_all(models, det, out, metrics)
    echo(summary_table(cls_results).round(3).to_string(index=False))
    for k, v in det_results.items():
        echo(f"detector AP@0.5 on {k}: {v['ap']:.3f} ({v['truths']} doors)")
    echo(f"the demo's classifier (best AUC on the selection crops): {metrics['preferred_classifier']}")
    echo(f"saved to {out} in {time.perf_counter() - t0:.0f} s")
    return metrics
