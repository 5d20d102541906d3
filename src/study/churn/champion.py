"""The champion: chosen by a declared rule, calibrated on a later period, saved like any model.

Rule: among the candidate families, the lowest log loss under the temporal protocol on the
point-in-time features (fit on the earlier months, test on the last one). The champion's model is
then fitted on the first month, an isotonic calibration on the second (a later period than the
training data), and both are evaluated on the last month.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression

from study import paths
from study.churn import evaluation, zoo
from study.churn.models import save_model
from study.churn.scoring import frame_digest, input_domain

CANDIDATES = [zoo.TUNED_XGB_NAME, "XGBoost default", "LightGBM default"]


def select(pit: pd.DataFrame, months: list[str]) -> pd.DataFrame:
    """Temporal protocol for each candidate: fit on months[:-1], log loss on months[-1]."""
    x, y, m = zoo.pit_matrix(pit), pit.is_churn, pit.month
    tr, te = m.isin(months[:-1]), m == months[-1]
    rows = []
    for name in CANDIDATES:
        p = zoo.families()[name]().fit(x[tr], y[tr]).predict_proba(x[te])[:, 1]
        rows.append({"model": name, **evaluation.scores(y[te], p)})
    return pd.DataFrame(rows).sort_values("log loss").reset_index(drop=True)


def calibrate(pit: pd.DataFrame, name: str, months: list[str]):
    """Fit on months[0], isotonic on months[1], evaluate raw vs calibrated on months[-1]."""
    x, y, m = zoo.pit_matrix(pit), pit.is_churn, pit.month
    fit, cal, test = m == months[0], m == months[1], m == months[-1]
    model = zoo.families()[name]().fit(x[fit], y[fit])
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1 - 1e-6)
    iso.fit(model.predict_proba(x[cal])[:, 1], y[cal])
    raw = model.predict_proba(x[test])[:, 1]
    calibrated = iso.predict(raw)
    table = pd.DataFrame(
        [
            {"probabilities": "raw", **evaluation.scores(y[test], raw)},
            {"probabilities": "isotonic (fitted on a later month)", **evaluation.scores(y[test], calibrated)},
        ]
    )
    curves = []
    for label, p in [("raw", raw), ("isotonic", calibrated)]:
        frac, mean = calibration_curve(y[test], p, n_bins=10, strategy="quantile")
        curves.append(pd.DataFrame({"probabilities": label, "mean predicted": mean, "observed churn": frac}))
    calibration = {"kind": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    return model, calibration, table, pd.concat(curves, ignore_index=True), (y[test].to_numpy(), calibrated)


def train_champion(
    pit: pd.DataFrame,
    months: list[str],
    out_dir: str | Path | None = None,
    source: str = "",
    held_out: set | None = None,
    extra: dict | None = None,
):
    """Select, calibrate and save the champion; returns (folder, selection table, calibration table, curves).
    ``held_out``: users left out of every step (the dashboard's test cohorts, :mod:`study.churn.cohorts`)."""
    n_pit, extra = len(pit), dict(extra or {})
    if held_out:
        pit = pit[~pit.msno.isin(held_out)].reset_index(drop=True)
    selection = select(pit, months)
    name = selection.model[0]
    model, calibration, table, curves, (y_test, p_test) = calibrate(pit, name, months)
    _, threshold = evaluation.mcc_f1_curve(y_test, p_test)
    cols = list(zoo.pit_matrix(pit.head(1)).columns)
    card = {
        "name": "champion",
        "recipe": "pit",
        "model": name,
        "rule": "lowest log loss under the temporal protocol on point-in-time features",
        "what": f"fitted on {months[0]}, isotonic calibration on {months[1]}, evaluated on {months[-1]}",
        "input": "raw KKBOX tables and a prediction month (point-in-time features, cutoff = its first day)",
        "data": {
            "source": source,
            "rows": int(len(pit)),
            "sha256 of the training frame": frame_digest(pit),
            "held-out users": len(held_out or ()),
            "held-out rows": int(n_pit - len(pit)),
            **({"source sha256": extra.pop("source sha256")} if "source sha256" in extra else {}),
        },
        **extra,
        "features": cols,
        "input domain": input_domain(pit[pit.month == months[0]]),
        "selection (temporal protocol)": selection.to_dict(orient="records"),
        "metrics (test month, calibrated)": table.iloc[1].drop("probabilities").to_dict(),
        "metrics (test month, raw)": table.iloc[0].drop("probabilities").to_dict(),
        "threshold": threshold,
        "threshold rule": "best point of the MCC-F1 curve on the test month",
    }
    folder = save_model(
        Path(out_dir) if out_dir else paths.MODELS / "champion", model, cols, card, calibration=calibration
    )
    return folder, selection, table, curves


def score_month(model, pit_month: pd.DataFrame) -> pd.DataFrame:
    """msno, risk, band and plain-language reasons of one month's point-in-time rows."""
    from study.churn.scoring import score

    return score(model, pit_month).drop(columns="expiry_date")


__all__ = ["select", "calibrate", "train_champion", "score_month", "CANDIDATES"]
