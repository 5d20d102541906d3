"""Relational databases on SQLAlchemy 2: the analytic database (a stratified sample of the raw
files in a star-like schema) and the application database (the test users in raw form, the
feature frames cached per month, the metric history) that the scoring dashboard reads.

* One URL per database (SQLite files under ``data/db/`` by default; MariaDB/MySQL or PostgreSQL
  through ``--url`` or ``STUDY_DB_URL`` / ``STUDY_ANALYTIC_DB_URL``).
* Each export is one transaction per database: previous rows are deleted and the new ones bulk
  inserted (executemany in chunks, no per-row commit), so a re-run leaves the same content and a
  failure leaves the previous content intact. The metric history is never touched by an export.
* Every query is a SQLAlchemy Core construct with bound parameters; text inputs are validated
  before they reach a query and are never formatted into SQL.
* The raw tables keep each row's file and position, so the raw CSV files (and therefore any
  feature set) can be rebuilt from SQL exactly: :func:`rebuild_raw`, :func:`rebuild_features`.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import (BigInteger, Column, Date, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        SmallInteger,
                        String, Table, Text, create_engine, delete, event, func, insert, select, text, type_coerce)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine, make_url

from study import paths
from study.churn import data, features
from study.churn.data import COLUMNS, RawSource

ENV_URL, ENV_ANALYTIC_URL = "STUDY_DB_URL", "STUDY_ANALYTIC_DB_URL"
MONTH = re.compile(r"^(19|20)\d\d-(0[1-9]|1[0-2])$")
CHUNK = 20_000
PIT_MONTHS = ("2017-01", "2017-02", "2017-03")
DOUBLE = Float(precision=53)  # DOUBLE on MariaDB, DOUBLE PRECISION on PostgreSQL, REAL on SQLite
TEXT_ID = 255  # ids are 44 characters; the width leaves room for anything a user types


class DatabaseError(RuntimeError):
    """A database problem explained in one sentence (unreachable server, empty database...)."""


# ---------------------------------------------------------------------------------------------
# URLs and engines.
def app_url(url: str | None = None) -> str:
    """The application database: ``url``, else ``$STUDY_DB_URL``, else ``data/db/application.sqlite``."""
    return url or os.environ.get(ENV_URL) or f"sqlite:///{(paths.DB / 'application.sqlite').as_posix()}"


def analytic_url(url: str | None = None, app: str | None = None) -> str:
    """The analytic database: ``url``, else ``$STUDY_ANALYTIC_DB_URL``, else beside the application
    database (same server, database name + ``_analytic``; for SQLite, ``…_analytic.sqlite``)."""
    if url or os.environ.get(ENV_ANALYTIC_URL):
        return url or os.environ[ENV_ANALYTIC_URL]
    u = make_url(app_url(app))
    name = u.database or "study"
    if u.get_backend_name() == "sqlite":
        p = Path(name)
        stem = p.stem.replace("application", "analytic") if "application" in p.stem else p.stem + "_analytic"
        name = str(p.with_name(stem + (p.suffix or ".sqlite")))
    else:
        name = f"{name}_analytic"
    return u.set(database=name).render_as_string(hide_password=False)


def redact(url: str) -> str:
    """The URL as it may be printed or logged (password hidden)."""
    return make_url(url).render_as_string(hide_password=True)


_ENGINES: dict[str, Engine] = {}


def engine(url: str | None = None) -> Engine:
    """One pooled engine per URL (created once per process); SQLite files get their folder, WAL
    journaling and enforced foreign keys."""
    url = app_url(url)
    if url in _ENGINES:
        return _ENGINES[url]
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url)

        @event.listens_for(eng, "connect")
        def _sqlite_pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.close()
    else:
        eng = create_engine(url, pool_pre_ping=True)
    _ENGINES[url] = eng
    return eng


# ---------------------------------------------------------------------------------------------
# The application database.
app_meta = MetaData()
user = Table(
    "user", app_meta,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("msno", String(TEXT_ID), nullable=False, unique=True),
)
members = Table(
    "members", app_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("file_row", BigInteger, nullable=False),
    Column("city", Integer), Column("bd", Integer), Column("gender", String(TEXT_ID)),
    Column("registered_via", Integer), Column("registration_init_time", Date),
)
transactions = Table(
    "transactions", app_meta,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", Integer, ForeignKey("user.user_id"), nullable=False),
    Column("source_file", String(32), nullable=False), Column("file_row", BigInteger, nullable=False),
    Column("payment_method_id", Integer), Column("payment_plan_days", Integer), Column("plan_list_price", Integer),
    Column("actual_amount_paid", Integer), Column("is_auto_renew", SmallInteger),
    Column("transaction_date", Date), Column("membership_expire_date", Date), Column("is_cancel", SmallInteger),
    Index("ix_transactions_user", "user_id", "transaction_date"),
    Index("ix_transactions_expire", "membership_expire_date"),
)
logs = Table(
    "logs", app_meta,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", Integer, ForeignKey("user.user_id"), nullable=False),
    Column("source_file", String(32), nullable=False), Column("file_row", BigInteger, nullable=False),
    Column("date", Date, nullable=False),
    *[Column(m, Integer) for m in features.LOG_METRICS if m != "total_secs"], Column("total_secs", DOUBLE),
    Index("ix_logs_user_date", "user_id", "date"),
)
labels = Table(
    "labels", app_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("source_file", String(32), nullable=False), Column("file_row", BigInteger, nullable=False),
    Column("is_churn", SmallInteger, nullable=False),
)


def _sql_type(kind: str):
    return {"int64": BigInteger, "float64": DOUBLE, "str": String(TEXT_ID)}[kind]


features_pit = Table(
    "features_pit", app_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("expiry_date", Date, nullable=False),
    *[Column(c, _sql_type(k)) for c, k in features.pit_dtypes().items() if c not in ("msno", "month")],
    Index("ix_features_pit_month", "month", "expiry_date"),
)
# Which users the dashboard scores in each month: that month's held-out cohort (study.churn.cohorts).
cohort = Table(
    "cohort", app_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("month", String(7), primary_key=True),
    Index("ix_cohort_month", "month"),
)
_ORIGINAL_DATES = ("transaction_date", "membership_expire_date", "registration_init_time")
features_original = Table(
    "features_original", app_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("month", String(7), primary_key=True),
    *[Column(c, Date if c in _ORIGINAL_DATES else _sql_type("int64" if c in features._INT else
                                                             "float64" if c in features._FLOAT else "str"))
      for c in features.PROCESSED_COLUMNS if c != "msno"],
    Index("ix_features_original_month", "month", "membership_expire_date"),
)
# Each month's scoring frame, also as compressed Arrow IPC in parts (the month query then reads a
# few rows instead of one per user: ~10x faster at 45 k users). The per-user tables stay the source
# of truth; tests check that both paths give the same frame.
frame_cache = Table(
    "frame_cache", app_meta,
    Column("recipe", String(16), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("part", Integer, primary_key=True, autoincrement=False),
    Column("arrow", LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"), nullable=False),
)
CACHE_PART_BYTES = 4_000_000  # below MariaDB's default max_allowed_packet (16 MB)
METRICS = {"ROC AUC": "roc_auc", "log loss": "log_loss", "F1": "f1", "precision": "precision", "recall": "recall",
           "MCC": "mcc", "PR AUC": "pr_auc", "Brier": "brier"}
log_model = Table(
    "log_model", app_meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("evaluated_at", DateTime, nullable=False),
    Column("model", String(64), nullable=False),
    Column("source", String(TEXT_ID), nullable=False),
    Column("n_users", Integer, nullable=False),
    Column("threshold", DOUBLE, nullable=False),
    *[Column(c, DOUBLE) for c in METRICS.values()],
    # "probabilities" for every row written since the fix; rows from before it were computed from the
    # displayed risk rounded to 0.1 % (wrong AUC and log loss) and are flagged by the migration below.
    Column("metrics_from", String(40)),
    Index("ix_log_model_time", "evaluated_at"),
)
METRICS_FROM = "probabilities"
METRICS_FROM_OLD = "rounded risk % (before the fix: wrong)"
meta = Table(
    "meta", app_meta,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
# Children first: the order rows are deleted in (and the reverse of the order they are inserted in).
APP_DATA_TABLES = [frame_cache, cohort, features_original, features_pit, labels, logs, transactions, members, user, meta]

# ---------------------------------------------------------------------------------------------
# The analytic database: a star around the user, with code tables and a date dimension.
an_meta = MetaData()
city = Table("city", an_meta, Column("city_id", Integer, primary_key=True, autoincrement=False),
             Column("code", Integer, nullable=False, unique=True))
payment_method = Table("payment_method", an_meta, Column("payment_method_id", Integer, primary_key=True, autoincrement=False),
                       Column("code", Integer, nullable=False, unique=True))
register = Table("register", an_meta, Column("register_id", Integer, primary_key=True, autoincrement=False),
                 Column("code", Integer, nullable=False, unique=True))
time_save = Table("time_save", an_meta, Column("time_id", Integer, primary_key=True, autoincrement=False),
                  Column("date", Date, nullable=False, unique=True), Column("year", SmallInteger, nullable=False),
                  Column("month", SmallInteger, nullable=False), Column("day", SmallInteger, nullable=False))
an_user = Table("user", an_meta, Column("user_id", Integer, primary_key=True, autoincrement=False),
                Column("msno", String(TEXT_ID), nullable=False, unique=True),
                Column("is_churn", SmallInteger, nullable=False))
an_members = Table("members", an_meta,
                   Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
                   Column("city_id", Integer, ForeignKey("city.city_id")), Column("bd", Integer),
                   Column("gender", String(TEXT_ID)), Column("register_id", Integer, ForeignKey("register.register_id")),
                   Column("registration_time_id", Integer, ForeignKey("time_save.time_id")),
                   Index("ix_an_members_city", "city_id"), Index("ix_an_members_register", "register_id"))
an_transactions = Table(
    "transactions", an_meta,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", Integer, ForeignKey("user.user_id"), nullable=False),
    Column("payment_method_id", Integer, ForeignKey("payment_method.payment_method_id")),
    Column("payment_plan_days", Integer), Column("plan_list_price", Integer), Column("actual_amount_paid", Integer),
    Column("is_auto_renew", SmallInteger),
    Column("transaction_time_id", Integer, ForeignKey("time_save.time_id")),
    Column("expire_time_id", Integer, ForeignKey("time_save.time_id")),
    Column("is_cancel", SmallInteger),
    Index("ix_an_tx_user", "user_id"), Index("ix_an_tx_expire", "expire_time_id"), Index("ix_an_tx_method", "payment_method_id"),
)
an_logs = Table(
    "logs", an_meta,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", Integer, ForeignKey("user.user_id"), nullable=False),
    Column("time_id", Integer, ForeignKey("time_save.time_id"), nullable=False),
    *[Column(m, Integer) for m in features.LOG_METRICS if m != "total_secs"], Column("total_secs", DOUBLE),
    Index("ix_an_logs_user_time", "user_id", "time_id"),
)
AN_DATA_TABLES = [an_logs, an_transactions, an_members, an_user, time_save, register, payment_method, city]


# ---------------------------------------------------------------------------------------------
# Raw rows of chosen users, with their file and position.
TX_FILES = ("transactions.csv", "transactions_v2.csv")
LOG_FILES = ("user_logs.csv", "user_logs_v2.csv")
LABEL_FILES = {"train.csv": "2017-02", "train_v2.csv": "2017-03"}
KIND = data.FILES  # file name → table kind


def raw_rows(source: RawSource, msnos: list[str] | pd.Series, files=tuple(KIND)) -> dict[str, pd.DataFrame]:
    """file → the rows of ``msnos`` in that file, in file order, with ``file_row`` (the row's
    position in the file: the recipe's "first on ties" and an exact rebuild depend on it)."""
    with tempfile.TemporaryDirectory(prefix="study-duckdb-") as spill:
        con = features.connect(memory_limit="2GB", spill_dir=spill)
        try:
            con.register("keep", pd.DataFrame({"msno": pd.Series(list(msnos), dtype="str")}))
            out = {}
            for name in files:
                if not source.file(name).is_file():
                    continue
                # a plain scan keeps the file order in rowid; a filtered or joined one need not
                con.execute(f"CREATE OR REPLACE TEMP TABLE t AS SELECT * FROM {data.read_sql(source.file(name), KIND[name])}")
                out[name] = con.execute("SELECT rowid AS file_row, * FROM t WHERE msno IN (SELECT msno FROM keep) "
                                        "ORDER BY rowid").df()
                con.execute("DROP TABLE t")
            return out
        finally:
            con.close()


def _to_date(ymd: pd.Series) -> pd.Series:
    """YYYYMMDD integers → datetime.date objects (None for missing)."""
    d = data.parse_yyyymmdd(ymd)
    out = pd.Series([x.date() if not pd.isna(x) else None for x in d], index=ymd.index, dtype="object")
    return out


def _from_date(dates: pd.Series) -> pd.Series:
    """datetime.date (or datetime) → YYYYMMDD integers (nullable)."""
    d = pd.to_datetime(dates)
    return (d.dt.year * 10000 + d.dt.month * 100 + d.dt.day).astype("Int64")


def _records(df: pd.DataFrame) -> list[dict]:
    """Python scalars only (drivers such as PyMySQL refuse numpy types); NaN/NA → None."""
    obj = df.astype(object).where(df.notna(), None)
    return obj.to_dict(orient="records")


def _bulk_insert(conn, table: Table, df: pd.DataFrame, progress=None) -> int:
    if table is frame_cache:  # a few large rows: one statement each keeps every packet small
        for rec in _records(df):
            conn.execute(insert(table), [rec])
        return len(df)
    for start in range(0, len(df), CHUNK):
        conn.execute(insert(table), _records(df.iloc[start:start + CHUNK]))
        if progress:
            progress(table.name, min(start + CHUNK, len(df)), len(df))
    return len(df)


# ---------------------------------------------------------------------------------------------
# Export: the application database.
def test_users(source: RawSource, seed: int = 40) -> pd.Series:
    """The held-out users of every month's test cohort (:mod:`study.churn.cohorts`), as full msno strings."""
    from study.churn.cohorts import test_cohorts

    return pd.Series(sorted(set(test_cohorts(source, PIT_MONTHS, seed=seed).msno)), dtype="str")


def write_raw(rows: dict[str, pd.DataFrame], folder: str | Path) -> RawSource:
    """The raw files (Kaggle headers, YYYYMMDD dates) from frames of :func:`raw_rows` or :func:`rebuild_raw`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in rows.items():
        df.sort_values("file_row", kind="mergesort")[list(COLUMNS[KIND[name]])].to_csv(
            folder / name, index=False, lineterminator="\n")
    return RawSource(folder, "real")


def feature_frames(src: RawSource, months=PIT_MONTHS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(point-in-time frame for ``months``, original-recipe frames for March and its February analogue)."""
    pit = features.point_in_time(src, months=tuple(months))
    parts = []
    if all(src.file(f).is_file() for f in ("train_v2.csv", "transactions_v2.csv", "user_logs_v2.csv")):
        parts.append(features.original_recipe(src).assign(month="2017-03"))
    if all(src.file(f).is_file() for f in ("train.csv", "transactions.csv", "user_logs.csv")):
        parts.append(features.original_recipe_february(src).assign(month="2017-02"))
    original = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*features.PROCESSED_COLUMNS, "month"])
    return pit, original


