"""Per-user datasets on DuckDB: the original study's recipe, exactly, and a point-in-time set.

* :func:`original_recipe` reproduces FACTS.md section 3 (the 33-column processed format, same
  names and encodings), so the original study's processed CSVs and ours are interchangeable.
  Its features partly see the post-expiry renewal (FACTS.md section 5): it is the baseline.
* :func:`point_in_time` builds one row per labelled user and expiry month from rows dated
  strictly before the first day of that month: no row can see the renewal that decides the label.
* :func:`original_recipe_pandas` is a small pandas reference of the recipe, used by tests and the
  benchmark only (DuckDB is the engine: out of core, ~10x faster at full scale).
"""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pa

from study.churn.data import COLUMNS, RawDataError, RawSource, is_url, parse_yyyymmdd, read_sql
from study.churn.labels import churn_labels

LOG_METRICS = ["num_25", "num_50", "num_75", "num_985", "num_100", "num_unq", "total_secs"]
PROCESSED_COLUMNS = [
    "msno",
    "payment_method_id",
    "payment_plan_days",
    "plan_list_price",
    "actual_amount_paid",
    "is_auto_renew",
    "transaction_date",
    "membership_expire_date",
    "is_cancel",
    "transaction_count",
    "city",
    "bd",
    "gender",
    "registered_via",
    "registration_init_time",
    *[f"{m}Sum" for m in LOG_METRICS],
    *[f"{m}Mean" for m in LOG_METRICS],
    "count",
    "is_churn",
    "price_per_day",
    "days_fidelity",
]
_INT = [
    "payment_method_id",
    "payment_plan_days",
    "plan_list_price",
    "actual_amount_paid",
    "is_auto_renew",
    "is_cancel",
    "transaction_count",
    "city",
    "bd",
    "registered_via",
    "count",
    "is_churn",
    "days_fidelity",
]
_STR = ["msno", "transaction_date", "membership_expire_date", "gender", "registration_init_time"]
_FLOAT = [f"{m}Sum" for m in LOG_METRICS] + [f"{m}Mean" for m in LOG_METRICS] + ["price_per_day"]
Z_LIMIT = 3.0
UNKNOWN_GENDER = "inconnu"


def short_msno(msno: pd.Series) -> pd.Series:
    """The original study's key: characters 10..21 of the 44-character msno."""
    return msno.str.slice(10, 22)


def conform(df: pd.DataFrame, with_label: bool = True) -> pd.DataFrame:
    """Canonical column order and dtypes of the processed format (int64, float64, str)."""
    cols = [c for c in PROCESSED_COLUMNS if with_label or c != "is_churn"]
    out = df[cols].copy()
    for c in cols:
        if c in _INT:
            out[c] = out[c].astype("int64")
        elif c in _FLOAT:
            out[c] = out[c].astype("float64")
        else:
            out[c] = out[c].astype("str")
    return out.sort_values("msno", kind="mergesort").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# The original recipe on DuckDB.
