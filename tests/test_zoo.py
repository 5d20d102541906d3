"""The original protocol runner: split by user, scaler fitted on train only, one row per family."""
from __future__ import annotations

import numpy as np
import pandas as pd

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
    assert set(zoo.families()) >= {"logistic regression", "Gaussian naive Bayes", "random forest", "bagging",
                                   "AdaBoost", "LightGBM default", "XGBoost default"}
