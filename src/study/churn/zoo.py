"""The original study's model families and its protocol (FACTS.md sections 3-4).

Protocol: the original recipe's matrix, a stratified 70 / 24 / 6 % split by user (seed 40),
StandardScaler fitted on train, 5-fold stratified cross-validation on train, then one fit on train
scored on the validation split. Every estimator is seeded; fit times are measured per model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import AdaBoostClassifier, BaggingClassifier, RandomForestClassifier, StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from study.churn import evaluation
from study.churn.models import split_users

SEED = 40


def _xgb(**kw):
    from xgboost import XGBClassifier

    return XGBClassifier(n_jobs=2, random_state=SEED, eval_metric="logloss", tree_method="hist", **kw)


def _lgbm(**kw):
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_jobs=2, random_state=SEED, verbose=-1, **kw)


def families() -> dict:
    """name → factory of an unfitted estimator (the original study's line-up, MLPs aside)."""
    return {
        "logistic regression": lambda: LogisticRegression(max_iter=2000, random_state=SEED),
        "Gaussian naive Bayes": lambda: GaussianNB(),
        "decision tree": lambda: DecisionTreeClassifier(random_state=SEED),
        "random forest": lambda: RandomForestClassifier(n_estimators=200, n_jobs=2, random_state=SEED),
        "bagging": lambda: BaggingClassifier(n_estimators=20, n_jobs=2, random_state=SEED),
        "AdaBoost": lambda: AdaBoostClassifier(random_state=SEED),
        "LightGBM default": lambda: _lgbm(),
        "XGBoost default": lambda: _xgb(),
        "tuned XGBoost (lr .05, depth 9, 200 trees)": lambda: _xgb(learning_rate=0.05, max_depth=9, n_estimators=200),
        "stacking (XGBoost + LightGBM → logistic regression)": lambda: StackingClassifier(
            [("xgb", _xgb(learning_rate=0.05, max_depth=9, n_estimators=200)), ("lgbm", _lgbm())],
            final_estimator=LogisticRegression(max_iter=1000), cv=3, n_jobs=1),
    }


@dataclass
class ProtocolResult:
    table: pd.DataFrame
    predictions: dict = field(default_factory=dict)  # name → validation probabilities
    y_valid: np.ndarray | None = None
    columns: list = field(default_factory=list)
    scaler: StandardScaler | None = None
    fitted: dict = field(default_factory=dict)


def run_protocol(x: pd.DataFrame, y: pd.Series, users: pd.Series, names=None, folds: int = 5,
                 seed: int = SEED, progress=None) -> ProtocolResult:
    """Cross-validate each family on the train split, fit it on train, score the validation split."""
    split = split_users(pd.DataFrame({"msno": users.to_numpy(), "is_churn": y.to_numpy()}), seed=seed).to_numpy()
    tr, va = split == "train", split == "valid"
    scaler = StandardScaler().fit(x[tr])
    xs = pd.DataFrame(scaler.transform(x), columns=x.columns, index=x.index)
    xt, yt, xv, yv = xs[tr].to_numpy(), y[tr].to_numpy(), xs[va].to_numpy(), y[va].to_numpy()
    zoo = families()
    rows, preds, fitted = [], {}, {}
    for name in names or list(zoo):
        if progress:
            progress(name)
        cv_ll, cv_auc = [], []
        if folds > 1:
            for a, b in StratifiedKFold(folds, shuffle=True, random_state=seed).split(xt, yt):
                p = zoo[name]().fit(xt[a], yt[a]).predict_proba(xt[b])[:, 1]
                s = evaluation.scores(yt[b], p)
                cv_ll.append(s["log loss"])
                cv_auc.append(s["ROC AUC"])
        t0 = time.perf_counter()
        model = zoo[name]().fit(xt, yt)
        fit_s = time.perf_counter() - t0
        p = model.predict_proba(xv)[:, 1]
        preds[name], fitted[name] = p, model
        row = {"model": name, **evaluation.scores(yv, p), "fit time s": fit_s}
        if cv_ll:
            row["CV log loss"] = f"{np.mean(cv_ll):.4f} ± {np.std(cv_ll):.4f}"
            row["CV ROC AUC"] = f"{np.mean(cv_auc):.4f} ± {np.std(cv_auc):.4f}"
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("log loss").reset_index(drop=True)
    return ProtocolResult(table, preds, yv, list(x.columns), scaler, fitted)
