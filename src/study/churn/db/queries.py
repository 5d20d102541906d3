"""Reading back: row counts, months, cohorts, and each month's scoring frame from its cached
Arrow parts (or rebuilt from the stored rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Date, String, func, select, type_coerce

from study.churn import features
from study.churn.db.connection import MONTH, DatabaseError, analytic_url, app_url, engine, redact, result_frame
from study.churn.db.schema import (
    _ORIGINAL_DATES,
    AN_DATA_TABLES,
    APP_DATA_TABLES,
    cohort,
    features_original,
    features_pit,
    frame_cache,
    log_model,
    members,
    meta,
    transactions,
    user,
)


# ---------------------------------------------------------------------------------------------
# Reading back.
def check_month(month: str) -> str:
    """'YYYY-MM' or a ValueError that says what is expected (nothing else reaches a query)."""
    if not isinstance(month, str) or not MONTH.match(month.strip()):
        raise ValueError(f"month must look like 2017-03 (year-month), got {str(month)[:40]!r}")
    return month.strip()


def row_counts(url: str | None = None, analytic: bool = False) -> pd.DataFrame:
    """Rows per table of one database (``url``, else the default application or analytic one)."""
    eng = engine(url or (analytic_url() if analytic else app_url()))
    tables = AN_DATA_TABLES if analytic else [*APP_DATA_TABLES, log_model]
    with eng.connect() as conn:
        return pd.DataFrame(
            [
                {"table": t.name, "rows": conn.execute(select(func.count()).select_from(t)).scalar_one()}
                for t in reversed(tables)
            ]
        )


def available_months(url: str | None = None, recipe: str = "pit") -> list[str]:
    """Expiry months that have users to score (a cohort with rows of the recipe), oldest first."""
    table = features_pit if recipe == "pit" else features_original
    q = (
        select(table.c.month)
        .distinct()
        .join(cohort, (cohort.c.user_id == table.c.user_id) & (cohort.c.month == table.c.month))
        .order_by(table.c.month)
    )
    try:
        with engine(url).connect() as conn:
            return [r[0] for r in conn.execute(q)]
    except Exception as exc:  # noqa: BLE001 — turned into one sentence for the dashboard
        raise DatabaseError(
            f"the application database at {redact(app_url(url))} cannot be read "
            f"(has `study churn export-db` been run?): {str(exc).splitlines()[0][:200]}"
        ) from exc


def cohort_pairs(url: str | None = None) -> dict[bool, set]:
    """The stored (user, month) cohort pairs: {False: full msno, True: the original recipe's short msno}."""
    q = select(user.c.msno, cohort.c.month).join(user, user.c.user_id == cohort.c.user_id)
    with engine(url).connect() as conn:
        rows = conn.execute(q).fetchall()
    return {False: {(u, m) for u, m in rows}, True: {(u[10:22], m) for u, m in rows}}


def _to_arrow(df: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_arrow(blob: bytes) -> pd.DataFrame:
    import pyarrow.ipc as ipc

    return ipc.open_stream(blob).read_all().to_pandas()


def month_frame(month: str, url: str | None = None, recipe: str = "pit", from_rows: bool = False) -> pd.DataFrame:
    """The users whose membership expires in ``month`` → the frame ready for scoring (see
    :func:`month_frame_from_rows`); read from the month's cached Arrow parts when present."""
    month = check_month(month)
    if recipe not in ("pit", "original"):
        raise ValueError(f"recipe must be 'pit' or 'original', got {recipe!r}")
    if not from_rows:
        q = (
            select(frame_cache.c.arrow)
            .where(frame_cache.c.recipe == recipe, frame_cache.c.month == month)
            .order_by(frame_cache.c.part)
        )
        with engine(url).connect() as conn:
            parts = [bytes(r[0]) for r in conn.execute(q)]
        if parts:
            return _from_arrow(b"".join(parts))
    return month_frame_from_rows(month, url, recipe)


def month_frame_from_rows(month: str, url: str | None = None, recipe: str = "pit") -> pd.DataFrame:
    """The users whose membership expires in ``month`` → the frame ready for scoring: the
    point-in-time features (``recipe='pit'``, plus ``expiry_date``) or the original 33-column
    format (``recipe='original'``), with the same columns and dtypes as the in-memory frames."""
    month = check_month(month)
    if recipe == "pit":
        t = features_pit
        cols = [
            user.c.msno,
            t.c.month,
            t.c.expiry_date,
            *[t.c[c] for c in features.pit_dtypes() if c not in ("msno", "month")],
        ]
    elif recipe == "original":
        t = features_original
        cols = [user.c.msno, *[t.c[c] for c in features.PROCESSED_COLUMNS if c != "msno"]]
    else:
        raise ValueError(f"recipe must be 'pit' or 'original', got {recipe!r}")
    # Dates leave the database as the driver gives them (ISO text on SQLite, date objects on
    # MariaDB) and are parsed once per column by pandas, not once per row by SQLAlchemy.
    cols = [type_coerce(c, String).label(c.name) if isinstance(c.type, Date) else c for c in cols]
    in_cohort = t.c.user_id.in_(select(cohort.c.user_id).where(cohort.c.month == month))
    q = select(*cols).join(user, user.c.user_id == t.c.user_id).where(t.c.month == month, in_cohort)
    with engine(url).connect() as conn:
        res = conn.execute(q)
        names = list(res.keys())
        columns = list(zip(*res.fetchall())) or [() for _ in names]  # column-wise: no per-row probing
    df = pd.DataFrame({n: np.array(c, dtype=object) if len(c) == 0 else np.asarray(c) for n, c in zip(names, columns)})
    return _restore(df, recipe)


def _restore_dtypes(df: pd.DataFrame, recipe: str) -> pd.DataFrame:
    """The canonical dtypes of a scoring frame (expiry as datetime64[us])."""
    if recipe == "pit":
        out = pd.DataFrame({c: df[c].astype(k) for c, k in features.pit_dtypes().items()})
        out.insert(2, "expiry_date", pd.to_datetime(df["expiry_date"]).astype("datetime64[us]").to_numpy())
        return out.sort_values(["month", "msno"], kind="mergesort").reset_index(drop=True)
    return features.conform(df)


def _restore(df: pd.DataFrame, recipe: str) -> pd.DataFrame:
    if recipe == "pit":
        df["expiry_date"] = pd.to_datetime(df["expiry_date"].astype("str"), format="%Y-%m-%d")
        return _restore_dtypes(df, recipe)
    df["msno"] = features.short_msno(df.msno)
    for c in _ORIGINAL_DATES:
        df[c] = df[c].astype("str")  # ISO text from either driver (date objects print as YYYY-MM-DD)
    return features.conform(df)


def read_meta(url: str | None = None) -> dict[str, str]:
    with engine(url).connect() as conn:
        return {k: v for k, v in conn.execute(select(meta.c.key, meta.c.value))}


def transactions_frame(url: str | None = None) -> pd.DataFrame:
    """Every transaction in the application database in the Kaggle layout (msno, the plan and
    payment columns, YYYYMMDD dates, is_cancel), with each user's registration channel
    (``registered_via``): what the retention views rebuild the memberships from."""
    cols = [
        user.c.msno,
        *[transactions.c[c] for c in ("payment_method_id", "payment_plan_days", "plan_list_price",
                                       "actual_amount_paid", "is_auto_renew")],
        type_coerce(transactions.c.transaction_date, String).label("transaction_date"),
        type_coerce(transactions.c.membership_expire_date, String).label("membership_expire_date"),
        transactions.c.is_cancel,
        members.c.registered_via,
    ]  # fmt: skip
    q = (
        select(*cols)
        .join(user, user.c.user_id == transactions.c.user_id)
        .outerjoin(members, members.c.user_id == transactions.c.user_id)
        .order_by(transactions.c.user_id, transactions.c.id)
    )
    with engine(url).connect() as conn:
        res = conn.execute(q)
        df = result_frame(res)
    for c in ("transaction_date", "membership_expire_date"):
        d = pd.to_datetime(df[c].astype(str), format="%Y-%m-%d")
        df[c] = (d.dt.year * 10_000 + d.dt.month * 100 + d.dt.day).astype("int64")  # YYYYMMDD
    df["registered_via"] = df.registered_via.fillna(-1).astype("int64")
    return df
