"""The databases on both engines: SQLite (embedded) and a real MariaDB when one is reachable
(``.ci/run`` starts one and sets STUDY_TEST_MARIADB_URL; elsewhere those cases skip with a reason).

Covered: the round trip (features rebuilt from SQL equal the in-memory frames, dtypes included),
idempotence, atomicity, injection and markup strings stored verbatim and never executed, dates
and types, the month queries and the metric history."""

from __future__ import annotations

import datetime as dt
import os
import tempfile

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import inspect, text

from study.churn import data, database as db, features
from study.churn.data import RawSource
from study.churn.db.connection import result_frame

from conftest import unavailable

MARIADB_ENV = "STUDY_TEST_MARIADB_URL"


@pytest.fixture(params=["sqlite", "mariadb"])
def url(request, tmp_path):
    """An empty application database on each engine (its analytic twin beside it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'application.sqlite').as_posix()}"
        return
    server = os.environ.get(MARIADB_ENV)
    if not server:
        unavailable(f"no MariaDB server: set {MARIADB_ENV} (./.ci/run installs and starts one)")
    for u, md in ((server, db.app_meta), (db.analytic_url(app=server), db.an_meta)):
        eng = db.engine(u)
        md.drop_all(eng)
    yield server


def _dump(u: str) -> dict[str, pd.DataFrame]:
    """Every table's content, ordered by its primary key (for exact comparisons)."""
    eng = db.engine(u)
    out = {}
    with eng.connect() as conn:
        for t in [*db.APP_DATA_TABLES, db.log_model]:
            if t.name == "meta" or not inspect(conn).has_table(t.name):
                continue
            res = conn.execute(t.select().order_by(*t.primary_key.columns))
            out[t.name] = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
    return out


@pytest.fixture(scope="module")
def small_users(quick_source):
    return db.test_users(quick_source)


# ---------------------------------------------------------------------------------------------
def test_round_trip_features_rebuilt_from_sql_equal_the_in_memory_ones(url, quick_source, small_users):
    counts = db.export_application(quick_source, url, users=small_users)
    assert counts["user"] == len(small_users) > 100 and counts["logs"] > 1000
    with tempfile.TemporaryDirectory() as tmp:
        pit_mem, orig_mem = db.feature_frames(db.write_raw(db.raw_rows(quick_source, small_users), tmp))
    pit_sql, orig_sql = db.rebuild_features(url)
    pd.testing.assert_frame_equal(pit_sql, pit_mem)
    pd.testing.assert_frame_equal(orig_sql, orig_mem)
    # point-in-time features are per user: equal to the full data set's rows of these users
    full = features.point_in_time(quick_source, months=db.PIT_MONTHS)
    pd.testing.assert_frame_equal(full[full.msno.isin(set(small_users))].reset_index(drop=True), pit_mem)
    assert db.available_months(url) == list(db.PIT_MONTHS)
    assert db.available_months(url, "original") == ["2017-02", "2017-03"]
    for m in db.PIT_MONTHS:
        stored, rows = db.month_frame(m, url), db.month_frame(m, url, from_rows=True)
        pd.testing.assert_frame_equal(stored, rows)  # the cached Arrow parts = the per-user rows
        assert (
            stored.expiry_date.dt.strftime("%Y-%m").eq(m).mean() > 0.9
        )  # expiring in the month (a few cancel earlier)
        pd.testing.assert_frame_equal(
            stored.drop(columns="expiry_date"), pit_mem[pit_mem.month == m].reset_index(drop=True)
        )
    checks = db.verify_round_trip(quick_source, small_users, url)
    assert len(checks) == 5 and checks.filter(like="=").fillna(True).all().all()
    for m in ("2017-02", "2017-03"):
        stored = db.month_frame(m, url, "original")
        pd.testing.assert_frame_equal(stored, db.month_frame(m, url, "original", from_rows=True))
        pd.testing.assert_frame_equal(stored, features.conform(orig_mem[orig_mem.month == m]))


