"""The metric history (``log_model``) and the monitoring history (``log_monitoring``): every
dashboard evaluation and monitoring run appended, never touched by an export."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine

from study.churn.db.connection import engine, result_frame
from study.churn.db.schema import METRICS, METRICS_FROM, METRICS_FROM_OLD, TEXT_ID, log_model, log_monitoring


# ---------------------------------------------------------------------------------------------
# The metric history.
def ensure_log_model(eng: Engine) -> None:
    """Create ``log_model``, or migrate one written before metrics came from the unrounded
    probabilities: add ``metrics_from`` and flag the old rows (their AUC and log loss are wrong)."""
    from sqlalchemy import inspect, update

    log_model.create(eng, checkfirst=True)
    if "metrics_from" not in {c["name"] for c in inspect(eng).get_columns("log_model")}:
        with eng.begin() as conn:
            conn.execute(text("ALTER TABLE log_model ADD COLUMN metrics_from VARCHAR(40)"))
            conn.execute(
                update(log_model).where(log_model.c.metrics_from.is_(None)).values(metrics_from=METRICS_FROM_OLD)
            )


def log_evaluation(
    scores: dict,
    model: str,
    source: str,
    n_users: int,
    threshold: float,
    url: str | None = None,
    when: dt.datetime | None = None,
) -> None:
    """Append one evaluation to ``log_model`` (its own short transaction)."""
    eng = engine(url)
    ensure_log_model(eng)
    row = {
        "metrics_from": METRICS_FROM,
        "evaluated_at": (when or dt.datetime.now(dt.timezone.utc)).replace(tzinfo=None, microsecond=0),
        "model": str(model)[:64],
        "source": str(source)[:TEXT_ID],
        "n_users": int(n_users),
        "threshold": float(threshold),
        **{
            col: (None if scores.get(name) is None or pd.isna(scores.get(name)) else float(scores[name]))
            for name, col in METRICS.items()
        },
    }
    with eng.begin() as conn:
        conn.execute(insert(log_model), [row])


def metric_history(url: str | None = None, limit: int = 500) -> pd.DataFrame:
    eng = engine(url)
    ensure_log_model(eng)
    q = select(log_model).order_by(log_model.c.evaluated_at, log_model.c.id).limit(int(limit))
    with eng.connect() as conn:
        res = conn.execute(q)
        df = result_frame(res)
    return df.rename(columns={v: k for k, v in METRICS.items()})


# ---------------------------------------------------------------------------------------------
# The monitoring history.
MONITORING_COLUMNS = ["model", "month", "reference_month", "kind", "name", "statistic", "value", "status"]


def log_monitoring_run(rows: pd.DataFrame, url: str | None = None, when: dt.datetime | None = None) -> None:
    """Append one monitoring run (``rows``: the columns of ``MONITORING_COLUMNS``) in one
    transaction: all of it or, on failure, none of it."""
    eng = engine(url)
    log_monitoring.create(eng, checkfirst=True)
    at = (when or dt.datetime.now(dt.timezone.utc)).replace(tzinfo=None, microsecond=0)
    records = [
        {"computed_at": at, **{k: (None if k == "value" and pd.isna(v) else v) for k, v in r.items()}}
        for r in rows[MONITORING_COLUMNS].astype({"value": "float64"}).to_dict("records")
    ]
    for r in records:
        r["name"] = str(r["name"])[:TEXT_ID]
    with eng.begin() as conn:
        conn.execute(insert(log_monitoring), records)


def monitoring_history(url: str | None = None, model: str | None = None) -> pd.DataFrame:
    """Every monitoring row (of ``model`` when given), oldest run first."""
    eng = engine(url)
    log_monitoring.create(eng, checkfirst=True)
    q = select(log_monitoring).order_by(log_monitoring.c.computed_at, log_monitoring.c.id)
    if model is not None:
        q = q.where(log_monitoring.c.model == model)
    with eng.connect() as conn:
        res = conn.execute(q)
        return result_frame(res)
