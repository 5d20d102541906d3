"""Metrics against scikit-learn; MCC-F1, profit and top-K rules on hand-made scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from study.churn import evaluation as ev


def test_scores_are_scikit_learns():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    s = ev.scores(y, p, threshold=0.4)
    yhat = (p >= 0.4).astype(int)
    assert s["ROC AUC"] == pytest.approx(skm.roc_auc_score(y, p))
    assert s["log loss"] == pytest.approx(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))
    assert s["F1"] == pytest.approx(skm.f1_score(y, yhat))
    assert s["MCC"] == pytest.approx(skm.matthews_corrcoef(y, yhat))
    assert s["PR AUC"] == pytest.approx(skm.average_precision_score(y, p))
    assert s["Brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert list(s) == ev.METRIC_COLUMNS


def test_mcc_f1_best_threshold_on_hand_made_scores():
    # Perfectly separable at 0.6: the best point is (F1 = 1, MCC = 1) at threshold 0.6.
    y = np.array([0, 0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.5, 0.6, 0.9])
    curve, best = ev.mcc_f1_curve(y, p)
    assert best == 0.6
    row = curve.set_index("threshold").loc[0.6]
    assert row.F1 == 1.0 and row.MCC == pytest.approx(1.0)
    assert curve.set_index("threshold").loc[0.1, "MCC"] == 0.0  # everyone positive: MCC undefined → 0


def test_mcc_f1_matches_scikit_learn_at_every_threshold():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    p = np.round(rng.random(200), 2)
    curve, _ = ev.mcc_f1_curve(y, p)
    for t in curve.threshold[::7]:
        yhat = (p >= t).astype(int)
        row = curve.set_index("threshold").loc[t]
        assert row.F1 == pytest.approx(skm.f1_score(y, yhat, zero_division=0))
        assert row.MCC == pytest.approx(skm.matthews_corrcoef(y, yhat))


def test_profit_threshold_on_hand_made_scores():
    # offer 10, save rate 0.5, revenue 100: a contacted churner is worth +40, a stayer -10.
    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    curve, best = ev.profit_curve(y, p, offer_cost=10, save_rate=0.5, revenue=100)
    assert curve.profit.tolist() == [0, 40, 80, 70, 110, 100, 90]
    assert best == 0.6
    _, none = ev.profit_curve(y, p, offer_cost=1000, save_rate=0.5, revenue=100)
    assert none == np.inf  # when no offer pays, contact nobody


def test_top_k_precision_and_lift():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    p = np.linspace(1, 0, 10)
    r = ev.top_k(y, p, 4)
    assert r["precision at K"] == 0.5 and r["churners reached"] == 2
    assert r["lift at K"] == pytest.approx(0.5 / 0.3)