def test_export_twice_gives_the_same_content(url, quick_source, small_users):
    db.export_application(quick_source, url, users=small_users[:60])
    first = _dump(url)
    db.export_application(quick_source, url, users=small_users[:60])
    second = _dump(url)
    assert set(first) == set(second)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name], obj=name)
    an = db.analytic_url(app=url)
    c1 = db.export_analytic(quick_source, an, fraction=0.02)
    c2 = db.export_analytic(quick_source, an, fraction=0.02)
    assert c1 == c2
    assert db.row_counts(an, analytic=True).set_index("table").rows.to_dict() == c1


def _fail_after_writing(monkeypatch, table_name: str) -> list:
    """Make the export fail right after it has written ``table_name`` (inside its transaction)."""
    from study.churn.db import export  # where the export looks the function up

    real, written = export._bulk_insert, []

    def insert_then_fail(conn, table, df, progress=None):
        n = real(conn, table, df, progress)
        written.append(table.name)
        if table.name == table_name:
            raise RuntimeError(f"simulated failure after writing {table.name}")
        return n

    monkeypatch.setattr(export, "_bulk_insert", insert_then_fail)
    return written


def test_a_failed_export_leaves_the_previous_content(url, quick_source, small_users, monkeypatch):
    db.export_application(quick_source, url, users=small_users[:40])
    db.log_evaluation({"ROC AUC": 0.8, "log loss": 0.3}, "champion", "test", 40, 0.5, url=url)
    before = _dump(url)
    with monkeypatch.context() as m, pytest.raises(RuntimeError, match="simulated failure"):
        written = _fail_after_writing(m, "logs")
        db.export_application(quick_source, url, users=small_users[40:90])
    assert "logs" in written and len(written) > 1  # rows were written before the failure...
    after = _dump(url)
    for name in before:  # ...and none of them remain
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    an = db.analytic_url(app=url)
    db.export_analytic(quick_source, an, fraction=0.02)
    counts = db.row_counts(an, analytic=True)
    with monkeypatch.context() as m, pytest.raises(RuntimeError, match="simulated failure"):
        _fail_after_writing(m, "transactions")
        db.export_analytic(quick_source, an, fraction=0.05)
    pd.testing.assert_frame_equal(db.row_counts(an, analytic=True), counts)


# ---------------------------------------------------------------------------------------------
HOSTILE = [
    "'; DROP TABLE user; --",
    "<script>alert('x')</script>",
    'Robert"); DELETE FROM logs; --',
    "1' OR '1'='1",
    'ünïcødé 😀 \\ % _ , "quoted"',
]


def _hostile_source(folder) -> tuple[RawSource, list[str]]:
    """Raw files whose ids and genders are injection and markup strings (March labels, February history)."""
    folder.mkdir()
    ids = [f"{h}{i:02d}" for i, h in enumerate(HOSTILE)]
    tx = pd.DataFrame(
        {
            "msno": ids,
            "payment_method_id": 41,
            "payment_plan_days": 30,
            "plan_list_price": 149,
            "actual_amount_paid": 149,
            "is_auto_renew": 1,
            "transaction_date": 20170210,
            "membership_expire_date": [20170310, 20170312, 19700101, 20280101, 20170315],
            "is_cancel": 0,
        }
    )
    tx.to_csv(folder / "transactions_v2.csv", index=False)
    pd.DataFrame(
        {
            "msno": ids,
            "city": 1,
            "bd": 30,
            "gender": HOSTILE[::-1],
            "registered_via": 7,
            "registration_init_time": 20150101,
        }
    ).to_csv(folder / "members_v3.csv", index=False)
    logs = pd.DataFrame(
        {
            "msno": np.repeat(ids, 3),
            "date": np.tile([20170205, 20170215, 20170225], len(ids)),
            "num_25": 1,
            "num_50": 0,
            "num_75": 0,
            "num_985": 0,
            "num_100": 5,
            "num_unq": 4,
            "total_secs": np.tile([1234.5678901234, -3.5e-7, 9.87654321e12], len(ids)),
        }
    )
    logs.to_csv(folder / "user_logs_v2.csv", index=False)
    pd.DataFrame({"msno": ids, "is_churn": [0, 1, 0, 1, 0]}).to_csv(folder / "train_v2.csv", index=False)
    return RawSource(folder, "real"), ids


