"""How real is the twin? Its original-recipe rows against real users in the same 33-column format.

Per column: the Kolmogorov-Smirnov statistic (numeric) or the total-variation distance
(categorical); the churn rates; and train-on-twin / test-on-real: a gradient-boosting model fitted
on the twin's rows scores the real users, next to the same model cross-validated on the real
sample itself (the ceiling a perfect twin would reach).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from study.churn.features import original_model_matrix

CATEGORICAL = ["payment_method_id", "is_auto_renew", "is_cancel", "city", "gender", "registered_via"]
DATES = ["transaction_date", "membership_expire_date", "registration_init_time"]


def _days(s: pd.Series) -> np.ndarray:
    return (pd.to_datetime(s, format="%Y-%m-%d") - pd.Timestamp("1970-01-01")).dt.days.to_numpy()


def distances(twin: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for c in real.columns:
        if c in ("msno", "is_churn"):
            continue
        if c in CATEGORICAL:
            p = twin[c].astype(str).value_counts(normalize=True)
            q = real[c].astype(str).value_counts(normalize=True)
            tvd = 0.5 * p.sub(q, fill_value=0).abs().sum()
            rows.append({"column": c, "kind": "categorical", "statistic": "TVD", "value": tvd})
        else:
            a = _days(twin[c]) if c in DATES else twin[c].to_numpy(float)
            b = _days(real[c]) if c in DATES else real[c].to_numpy(float)
            rows.append({"column": c, "kind": "numeric", "statistic": "KS", "value": ks_2samp(a, b).statistic})
    return pd.DataFrame(rows)


def _model(seed: int):
    """Histogram gradient boosting (LightGBM; 300 trees of 31 leaves, learning rate 0.06, L2 1.0).
    It was scikit-learn's HistGradientBoostingClassifier with the same settings: the same algorithm,
    5 times slower here (the ceiling's five fits 12.1 → 2.4 s, one twin's fit 2.1 → 0.5 s, one thread,
    alone; ceiling AUC 0.952 → 0.955, quick twin → real 0.935 → 0.933; 2026-12-03)."""
    from lightgbm import LGBMClassifier

    from study.compute import cpu_threads

    return LGBMClassifier(
        n_estimators=300,
        learning_rate=0.06,
        num_leaves=31,
        reg_lambda=1.0,
        min_child_samples=20,
        random_state=seed,
        n_jobs=cpu_threads(),
        verbose=-1,
    )


@dataclass
class Realism:
    distances: pd.DataFrame
    churn: dict
    transfer: pd.DataFrame

    @property
    def median_ks(self) -> float:
        d = self.distances
        return float(d.loc[d.statistic == "KS", "value"].median())

    @property
    def median_tvd(self) -> float:
        d = self.distances
        return float(d.loc[d.statistic == "TVD", "value"].median())

    @property
    def twin_to_real_auc(self) -> float:
        return float(self.transfer.set_index("protocol").loc["train on twin, test on real", "ROC AUC"])


def real_ceiling(real: pd.DataFrame, seed: int = 40, folds: int = 5) -> dict:
    """The same model cross-validated on the real sample: what a perfect twin would reach. It
    depends on the real sample only, so comparisons of several twins compute it once."""
    xr, yr = original_model_matrix(real), real.is_churn.to_numpy()
    oof = np.zeros(len(yr))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(xr, yr):
        oof[te] = _model(seed).fit(xr.iloc[tr], yr[tr]).predict_proba(xr.iloc[te])[:, 1]
    return {
        "protocol": f"{folds}-fold CV on the real sample",
        "ROC AUC": roc_auc_score(yr, oof),
        "log loss": log_loss(yr, oof),
        "train rows": int(len(xr) * (folds - 1) / folds),
        "test rows": len(xr),
    }


def evaluate(
    twin: pd.DataFrame, real: pd.DataFrame, seed: int = 40, folds: int = 5, ceiling: dict | None = None
) -> Realism:
    """Distances, churn rates, train on the twin / test on real, next to ``ceiling`` (the
    :func:`real_ceiling` row; computed when not given)."""
    dist = distances(twin, real)
    churn = {"twin": float(twin.is_churn.mean()), "real sample": float(real.is_churn.mean())}
    xt, yt = original_model_matrix(twin), twin.is_churn.to_numpy()
    xr, yr = original_model_matrix(real), real.is_churn.to_numpy()
    p = _model(seed).fit(xt, yt).predict_proba(xr)[:, 1]
    rows = [
        {
            "protocol": "train on twin, test on real",
            "ROC AUC": roc_auc_score(yr, p),
            "log loss": log_loss(yr, p),
            "train rows": len(xt),
            "test rows": len(xr),
        },
        ceiling if ceiling is not None else real_ceiling(real, seed, folds),
    ]
    return Realism(dist, churn, pd.DataFrame(rows))


def rule_inconsistent_churners(
    df: pd.DataFrame, month_start: str = "2017-03-01", month_end: str = "2017-04-01"
) -> dict:
    """Churners whose latest-expiry row is a non-cancel transaction dated in the label month and
    running past it. Under the organisers' rule (FACTS.md section 1) such a transaction is the
    renewal that makes a March candidate a stayer, so a labeller following the rule cannot call
    them churners; in the twin this share is ~0 by construction."""
    churners = df[df.is_churn == 1]
    renewed = (
        (churners.is_cancel == 0)
        & (churners.transaction_date >= month_start)
        & (churners.transaction_date < month_end)
        & (churners.membership_expire_date >= month_end)
    )
    return {
        "churners": int(len(churners)),
        "with an in-month renewal row": int(renewed.sum()),
        "share": float(renewed.mean()) if len(churners) else 0.0,
    }


def label_signature(df: pd.DataFrame, month_start: str = "2017-03-01", horizon: str = "2017-05-31") -> pd.Series:
    """How a labelled month's churners are made, measured the same way on any processed frame (one
    row per user = the latest-expiry transaction), the twin's or the real sample's (issue 13).

    *Flagged*: that row is a non-cancelled purchase dated in the label month and expiring after it,
    which the published labeller always reads as a renewal. The real train_v2 labels churn 2.3 % of
    flagged users expiring by the horizon and 97 % of those expiring after it (censoring)."""
    start = pd.Timestamp(month_start)
    end = start + pd.DateOffset(months=1)
    tdate, expiry = pd.to_datetime(df.transaction_date), pd.to_datetime(df.membership_expire_date)
    flagged = (df.is_cancel == 0) & (tdate >= start) & (tdate < end) & (expiry >= end)
    early, late = flagged & (expiry <= horizon), flagged & (expiry > horizon)
    y = df.is_churn.astype(float)

    def rate(mask):
        return float(y[mask].mean()) if mask.any() else float("nan")

    auto = df.is_auto_renew == 1
    return pd.Series(
        {
            "users": float(len(df)),
            "churn": float(y.mean()),
            "flagged share of churners": float(flagged[y == 1].mean()) if (y == 1).any() else float("nan"),
            "churn, flagged, expiry by the horizon": rate(early),
            "  auto-renew": rate(early & auto),
            "  manual": rate(early & ~auto),
            "churn, flagged, expiry after the horizon": rate(late),
            "churn, plans of 90+ days bought in the month": rate(flagged & (df.payment_plan_days >= 90)),
            "churn, not flagged": rate(~flagged),
            "share flagged, expiry by the horizon": float(early.mean()),
            "share flagged, expiry after the horizon": float(late.mean()),
        }
    )


DEMOGRAPHIC_TARGET = 0.10  # issue 13: TVD of city, channel, gender and KS of bd against the real sample


def demographic_distances(twin: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    """City, registration channel and gender (TVD) and age (KS on ``bd``, −1 = unknown) of the
    users left after the original joins, twin against real, with the target."""
    d = distances(twin[["city", "registered_via", "gender", "bd"]], real[["city", "registered_via", "gender", "bd"]])
    return d.assign(target=f"≤ {DEMOGRAPHIC_TARGET:.2f}", met=d.value <= DEMOGRAPHIC_TARGET)


def _fit_and_score(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    from study.churn.scoring import fit_original

    scaler, model, cols = fit_original(original_model_matrix(train), train.is_churn.to_numpy())
    return model.predict_proba(scaler.transform(original_model_matrix(test)[cols]))[:, 1]


def transfer_original(
    source, real: pd.DataFrame, seed: int = 40, folds: int = 5, original: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The headline of the twin's realism: the original-format model exactly as
    ``study churn train --model original`` fits it on the twin (its 70 % split, tuned XGBoost on
    the top 30 columns), scoring the real users through the dashboard's scoring path; next to the
    same recipe cross-validated on the real sample (what real users of this sample teach) and the
    original study's model on real users (FACTS.md section 4). Metrics at threshold 0.5.
    ``original``: the twin's original recipe when already built (notebook 20 has it)."""
    import tempfile

    from study.churn import evaluation, facts, scoring

    with tempfile.TemporaryDirectory() as tmp:
        model = scoring.load(scoring.train_original(source, tmp, seed=seed, frame=original))
        twin_rows = model.card["data"]["rows"]
    scored = scoring.score_processed(model, real)
    on_real, _, _ = scoring.labelled_metrics(scored, real)
    oof = np.zeros(len(real))
    y = real.is_churn.to_numpy()
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(real, y):
        oof[te] = _fit_and_score(real.iloc[tr], real.iloc[te])
    cv = evaluation.scores(y, oof)
    name, auc, ll, f1, _, _, mcc = facts.ORIGINAL_RESULTS[0]
    keep = ["ROC AUC", "log loss", "F1", "MCC"]
    rows = [
        {
            "model": "original-format model trained on the twin → real sample",
            **{k: on_real[k] for k in keep},
            "trained on": f"≈{int(twin_rows * 0.7):,} twin users (70 % split)",
            "scored": f"{len(real):,} real users",
        },
        {
            "model": f"same recipe, {folds}-fold CV on the real sample",
            **{k: cv[k] for k in keep},
            "trained on": f"{int(len(real) * (folds - 1) / folds):,} real users per fold",
            "scored": f"{len(real):,} real users (out of fold)",
        },
        {
            "model": f"original study: {name} (FACTS.md)",
            "ROC AUC": auc,
            "log loss": ll,
            "F1": f1,
            "MCC": mcc,
            "trained on": "508,005 real users",
            "scored": "174,173 real users (validation split)",
        },
    ]
    return pd.DataFrame(rows)


TRANSFER_TARGET = {"ROC AUC": 0.97, "log loss": 0.08}  # issue 13; not done below 0.95 / above 0.12
