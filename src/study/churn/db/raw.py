"""Raw rows of chosen users with their file and position, so the raw files can be rebuilt exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from study.churn import data, features
from study.churn.data import COLUMNS, RawSource

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
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE t AS SELECT * FROM {data.read_sql(source.file(name), KIND[name])}"
                )
                out[name] = con.execute(
                    "SELECT rowid AS file_row, * FROM t WHERE msno IN (SELECT msno FROM keep) ORDER BY rowid"
                ).df()
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


def write_raw(rows: dict[str, pd.DataFrame], folder: str | Path) -> RawSource:
    """The raw files (Kaggle headers, YYYYMMDD dates) from frames of :func:`raw_rows` or :func:`rebuild_raw`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in rows.items():
        df.sort_values("file_row", kind="mergesort")[list(COLUMNS[KIND[name]])].to_csv(
            folder / name, index=False, lineterminator="\n"
        )
    return RawSource(folder, "real")
