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

The code lives in :mod:`study.churn.db`, one module per responsibility (connection, schema,
raw rows, export, queries, audit, metric log); this module is their single entry point, so
callers keep one name (``from study.churn import database as db``)."""

from __future__ import annotations

from study.churn.db.audit import rebuild_features, rebuild_raw, verify_round_trip  # noqa: F401
from study.churn.db.connection import (  # noqa: F401
    CHUNK,
    ENV_ANALYTIC_URL,
    ENV_URL,
    MONTH,
    PIT_MONTHS,
    DatabaseError,
    analytic_url,
    app_url,
    backend_name,
    engine,
    redact,
)
from study.churn.db.export import (  # noqa: F401
    WRITE_SECONDS,
    _bulk_insert,
    _records,
    export_analytic,
    export_application,
    feature_frames,
    sample_users,
    test_users,
)
from study.churn.db.metric_log import (  # noqa: F401
    MONITORING_COLUMNS,
    ensure_log_model,
    log_evaluation,
    log_monitoring_run,
    metric_history,
    monitoring_history,
)
from study.churn.db.queries import (  # noqa: F401
    available_months,
    check_month,
    cohort_pairs,
    month_frame,
    month_frame_from_rows,
    read_meta,
    row_counts,
    transactions_frame,
)
from study.churn.db.raw import KIND, LABEL_FILES, LOG_FILES, TX_FILES, raw_rows, write_raw  # noqa: F401
from study.churn.db.schema import (  # noqa: F401
    AN_DATA_TABLES,
    APP_DATA_TABLES,
    CACHE_PART_BYTES,
    DOUBLE,
    METRICS,
    METRICS_FROM,
    METRICS_FROM_OLD,
    TEXT_ID,
    an_logs,
    an_members,
    an_meta,
    an_transactions,
    an_user,
    app_meta,
    city,
    cohort,
    er_diagram,
    features_original,
    features_pit,
    frame_cache,
    labels,
    log_model,
    logs,
    members,
    meta,
    payment_method,
    register,
    schema_table,
    time_save,
    transactions,
    user,
)
