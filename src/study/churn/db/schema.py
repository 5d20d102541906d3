"""The two schemas (SQLAlchemy Core): the application database the dashboard reads and the
analytic star schema; their documentation as a table and an ER diagram."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

from study.churn import features

DOUBLE = Float(precision=53)  # DOUBLE on MariaDB, DOUBLE PRECISION on PostgreSQL, REAL on SQLite
TEXT_ID = 255  # ids are 44 characters; the width leaves room for anything a user types

# ---------------------------------------------------------------------------------------------
# The application database.
app_meta = MetaData()
user = Table(
    "user",
    app_meta,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("msno", String(TEXT_ID), nullable=False, unique=True),
)
members = Table(
    "members",
    app_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("file_row", BigInteger, nullable=False),
    Column("city", Integer),
    Column("bd", Integer),
    Column("gender", String(TEXT_ID)),
    Column("registered_via", Integer),
    Column("registration_init_time", Date),
)
transactions = Table(
    "transactions",
    app_meta,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", Integer, ForeignKey("user.user_id"), nullable=False),
    Column("source_file", String(32), nullable=False),
    Column("file_row", BigInteger, nullable=False),
    Column("payment_method_id", Integer),
    Column("payment_plan_days", Integer),
    Column("plan_list_price", Integer),
    Column("actual_amount_paid", Integer),
    Column("is_auto_renew", SmallInteger),
    Column("transaction_date", Date),
    Column("membership_expire_date", Date),
    Column("is_cancel", SmallInteger),
    Index("ix_transactions_user", "user_id", "transaction_date"),
    Index("ix_transactions_expire", "membership_expire_date"),
)
logs = Table(
    "logs",
    app_meta,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", Integer, ForeignKey("user.user_id"), nullable=False),
    Column("source_file", String(32), nullable=False),
    Column("file_row", BigInteger, nullable=False),
    Column("date", Date, nullable=False),
    *[Column(m, Integer) for m in features.LOG_METRICS if m != "total_secs"],
    Column("total_secs", DOUBLE),
    Index("ix_logs_user_date", "user_id", "date"),
)
labels = Table(
    "labels",
    app_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("source_file", String(32), nullable=False),
    Column("file_row", BigInteger, nullable=False),
    Column("is_churn", SmallInteger, nullable=False),
)


def _sql_type(kind: str):
    return {"int64": BigInteger, "float64": DOUBLE, "str": String(TEXT_ID)}[kind]


features_pit = Table(
    "features_pit",
    app_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("expiry_date", Date, nullable=False),
    *[Column(c, _sql_type(k)) for c, k in features.pit_dtypes().items() if c not in ("msno", "month")],
    Index("ix_features_pit_month", "month", "expiry_date"),
)
# Which users the dashboard scores in each month: that month's held-out cohort (study.churn.cohorts).
cohort = Table(
    "cohort",
    app_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("month", String(7), primary_key=True),
    Index("ix_cohort_month", "month"),
)
_ORIGINAL_DATES = ("transaction_date", "membership_expire_date", "registration_init_time")
features_original = Table(
    "features_original",
    app_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("month", String(7), primary_key=True),
    *[
        Column(
            c,
            Date
            if c in _ORIGINAL_DATES
            else _sql_type("int64" if c in features._INT else "float64" if c in features._FLOAT else "str"),
        )
        for c in features.PROCESSED_COLUMNS
        if c != "msno"
    ],
    Index("ix_features_original_month", "month", "membership_expire_date"),
)
# Each month's scoring frame, also as compressed Arrow IPC in parts (the month query then reads a
# few rows instead of one per user: ~10x faster at 45 k users). The per-user tables stay the source
# of truth; tests check that both paths give the same frame.
frame_cache = Table(
    "frame_cache",
    app_meta,
    Column("recipe", String(16), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("part", Integer, primary_key=True, autoincrement=False),
    Column("arrow", LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"), nullable=False),
)
CACHE_PART_BYTES = 4_000_000  # below MariaDB's default max_allowed_packet (16 MB)
METRICS = {
    "ROC AUC": "roc_auc",
    "log loss": "log_loss",
    "F1": "f1",
    "precision": "precision",
    "recall": "recall",
    "MCC": "mcc",
    "PR AUC": "pr_auc",
    "Brier": "brier",
}
log_model = Table(
    "log_model",
    app_meta,
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
# The monitoring history: one row per (run, month, figure) — drift of an input or of the score
# (PSI, KS), a data-quality check, a performance metric once labels have arrived. Like log_model,
# appended by the dashboard and never touched by an export.
log_monitoring = Table(
    "log_monitoring",
    app_meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("computed_at", DateTime, nullable=False),
    Column("model", String(64), nullable=False),
    Column("month", String(7), nullable=False),
    Column("reference_month", String(7), nullable=False),
    Column("kind", String(16), nullable=False),  # drift, quality, performance
    Column("name", String(TEXT_ID), nullable=False),
    Column("statistic", String(16), nullable=False),  # psi, ks, failing share, ROC AUC, …
    Column("value", DOUBLE),
    Column("status", String(40), nullable=False),
    Index("ix_log_monitoring_run", "model", "computed_at"),
)
METRICS_FROM = "probabilities"
METRICS_FROM_OLD = "rounded risk % (before the fix: wrong)"
meta = Table(
    "meta",
    app_meta,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
# Children first: the order rows are deleted in (and the reverse of the order they are inserted in).
APP_DATA_TABLES = [
    frame_cache,
    cohort,
    features_original,
    features_pit,
    labels,
    logs,
    transactions,
    members,
    user,
    meta,
]

# ---------------------------------------------------------------------------------------------
# The analytic database: a star around the user, with code tables and a date dimension.
an_meta = MetaData()
city = Table(
    "city",
    an_meta,
    Column("city_id", Integer, primary_key=True, autoincrement=False),
    Column("code", Integer, nullable=False, unique=True),
)
payment_method = Table(
    "payment_method",
    an_meta,
    Column("payment_method_id", Integer, primary_key=True, autoincrement=False),
    Column("code", Integer, nullable=False, unique=True),
)
register = Table(
    "register",
    an_meta,
    Column("register_id", Integer, primary_key=True, autoincrement=False),
    Column("code", Integer, nullable=False, unique=True),
)
time_save = Table(
    "time_save",
    an_meta,
    Column("time_id", Integer, primary_key=True, autoincrement=False),
    Column("date", Date, nullable=False, unique=True),
    Column("year", SmallInteger, nullable=False),
    Column("month", SmallInteger, nullable=False),
    Column("day", SmallInteger, nullable=False),
)
an_user = Table(
    "user",
    an_meta,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("msno", String(TEXT_ID), nullable=False, unique=True),
    Column("is_churn", SmallInteger, nullable=False),
)
an_members = Table(
    "members",
    an_meta,
    Column("user_id", Integer, ForeignKey("user.user_id"), primary_key=True),
    Column("city_id", Integer, ForeignKey("city.city_id")),
    Column("bd", Integer),
    Column("gender", String(TEXT_ID)),
    Column("register_id", Integer, ForeignKey("register.register_id")),
    Column("registration_time_id", Integer, ForeignKey("time_save.time_id")),
    Index("ix_an_members_city", "city_id"),
    Index("ix_an_members_register", "register_id"),
)
an_transactions = Table(
    "transactions",
    an_meta,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", Integer, ForeignKey("user.user_id"), nullable=False),
    Column("payment_method_id", Integer, ForeignKey("payment_method.payment_method_id")),
    Column("payment_plan_days", Integer),
    Column("plan_list_price", Integer),
    Column("actual_amount_paid", Integer),
    Column("is_auto_renew", SmallInteger),
    Column("transaction_time_id", Integer, ForeignKey("time_save.time_id")),
    Column("expire_time_id", Integer, ForeignKey("time_save.time_id")),
    Column("is_cancel", SmallInteger),
    Index("ix_an_tx_user", "user_id"),
    Index("ix_an_tx_expire", "expire_time_id"),
    Index("ix_an_tx_method", "payment_method_id"),
)
an_logs = Table(
    "logs",
    an_meta,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", Integer, ForeignKey("user.user_id"), nullable=False),
    Column("time_id", Integer, ForeignKey("time_save.time_id"), nullable=False),
    *[Column(m, Integer) for m in features.LOG_METRICS if m != "total_secs"],
    Column("total_secs", DOUBLE),
    Index("ix_an_logs_user_time", "user_id", "time_id"),
)
AN_DATA_TABLES = [an_logs, an_transactions, an_members, an_user, time_save, register, payment_method, city]


def schema_table(metadata: MetaData) -> pd.DataFrame:
    """One line per table: columns, primary key, foreign keys, indexes (from the metadata)."""
    rows = []
    for t in metadata.sorted_tables:
        rows.append(
            {
                "table": t.name,
                "columns": len(t.columns),
                "primary key": ", ".join(c.name for c in t.primary_key),
                "foreign keys": ", ".join(f"{fk.parent.name} → {fk.column.table.name}" for fk in t.foreign_keys),
                "indexes": ", ".join(f"({', '.join(c.name for c in ix.columns)})" for ix in t.indexes),
            }
        )
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
            lines.append(f'    {fk.column.table.name.upper()} ||--o{{ {t.name.upper()} : "{fk.parent.name}"')
    return "\n".join(lines)