def export_application(source: RawSource, url: str | None = None, users: pd.Series | None = None,
                       months=PIT_MONTHS, progress=None) -> dict[str, int]:
    """Write the application database in one transaction: by default each month's held-out cohort
    (the dashboard scores a month's own cohort only); with ``users``, those users in every month."""
    if users is None:
        from study.churn.cohorts import test_cohorts

        pairs = test_cohorts(source, months)[["msno", "month"]]
        users = pd.Series(sorted(set(pairs.msno)), dtype="str")
    else:
        users = pd.Series(sorted(set(users)), dtype="str")
        pairs = pd.DataFrame([(u, m) for u in users for m in sorted({*months, "2017-02", "2017-03"})],
                             columns=["msno", "month"])
    rows = raw_rows(source, users)
    with tempfile.TemporaryDirectory(prefix="study-export-") as tmp:
        pit, original = feature_frames(write_raw(rows, tmp), months)
    ids = pd.Series(np.arange(1, len(users) + 1, dtype="int64"), index=users.to_numpy())
    short_ids = pd.Series(ids.to_numpy(), index=features.short_msno(users).to_numpy())
    short_ids = short_ids[~short_ids.index.duplicated()]

    frames: list[tuple[Table, pd.DataFrame]] = [(user, pd.DataFrame({"user_id": ids.to_numpy(), "msno": users.to_numpy()}))]
    if "members_v3.csv" in rows:
        m = rows["members_v3.csv"]
        frames.append((members, pd.DataFrame({
            "user_id": m.msno.map(ids).to_numpy(), "file_row": m.file_row, "city": m.city, "bd": m.bd, "gender": m.gender,
            "registered_via": m.registered_via, "registration_init_time": _to_date(m.registration_init_time)})))
    tx_parts, log_parts, label_parts = [], [], []
    for name in TX_FILES:
        if name in rows:
            t = rows[name]
            tx_parts.append(pd.DataFrame({
                "user_id": t.msno.map(ids).to_numpy(), "source_file": name, "file_row": t.file_row,
                **{c: t[c] for c in ("payment_method_id", "payment_plan_days", "plan_list_price", "actual_amount_paid",
                                     "is_auto_renew")},
                "transaction_date": _to_date(t.transaction_date), "membership_expire_date": _to_date(t.membership_expire_date),
                "is_cancel": t.is_cancel}))
    for name in LOG_FILES:
        if name in rows:
            g = rows[name]
            log_parts.append(pd.DataFrame({"user_id": g.msno.map(ids).to_numpy(), "source_file": name, "file_row": g.file_row,
                                           "date": _to_date(g.date), **{c: g[c] for c in features.LOG_METRICS}}))
    for name, month in LABEL_FILES.items():
        if name in rows:
            lab = rows[name]
            label_parts.append(pd.DataFrame({"user_id": lab.msno.map(ids).to_numpy(), "month": month, "source_file": name,
                                             "file_row": lab.file_row, "is_churn": lab.is_churn}))
    for table, parts in ((transactions, tx_parts), (logs, log_parts)):
        if parts:
            df = pd.concat(parts, ignore_index=True)
            df.insert(0, "id", np.arange(1, len(df) + 1, dtype="int64"))
            frames.append((table, df))
    if label_parts:
        frames.append((labels, pd.concat(label_parts, ignore_index=True)))
    if len(pit):
        fp = pit.copy()
        fp.insert(0, "user_id", fp.pop("msno").map(ids).to_numpy())
        fp.insert(2, "expiry_date", [(pd.Timestamp(f"{m}-01") + pd.Timedelta(days=int(d))).date()
                                     for m, d in zip(fp.month, fp.days_to_expiry)])
        frames.append((features_pit, fp))
    if len(original):
        fo = original.copy()
        fo.insert(0, "user_id", fo.pop("msno").map(short_ids).to_numpy())
        for c in _ORIGINAL_DATES:
            fo[c] = [dt.date.fromisoformat(v) for v in fo[c]]
        frames.append((features_original, fo))
    frames.append((cohort, pd.DataFrame({"user_id": pairs.msno.map(ids).to_numpy(), "month": pairs.month.to_numpy()})))
    cohort_pit = set(zip(pairs.msno, pairs.month))
    cohort_short = set(zip(features.short_msno(pairs.msno), pairs.month))
    cache = []
    for recipe, frame in (("pit", pit), ("original", original)):
        if len(frame):
            keys = cohort_pit if recipe == "pit" else cohort_short
            frame = frame[[k in keys for k in zip(frame.msno, frame.month)]]
        for m in sorted(set(frame.month)) if len(frame) else []:
            part = frame[frame.month == m]
            if recipe == "pit":
                part = part.reset_index(drop=True)
                part.insert(2, "expiry_date", pd.to_datetime(part.month + "-01") + pd.to_timedelta(part.days_to_expiry, unit="D"))
            else:
                part = features.conform(part)
            blob = _to_arrow(_restore_dtypes(part, recipe))
            cache += [{"recipe": recipe, "month": m, "part": i, "arrow": blob[o:o + CACHE_PART_BYTES]}
                      for i, o in enumerate(range(0, len(blob), CACHE_PART_BYTES))]
    frames.append((frame_cache, pd.DataFrame(cache, columns=["recipe", "month", "part", "arrow"])))
    from study.churn.lineage import source_digest

    info = {"source": source.describe(), "source_sha256": source_digest(source), "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "users": str(len(users)), "pit_months": ",".join(months)}
    frames.append((meta, pd.DataFrame({"key": list(info), "value": list(info.values())})))
    return _replace(url, app_meta, APP_DATA_TABLES, frames, progress)


WRITE_SECONDS: dict[str, float] = {}  # url → seconds of the last write transaction (benchmarks read it)


def _replace(url, metadata: MetaData, data_tables: list[Table], frames, progress) -> dict[str, int]:
    """Delete the previous rows and insert the new ones in ONE transaction (all or nothing)."""
    import time

    eng = engine(url)
    t0 = time.perf_counter()
    metadata.create_all(eng)  # DDL first: MariaDB commits DDL implicitly
    counts = {}
    with eng.begin() as conn:
        for table in data_tables:
            conn.execute(delete(table))
        for table, df in frames:
            counts[table.name] = _bulk_insert(conn, table, df, progress)
    WRITE_SECONDS[url] = time.perf_counter() - t0
    return counts


# ---------------------------------------------------------------------------------------------
# Export: the analytic database.
def sample_users(source: RawSource, fraction: float = 0.01, seed: int = 40) -> pd.DataFrame:
    """A stratified sample (on March's label) of the labelled users: msno, is_churn."""
    from sklearn.model_selection import train_test_split

    if not 0 < fraction <= 1:
        raise ValueError(f"sample fraction must be in (0, 1], got {fraction}")
    lab = data.load(source, "train_v2.csv", validate=False)[["msno", "is_churn"]]
    if fraction == 1:
        return lab.sort_values("msno").reset_index(drop=True)
    keep, _ = train_test_split(lab, train_size=fraction, stratify=lab.is_churn, random_state=seed)
    return keep.sort_values("msno").reset_index(drop=True)


def export_analytic(source: RawSource, url: str | None = None, fraction: float = 0.01, seed: int = 40,
                    progress=None) -> dict[str, int]:
    """Write the analytic database (``url``, else :func:`analytic_url`) from a stratified sample of
    the raw files, in one transaction."""
    sample = sample_users(source, fraction, seed)
    rows = raw_rows(source, sample.msno, files=("members_v3.csv", *TX_FILES, *LOG_FILES))
    ids = pd.Series(np.arange(1, len(sample) + 1, dtype="int64"), index=sample.msno.to_numpy())
    tx = pd.concat([rows[f] for f in TX_FILES if f in rows], ignore_index=True).drop_duplicates(
        subset=list(COLUMNS["transactions"]))  # a row present in both files is one transaction
    lg = pd.concat([rows[f] for f in LOG_FILES if f in rows], ignore_index=True)
    mem = rows.get("members_v3.csv", pd.DataFrame(columns=["msno", *COLUMNS["members"]]))
    dates = pd.concat([_to_date(tx.transaction_date), _to_date(tx.membership_expire_date), _to_date(lg.date),
                       _to_date(mem.registration_init_time)]).dropna().drop_duplicates().sort_values().reset_index(drop=True)
    time_ids = pd.Series(np.arange(1, len(dates) + 1, dtype="int64"), index=dates.to_numpy())

    def codes(values: pd.Series) -> pd.Series:
        v = pd.Series(sorted(set(values.dropna().astype("int64"))), dtype="int64")
        return pd.Series(np.arange(1, len(v) + 1, dtype="int64"), index=v.to_numpy())

    city_ids, method_ids, reg_ids = codes(mem.city), codes(tx.payment_method_id), codes(mem.registered_via)

    def lookup(ids_: pd.Series, values: pd.Series) -> pd.Series:
        return values.map(ids_).astype("Int64")

    frames = [
        (city, pd.DataFrame({"city_id": city_ids.to_numpy(), "code": city_ids.index})),
        (payment_method, pd.DataFrame({"payment_method_id": method_ids.to_numpy(), "code": method_ids.index})),
        (register, pd.DataFrame({"register_id": reg_ids.to_numpy(), "code": reg_ids.index})),
        (time_save, pd.DataFrame({"time_id": time_ids.to_numpy(), "date": dates,
                                  "year": [d.year for d in dates], "month": [d.month for d in dates], "day": [d.day for d in dates]})),
        (an_user, pd.DataFrame({"user_id": ids.to_numpy(), "msno": sample.msno, "is_churn": sample.is_churn})),
        (an_members, pd.DataFrame({"user_id": mem.msno.map(ids).to_numpy(), "city_id": lookup(city_ids, mem.city),
                                   "bd": mem.bd, "gender": mem.gender, "register_id": lookup(reg_ids, mem.registered_via),
                                   "registration_time_id": lookup(time_ids, _to_date(mem.registration_init_time))})),
        (an_transactions, pd.DataFrame({
            "id": np.arange(1, len(tx) + 1, dtype="int64"), "user_id": tx.msno.map(ids).to_numpy(),
            "payment_method_id": lookup(method_ids, tx.payment_method_id), "payment_plan_days": tx.payment_plan_days,
            "plan_list_price": tx.plan_list_price, "actual_amount_paid": tx.actual_amount_paid,
            "is_auto_renew": tx.is_auto_renew, "transaction_time_id": lookup(time_ids, _to_date(tx.transaction_date)),
            "expire_time_id": lookup(time_ids, _to_date(tx.membership_expire_date)), "is_cancel": tx.is_cancel})),
        (an_logs, pd.DataFrame({"id": np.arange(1, len(lg) + 1, dtype="int64"), "user_id": lg.msno.map(ids).to_numpy(),
                                "time_id": lookup(time_ids, _to_date(lg.date)), **{c: lg[c] for c in features.LOG_METRICS}})),
    ]
    return _replace(analytic_url(url), an_meta, AN_DATA_TABLES, frames, progress)


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
        return pd.DataFrame([{"table": t.name, "rows": conn.execute(select(func.count()).select_from(t)).scalar_one()}
                             for t in reversed(tables)])


def available_months(url: str | None = None, recipe: str = "pit") -> list[str]:
    """Expiry months that have users to score (a cohort with rows of the recipe), oldest first."""
    table = features_pit if recipe == "pit" else features_original
    q = (select(table.c.month).distinct()
         .join(cohort, (cohort.c.user_id == table.c.user_id) & (cohort.c.month == table.c.month))
         .order_by(table.c.month))
    try:
        with engine(url).connect() as conn:
            return [r[0] for r in conn.execute(q)]
    except Exception as exc:  # noqa: BLE001 — turned into one sentence for the dashboard
        raise DatabaseError(f"the application database at {redact(app_url(url))} cannot be read "
                            f"(has `study churn export-db` been run?): {str(exc).splitlines()[0][:200]}") from exc


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
        q = (select(frame_cache.c.arrow).where(frame_cache.c.recipe == recipe, frame_cache.c.month == month)
             .order_by(frame_cache.c.part))
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
        cols = [user.c.msno, t.c.month, t.c.expiry_date, *[t.c[c] for c in features.pit_dtypes() if c not in ("msno", "month")]]
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
            return pd.DataFrame(res.fetchall(), columns=list(res.keys()))

    j = lambda t: t.join(user, user.c.user_id == t.c.user_id)  # noqa: E731
    m = fetch(select(user.c.msno, members).select_from(j(members)).order_by(members.c.file_row))
    if len(m):
        m["registration_init_time"] = _from_date(m.registration_init_time)
        out["members_v3.csv"] = m
    for name in TX_FILES:
        t = fetch(select(user.c.msno, transactions).select_from(j(transactions))
                  .where(transactions.c.source_file == name).order_by(transactions.c.file_row))
        if len(t):
            for c in ("transaction_date", "membership_expire_date"):
                t[c] = _from_date(t[c])
            out[name] = t
    for name in LOG_FILES:
        g = fetch(select(user.c.msno, logs).select_from(j(logs)).where(logs.c.source_file == name).order_by(logs.c.file_row))
        if len(g):
            g["date"] = _from_date(g.date)
            out[name] = g
    for name in LABEL_FILES:
        lab = fetch(select(user.c.msno, labels).select_from(j(labels)).where(labels.c.source_file == name)
                    .order_by(labels.c.file_row))
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
        checks.append({"recipe": "point-in-time", "month": m, "rows": len(mem),
                       "rebuilt from SQL = in memory": _same(pit_sql[pit_sql.month == m], mem),
                       "cached frame = in memory": _same(month_frame(m, url).drop(columns="expiry_date"), in_cohort(mem)),
                       "in memory = full data set's rows": _same(full[full.month == m], mem)})
    for m in available_months(url, "original"):
        mem = orig_mem[orig_mem.month == m]
        checks.append({"recipe": "original", "month": m, "rows": len(mem),
                       "rebuilt from SQL = in memory": _same(features.conform(orig_sql[orig_sql.month == m]),
                                                             features.conform(mem)),
                       "cached frame = in memory": _same(month_frame(m, url, "original"),
                                                         features.conform(in_cohort(mem, True)))})
    return pd.DataFrame(checks)


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
            conn.execute(update(log_model).where(log_model.c.metrics_from.is_(None)).values(metrics_from=METRICS_FROM_OLD))


def log_evaluation(scores: dict, model: str, source: str, n_users: int, threshold: float, url: str | None = None,
                   when: dt.datetime | None = None) -> None:
    """Append one evaluation to ``log_model`` (its own short transaction)."""
    eng = engine(url)
    ensure_log_model(eng)
    row = {"metrics_from": METRICS_FROM, "evaluated_at": (when or dt.datetime.now(dt.timezone.utc)).replace(tzinfo=None, microsecond=0),
           "model": str(model)[:64], "source": str(source)[:TEXT_ID], "n_users": int(n_users), "threshold": float(threshold),
           **{col: (None if scores.get(name) is None or pd.isna(scores.get(name)) else float(scores[name]))
              for name, col in METRICS.items()}}
    with eng.begin() as conn:
        conn.execute(insert(log_model), [row])


def metric_history(url: str | None = None, limit: int = 500) -> pd.DataFrame:
    eng = engine(url)
    ensure_log_model(eng)
    q = select(log_model).order_by(log_model.c.evaluated_at, log_model.c.id).limit(int(limit))
    with eng.connect() as conn:
        res = conn.execute(q)
        df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
    return df.rename(columns={v: k for k, v in METRICS.items()})


def read_meta(url: str | None = None) -> dict[str, str]:
    with engine(url).connect() as conn:
        return {k: v for k, v in conn.execute(select(meta.c.key, meta.c.value))}


def schema_table(metadata: MetaData) -> pd.DataFrame:
    """One line per table: columns, primary key, foreign keys, indexes (from the metadata)."""
    rows = []
    for t in metadata.sorted_tables:
        rows.append({"table": t.name, "columns": len(t.columns), "primary key": ", ".join(c.name for c in t.primary_key),
                     "foreign keys": ", ".join(f"{fk.parent.name} → {fk.column.table.name}" for fk in t.foreign_keys),
                     "indexes": ", ".join(f"({', '.join(c.name for c in ix.columns)})" for ix in t.indexes)})
    return pd.DataFrame(rows)


def er_diagram(metadata: MetaData) -> str:
    """A Mermaid ER diagram generated from the metadata (tables, columns, keys, relations)."""
    lines = ["erDiagram"]
    for t in metadata.sorted_tables:
        lines.append(f"    {t.name.upper()} {{")
        for c in t.columns:
            key = "PK" if c.primary_key else ("FK" if c.foreign_keys else "")
            typ = type(c.type).__name__.lower()
            lines.append(f"        {typ} {c.name} {key}".rstrip())
        lines.append("    }")
    for t in metadata.sorted_tables:
        for fk in t.foreign_keys:
            lines.append(f"    {fk.column.table.name.upper()} ||--o{{ {t.name.upper()} : \"{fk.parent.name}\"")
    return "\n".join(lines)