def connect(
    threads: int = 2, memory_limit: str | None = None, spill_dir: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB; past ``memory_limit`` it spills to ``spill_dir`` instead of growing."""
    con = duckdb.connect()
    con.execute(f"SET threads TO {int(threads)}")
    con.execute("SET enable_progress_bar = false")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if spill_dir:
        con.execute(f"SET temp_directory = '{spill_dir}'")
    return con


def _ymd(col: str) -> str:
    """YYYYMMDD integer → DATE (make_date is fast and exact for valid dates)."""
    return f"make_date(({col} // 10000)::INT, (({col} // 100) % 100)::INT, ({col} % 100)::INT)"


def _log_rows_sql(month: str | None) -> str:
    """The daily log rows in a compact form (12-character key, counts as INTEGER): the z-score
    statistics, medians and sums then run from one table."""
    cols = ", ".join(f"{m}::INTEGER AS {m}" if m != "total_secs" else m for m in LOG_METRICS)
    return f"SELECT substr(msno, 11, 12) AS msno, {cols} FROM raw_logs{_month_filter('date', month)}"


def _log_median_steps() -> list[tuple[str, str]]:
    """The tables behind the z-score capping, as (name, query) steps built in order: the mean and
    population sd of each metric (``log_stats``), then the exact median of each metric's cells
    with |z| <= 3 (``log_buckets``, ``log_medians``; see :func:`_exact_medians_sql`). Kept as
    tables so that Spark computes each once (it inlines a query's CTEs wherever they are read)."""
    stats = ", ".join(f"avg({m}) AS mu_{m}, stddev_pop({m}) AS sd_{m}" for m in LOG_METRICS)
    return [("log_stats", f"SELECT {stats} FROM logs"), *_exact_medians_sql()]


def _capped_log_sql() -> str:
    """Daily log rows with each |z| > 3 cell replaced by the median of the column's other cells
    (a CTE ``capped`` over the tables of :func:`_log_median_steps`)."""
    capped = ", ".join(
        f"CASE WHEN coalesce({_z(m)}, 0) > {Z_LIMIT} THEN med_{m} ELSE {m}::DOUBLE END AS {m}" for m in LOG_METRICS
    )
    return f"capped AS (SELECT msno, {capped} FROM logs, log_stats, log_medians)"


def _z(m: str) -> str:
    return f"abs(({m} - mu_{m}) / nullif(sd_{m}, 0))"


MEDIAN_BUCKETS_PER_SD = 10_000


def _exact_medians_sql() -> list[tuple[str, str]]:
    """The exact median of each metric's cells with |z| <= 3 (``log_medians``: one row,
    ``med_<metric>``), in steps that distribute. A median aggregate holds every value of the month
    in one task (Spark ran out of driver memory at the full scale); this finds the two middle cells
    in two passes instead: count the cells per narrow bucket of z (10,000 per standard deviation,
    ordered like the values) and place the middle ranks (n-1)//2 and n//2 in their buckets from the
    cumulative counts; then rank only the cells of those buckets (an integer count fills one value
    per bucket, which needs no ranking at all). An even count interpolates like DuckDB's
    ``median``: lo + (hi - lo) * 0.5. Equal, bit for bit, to ``median`` on the twins."""
    inliers = " UNION ALL ".join(
        f"SELECT '{m}' AS metric, {m}::DOUBLE AS v, "
        f"CAST(floor(coalesce(({m} - mu_{m}) / nullif(sd_{m}, 0), 0) * {MEDIAN_BUCKETS_PER_SD}) AS BIGINT) AS b "
        f"FROM logs, log_stats WHERE {m} IS NOT NULL AND coalesce({_z(m)}, 0) <= {Z_LIMIT}"
        for m in LOG_METRICS
    )
    buckets = f"""
        WITH per_bucket AS (SELECT metric, b, count(*) AS c, min(v) AS lo, max(v) AS hi
                            FROM ({inliers}) GROUP BY metric, b)
        SELECT metric, b, lo, hi, c,
               sum(c) OVER (PARTITION BY metric ORDER BY b ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - c AS before,
               sum(c) OVER (PARTITION BY metric) AS n
        FROM per_bucket"""
    pivot = ", ".join(f"max(CASE WHEN metric = '{m}' THEN med END) AS med_{m}" for m in LOG_METRICS)
    medians = f"""
        WITH targets AS (SELECT DISTINCT metric, (n - 1) // 2 AS k FROM log_buckets
                         UNION SELECT DISTINCT metric, n // 2 AS k FROM log_buckets),
        hits AS (SELECT t.metric, t.k, c.b, c.before, c.lo, c.hi FROM targets t JOIN log_buckets c
                 ON t.metric = c.metric AND t.k >= c.before AND t.k < c.before + c.c),
        spread AS (SELECT DISTINCT metric, b, before FROM hits WHERE lo < hi),
        ranked AS (SELECT i.metric, i.v, s.before + row_number() OVER (PARTITION BY i.metric, i.b ORDER BY i.v) - 1 AS k
                   FROM ({inliers}) i JOIN spread s ON i.metric = s.metric AND i.b = s.b),
        middle AS (SELECT metric, k, lo AS v FROM hits WHERE lo = hi
                   UNION ALL SELECT h.metric, h.k, r.v FROM hits h JOIN ranked r ON h.metric = r.metric AND h.k = r.k
                   WHERE h.lo < h.hi),
        per_metric AS (SELECT metric, min(v) + (max(v) - min(v)) * 0.5 AS med FROM middle GROUP BY metric)
        SELECT {pivot} FROM per_metric"""
    return [("log_buckets", buckets), ("log_medians", medians)]


def original_recipe(
    source: RawSource,
    label_file: str = "train_v2.csv",
    tx_file: str = "transactions_v2.csv",
    log_file: str = "user_logs_v2.csv",
    threads: int = 2,
    memory_limit: str = "4GB",
    month: str | None = None,
    engine: str = "duckdb",
    master: str | None = None,
) -> pd.DataFrame:
    """FACTS.md section 3 → the 33-column processed frame (sorted by msno), on DuckDB or on Spark
    (``engine="spark"``, ``master`` a Spark master URL; the same SQL, see :mod:`study.churn.engines`).

    ``month`` ("YYYY-MM") keeps only the transactions and log rows dated in that month, as the v2
    files hold March only: see :func:`original_recipe_february`. ``memory_limit``: DuckDB spills
    past it (4 GB: the full scale, 29 M March log rows, builds in 45 s). The exact medians of the
    z-score capping are computed in passes that distribute (:func:`_exact_medians_sql`)."""
    from study.churn.engines import open_engine

    eng = open_engine(engine, master, threads=threads, memory_limit=memory_limit)
    try:
        return _original_recipe(source, label_file, tx_file, log_file, eng, month)
    finally:
        eng.close()


FEBRUARY_FILES = ("train.csv", "transactions.csv", "user_logs.csv")


def has_february(source: RawSource) -> bool:
    """Whether the v1 files of February (labels, transactions, logs) are there (the twin has them;
    a copy of the real release may hold the v2 files only)."""
    return all(source.file(f).is_file() for f in FEBRUARY_FILES)


def original_recipe_february(source: RawSource, **kw) -> pd.DataFrame:
    """The recipe one month earlier: February labels (train.csv), the v1 files seen as the v2 files
    see March (February's transactions and running memberships, February's logs). Used to fit the original recipe on an earlier
    month and test it on March (the temporal protocol)."""
    return original_recipe(source, "train.csv", "transactions.csv", "user_logs.csv", month="2017-02", **kw)


def _tx_sql(raw: str, month: str | None) -> str:
    """All rows of the table ``raw`` (``pos``: the file order), or the v2-like view of one month:
    its transactions plus, for members covered on the 1st without a row in the month, the row that
    defines their running membership (the latest uncancelled one before the month whose expiry
    reaches it), as transactions_v2 does for March. ``part``, ``pos`` keep the file order (ties
    depend on it): the month's rows first, then the running memberships."""
    if not month:
        return f"SELECT *, 0 AS part FROM {raw}"
    start = pd.Timestamp(f"{month}-01")
    return f"""
        WITH inside AS (SELECT * FROM {raw}{_month_filter("transaction_date", month)}),
        ranked AS (
            SELECT *, row_number() OVER (PARTITION BY msno ORDER BY transaction_date DESC, membership_expire_date DESC, pos) AS rk
            FROM {raw} WHERE transaction_date < {start:%Y%m%d} AND is_cancel = 0),
        prior AS (SELECT {_TX_COLUMNS}, pos FROM ranked
            WHERE rk = 1 AND membership_expire_date >= {start:%Y%m%d} AND msno NOT IN (SELECT msno FROM inside))
        SELECT {_TX_COLUMNS}, pos, 0 AS part FROM inside UNION ALL SELECT {_TX_COLUMNS}, pos, 1 AS part FROM prior"""


_TX_COLUMNS = ", ".join(COLUMNS["transactions"])


def _month_filter(column: str, month: str | None) -> str:
    if not month:
        return ""
    start = pd.Timestamp(f"{month}-01")
    end = start + pd.offsets.MonthEnd(0)
    return f" WHERE {column} BETWEEN {start:%Y%m%d} AND {end:%Y%m%d}"


def _original_recipe(
    source: RawSource, label_file: str, tx_file: str, log_file: str, eng, month: str | None = None
) -> pd.DataFrame:
    """The recipe as named tables on an engine (DuckDB or Spark run this same SQL text)."""
    missing = [f for f in (tx_file, log_file, "members_v3.csv", label_file) if not eng.exists(source.file(f))]
    if missing:
        raise RawDataError(f"{source.path}: missing raw file(s) {', '.join(missing)}")
    eng.load("raw_tx", source.file(tx_file), "transactions", position=True)
    eng.create("tx", _tx_sql("raw_tx", month))
    eng.load("raw_logs", source.file(log_file), "user_logs")
    eng.create("logs", _log_rows_sql(month))
    eng.load("members", source.file("members_v3.csv"), "members")
    eng.load("labels", source.file(label_file), "train")
    for name, step in _log_median_steps():
        eng.create(name, step)
    # exact decimal sums (see _exact_sum): a DOUBLE sum's last bits change from run to run
    sums = ", ".join(f"sum({m}::DECIMAL(38, 6))::DOUBLE AS {m}Sum" for m in LOG_METRICS)
    # (the mean as that exact sum over the count: identical on both engines; Spark's decimal average
    # rounds to 10 digits)
    means = ", ".join(f"sum({m}::DECIMAL(38, 6))::DOUBLE / count(*) AS {m}Mean" for m in LOG_METRICS)
    sql = f"""
    WITH {_capped_log_sql()},
    agg AS (SELECT msno, {sums}, {means}, count(*) AS count FROM capped GROUP BY msno),
    ranked AS (
        SELECT substr(msno, 11, 12) AS msno, payment_method_id, payment_plan_days, plan_list_price,
               actual_amount_paid, is_auto_renew, transaction_date, membership_expire_date, is_cancel,
               count(*) OVER (PARTITION BY msno) AS transaction_count,
               row_number() OVER (PARTITION BY msno ORDER BY membership_expire_date DESC, part, pos) AS rk
        FROM tx),
    t AS (SELECT * FROM ranked WHERE rk = 1),
    m AS (SELECT substr(msno, 11, 12) AS msno, city, bd, gender, registered_via, registration_init_time FROM members),
    y AS (SELECT substr(msno, 11, 12) AS msno, is_churn FROM labels)
    SELECT t.msno, payment_method_id, payment_plan_days, plan_list_price, actual_amount_paid, is_auto_renew,
           strftime({_ymd("transaction_date")}, '%Y-%m-%d') AS transaction_date,
           strftime({_ymd("membership_expire_date")}, '%Y-%m-%d') AS membership_expire_date,
           is_cancel, transaction_count, city,
           CASE WHEN bd > 10 AND bd < 70 THEN bd ELSE -1 END AS bd,
           coalesce(gender, '{UNKNOWN_GENDER}') AS gender, registered_via,
           strftime({_ymd("registration_init_time")}, '%Y-%m-%d') AS registration_init_time,
           {", ".join(f"{m}Sum" for m in LOG_METRICS)}, {", ".join(f"{m}Mean" for m in LOG_METRICS)},
           count, is_churn,
           CASE WHEN payment_plan_days = 0 THEN 0.0 ELSE plan_list_price / payment_plan_days END AS price_per_day,
           abs(date_diff('day', {_ymd("registration_init_time")}, {_ymd("membership_expire_date")})) AS days_fidelity
    FROM t JOIN m USING (msno) JOIN agg USING (msno) JOIN y USING (msno)
    ORDER BY t.msno"""
    return conform(eng.frame(sql))


def cap_outliers(x: pd.Series, limit: float = Z_LIMIT) -> tuple[pd.Series, pd.Series]:
    """The original study's rule on one column: cells with |z| > ``limit`` (population sd)
    replaced by the median of the column's other cells. Returns (capped values, outlier mask).
    The one pandas definition (the EDA counts and the pandas reference); the recipe runs the same
    rule in SQL (``_capped_log_sql``), tested equal."""
    x = x.astype("float64")
    sd = x.std(ddof=0)
    z = ((x - x.mean()) / sd).abs() if sd > 0 else pd.Series(0.0, index=x.index)
    out = z > limit
    return x.where(~out, x[~out].median()), out


# ---------------------------------------------------------------------------------------------
# The pandas reference (tests and benchmark only).
def _cap_pandas(logs: pd.DataFrame) -> pd.DataFrame:
    out = logs[["msno"]].copy()
    for m in LOG_METRICS:
        out[m] = cap_outliers(logs[m])[0]
    return out


def _read_pandas(source: RawSource, name: str) -> pd.DataFrame:
    """pandas' own CSV reader with the Kaggle dtypes (the reference is pandas end to end)."""
    from study.churn.data import COLUMNS, FILES

    types = {"BIGINT": "int64", "DOUBLE": "float64", "VARCHAR": object}
    kind = FILES.get(name, "train")
    return pd.read_csv(
        source.file(name),
        dtype={c: types[t] for c, t in COLUMNS[kind].items()},
        keep_default_na=False,
        na_values={"gender": [""]},
    )


def original_recipe_pandas(
    source: RawSource,
    label_file: str = "train_v2.csv",
    tx_file: str = "transactions_v2.csv",
    log_file: str = "user_logs_v2.csv",
) -> pd.DataFrame:
    logs = _cap_pandas(_read_pandas(source, log_file))
    logs["msno"] = short_msno(logs["msno"])
    g = logs.groupby("msno")
    agg = pd.concat(
        [g[LOG_METRICS].sum().add_suffix("Sum"), g[LOG_METRICS].mean().add_suffix("Mean"), g.size().rename("count")],
        axis=1,
    ).reset_index()
    tx = _read_pandas(source, tx_file)
    tx["msno"] = short_msno(tx["msno"])
    tx["transaction_count"] = tx.groupby("msno")["msno"].transform("size")
    tx = tx.sort_values("membership_expire_date", ascending=False, kind="mergesort").drop_duplicates("msno")
    members = _read_pandas(source, "members_v3.csv")
    members["msno"] = short_msno(members["msno"])
    labels = _read_pandas(source, label_file)
    labels["msno"] = short_msno(labels["msno"])
    df = tx.merge(members, on="msno").merge(agg, on="msno").merge(labels, on="msno")
    expire = parse_yyyymmdd(df.membership_expire_date, errors="raise")
    reg = parse_yyyymmdd(df.registration_init_time, errors="raise")
    df["price_per_day"] = np.where(
        df.payment_plan_days == 0, 0.0, df.plan_list_price / df.payment_plan_days.where(df.payment_plan_days != 0, 1)
    )
    df["days_fidelity"] = (expire - reg).dt.days.abs()
    df["bd"] = df.bd.where((df.bd > 10) & (df.bd < 70), -1)
    df["gender"] = df.gender.fillna(UNKNOWN_GENDER)
    for c in ["transaction_date", "membership_expire_date", "registration_init_time"]:
        df[c] = parse_yyyymmdd(df[c], errors="raise").dt.strftime("%Y-%m-%d")
    return conform(df)


# ---------------------------------------------------------------------------------------------
# The original study's model matrix.
# One-hot categories fixed in advance, so that twin and real matrices share their columns.
CATEGORIES = {
    "gender": ["female", "inconnu", "male"],
    "payment_method_id": list(range(1, 42)),
    "registered_via": [-1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 16, 17, 19],
    "city": list(range(1, 23)),
}


def original_model_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """The original study's matrix (FACTS.md section 3, step 7): drop transaction_date and msno,
    dates to int YYYYMMDD, one-hot gender, payment method, registered_via and city."""
    x = df.drop(columns=["msno", "transaction_date", "is_churn"], errors="ignore").copy()
    for c in ["membership_expire_date", "registration_init_time"]:
        x[c] = x[c].str.replace("-", "", regex=False).astype("int64")
    for c, cats in CATEGORIES.items():
        values = x.pop(c)
        values = values.where(values.isin(cats))  # a code outside the original's list: no column set
        dummies = pd.get_dummies(pd.Categorical(values, categories=cats), prefix=c, dtype="int8")
        dummies.index = x.index
        x = pd.concat([x, dummies], axis=1)
    return x


# ---------------------------------------------------------------------------------------------
# Reading and writing the processed CSV format (the original study's app format).
def _processed_schema(with_label: bool) -> pa.DataFrameSchema:
    date = pa.Column(str, pa.Check.str_matches(r"^\d{4}-\d{2}-\d{2}$", error="a YYYY-MM-DD date"))
    cols = {
        "msno": pa.Column(str, pa.Check.str_length(1, 64)),
        "payment_method_id": pa.Column("int64", pa.Check.between(1, 99)),
        "payment_plan_days": pa.Column("int64", pa.Check.between(0, 1000)),
        "plan_list_price": pa.Column("int64", pa.Check.between(0, 10_000)),
        "actual_amount_paid": pa.Column("int64", pa.Check.between(0, 10_000)),
        "is_auto_renew": pa.Column("int64", pa.Check.isin([0, 1])),
        "transaction_date": date,
        "membership_expire_date": date,
        "is_cancel": pa.Column("int64", pa.Check.isin([0, 1])),
        "transaction_count": pa.Column("int64", pa.Check.ge(1)),
        "city": pa.Column("int64", pa.Check.between(1, 99)),
        "bd": pa.Column("int64", pa.Check.between(-1, 69)),
        "gender": pa.Column(str, pa.Check.isin(["male", "female", UNKNOWN_GENDER])),
        "registered_via": pa.Column("int64", pa.Check.between(-1, 99)),
        "registration_init_time": date,
        **{c: pa.Column("float64", pa.Check.ge(0)) for c in _FLOAT if c != "price_per_day"},
        "count": pa.Column("int64", pa.Check.between(1, 31)),
        "is_churn": pa.Column("int64", pa.Check.isin([0, 1])),
        "price_per_day": pa.Column("float64", pa.Check.ge(0)),
        "days_fidelity": pa.Column("int64", pa.Check.ge(0)),
    }
    if not with_label:
        cols.pop("is_churn")
    return pa.DataFrameSchema(cols, unique=["msno"], strict=True)


def read_processed(path_or_buffer, require_label: bool = False, validate: bool = True) -> pd.DataFrame:
    """Read a processed CSV (ours or the original study's) into the canonical dtypes.

    ``is_churn`` is optional unless ``require_label``. Raises pandera's SchemaErrors on bad values;
    the dashboard turns those into sentences."""
    dtype = {c: "int64" for c in _INT} | {c: "float64" for c in _FLOAT} | {c: str for c in _STR}
    df = pd.read_csv(path_or_buffer, dtype=dtype, keep_default_na=False, na_values=[""])
    with_label = "is_churn" in df.columns or require_label
    if validate:
        df = _processed_schema(with_label).validate(df, lazy=True)
    return conform(df, with_label=with_label)


def write_processed(df: pd.DataFrame, path=None) -> str | None:
    """The processed CSV text (dates YYYY-MM-DD, floats as Python writes them)."""
    cols = [c for c in PROCESSED_COLUMNS if c in df.columns]
    if path is None:
        buf = io.StringIO()
        df[cols].to_csv(buf, index=False, lineterminator="\n")
        return buf.getvalue()
    df[cols].to_csv(path, index=False, lineterminator="\n")
    return None


# ---------------------------------------------------------------------------------------------
# Point-in-time features.
PIT_WINDOWS = (7, 14, 30)
PIT_LOG_HORIZON = 60  # days of logs read before the cutoff (the month and the previous month)


def _union(con, source: RawSource, names: list[str], kind: str) -> str:
    parts = [f"SELECT * FROM {read_sql(source.file(n), kind)}" for n in names if source.file(n).is_file()]
    if not parts:
        raise FileNotFoundError(f"none of {names} in {source.path}")
    return " UNION ALL ".join(parts)


def _load_union(eng, name: str, source: RawSource, names: list[str], kind: str) -> None:
    """The files of ``names`` that exist, as one table ``name`` on the engine."""
    present = [n for n in names if eng.exists(source.file(n))]
    if not present:
        raise FileNotFoundError(f"none of {names} in {source.path}")
    for k, n in enumerate(present):
        eng.load(f"{name}_{k}", source.file(n), kind)
    eng.create(name, " UNION ALL ".join(f"SELECT * FROM {name}_{k}" for k in range(len(present))))


OFFICIAL_LABELS = {"2017-02": "train.csv", "2017-03": "train_v2.csv"}


def month_labels(source: RawSource, month: str, transactions: pd.DataFrame | None = None, eng=None) -> pd.DataFrame:
    """Labels of the users expiring in ``month`` (YYYY-MM): the official file when it exists
    (train.csv for 2017-02, train_v2.csv for 2017-03), else the organisers' rule on the released
    transactions (only valid when the outcome window, the next month, is inside the files).
    ``eng``: the engine that reads the files of a URL source (Spark)."""
    from study.churn.data import load

    name = OFFICIAL_LABELS.get(month)
    if name and is_url(source.path):  # only the engine reads it
        if eng is not None and eng.exists(source.file(name)):
            table = f"official_{month.replace('-', '_')}"
            eng.load(table, source.file(name), "train")
            return eng.frame(f"SELECT msno, is_churn FROM {table}").astype({"is_churn": "int64"})
    elif name and source.file(name).is_file():
        return load(source, name, validate=False)
    if transactions is None:
        con = connect()
        try:
            transactions = con.execute(
                f"SELECT DISTINCT * FROM ({_union(con, source, ['transactions.csv', 'transactions_v2.csv'], 'transactions')})"
            ).df()
        finally:
            con.close()
    y, m = (int(x) for x in month.split("-"))
    lab = churn_labels(transactions, y, m)
    return lab[["msno", "is_churn"]].astype({"is_churn": "int64"})


def _int_day(ts: pd.Timestamp) -> int:
    return ts.year * 10000 + ts.month * 100 + ts.day


# A sum of doubles depends on the order DuckDB's threads add them in (last bits differ from run to
# run); summed as exact decimals (microsecond resolution) the result is the same on every run.
def _exact_sum(expr: str, where: str) -> str:
    return f"coalesce(sum({expr}::DECIMAL(38, 6)) FILTER (WHERE {where}), 0)::DOUBLE"


def _log_windows(cut: pd.Timestamp, i: int) -> str:
    """Aggregates of month i's listening windows over YYYYMMDD integers (one scan for all months)."""
    c = _int_day(cut)
    lo = {w: _int_day(cut - pd.Timedelta(days=w)) for w in (*PIT_WINDOWS, PIT_LOG_HORIZON)}
    in_window = f"date < {c} AND date >= {lo[PIT_LOG_HORIZON]}"
    parts = [f"max(date) FILTER (WHERE {in_window}) AS last_listen_{i}"]
    for w in PIT_WINDOWS:
        parts.append(f"{_exact_sum('secs', f'date < {c} AND date >= {lo[w]}')} AS secs_{w}_{i}")
        parts.append(f"count(*) FILTER (WHERE date < {c} AND date >= {lo[w]}) AS days_{w}_{i}")
    prev = f"date < {lo[30]} AND date >= {lo[PIT_LOG_HORIZON]}"
    parts.append(f"{_exact_sum('secs', prev)} AS secs_prev30_{i}")
    parts.append(f"count(*) FILTER (WHERE {prev}) AS days_prev30_{i}")
    last30 = f"date < {c} AND date >= {lo[30]}"
    for name, expr in [("unq_30", "num_unq"), ("skips_30", "num_25"), ("plays_30", "plays")]:
        parts.append(f"coalesce(sum({expr}) FILTER (WHERE {last30}), 0) AS {name}_{i}")
    return ", ".join(parts)


def point_in_time(
    source: RawSource,
    months=("2017-02", "2017-03"),
    threads: int = 2,
    labels: dict[str, pd.DataFrame] | None = None,
    memory_limit: str = "4GB",
    engine: str = "duckdb",
    master: str | None = None,
) -> pd.DataFrame:
    """One row per labelled user and expiry month; every feature from rows dated before the
    month's first day. ``labels`` (month → frame msno, is_churn) overrides :func:`month_labels`.
    On DuckDB (default) or Spark (``engine="spark"``): the same SQL, see :mod:`study.churn.engines`.

    Memory stays bounded at full scale: users get integer keys, the history is kept for the
    labelled users only, all months' listening windows come from one scan of the logs, and DuckDB
    spills to a temporary folder past ``memory_limit``."""
    from study.churn.engines import open_engine

    cuts = {m: pd.Timestamp(f"{m}-01") for m in months}
    labs = {m: ((labels or {}).get(m)) for m in months}
    # transactions.csv holds everything dated before March 2017; transactions_v2 only when it is alone.
    eng = open_engine(engine, master, threads=threads, memory_limit=memory_limit)
    frames = []
    try:
        history_files = ["transactions.csv"] if eng.exists(source.file("transactions.csv")) else ["transactions_v2.csv"]
        all_tx = ["transactions.csv", "transactions_v2.csv"]
        tx_for_labels = None
        for m in months:
            if labs[m] is None:
                official = OFFICIAL_LABELS.get(m)
                if tx_for_labels is None and not (official and eng.exists(source.file(official))):
                    start = _int_day(min(cuts.values()) - pd.DateOffset(months=1))
                    _load_union(eng, "label_tx", source, all_tx, "transactions")
                    tx_for_labels = eng.frame(f"SELECT * FROM label_tx WHERE transaction_date >= {start}")
                labs[m] = month_labels(source, m, tx_for_labels, eng)
        del tx_for_labels
        users = pd.concat([labs[m][["msno"]] for m in months]).drop_duplicates().reset_index(drop=True)
        users["uid"] = np.arange(len(users), dtype=np.int32)
        eng.register("users", users)
        max_cut = _int_day(max(cuts.values()))
        _load_union(eng, "history", source, history_files, "transactions")
        # exact duplicate rows (a real-data oddity) are counted once
        eng.create(
            "tx",
            f"""SELECT DISTINCT u.uid, payment_method_id, payment_plan_days, plan_list_price,
            actual_amount_paid, is_auto_renew, is_cancel,
            {_ymd("transaction_date")} AS tdate, {_ymd("membership_expire_date")} AS edate
            FROM history t JOIN users u USING (msno)
            WHERE transaction_date < {max_cut}""",
        )
        lo = _int_day(min(cuts.values()) - pd.Timedelta(days=PIT_LOG_HORIZON))
        windows = ", ".join(_log_windows(cuts[m], i) for i, m in enumerate(months))
        _load_union(eng, "all_logs", source, ["user_logs.csv", "user_logs_v2.csv"], "user_logs")
        eng.create(
            "lagg",
            f"""SELECT u.uid, {windows} FROM (
            SELECT msno, date, greatest(total_secs, 0) AS secs, num_unq, num_25,
                   num_25 + num_50 + num_75 + num_985 + num_100 AS plays
            FROM all_logs WHERE date >= {lo} AND date < {max_cut}) l JOIN users u USING (msno) GROUP BY u.uid""",
        )
        eng.load("members", source.file("members_v3.csv"), "members")
        member_columns = ", ".join(f"m.{c}" for c in COLUMNS["members"] if c != "msno")
        eng.create("mem", f"SELECT u.uid, {member_columns} FROM members m JOIN users u USING (msno)")
        for i, m in enumerate(months):
            eng.register(f"lab_{i}", labs[m][["msno", "is_churn"]].merge(users, on="msno"))
            frames.append(eng.frame(_pit_sql(i, cuts[m], m)))
    finally:
        eng.close()
    df = pd.concat(frames, ignore_index=True)
    df["days_since_last_listen"] = _days_since_listen(df.pop("last_listen"), df["month"])
    return _finish_pit(df)


def _days_since_listen(last_listen: pd.Series, month: pd.Series) -> pd.Series:
    last = parse_yyyymmdd(last_listen)
    days = (pd.to_datetime(month + "-01") - last).dt.days
    return days.fillna(PIT_LOG_HORIZON + 1).astype("int64")


def _pit_sql(i: int, cutoff: pd.Timestamp, month: str) -> str:
    listen = ", ".join(
        [f"lagg.last_listen_{i} AS last_listen"]
        + [
            f"coalesce(lagg.secs_{w}_{i}, 0) AS secs_{w}, coalesce(lagg.days_{w}_{i}, 0) AS days_{w}"
            for w in PIT_WINDOWS
        ]
        + [
            f"coalesce(lagg.{c}_{i}, 0) AS {c}"
            for c in ("secs_prev30", "days_prev30", "unq_30", "skips_30", "plays_30")
        ]
    )
    lab = f"lab_{i}"
    cut = f"DATE '{cutoff:%Y-%m-%d}'"
    return f"""
WITH h AS (SELECT tx.* FROM tx JOIN {lab} lab USING (uid) WHERE tdate < $cutoff),
ordered AS (
    SELECT *, row_number() OVER (PARTITION BY uid ORDER BY tdate DESC, is_cancel DESC,
        CASE WHEN is_cancel = 1 THEN edate END ASC, CASE WHEN is_cancel = 0 THEN edate END DESC) AS rk
    FROM h),
last AS (SELECT * FROM ordered WHERE rk = 1),
agg AS (
    SELECT uid, count(*) AS n_transactions,
        count_if(is_cancel = 0 AND tdate >= $cutoff - INTERVAL 365 DAY) AS n_renewals_365,
        count_if(is_cancel = 1) AS n_cancels,
        count_if(is_cancel = 1 AND tdate >= $cutoff - INTERVAL 90 DAY) AS n_cancels_90,
        count(DISTINCT payment_plan_days) - 1 AS n_plan_changes,
        count(DISTINCT payment_method_id) - 1 AS n_method_changes,
        avg(is_auto_renew) AS auto_renew_share,
        count_if(actual_amount_paid < plan_list_price) AS n_discounts,
        coalesce(sum(actual_amount_paid) FILTER (WHERE tdate >= $cutoff - INTERVAL 365 DAY), 0) AS paid_365,
        min(tdate) AS first_tdate,
        max(tdate) FILTER (WHERE is_cancel = 1) AS last_cancel_date,
        max(tdate) FILTER (WHERE is_cancel = 0) AS last_renewal_date
    FROM h GROUP BY uid)
SELECT lab.msno, '{month}' AS month, lab.is_churn,
    last.payment_method_id, last.payment_plan_days, last.plan_list_price, last.actual_amount_paid,
    last.plan_list_price - last.actual_amount_paid AS discount,
    CASE WHEN last.payment_plan_days = 0 THEN 0.0 ELSE last.plan_list_price / last.payment_plan_days END AS price_per_day,
    last.is_auto_renew, last.is_cancel AS last_is_cancel,
    date_diff('day', $cutoff, last.edate) AS days_to_expiry,
    date_diff('day', last.tdate, $cutoff) AS days_since_last_transaction,
    date_diff('day', agg.first_tdate, $cutoff) AS tenure_days,
    (agg.last_cancel_date IS NULL OR agg.last_renewal_date > agg.last_cancel_date)::INT AS renewed_after_last_cancel,
    agg.n_transactions, agg.n_renewals_365, agg.n_cancels, agg.n_cancels_90, agg.n_plan_changes,
    agg.n_method_changes, agg.auto_renew_share, agg.n_discounts, agg.paid_365,
    (mem.uid IS NOT NULL)::INT AS has_member,
    coalesce(mem.city, 0) AS city,
    CASE WHEN mem.bd > 10 AND mem.bd < 70 THEN mem.bd ELSE -1 END AS bd,
    coalesce(mem.gender, 'unknown') AS gender,
    coalesce(mem.registered_via, 0) AS registered_via,
    CASE WHEN mem.uid IS NULL THEN NULL
         ELSE date_diff('day', {_ymd("mem.registration_init_time")}, $cutoff) END AS days_since_registration,
    (lagg.last_listen_{i} IS NOT NULL)::INT AS has_logs,
    {listen}
FROM {lab} lab
JOIN last USING (uid) JOIN agg USING (uid)
LEFT JOIN mem ON mem.uid = lab.uid
LEFT JOIN lagg ON lagg.uid = lab.uid
ORDER BY lab.msno
""".replace("$cutoff", cut)


def _finish_pit(df: pd.DataFrame) -> pd.DataFrame:
    """Ratios (listening trends) and tidy dtypes."""
    eps = 1.0
    df["trend_7_vs_30"] = (df.secs_7 / 7) / (df.secs_30 / 30 + eps)
    df["trend_14_vs_30"] = (df.secs_14 / 14) / (df.secs_30 / 30 + eps)
    df["trend_30_vs_prev30"] = df.secs_30 / (df.secs_prev30 + eps)
    df["skip_ratio_30"] = df.skips_30 / df.plays_30.where(df.plays_30 > 0)
    df["skip_ratio_30"] = df["skip_ratio_30"].fillna(0.0)
    df["days_since_registration"] = df["days_since_registration"].fillna(-1)
    df = df[list(DATA_DICTIONARY_PIT)].copy()  # the data dictionary is the schema: order and dtypes
    for c, dtype in pit_dtypes().items():
        df[c] = df[c].astype(dtype)
    return df.sort_values(["month", "msno"], kind="mergesort").reset_index(drop=True)


def pit_dtypes() -> dict[str, str]:
    """column → pandas dtype of the point-in-time set, from the data dictionary (also the SQL schema)."""
    kinds = {"int": "int64", "float": "float64", "str": "str"}
    return {
        c: ("str" if c == "gender" else kinds.get(kind, "int64")) for c, (_, _, kind) in DATA_DICTIONARY_PIT.items()
    }


PIT_CATEGORICAL = ["payment_method_id", "city", "gender", "registered_via"]

DATA_DICTIONARY_PIT = {
    "msno": ("user id (44-character msno)", "raw", "str"),
    "month": ("expiry month predicted (YYYY-MM); cutoff = its first day", "parameter", "str"),
    "is_churn": ("label: no renewal within 30 days of expiry", "organisers' rule / label file", "int"),
    "payment_method_id": ("payment method of the last transaction before the cutoff", "last row", "category"),
    "payment_plan_days": ("plan length of the last transaction", "last row", "int"),
    "plan_list_price": ("list price of the last transaction", "last row", "int"),
    "actual_amount_paid": ("amount paid in the last transaction", "last row", "int"),
    "discount": ("list price minus amount paid (last transaction)", "plan_list_price − actual_amount_paid", "int"),
    "price_per_day": (
        "list price per plan day (last transaction)",
        "plan_list_price / payment_plan_days (0 if 0 days)",
        "float",
    ),
    "is_auto_renew": ("auto-renew flag of the last transaction", "last row", "int"),
    "last_is_cancel": ("the last transaction before the cutoff is a cancellation", "last row", "int"),
    "days_to_expiry": ("days from the cutoff to the current expiry", "expiry − cutoff", "int"),
    "days_since_last_transaction": ("recency of the last transaction", "cutoff − last transaction date", "int"),
    "tenure_days": ("days since the first transaction in the files", "cutoff − first transaction date", "int"),
    "renewed_after_last_cancel": (
        "no cancellation, or a renewal after the last one",
        "last renewal > last cancel",
        "int",
    ),
    "n_transactions": ("transactions before the cutoff", "count", "int"),
    "n_renewals_365": ("renewals in the last 365 days", "count of non-cancel rows", "int"),
    "n_cancels": ("cancellations before the cutoff", "count", "int"),
    "n_cancels_90": ("cancellations in the last 90 days", "count", "int"),
    "n_plan_changes": ("distinct plan lengths − 1", "count distinct − 1", "int"),
    "n_method_changes": ("distinct payment methods − 1", "count distinct − 1", "int"),
    "auto_renew_share": ("share of transactions with auto-renew", "mean(is_auto_renew)", "float"),
    "n_discounts": ("transactions paid below list price", "count(paid < list)", "int"),
    "paid_365": ("amount paid in the last 365 days", "sum(actual_amount_paid)", "int"),
    "has_member": ("a members_v3 row exists", "flag", "int"),
    "city": ("city (0 = no member row)", "members", "category"),
    "bd": ("age when 10 < bd < 70, else −1", "members, cleaned", "int"),
    "gender": ("male, female or unknown", "members", "category"),
    "registered_via": ("registration channel (0 = no member row)", "members", "category"),
    "days_since_registration": (
        "days from registration to the cutoff (−1 unknown)",
        "cutoff − registration_init_time",
        "int",
    ),
    "has_logs": ("any listening in the 60 days before the cutoff", "flag", "int"),
    "days_since_last_listen": ("recency of listening (61 = none in 60 days)", "cutoff − last log date", "int"),
    **{
        f"secs_{w}": (f"seconds listened in the last {w} days", "sum(total_secs), negatives as 0", "float")
        for w in PIT_WINDOWS
    },
    **{f"days_{w}": (f"listening days in the last {w} days", "count of log days", "int") for w in PIT_WINDOWS},
    "secs_prev30": ("seconds listened 31–60 days before the cutoff", "sum(total_secs)", "float"),
    "days_prev30": ("listening days 31–60 days before the cutoff", "count", "int"),
    "unq_30": ("unique songs summed over the last 30 days", "sum(num_unq)", "int"),
    "skips_30": ("songs played < 25 % in the last 30 days", "sum(num_25)", "int"),
    "plays_30": ("all plays in the last 30 days", "sum(num_25 … num_100)", "int"),
    "trend_7_vs_30": ("last week's daily listening vs the month's", "(secs_7/7) / (secs_30/30 + 1)", "float"),
    "trend_14_vs_30": ("last two weeks vs the month", "(secs_14/14) / (secs_30/30 + 1)", "float"),
    "trend_30_vs_prev30": ("month vs the previous month", "secs_30 / (secs_prev30 + 1)", "float"),
    "skip_ratio_30": ("share of plays skipped before 25 %", "skips_30 / plays_30", "float"),
}

DATA_DICTIONARY_ORIGINAL = {
    "msno": ("user id: characters 10..21 of the msno", "msno[10:22]", "str"),
    "payment_method_id": (
        "payment method of the latest-expiry transaction (transactions_v2)",
        "row with the latest membership_expire_date, first on ties",
        "category",
    ),
    "payment_plan_days": ("plan length (same row)", "latest-expiry row", "int"),
    "plan_list_price": ("list price (same row)", "latest-expiry row", "int"),
    "actual_amount_paid": ("amount paid (same row)", "latest-expiry row", "int"),
    "is_auto_renew": ("auto-renew flag (same row)", "latest-expiry row", "int"),
    "transaction_date": ("date of that transaction (YYYY-MM-DD)", "latest-expiry row", "date"),
    "membership_expire_date": (
        "its expiry date: often AFTER the renewal that decides the label",
        "latest-expiry row",
        "date",
    ),
    "is_cancel": ("cancellation flag (same row)", "latest-expiry row", "int"),
    "transaction_count": ("the user's rows in transactions_v2", "count", "int"),
    "city": ("city", "members_v3", "category"),
    "bd": ("age when 10 < bd < 70, else −1", "members_v3, cleaned", "int"),
    "gender": ("male, female or inconnu (missing)", "members_v3", "category"),
    "registered_via": ("registration channel", "members_v3", "category"),
    "registration_init_time": ("registration date (YYYY-MM-DD)", "members_v3", "date"),
    **{
        f"{m}Sum": (f"March sum of daily {m} after z-capping", f"sum({m}), cells with |z| > 3 → median", "float")
        for m in LOG_METRICS
    },
    **{
        f"{m}Mean": (f"March mean of daily {m} after z-capping", f"mean({m}), cells with |z| > 3 → median", "float")
        for m in LOG_METRICS
    },
    "count": ("March log days", "count of log rows", "int"),
    "is_churn": ("label (train_v2.csv)", "the release's labels (twin: as released)", "int"),
    "price_per_day": ("list price per plan day", "plan_list_price / payment_plan_days (0 if 0 days)", "float"),
    "days_fidelity": (
        "days between registration and expiry",
        "|membership_expire_date − registration_init_time|",
        "int",
    ),
}


def dictionary_frame(d: dict) -> pd.DataFrame:
    return pd.DataFrame([(k, *v) for k, v in d.items()], columns=["column", "meaning", "formula", "type"])


def build(
    source: RawSource,
    recipe: str,
    out_dir: str | Path | None = None,
    months=("2017-02", "2017-03"),
    engine: str = "duckdb",
    master: str | None = None,
) -> pd.DataFrame:
    """The CLI's entry: build a recipe's dataset (on DuckDB or Spark) and save it as parquet (and
    CSV for 'original')."""
    if recipe == "original":
        df = original_recipe(source, engine=engine, master=master)
    elif recipe == "pit":
        df = point_in_time(source, months=months, engine=engine, master=master)
    else:
        raise ValueError(f"unknown recipe {recipe!r}: original or pit")
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        df.to_parquet(out / f"{recipe}.parquet", index=False)
        if recipe == "original":
            write_processed(df, out / "original.csv")
    return df
