"""Is the model still right this month? Drift of every input and of the score against the
training month, data-quality checks, and performance once the labels have arrived.

Drift: the population stability index on bins frozen on the reference (training) month —
deciles of a numeric input, its values for a categorical one — and the two-sample
Kolmogorov–Smirnov statistic. Thresholds as usually read: PSI < 0.1 stable, 0.1–0.25 watch,
≥ 0.25 act. Why hand-written rather than Evidently or NannyML: the formulas are a few lines, the
bins must be frozen on the training month and stored with the results in the study's own database,
and those libraries would bring a large dependency tree for what is a histogram comparison
(scipy's ``ks_2samp`` does the KS test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PSI_WARN, PSI_ALERT = 0.1, 0.25
EPS = 1e-4  # a share of zero counts as this (the PSI of an empty bin is otherwise infinite)
CATEGORICAL_MAX = 12  # a column with at most this many distinct values is binned by value


def frozen_bins(reference: pd.Series, n: int = 10) -> np.ndarray | list:
    """Bin edges of the reference: its values when few (categorical), else inner quantile edges."""
    x = reference.dropna()
    values = np.unique(x)
    if len(values) <= CATEGORICAL_MAX:
        return list(values)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n + 1)[1:-1]))
    return edges


def shares(x: pd.Series, bins) -> np.ndarray:
    """Share of ``x`` in each bin (categorical bins: one per value plus "other"; numeric: the
    intervals between the edges, open at both ends), missing values as a bin of their own."""
    x = pd.Series(x)
    missing = x.isna().to_numpy()
    v = x[~missing].to_numpy()
    if isinstance(bins, list):  # sorted distinct values: a value's bin, or "other" past the last
        b = np.asarray(bins, dtype=float)
        if len(b):
            at = np.clip(np.searchsorted(b, v), 0, len(b) - 1)
            idx = np.where(b[at] == v, at, len(b))
        else:  # the reference had no value at all: everything is "other"
            idx = np.zeros(len(v), dtype=int)
        k = len(bins) + 1
    else:
        idx = np.searchsorted(bins, v, side="right")
        k = len(bins) + 1
    counts = np.bincount(idx, minlength=k).astype(float)
    counts = np.append(counts, missing.sum())
    return counts / max(len(x), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Σ (a − e) · ln(a / e) over the bins (shares floored at ``EPS``)."""
    e = np.clip(np.asarray(expected, float), EPS, None)
    a = np.clip(np.asarray(actual, float), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def status(value: float) -> str:
    return "alert" if value >= PSI_ALERT else "warn" if value >= PSI_WARN else "stable"


def drift(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """PSI (frozen reference bins) and KS statistic of each column, with its status."""
    from scipy.stats import ks_2samp

    rows = []
    for c in columns:
        ref, cur = reference[c].astype(float), current[c].astype(float)
        bins = frozen_bins(ref)
        value = psi(shares(ref, bins), shares(cur, bins))
        a, b = ref.dropna().to_numpy(), cur.dropna().to_numpy()
        ks = ks_2samp(a, b) if len(a) and len(b) else None
        rows.append({"input": c, "psi": value, "ks": float(ks.statistic) if ks else np.nan,
                     "ks p": float(ks.pvalue) if ks else np.nan, "status": status(value)})  # fmt: skip
    return pd.DataFrame(rows).sort_values("psi", ascending=False).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Data quality: what a month's frame must satisfy (name → (description, rows that fail)).
def quality(frame: pd.DataFrame, ranges: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """Missing cells, values outside the training range (``ranges``: column → (min, max)),
    duplicate users, memberships expiring before their transaction: one row per check with the
    failing count and share."""
    n = max(len(frame), 1)
    checks = [("missing cells", int(frame.isna().sum().sum()), frame.size or 1)]
    out_of_range = 0
    for c, (lo, hi) in (ranges or {}).items():
        if c in frame:
            v = frame[c].astype(float)
            out_of_range += int(((v < lo) | (v > hi)).sum())
    checks.append(("values outside the training range", out_of_range, n * max(len(ranges or {}), 1)))
    checks.append(("duplicate users", int(frame.msno.duplicated().sum()) if "msno" in frame else 0, n))
    span = _expiry_minus_transaction(frame)
    checks.append(("expiry before the transaction", int((span < 0).sum()) if span is not None else 0, n))
    t = pd.DataFrame(checks, columns=["check", "failing", "of"])
    t["share"] = t.failing / t["of"]
    t["status"] = np.where(t.failing == 0, "ok", "check")
    return t


def _expiry_minus_transaction(frame: pd.DataFrame) -> pd.Series | None:
    """Days from the last transaction to its membership expiry, whichever recipe wrote the frame
    (the original format's dates, or the point-in-time set's days to expiry and since the last
    transaction)."""
    if {"membership_expire_date", "transaction_date"} <= set(frame.columns):
        e = pd.to_datetime(frame.membership_expire_date, errors="coerce")
        t = pd.to_datetime(frame.transaction_date, errors="coerce")
        return (e - t).dt.days
    if {"days_to_expiry", "days_since_last_transaction"} <= set(frame.columns):
        return frame.days_to_expiry + frame.days_since_last_transaction
    return None


# ---------------------------------------------------------------------------------------------
def label_lag(month: str, today: str | pd.Timestamp) -> str:
    """Whether the labels of the users expiring in ``month`` can be known on ``today``: a user
    churned if no renewal came within 30 days of the expiry, so the whole month is labelled 30
    days after its last day."""
    end = pd.Timestamp(f"{month}-01") + pd.offsets.MonthEnd(0)
    ready = end + pd.Timedelta(days=30)
    return "labelled" if pd.Timestamp(today) >= ready else f"labels complete on {ready:%Y-%m-%d}"
