"""The organisers' churn labeller (FACTS.md section 1), vectorised.

The twin never samples a churn label: it simulates transactions and derives the label with this
rule, exactly as the WSDM Cup organisers derived ``train.csv`` and ``train_v2.csv`` from theirs.
The same function can relabel real transaction files.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

CHURN_GAP_DAYS = 30


def to_datetime(values) -> pd.Series:
    """YYYYMMDD integers (the Kaggle encoding) or datetimes → datetime64 Series."""
    s = pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    return pd.to_datetime(s.astype("int64").astype(str), format="%Y%m%d")


def _ordered(tx: pd.DataFrame) -> pd.DataFrame:
    """Sort as the labeller reads: by date; on one day renewals before cancellations;
    renewals by ascending expiry (latest last), cancellations by descending expiry (earliest last)."""
    expiry_ns = tx["expire"].astype("int64")
    key = np.where(tx["is_cancel"].to_numpy() == 1, -expiry_ns, expiry_ns)
    return (
        tx.assign(_key=key)
        .sort_values(["msno", "tdate", "is_cancel", "_key"], kind="mergesort")
        .drop(columns="_key")
    )


def churn_labels(transactions: pd.DataFrame, year: int, month: int) -> pd.DataFrame:
    """Label the users whose membership expires in month ``year``-``month``.

    Returns one row per candidate: ``msno``, ``is_churn`` (int8), ``current_expire`` (datetime),
    ``gap_days`` (float, NaN when no later renewal).
    """
    tx = pd.DataFrame(
        {
            "msno": transactions["msno"].to_numpy(),
            "tdate": to_datetime(transactions["transaction_date"]).to_numpy(),
            "expire": to_datetime(transactions["membership_expire_date"]).to_numpy(),
            "is_cancel": transactions["is_cancel"].astype("int8").to_numpy(),
        }
    )
    month_start = pd.Timestamp(year=year, month=month, day=1)
    hist_start = month_start - pd.DateOffset(months=1)
    month_end = month_start + pd.DateOffset(months=1)

    history = _ordered(tx[(tx.tdate >= hist_start) & (tx.tdate < month_start)])
    current = history.groupby("msno", sort=False).tail(1)[["msno", "expire"]]
    current = current[(current.expire >= month_start) & (current.expire < month_end)]
    current = current.rename(columns={"expire": "current_expire"})

    future = tx[(tx.tdate >= month_start) & tx.msno.isin(current.msno)]
    future = _ordered(future)
    # Position of each row in the user's ordered future, and of the first renewal.
    future = future.assign(_pos=future.groupby("msno", sort=False).cumcount())
    renewals = future[future.is_cancel == 0]
    first_renewal = renewals.groupby("msno", sort=False).head(1)[["msno", "tdate", "_pos"]]
    first_renewal = first_renewal.rename(columns={"tdate": "renew_date", "_pos": "renew_pos"})

    # Cancellations read before the first renewal move the expiry earlier (sequential min = min).
    cancels = future[future.is_cancel == 1].merge(first_renewal[["msno", "renew_pos"]], on="msno", how="left")
    cancels = cancels[cancels.renew_pos.isna() | (cancels._pos < cancels.renew_pos)]
    earliest_cancel = cancels.groupby("msno", sort=False)["expire"].min().rename("cancel_expire")

    out = current.merge(first_renewal[["msno", "renew_date"]], on="msno", how="left")
    out = out.merge(earliest_cancel, on="msno", how="left")
    moved = out.cancel_expire.notna() & (out.cancel_expire < out.current_expire)
    out["current_expire"] = out.current_expire.where(~moved, out.cancel_expire)
    out["gap_days"] = (out.renew_date - out.current_expire).dt.days.astype("float64")
    churn = out.gap_days.isna() | (out.gap_days >= CHURN_GAP_DAYS)
    out["is_churn"] = churn.astype("int8")
    return out[["msno", "is_churn", "current_expire", "gap_days"]].sort_values("msno").reset_index(drop=True)
