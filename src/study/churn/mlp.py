"""The original study's Keras MLPs as scikit-learn classifiers (Keras 3 on the PyTorch CPU backend).

Why Keras 3 on PyTorch rather than TensorFlow: the doors case needs PyTorch anyway (its ImageNet
weights ship as a PyTorch state dict), so one CPU tensor library serves both cases. Each model is
a Keras ``Sequential`` (the original layers, Keras's Glorot initialisation, seeded) that predicts.

Why its weights are trained by a plain PyTorch loop and not ``model.fit``: on this backend
``fit`` takes 5.6–5.9 ms per batch of 256 rows, mostly bookkeeping (its data adapter, callbacks,
metric trackers and per-variable optimiser ops), the loop 1.0–1.2 ms: the three MLPs at the
default scale 291 → 54 s on one thread, the same log loss to ±0.0007
(``benchmarks/bench_mlp.py``). The loop keeps what ``fit`` did:
the same optimiser (Adamax, Keras's β and ε), binary cross-entropy, batch size, a reshuffle per
epoch (seeded), the loss and validation loss per epoch, and early stopping (below). The trained
weights go back into the Keras model.

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
        history = _train(
            self.model_, xt, yt, xv, yv, self.learning_rate, self.epochs, self.batch_size, self.patience, self.seed
        )
        self.history_ = pd.DataFrame(history).rename_axis("epoch").reset_index()
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


def _train(model, xt, yt, xv, yv, learning_rate, epochs, batch_size, patience, seed) -> dict[str, list[float]]:
    """Train the Dense layers of the Keras ``model`` through a PyTorch mirror (same weights in,
    trained weights back): Adamax with Keras's defaults, binary cross-entropy on the logit (the
    sigmoid's loss, without its clipping), a seeded reshuffle per epoch, the best validation
    loss's weights restored after ``patience`` epochs without improvement. Returns the per-epoch
    ``loss`` (mean over the epoch's batches, as Keras reports it) and ``val_loss``."""
    import torch

    dense = [layer for layer in model.layers if layer.weights]
    linears = []
    for layer in dense:
        kernel, bias = (np.asarray(w.numpy() if hasattr(w, "numpy") else w) for w in layer.get_weights())
        lin = torch.nn.Linear(*kernel.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(kernel.T.copy()))
            lin.bias.copy_(torch.from_numpy(bias.copy()))
        linears.append(lin)
    net = torch.nn.Sequential(*[m for lin in linears[:-1] for m in (lin, torch.nn.ReLU())], linears[-1])  # → logit
    opt = torch.optim.Adamax(net.parameters(), lr=learning_rate, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(xt), torch.from_numpy(yt).reshape(-1, 1)
    xv, yv = torch.from_numpy(xv), torch.from_numpy(yv).reshape(-1, 1)
    order = torch.Generator().manual_seed(int(seed))
    history: dict[str, list[float]] = {"loss": [], "val_loss": []}
    best, wait = np.inf, 0
    best_state = {k: v.clone() for k, v in net.state_dict().items()}  # kept if no epoch is finite
    for _ in range(epochs):
        net.train()
        total = 0.0
        perm = torch.randperm(len(xt), generator=order)
        for start in range(0, len(xt), batch_size):
            idx = perm[start : start + batch_size]
            loss = loss_fn(net(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        net.eval()
        with torch.no_grad():
            val = float(loss_fn(net(xv), yv))
        history["loss"].append(total / len(xt))
        history["val_loss"].append(val)
        if val < best:
            best, wait = val, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            wait += 1
            if wait >= patience:
                break
    net.load_state_dict(best_state)
    for layer, lin in zip(dense, linears):
        layer.set_weights([lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()])
    return history