def test_injection_and_markup_strings_are_stored_verbatim_and_never_executed(url, tmp_path):
    src, ids = _hostile_source(tmp_path / "hostile")
    db.export_application(src, url, users=pd.Series(ids), months=("2017-03",))
    raw = db.rebuild_raw(url)
    assert sorted(raw["transactions_v2.csv"].msno) == sorted(ids)
    assert sorted(raw["members_v3.csv"].gender) == sorted(HOSTILE)
    frame = db.month_frame("2017-03", url)
    assert set(frame.msno) == set(ids) and set(frame.gender) == set(HOSTILE)
    # the hostile month inputs never reach a query
    for bad in ["2017-03' OR '1'='1", "2017-03; DROP TABLE user", "<b>2017-03</b>", "", "2017-13", None]:
        with pytest.raises(ValueError, match="month must look like"):
            db.month_frame(bad, url)
    db.log_evaluation({"ROC AUC": 0.5}, HOSTILE[0], HOSTILE[1], 5, 0.5, url=url)
    assert db.metric_history(url).source.tolist() == [HOSTILE[1]]
    assert db.row_counts(url).set_index("table").rows["user"] == len(ids)  # every table still there


def test_dates_and_types_are_preserved(url, tmp_path):
    src, ids = _hostile_source(tmp_path / "typed")
    db.export_application(src, url, users=pd.Series(ids), months=("2017-03",))
    raw = db.rebuild_raw(url)
    tx = raw["transactions_v2.csv"].sort_values("file_row")
    assert tx.membership_expire_date.tolist() == [20170310, 20170312, 19700101, 20280101, 20170315]
    stored = db.transactions_frame(url)  # what the Retention tab rebuilds memberships from
    assert sorted(stored.membership_expire_date) == sorted(tx.membership_expire_date)
    assert sorted(stored.transaction_date) == sorted(tx.transaction_date)
    orig = data.read_table(src.file("user_logs_v2.csv"), validate=False)
    back = raw["user_logs_v2.csv"].sort_values("file_row").reset_index(drop=True)
    np.testing.assert_array_equal(back.total_secs.to_numpy(), orig.total_secs.to_numpy())  # doubles bit for bit
    with db.engine(url).connect() as conn:
        row = conn.execute(
            text("SELECT transaction_date, membership_expire_date FROM transactions ORDER BY id")
        ).first()
    assert isinstance(row[0], (dt.date, str)) and str(row[0])[:10] == "2017-02-10", row  # the first row's date
    pit = db.month_frame("2017-03", url)
    assert pit.dtypes.drop("expiry_date").map(str).to_dict() == {
        c: ("str" if k == "str" else k) for c, k in features.pit_dtypes().items()
    }
    assert str(pit.expiry_date.dtype).startswith("datetime64")


def test_query_results_become_frames_column_by_column(url):
    """``result_frame`` reads a result column by column, each column's dtype inferred from its
    values: missing integers become NaN in a float column, missing text stays missing, an empty
    result keeps its columns."""
    q = "SELECT 1 AS n, 'a' AS s, 2.5 AS x UNION ALL SELECT NULL, 'b', NULL UNION ALL SELECT 3, NULL, 1.0"
    with db.engine(url).connect() as conn:
        got = result_frame(conn.execute(text(q)))
        empty = result_frame(conn.execute(text(f"SELECT * FROM ({q}) AS t WHERE n > 5")))
    assert list(got.columns) == ["n", "s", "x"] and len(got) == 3
    assert got.n.dtype == "float64" and got.n.fillna(-1).tolist() == [1.0, -1.0, 3.0]
    assert got.s.iloc[:2].tolist() == ["a", "b"] and pd.isna(got.s.iloc[2])
    assert got.x.astype(float).fillna(-1).tolist() == [2.5, -1.0, 1.0]  # MariaDB gives decimals
    assert list(empty.columns) == ["n", "s", "x"] and empty.empty


