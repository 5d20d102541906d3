"""The original study's Keras MLPs behind the scikit-learn interface."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from study.churn import zoo
from study.churn.mlp import ORIGINAL_MLPS, KerasMLP


def _data(n=2000, seed=1):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    x = np.column_stack([y * 2.0 + rng.normal(0, 1, n), rng.normal(0, 1, n), rng.normal(0, 1, n)])
    return x, y


def test_mlp_learns_stops_early_and_is_reproducible():
    x, y = _data()
    m = KerasMLP(hidden=(8, 4), epochs=200, patience=3, learning_rate=0.01).fit(x[:1500], y[:1500])
    p = m.predict_proba(x[1500:])
    assert p.shape == (500, 2) and np.allclose(p.sum(axis=1), 1)
    assert roc_auc_score(y[1500:], p[:, 1]) > 0.85
    assert m.n_epochs_ < 200 and {"epoch", "loss", "val_loss"} <= set(m.history_.columns)
    again = KerasMLP(hidden=(8, 4), epochs=200, patience=3, learning_rate=0.01).fit(x[:1500], y[:1500])
    np.testing.assert_array_equal(again.predict_proba(x[1500:]), p)
    assert set(m.predict(x[:10])) <= {0, 1}


def test_the_keras_model_holds_the_best_epochs_trained_weights():
    """The weights trained by the PyTorch loop go back into the Keras model, and they are the best
    validation epoch's: the Keras model's loss on the held-out 10 % is the history's lowest."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split

    x, y = _data(seed=3)
    m = KerasMLP(hidden=(8, 4), epochs=40, patience=3, learning_rate=0.01, seed=5).fit(x, y)
    _, xv, _, yv = train_test_split(x.astype("float32"), y, test_size=0.1, stratify=y, random_state=5)
    held_out = log_loss(yv, m.predict_proba(xv)[:, 1])
    assert held_out == pytest.approx(m.history_.val_loss.min(), rel=1e-4)
    assert held_out < m.history_.val_loss.iloc[0]  # trained, not the initial weights


def test_the_three_original_mlps_are_in_the_line_up():
    fam = zoo.families()
    assert set(ORIGINAL_MLPS) <= set(fam)
    assert fam["MLP 1 (Keras 20-15-10, Adamax)"]().hidden == (20, 15, 10)
    assert fam["MLP 3 (Keras 40-30-20, Adamax lr 5e-4)"]().learning_rate == 5e-4
    assert not zoo.cross_validated("MLP 2 (Keras 40-30-20, Adamax lr 1e-3)") and zoo.cross_validated("XGBoost default")
