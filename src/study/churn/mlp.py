"""The original study's Keras MLPs as scikit-learn classifiers (Keras 3 on the PyTorch CPU backend).

Why Keras 3 on PyTorch rather than TensorFlow: the doors case needs PyTorch anyway (its ImageNet
weights ship as a PyTorch state dict), so one CPU tensor library serves both cases; the layers,
optimiser (Adamax) and loss are the Keras ones the original study used.

Early stopping replaces the fixed 320 epochs: 10 % of the training rows (stratified, seeded) are
held out, training stops after ``patience`` epochs without a better validation loss and the best
weights are restored. ``history_`` keeps the learning curves.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from study.compute import keras_backend  # noqa: E402,F401  (the MLPs' Keras; re-exported)

# name → (hidden layers, Adamax learning rate), FACTS.md section 4
ORIGINAL_MLPS = {
    "MLP 1 (Keras 20-15-10, Adamax)": ((20, 15, 10), 1e-3),
    "MLP 2 (Keras 40-30-20, Adamax lr 1e-3)": ((40, 30, 20), 1e-3),
    "MLP 3 (Keras 40-30-20, Adamax lr 5e-4)": ((40, 30, 20), 5e-4),
}


class KerasMLP(ClassifierMixin, BaseEstimator):
    """Dense ReLU layers → sigmoid, Adamax, binary cross-entropy, early stopping on a held-out 10 %."""

    def __init__(
        self,
        hidden=(20, 15, 10),
        learning_rate=1e-3,
        epochs=320,
        batch_size=256,
        patience=10,
        validation_fraction=0.1,
        seed=40,
    ):
        self.hidden = hidden
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed

    def _build(self, n_features: int):
        keras = keras_backend()
        layers = [keras.Input(shape=(n_features,))]
        layers += [keras.layers.Dense(n, activation="relu") for n in self.hidden]
        layers.append(keras.layers.Dense(1, activation="sigmoid"))
        model = keras.Sequential(layers)
        model.compile(optimizer=keras.optimizers.Adamax(learning_rate=self.learning_rate), loss="binary_crossentropy")
        return model

    def fit(self, x, y):
        keras = keras_backend()
        keras.utils.set_random_seed(self.seed)
        x = np.asarray(x, dtype="float32")
        y = np.asarray(y, dtype="float32")
        self.classes_ = np.array([0, 1])
        xt, xv, yt, yv = train_test_split(x, y, test_size=self.validation_fraction, stratify=y, random_state=self.seed)
        self.model_ = self._build(x.shape[1])
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True)
        hist = self.model_.fit(
            xt,
            yt,
            validation_data=(xv, yv),
            epochs=self.epochs,
            batch_size=self.batch_size,
            callbacks=[stop],
            verbose=0,
            shuffle=True,
        )
        self.history_ = pd.DataFrame(hist.history).rename_axis("epoch").reset_index()
        self.history_["epoch"] += 1
        self.n_epochs_ = len(self.history_)
        return self

    def predict_proba(self, x):
        p = self.model_.predict(np.asarray(x, dtype="float32"), batch_size=4096, verbose=0).ravel().astype("float64")
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return np.column_stack([1 - p, p])

    def predict(self, x):
        return (self.predict_proba(x)[:, 1] >= 0.5).astype(int)


def original_mlps() -> dict:
    """name → factory, in the original study's order."""
    return {name: (lambda h=h, lr=lr: KerasMLP(hidden=h, learning_rate=lr)) for name, (h, lr) in ORIGINAL_MLPS.items()}