def test_months_history_and_messages(url, quick_source, small_users):
    with pytest.raises(db.DatabaseError, match="export-db"):
        db.available_months(
            url.replace("application.sqlite", "missing/none.sqlite")
            if url.startswith("sqlite")
            else url.replace("/study_test", "/no_such_database")
        )
    db.export_application(quick_source, url, users=small_users[:30])
    empty = db.month_frame("2016-05", url)
    assert empty.empty and "days_to_expiry" in empty.columns
    t0 = dt.datetime(2026, 1, 1, 12, 0, 0)
    db.log_evaluation(
        {"ROC AUC": 0.81, "log loss": 0.25, "MCC": float("nan")}, "champion", "month 2017-03", 30, 0.4, url=url, when=t0
    )
    db.log_evaluation(
        {"ROC AUC": 0.83, "log loss": 0.24},
        "original",
        "upload x.csv",
        12,
        0.5,
        url=url,
        when=t0 + dt.timedelta(hours=1),
    )
    db.export_application(quick_source, url, users=small_users[:30])  # an export keeps the history
    hist = db.metric_history(url)
    assert hist.model.tolist() == ["champion", "original"]
    assert hist["ROC AUC"].tolist() == [0.81, 0.83] and pd.isna(hist.MCC[0])


def test_urls_default_to_sqlite_files_and_hide_passwords(monkeypatch):
    monkeypatch.delenv(db.ENV_URL, raising=False)
    monkeypatch.delenv(db.ENV_ANALYTIC_URL, raising=False)
    assert db.app_url().endswith("data/db/application.sqlite")
    assert db.analytic_url().endswith("data/db/analytic.sqlite")
    assert db.analytic_url(app="mysql+pymysql://u:secret@h/crm") == "mysql+pymysql://u:secret@h/crm_analytic"
    assert "secret" not in db.redact("mysql+pymysql://u:secret@h/crm")
    monkeypatch.setenv(db.ENV_URL, "sqlite:///x/app.sqlite")
    assert db.app_url() == "sqlite:///x/app.sqlite"


def test_er_diagram_names_every_table_and_relation():
    mermaid = db.er_diagram(db.an_meta)
    for t in ("USER", "TRANSACTIONS", "LOGS", "CITY", "PAYMENT_METHOD", "REGISTER", "TIME_SAVE", "MEMBERS"):
        assert f"    {t} {{" in mermaid
    assert 'TIME_SAVE ||--o{ TRANSACTIONS : "expire_time_id"' in mermaid
    keys = db.schema_table(db.an_meta).set_index("table")
    assert (
        keys.loc["transactions", "foreign keys"].count("→") == 4 and "(user_id)" in keys.loc["transactions", "indexes"]
    )


def test_analytic_sample_is_stratified_and_consistent(quick_source, tmp_path):
    an = f"sqlite:///{(tmp_path / 'analytic.sqlite').as_posix()}"
    db.export_analytic(quick_source, an, fraction=0.05)
    lab = data.load(quick_source, "train_v2.csv", validate=False)
    with db.engine(an).connect() as conn:
        share = conn.execute(text("SELECT AVG(is_churn), COUNT(*) FROM user")).one()
        orphans = conn.execute(
            text(
                "SELECT COUNT(*) FROM transactions t LEFT JOIN user u ON u.user_id = t.user_id WHERE u.user_id IS NULL"
            )
        ).scalar_one()
    assert abs(share[1] - 0.05 * len(lab)) <= 1
    assert abs(share[0] - lab.is_churn.mean()) < 0.005
    assert orphans == 0


