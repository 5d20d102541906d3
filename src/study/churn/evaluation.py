"""Evaluation: the original study's metrics, and decision rules tied to money and capacity.

The metrics are scikit-learn's (tested against it); the thresholds are ours: the MCC-F1 curve's
best point (the original study lifted recall with it) and the threshold that maximises the expected
profit of a retention offer, plus precision and lift when only K customers can be contacted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

METRIC_COLUMNS = ["ROC AUC", "log loss", "F1", "precision", "recall", "MCC", "PR AUC", "Brier"]


def scores(y, p, threshold: float = 0.5) -> dict:
    """The results-table metrics of probabilities ``p`` for labels ``y`` at ``threshold``."""
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), 1e-15, 1 - 1e-15)
    yhat = (p >= threshold).astype(int)
    return {
        "ROC AUC": skm.roc_auc_score(y, p),
        "log loss": skm.log_loss(y, p, labels=[0, 1]),
        "F1": skm.f1_score(y, yhat, zero_division=0),
        "precision": skm.precision_score(y, yhat, zero_division=0),
        "recall": skm.recall_score(y, yhat, zero_division=0),
        "MCC": skm.matthews_corrcoef(y, yhat),
        "PR AUC": skm.average_precision_score(y, p),
        "Brier": skm.brier_score_loss(y, p),
    }


def _confusion_by_threshold(y, p) -> pd.DataFrame:
    """TP, FP, FN, TN when predicting positive for scores >= each distinct score."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ps) != 0), len(ps) - 1]  # last index of each distinct score
    tp = np.cumsum(ys)[last]
    fp = (last + 1) - tp
    pos = ys.sum()
    neg = len(ys) - pos
    return pd.DataFrame({"threshold": ps[last], "TP": tp, "FP": fp, "FN": pos - tp, "TN": neg - fp})


def mcc_f1_curve(y, p) -> tuple[pd.DataFrame, float]:
    """The MCC-F1 curve (Cao, Chicco & Hoffman, 2020): F1 against unit-normalised MCC over all
    thresholds; the best threshold is the point closest to perfect performance (1, 1)."""
    c = _confusion_by_threshold(y, p).astype(float)
    tp, fp, fn, tn = c.TP, c.FP, c.FN, c.TN
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    f1 = (2 * precision * recall / (precision + recall)).fillna(0.0)
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = ((tp * tn - fp * fn) / denom.where(denom > 0)).fillna(0.0)
    curve = pd.DataFrame({"threshold": c.threshold, "F1": f1, "MCC": mcc, "unit MCC": (mcc + 1) / 2})
    curve["distance to (1,1)"] = np.sqrt((1 - curve.F1) ** 2 + (1 - curve["unit MCC"]) ** 2)
    best = float(curve.loc[curve["distance to (1,1)"].idxmin(), "threshold"])
    return curve, best


def contact_gain(y, save_rate: float, revenue, offer_cost: float) -> np.ndarray:
    """Expected gain of contacting each customer: a churner (``y`` = 1) is kept with probability
    ``save_rate`` and brings ``revenue``; every contact costs ``offer_cost``. The one profit
    formula (the profit curve, the dashboard's profit at a threshold)."""
    return np.asarray(y, dtype=float) * save_rate * np.asarray(revenue, dtype=float) - offer_cost


def profit_curve(y, p, offer_cost: float, save_rate: float, revenue) -> tuple[pd.DataFrame, float]:
    """Expected profit of contacting every customer whose risk is >= a threshold.

    A contacted churner is kept with probability ``save_rate`` and brings ``revenue`` (a number or
    one value per customer); every contact costs ``offer_cost``. Returns the curve (one row per
    distinct threshold, plus contacting nobody) and the threshold of maximal profit."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    rev = np.broadcast_to(np.asarray(revenue, dtype=float), y.shape)
    order = np.argsort(-p, kind="mergesort")
    ps = p[order]
    gain = contact_gain(y[order], save_rate, rev[order], offer_cost)
    last = np.r_[np.flatnonzero(np.diff(ps) != 0), len(ps) - 1]
    profit = np.cumsum(gain)[last]
    curve = pd.DataFrame(
        {"threshold": np.r_[np.inf, ps[last]], "contacted": np.r_[0, last + 1], "profit": np.r_[0.0, profit]}
    )
    best = float(curve.loc[curve.profit.idxmax(), "threshold"])
    return curve, best


def top_k(y, p, k: int) -> dict:
    """Capacity policy: contact the K riskiest customers; precision and lift at K."""
    y = np.asarray(y).astype(int)
    k = int(min(max(k, 1), len(y)))
    top = np.argsort(-np.asarray(p, dtype=float), kind="mergesort")[:k]
    precision = y[top].mean()
    base = y.mean()
    return {
        "K": k,
        "precision at K": float(precision),
        "churners reached": int(y[top].sum()),
        "lift at K": float(precision / base) if base > 0 else float("nan"),
    }
