"""The round trip: raw files and feature frames rebuilt from SQL equal the originals."""

from __future__ import annotations

import tempfile

import pandas as pd
from sqlalchemy import select

from study.churn import features
from study.churn.data import RawSource
from study.churn.db.connection import PIT_MONTHS, engine, result_frame
from study.churn.db.export import feature_frames
from study.churn.db.queries import available_months, cohort_pairs, month_frame
from study.churn.db.raw import LABEL_FILES, LOG_FILES, TX_FILES, _from_date, raw_rows, write_raw
from study.churn.db.schema import labels, logs, members, transactions, user


def rebuild_raw(url: str | None = None, msnos: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The raw files of the application database's users (or of ``msnos``), rebuilt from SQL."""
    eng = engine(url)
    out: dict[str, pd.DataFrame] = {}
    keep = user.c.msno.in_(list(msnos)) if msnos is not None else None

    def fetch(q) -> pd.DataFrame:
        if keep is not None:
            q = q.where(keep)
        with eng.connect() as conn:
            res = conn.execute(q)
            return result_frame(res)

    j = lambda t: t.join(user, user.c.user_id == t.c.user_id)  # noqa: E731
    m = fetch(select(user.c.msno, members).select_from(j(members)).order_by(members.c.file_row))
    if len(m):
        m["registration_init_time"] = _from_date(m.registration_init_time)
        out["members_v3.csv"] = m
    for name in TX_FILES:
        t = fetch(
            select(user.c.msno, transactions)
            .select_from(j(transactions))
            .where(transactions.c.source_file == name)
            .order_by(transactions.c.file_row)
        )
        if len(t):
            for c in ("transaction_date", "membership_expire_date"):
                t[c] = _from_date(t[c])
            out[name] = t
    for name in LOG_FILES:
        g = fetch(
            select(user.c.msno, logs).select_from(j(logs)).where(logs.c.source_file == name).order_by(logs.c.file_row)
        )
        if len(g):
            g["date"] = _from_date(g.date)
            out[name] = g
    for name in LABEL_FILES:
        lab = fetch(
            select(user.c.msno, labels)
            .select_from(j(labels))
            .where(labels.c.source_file == name)
            .order_by(labels.c.file_row)
        )
        if len(lab):
            out[name] = lab
    return out


def rebuild_features(url: str | None = None, months=PIT_MONTHS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(point-in-time, original-recipe) frames recomputed from the raw tables in SQL."""
    with tempfile.TemporaryDirectory(prefix="study-rebuild-") as tmp:
        return feature_frames(write_raw(rebuild_raw(url), tmp), months)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
        return True
    except AssertionError:
        return False


def verify_round_trip(source: RawSource, users: pd.Series, url: str | None = None) -> pd.DataFrame:
    """The original study's check, per month and recipe: the frame rebuilt from SQL, and the cached
    frame the dashboard reads, equal the in-memory one (dtypes included); for point-in-time features
    also the full data set's rows of these users. One row per month and recipe, True/False per check."""
    with tempfile.TemporaryDirectory(prefix="study-verify-") as tmp:
        pit_mem, orig_mem = feature_frames(write_raw(raw_rows(source, users), tmp))
    pit_sql, orig_sql = rebuild_features(url)
    full = features.point_in_time(source, months=PIT_MONTHS)
    full = full[full.msno.isin(set(users))].reset_index(drop=True)
    pairs = cohort_pairs(url)
    in_cohort = lambda df, short=False: df[[(u, m) in pairs[short] for u, m in zip(df.msno, df.month)]]  # noqa: E731
    checks = []
    for m in PIT_MONTHS:
        mem = pit_mem[pit_mem.month == m]
        checks.append(
            {
                "recipe": "point-in-time",
                "month": m,
                "rows": len(mem),
                "rebuilt from SQL = in memory": _same(pit_sql[pit_sql.month == m], mem),
                "cached frame = in memory": _same(month_frame(m, url).drop(columns="expiry_date"), in_cohort(mem)),
                "in memory = full data set's rows": _same(full[full.month == m], mem),
            }
        )
    for m in available_months(url, "original"):
        mem = orig_mem[orig_mem.month == m]
        checks.append(
            {
                "recipe": "original",
                "month": m,
                "rows": len(mem),
                "rebuilt from SQL = in memory": _same(
                    features.conform(orig_sql[orig_sql.month == m]), features.conform(mem)
                ),
                "cached frame = in memory": _same(
                    month_frame(m, url, "original"), features.conform(in_cohort(mem, True))
                ),
            }
        )
    return pd.DataFrame(checks)
