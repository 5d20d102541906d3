"""The organisers' churn labeller (FACTS.md section 1), vectorised.

The twin never samples a churn label: it simulates transactions and derives the label with this
rule, exactly as the WSDM Cup organisers derived ``train.csv`` and ``train_v2.csv`` from theirs.
The same function can relabel real transaction files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.churn.data import parse_yyyymmdd

CHURN_GAP_DAYS = 30


def to_datetime(values) -> pd.Series:
    """YYYYMMDD integers (the Kaggle encoding) or datetimes → datetime64 Series (invalid dates raise)."""
    return parse_yyyymmdd(values, errors="raise")


def _ordered(tx: pd.DataFrame) -> pd.DataFrame:
    """Sort as the labeller reads: by date; on one day renewals before cancellations;
    renewals by ascending expiry (latest last), cancellations by descending expiry (earliest last)."""
    expiry_ns = tx["expire"].astype("int64")
    key = np.where(tx["is_cancel"].to_numpy() == 1, -expiry_ns, expiry_ns)
    return (
        tx.assign(_key=key).sort_values(["msno", "tdate", "is_cancel", "_key"], kind="mergesort").drop(columns="_key")
    )


def _frame(transactions: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "msno": transactions["msno"].to_numpy(),
            "tdate": to_datetime(transactions["transaction_date"]).to_numpy(),
            "expire": to_datetime(transactions["membership_expire_date"]).to_numpy(),
            "is_cancel": transactions["is_cancel"].astype("int8").to_numpy(),
        }
    )


def _outcome(
    tx: pd.DataFrame, current: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Read the rows dated from ``start`` on (before ``end`` when given): cancellations before the
    first renewal move the expiry earlier; the first renewal's gap to the expiry decides (>= 30
    days or none: churn)."""
    window = (tx.tdate >= start) if end is None else (tx.tdate >= start) & (tx.tdate < end)
    future = _ordered(tx[window & tx.msno.isin(current.msno)])
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


def _current(tx: pd.DataFrame, start, end) -> pd.DataFrame:
    history = _ordered(tx[(tx.tdate >= start) & (tx.tdate < end)])
    return history.groupby("msno", sort=False).tail(1)[["msno", "expire"]].rename(columns={"expire": "current_expire"})


def churn_labels(transactions: pd.DataFrame, year: int, month: int) -> pd.DataFrame:
    """Label the users whose membership expires in month ``year``-``month``.

    Returns one row per candidate: ``msno``, ``is_churn`` (int8), ``current_expire`` (datetime),
    ``gap_days`` (float, NaN when no later renewal).
    """
    tx = _frame(transactions)
    month_start = pd.Timestamp(year=year, month=month, day=1)
    month_end = month_start + pd.DateOffset(months=1)
    current = _current(tx, month_start - pd.DateOffset(months=1), month_start)
    current = current[(current.current_expire >= month_start) & (current.current_expire < month_end)]
    return _outcome(tx, current, month_start)


def churn_labels_rebased(transactions: pd.DataFrame, year: int, month: int) -> pd.DataFrame:
    """A variant for study, not the rule: the same candidates as :func:`churn_labels`, but the
    expiry is re-read after the whole target month (its renewals included) and the outcome is the
    next renewal after that. Long prepaid plans bought in the month then count as churn when no
    later transaction is in the data, as the real train_v2 labels suggest (see notebooks/20)."""
    tx = _frame(transactions)
    month_start = pd.Timestamp(year=year, month=month, day=1)
    month_end = month_start + pd.DateOffset(months=1)
    candidates = churn_labels(transactions, year, month)[["msno"]]
    current = _current(tx, month_start - pd.DateOffset(months=1), month_end)
    current = current[current.msno.isin(candidates.msno)]
    return _outcome(tx, current, month_end)


def as_released_horizon(year: int, month: int) -> pd.Timestamp:
    """The default end of the outcome window: the last day of the second month after the label
    month (2017-05-31 for March), where the real train_v2 labels show their cliff."""
    return pd.Timestamp(year=year, month=month, day=1) + pd.DateOffset(months=3) - pd.Timedelta(days=1)


def churn_labels_as_released(transactions: pd.DataFrame, year: int, month: int, horizon=None) -> pd.DataFrame:
    """The rule the released train_v2 labels follow (measured on real users, FACTS.md section 1 and
    issue 13), beside the published one: the published candidates; the expiry standing at the END
    of the label month, from every transaction up to then (renewals and cancellations bought in
    the month included); the outcome is the first renewal dated up to ``horizon`` (inclusive,
    default :func:`as_released_horizon`). No renewal inside the window (an expiry past it is
    censored) or a gap of 30 days or more → churn.

    Returns the columns of :func:`churn_labels`.
    """
    tx = _frame(transactions)
    month_start = pd.Timestamp(year=year, month=month, day=1)
    month_end = month_start + pd.DateOffset(months=1)
    horizon = as_released_horizon(year, month) if horizon is None else pd.Timestamp(horizon)
    candidates = churn_labels(transactions, year, month)[["msno"]]
    current = _current(tx, pd.Timestamp.min, month_end)
    current = current[current.msno.isin(candidates.msno)]
    return _outcome(tx, current, month_end, horizon + pd.Timedelta(days=1))