def test_log_model_rows_from_before_the_metrics_fix_are_flagged(url):
    """A log_model written before metrics came from the unrounded probabilities gains the
    ``metrics_from`` column; its old rows are flagged as wrong, new rows say "probabilities"."""
    from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert

    old = MetaData()
    table = Table(
        "log_model",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("evaluated_at", DateTime, nullable=False),
        Column("model", String(64), nullable=False),
        Column("source", String(255), nullable=False),
        Column("n_users", Integer, nullable=False),
        Column("threshold", db.DOUBLE, nullable=False),
        *[Column(c, db.DOUBLE) for c in db.METRICS.values()],
    )
    eng = db.engine(url)
    db.log_model.drop(eng, checkfirst=True)
    old.create_all(eng)
    with eng.begin() as conn:
        conn.execute(
            insert(table),
            [
                {
                    "evaluated_at": dt.datetime(2026, 11, 1, 10),
                    "model": "original",
                    "source": "upload processed_sample.csv",
                    "n_users": 6023,
                    "threshold": 0.5,
                    "roc_auc": 0.6724,
                    "log_loss": 1.428,
                }
            ],
        )
    db.log_evaluation(
        {"ROC AUC": 0.7939, "log loss": 0.4695}, "original", "upload processed_sample.csv", 6023, 0.5, url=url
    )
    hist = db.metric_history(url)
    assert hist.metrics_from.tolist() == [db.METRICS_FROM_OLD, db.METRICS_FROM]
    assert hist["ROC AUC"].tolist() == [0.6724, 0.7939]
    db.log_evaluation({"ROC AUC": 0.8}, "champion", "month 2017-03", 10, 0.5, url=url)  # migrated once only
    assert db.metric_history(url).metrics_from.tolist()[-1] == db.METRICS_FROM


def test_driver_rows_store_what_sqlalchemy_stores(url):
    """The export hands the driver ready tuples (``export._driver_rows``) instead of letting
    SQLAlchemy build each row's parameters: the stored values, read back raw, must be the same
    as SQLAlchemy's own insert gives (dates, timestamps, booleans, missing values of each kind)."""
    from sqlalchemy import Boolean, Column, Date, DateTime, Float, Integer, MetaData, String, Table, insert

    from study.churn.db import export

    md = MetaData()

    def columns():
        return [
            Column("k", Integer, primary_key=True, autoincrement=False),
            Column("s", String(40)),
            Column("d", Date),
            Column("f", Float),
            Column("t", DateTime),
            Column("b", Boolean),
            Column("n", Integer),
        ]

    fast, slow = Table("driver_rows_fast", md, *columns()), Table("driver_rows_slow", md, *columns())
    frame = pd.DataFrame(
        {
            "k": np.array([1, 2, 3]),
            "s": ["x", None, "'); DROP TABLE user; --"],
            "d": [dt.date(2017, 1, 2), None, dt.date(2017, 3, 31)],
            "f": [1.5, np.nan, -2.25],
            "t": pd.to_datetime(["2017-01-01 10:00:01.5", None, "2017-01-03 00:00:00.0"]),
            "b": [True, False, True],
            "n": pd.array([1, None, 3], dtype="Int64"),
        }
    )
    eng = db.engine(url)
    md.drop_all(eng)
    md.create_all(eng)
    try:
        with eng.begin() as conn:
            assert export._driver_rows(conn, fast, frame) is not None  # both engines take the fast path
            export._bulk_insert(conn, fast, frame)
            conn.execute(insert(slow), export._records(frame))
        with eng.connect() as conn:
            got = [conn.exec_driver_sql(f"SELECT * FROM {t.name} ORDER BY k").fetchall() for t in (fast, slow)]
    finally:
        md.drop_all(eng)
    assert got[0] == got[1]
    assert len(got[0]) == 3 and got[0][1][1:] == (None,) * 4 + (got[0][1][5], None)
