"""Scoring: the original-format model, risk bands and per-customer reason codes.

The original-format model is the original study's tuned XGBoost (learning rate .05, depth 9,
200 trees) on its top-30 features, fitted on the twin's original-recipe rows; it scores any CSV in
the original study's 33-column processed format. Reason codes are exact TreeSHAP contributions
from XGBoost itself (``pred_contribs``): the three features pushing a customer's risk up most.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_selection import SelectFromModel
from sklearn.preprocessing import StandardScaler

from study import paths
from study.churn import evaluation, features
from study.churn.data import RawSource
from study.churn.models import ScoringModel, load_model, save_model, split_users
from study.churn.features import original_model_matrix
from study.churn.zoo import TUNED_XGB, xgb

BAND_EDGES = [0.25, 0.50, 0.75, 0.90]
BAND_LABELS = ["≤ 25 %", "25–50 %", "50–75 %", "75–90 %", "> 90 %"]


def bands(p) -> np.ndarray:
    """Risk band of each probability (the original study's five bands, upper edges inclusive)."""
    idx = np.searchsorted(BAND_EDGES, np.asarray(p, dtype=float), side="left")
    return np.asarray(BAND_LABELS, dtype=object)[idx]


def frame_digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()


CATEGORICAL_INPUTS = ("payment_method_id", "is_auto_renew", "is_cancel", "last_is_cancel", "city", "registered_via")
NUMERIC_INPUTS = ("payment_plan_days", "plan_list_price", "actual_amount_paid", "bd", "secs_30", "total_secsSum")


def input_domain(frame: pd.DataFrame) -> dict:
    """What the model saw of the inputs a person may change (what-if): the categories of each
    categorical input and the range of each numeric one (ages: the valid ones, 10 < bd < 70)."""
    out = {}
    for c in CATEGORICAL_INPUTS:
        if c in frame:
            out[c] = {"values": sorted(int(v) for v in pd.unique(frame[c].dropna()))}
    for c in NUMERIC_INPUTS:
        if c in frame:
            v = frame[c].astype(float)
            if c == "bd":
                v = v[v > 0]
            if len(v):
                out[c] = {"min": float(v.min()), "max": float(v.max())}
    return out


def fit_original(x: pd.DataFrame, y, top_k: int = 30) -> tuple[StandardScaler, object, list[str]]:
    """The original study's recipe on a model matrix: scale, rank the columns with the tuned
    XGBoost, keep the top ``top_k``, refit on them. Returns (scaler, model, columns)."""
    first = xgb(**TUNED_XGB).fit(StandardScaler().fit_transform(x), y)
    keep = SelectFromModel(first, prefit=True, max_features=top_k, threshold=-np.inf).get_support()
    cols = list(x.columns[keep])
    scaler = StandardScaler().fit(x[cols])
    return scaler, xgb(**TUNED_XGB).fit(scaler.transform(x[cols]), y), cols


def train_original(
    source: RawSource,
    out_dir: str | Path | None = None,
    top_k: int = 30,
    seed: int = 40,
    held_out: set | None = None,
    frame: pd.DataFrame | None = None,
    extra: dict | None = None,
) -> Path:
    """Fit and save the original-format model; the card holds its validation metrics and threshold.
    ``held_out``: users (full msno) kept out of training and validation (the dashboard's test
    cohorts, :mod:`study.churn.cohorts`); the split itself is the original protocol's. ``frame``: the
    original recipe of ``source`` when already built; ``extra``: lineage (``report``, ``source sha256``)."""
    df = frame if frame is not None else features.original_recipe(source)
    extra = dict(extra or {})
    x, y = original_model_matrix(df), df.is_churn
    split = split_users(df, seed=seed).to_numpy()
    kept = ~df.msno.isin(set(features.short_msno(pd.Series(sorted(held_out or ()), dtype="str"))))
    tr, va = (split == "train") & kept.to_numpy(), (split == "valid") & kept.to_numpy()
    scaler, model, cols = fit_original(x[tr], y[tr], top_k)
    p = model.predict_proba(scaler.transform(x.loc[va, cols]))[:, 1]
    _, threshold = evaluation.mcc_f1_curve(y[va], p)
    card = {
        "name": "original-format model",
        "recipe": "original",
        "months": ["2017-03"],
        "what": "the original study's tuned XGBoost on its top-30 features, original recipe, random split",
        "input": "a CSV in the original study's 33-column processed format",
        "data": {
            "source": source.describe(),
            "rows": int(len(df)),
            "sha256 of the training frame": frame_digest(df),
            "held-out users": len(held_out or ()),
            "held-out rows": int((~kept).sum()),
            **({"source sha256": extra.pop("source sha256")} if "source sha256" in extra else {}),
        },
        **extra,
        "features": cols,
        "parameters": TUNED_XGB,
        "input domain": input_domain(df[tr]),
        "protocol": "stratified 70/24/6 % split by user (seed 40); metrics on the 24 % validation split",
        "metrics (validation, threshold 0.5)": evaluation.scores(y[va], p),
        "threshold": threshold,
        "threshold rule": "best point of the MCC-F1 curve on the validation split",
        "metrics (validation, chosen threshold)": evaluation.scores(y[va], p, threshold),
        "caveat": "the original recipe sees the post-expiry renewal for March expiries: not an honest forecast",
    }
    return save_model(Path(out_dir) if out_dir else paths.MODELS / "original", model, cols, card, scaler=scaler)


def tree_contributions(booster, x: np.ndarray, columns, index=None) -> pd.DataFrame:
    """Exact TreeSHAP contributions (log-odds) of a fitted XGBoost classifier or LightGBM booster,
    from the library itself (no extra dependency); the bias column is dropped."""
    if hasattr(booster, "get_booster"):  # XGBoost
        import xgboost

        native = booster.get_booster()  # fitted on a frame, it checks the names: give them back
        contrib = native.predict(xgboost.DMatrix(np.asarray(x), feature_names=native.feature_names), pred_contribs=True)
    elif hasattr(booster, "booster_"):  # LGBMClassifier
        contrib = booster.booster_.predict(x, pred_contrib=True)
    else:  # lightgbm.Booster
        contrib = booster.predict(x, pred_contrib=True)
    return pd.DataFrame(contrib[:, :-1], columns=list(columns), index=index)


def contributions(model: ScoringModel, frame: pd.DataFrame) -> pd.DataFrame:
    """SHAP contributions of a loaded model for the rows of ``frame``."""
    return tree_contributions(model.booster, model.matrix(frame), model.columns, frame.index)


def reason_codes(contrib: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The k features pushing each customer's risk up most, by column name (empty when fewer push
    it up); :func:`study.churn.reasons.reason_texts` writes them for people."""
    values = contrib.to_numpy()
    order = np.argsort(-values, axis=1)[:, :k]
    names = np.asarray(contrib.columns)[order]
    up = np.take_along_axis(values, order, axis=1) > 0
    names = np.where(up, names, "")
    return pd.DataFrame(names, columns=[f"reason_{i + 1}" for i in range(k)], index=contrib.index)


def recipe_of(model: ScoringModel) -> str:
    """The feature recipe a saved model reads: 'pit' (point-in-time) or 'original' (processed
    format). Recorded in the card; older cards are recognised by their name."""
    return model.card.get("recipe") or ("pit" if model.card.get("name") == "champion" else "original")


def scored_months(model: ScoringModel) -> list[str] | None:
    """The expiry months a saved model can score from stored frames, or None for any month. The
    original-format model reads absolute dates and the post-expiry renewal of the month it was
    trained on (March 2017): on another month its risks are meaningless (AUC 0.01 on February's
    cohort, the quick twin), so only that month is offered."""
    months = model.card.get("months")
    if months:
        return list(months)
    return ["2017-03"] if recipe_of(model) == "original" else None


def model_inputs(model: ScoringModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The model matrix (unscaled inputs) of a frame in the model's recipe."""
    if recipe_of(model) == "pit":
        from study.churn import zoo

        return zoo.pit_matrix(frame.drop(columns=["expiry_date"], errors="ignore"))
    return original_model_matrix(frame)


def expiry_dates(frame: pd.DataFrame) -> pd.Series:
    """Each row's current expiry date (point-in-time rows or processed rows)."""
    if "expiry_date" in frame:
        return pd.to_datetime(frame["expiry_date"])
    if "days_to_expiry" in frame:
        return pd.to_datetime(frame["month"] + "-01") + pd.to_timedelta(frame["days_to_expiry"], unit="D")
    return pd.to_datetime(frame["membership_expire_date"])


def score(model: ScoringModel, frame: pd.DataFrame, reasons_for: int | None = None) -> pd.DataFrame:
    """msno, expiry date, churn risk (the unrounded probability), band and the top-3 reasons in
    plain language, riskiest first. The one scoring path of the CLI, the reports and the dashboard.

    ``reasons_for``: compute the reasons only for that many of the riskiest rows (the rows a page
    shows); TreeSHAP costs far more than the prediction itself. ``None``: every row."""
    from study.churn.reasons import reason_texts

    x = model_inputs(model, frame)
    risk = np.asarray(model.predict_proba(x), dtype=np.float64)
    out = pd.DataFrame(
        {
            "msno": frame.msno.to_numpy(),
            "expiry_date": expiry_dates(frame).dt.strftime("%Y-%m-%d").to_numpy(),
            "risk": risk,
            "band": bands(risk),
        }
    )
    order = np.argsort(-risk, kind="mergesort")
    out = out.iloc[order].reset_index(drop=True)
    xs = x.iloc[order].reset_index(drop=True)
    n = len(xs) if reasons_for is None else min(int(reasons_for), len(xs))
    if n:
        texts = reason_texts(contributions(model, xs.iloc[:n]), xs.iloc[:n]).reindex(out.index).fillna("")
    else:
        texts = pd.DataFrame("", index=out.index, columns=[f"reason_{i + 1}" for i in range(3)])
    return pd.concat([out, texts], axis=1)


def labelled_metrics(
    scored: pd.DataFrame, frame: pd.DataFrame, threshold: float = 0.5
) -> tuple[dict, np.ndarray, np.ndarray]:
    """(metrics, labels, probabilities) of a :func:`score` result against the labels of the frame
    it scored, always from the unrounded probabilities. Shared by the CLI and the dashboard."""
    y = frame.set_index("msno").loc[scored.msno, "is_churn"].to_numpy().astype(int)
    p = scored["risk"].to_numpy(dtype=float)
    return evaluation.scores(y, p, threshold), y, p


def score_processed(model: ScoringModel, processed: pd.DataFrame) -> pd.DataFrame:
    """msno, churn risk, band and top-3 reasons for a processed (33-column) frame."""
    return score(model, processed).drop(columns="expiry_date")


def model_folder(name_or_dir: str | Path = "original") -> Path:
    """A saved model's folder: a path, or a name under data/models."""
    folder = Path(name_or_dir)
    if not folder.is_dir():
        folder = paths.MODELS / str(name_or_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"no saved model at {folder}: run `study churn train --model {name_or_dir}` first")
    return folder


def load(name_or_dir: str | Path = "original") -> ScoringModel:
    return load_model(model_folder(name_or_dir))
