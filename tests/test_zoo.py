"""The original protocol runner: split by user, scaler fitted on train only, one row per family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.churn import zoo
from study.churn.models import split_users


def test_protocol_table_on_a_learnable_frame():
    rng = np.random.default_rng(3)
    n = 3000
    y = pd.Series((rng.random(n) < 0.1).astype(int))
    x = pd.DataFrame({"signal": y * 2.0 + rng.normal(0, 1, n), "noise": rng.normal(0, 1, n)})
    users = pd.Series([f"u{i}" for i in range(n)])
    r = zoo.run_protocol(x, y, users, names=["logistic regression", "decision tree"], folds=3)
    assert list(r.table.model) == ["logistic regression", "decision tree"]  # sorted by log loss
    lr = r.table.set_index("model").loc["logistic regression"]
    assert lr["ROC AUC"] > 0.85 and "±" in lr["CV log loss"]
    assert abs(len(r.y_valid) - 0.24 * n) < 5
    split = split_users(pd.DataFrame({"msno": users, "is_churn": y}))
    np.testing.assert_allclose(r.scaler.mean_, x[split == "train"].mean().to_numpy())  # fitted on train only
    assert set(zoo.families()) >= {
        "logistic regression",
        "Gaussian naive Bayes",
        "random forest",
        "bagging",
        "AdaBoost",
        "LightGBM default",
        "XGBoost default",
    }


def _small(n=1500, seed=4):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.15).astype(int)
    x = np.column_stack([y * 1.5 + rng.normal(0, 1, n)] + [rng.normal(0, 1, n) for _ in range(7)])
    return x[:1000], y[:1000], x[1000:], y[1000:]


def test_halving_search_and_top_k_curve():
    xt, yt, xv, yv = _small()
    best, table = zoo.halving_search(
        xt, yt, {"learning_rate": [0.1, 0.05], "n_estimators": [20, 40], "max_depth": [2, 3]}
    )
    assert set(best) == {"learning_rate", "n_estimators", "max_depth"}
    assert table["CV log loss"].is_monotonic_increasing
    curve = zoo.top_k_curve(
        xt,
        yt,
        xv,
        yv,
        [f"f{i}" for i in range(8)],
        ks=(1, 3),
        params={"learning_rate": 0.1, "max_depth": 2, "n_estimators": 20},
    )
    assert curve["top k features"].tolist() == [1, 3, 8]
    assert curve.set_index("top k features").loc[1, "ROC AUC"] > 0.75  # the informative feature is kept first


def test_imbalance_trials_cover_the_original_strategies():
    xt, yt, xv, yv = _small()
    table = zoo.imbalance_trials(xt, yt, xv, yv)
    names = set(table.strategy)
    assert {
        "NearMiss-3",
        "SMOTE",
        "ADASYN",
        "Tomek links",
        "random under-sampling",
        "random over-sampling",
        "balanced random forest",
        "RUSBoost",
        "scale_pos_weight 17",
        "none (tuned XGBoost)",
    } <= names
    assert table["log loss"].notna().sum() >= len(table) - 2


def test_trials_reusing_the_protocols_tuned_xgboost_equal_those_that_refit_it(monkeypatch):
    xt, yt, xv, yv = _small()
    params = {"learning_rate": 0.1, "max_depth": 2, "n_estimators": 20}
    columns = [f"f{i}" for i in range(8)]
    reference = zoo.Reference(zoo.xgb(**params).fit(xt, yt), 12.5)
    refit = zoo.top_k_curve(xt, yt, xv, yv, columns, ks=(1, 3), params=params)
    made, real_xgb = [], zoo.xgb
    monkeypatch.setattr(zoo, "xgb", lambda **kw: made.append(kw) or real_xgb(**kw))
    reused = zoo.top_k_curve(xt, yt, xv, yv, columns, ks=(1, 3), params=params, reference=reference)
    pd.testing.assert_frame_equal(refit, reused)
    assert len(made) == 2  # k = 1 and 3; the ranking and the all-features row are the reference
    monkeypatch.setattr(zoo, "xgb", real_xgb)

    tuned = zoo.Reference(zoo.xgb(**zoo.TUNED_XGB).fit(xt, yt), 12.5)
    table = zoo.imbalance_trials(xt, yt, xv, yv, reference=tuned).set_index("strategy")
    fitted = zoo.xgb(**zoo.TUNED_XGB).fit(xt, yt).predict_proba(xv)[:, 1]
    for row in ("none (tuned XGBoost)", "scale_pos_weight 1"):
        assert table.loc[row, "log loss"] == pytest.approx(zoo.evaluation.scores(yv, fitted)["log loss"], abs=0)
        assert table.loc[row, "fit time s"] == 12.5  # the protocol's fit, not a new one
    assert table.loc["scale_pos_weight 17", "fit time s"] != 12.5
