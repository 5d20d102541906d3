"""The leakage audit: how much of the original recipe's skill comes from seeing the renewal.

For March expiries, transactions_v2 already holds the renewal that decides the label, so the
original recipe's latest expiry date and is_cancel partly encode the answer (FACTS.md section 5).
A one-feature model's AUC shows it: the same signal taken before the cutoff (point-in-time) is
far weaker.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeClassifier


def one_feature_auc(x: pd.Series, y: pd.Series, folds: int = 5, seed: int = 40) -> float:
    """Out-of-fold AUC of a small tree on one feature (captures non-monotonic effects)."""
    xv = x.to_numpy(dtype=float).reshape(-1, 1)
    yv = y.to_numpy()
    oof = np.zeros(len(yv))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(xv, yv):
        tree = DecisionTreeClassifier(max_leaf_nodes=16, min_samples_leaf=20, random_state=seed)
        oof[te] = tree.fit(xv[tr], yv[tr]).predict_proba(xv[te])[:, 1]
    return float(roc_auc_score(yv, oof))


def _days(s: pd.Series) -> pd.Series:
    return (pd.to_datetime(s, format="%Y-%m-%d") - pd.Timestamp("2017-03-01")).dt.days


def audit(original: pd.DataFrame, pit: pd.DataFrame, month: str = "2017-03") -> pd.DataFrame:
    """One-feature AUCs on the same users: the original recipe (no cutoff) vs point-in-time."""
    p = pit[pit.month == month].copy()
    o = original.copy()
    p["short"] = p.msno.str.slice(10, 22)
    both = o.merge(p, left_on="msno", right_on="short", suffixes=("_orig", "_pit"))
    y = both["is_churn_orig"]
    rows = [
        ("is_cancel", "latest-expiry row of transactions_v2 (no cutoff)", both["is_cancel"]),
        ("is_cancel", "last transaction before the cutoff", both["last_is_cancel"]),
        (
            "expiry date",
            "membership_expire_date of the latest-expiry row (no cutoff)",
            _days(both["membership_expire_date"]),
        ),
        ("expiry date", "current expiry before the cutoff (days_to_expiry)", both["days_to_expiry"]),
        ("transaction date", "transaction_date of the latest-expiry row (no cutoff)", _days(both["transaction_date"])),
        ("transaction date", "days since the last transaction before the cutoff", both["days_since_last_transaction"]),
    ]
    out = pd.DataFrame(
        [{"feature": f, "taken from": how, "one-feature AUC": one_feature_auc(x, y)} for f, how, x in rows]
    )
    out.attrs["users"] = len(both)
    return out


def churn_by_top_features(original: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Churn by the original study's strongest features, and by the month of the latest expiry."""
    o = original.assign(
        expiry_month=original.membership_expire_date.str.slice(0, 7),
        transaction_month=original.transaction_date.str.slice(0, 7),
    )
    out = {}
    for c in ["is_cancel", "is_auto_renew", "payment_plan_days", "expiry_month", "transaction_month"]:
        g = o.groupby(c).is_churn.agg(users="size", churn="mean").reset_index()
        out[c] = g.sort_values("users", ascending=False).head(10).reset_index(drop=True)
    return out
