"""One loader for the raw KKBOX files, real or simulated, with pandera schemas.

The real Kaggle files placed in ``data/raw/kkbox/`` are used as they are; otherwise the twin is
generated (once per scale and seed) under ``data/raw/twin/``. Every table goes through the same
reader: DuckDB parses the CSV with the exact Kaggle types (fast, out of core), then a pandera
schema checks values. A malformed file raises :class:`RawDataError` whose message names the file,
the column and the problem, never a bare parser traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pandera.pandas as pa

from study import paths

# Kaggle columns and DuckDB types, in file order.
COLUMNS: dict[str, dict[str, str]] = {
    "train": {"msno": "VARCHAR", "is_churn": "BIGINT"},
    "members": {
        "msno": "VARCHAR",
        "city": "BIGINT",
        "bd": "BIGINT",
        "gender": "VARCHAR",
        "registered_via": "BIGINT",
        "registration_init_time": "BIGINT",
    },
    "transactions": {
        "msno": "VARCHAR",
        "payment_method_id": "BIGINT",
        "payment_plan_days": "BIGINT",
        "plan_list_price": "BIGINT",
        "actual_amount_paid": "BIGINT",
        "is_auto_renew": "BIGINT",
        "transaction_date": "BIGINT",
        "membership_expire_date": "BIGINT",
        "is_cancel": "BIGINT",
    },
    "user_logs": {
        "msno": "VARCHAR",
        "date": "BIGINT",
        "num_25": "BIGINT",
        "num_50": "BIGINT",
        "num_75": "BIGINT",
        "num_985": "BIGINT",
        "num_100": "BIGINT",
        "num_unq": "BIGINT",
        "total_secs": "DOUBLE",
    },
}
# File name → table kind.
FILES = {
    "train.csv": "train",
    "train_v2.csv": "train",
    "members_v3.csv": "members",
    "transactions.csv": "transactions",
    "transactions_v2.csv": "transactions",
    "user_logs.csv": "user_logs",
    "user_logs_v2.csv": "user_logs",
}
# The files without which no part of the study runs (the v1 files are optional extras).
REQUIRED = ("train_v2.csv", "members_v3.csv", "transactions_v2.csv", "user_logs_v2.csv")

MSNO_PATTERN = r"^[A-Za-z0-9+/]{43}=$"


class RawDataError(ValueError):
    """A raw file that cannot be used, with a message naming the file, the column and the problem."""


def parse_yyyymmdd(values, errors: str = "coerce") -> pd.Series:
    """YYYYMMDD integers (the Kaggle date encoding; missing values allowed) → a datetime64 Series,
    keeping a Series' index; datetimes pass through. The one parser of that encoding: invalid
    dates become NaT (``errors="coerce"``) or raise (``"raise"``, for validated columns)."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    return pd.to_datetime(s.astype("Int64").astype("string"), format="%Y%m%d", errors=errors)


def _is_yyyymmdd(s: pd.Series) -> pd.Series:
    return parse_yyyymmdd(s).notna()


def _date(name: str) -> pa.Column:
    return pa.Column("int64", pa.Check(_is_yyyymmdd, element_wise=False, error="a valid YYYYMMDD date"), name=name)


def _flag() -> pa.Column:
    return pa.Column("int64", pa.Check.isin([0, 1]))


_MSNO = pa.Column(str, pa.Check.str_matches(MSNO_PATTERN, error="a 44-character base64 msno"))

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "train": pa.DataFrameSchema({"msno": _MSNO, "is_churn": _flag()}, unique=["msno"], strict=True, ordered=True),
    "members": pa.DataFrameSchema(
        {
            "msno": _MSNO,
            "city": pa.Column("int64", pa.Check.ge(1)),
            "bd": pa.Column("int64"),  # the real data has −7168 … 2016: kept, cleaned downstream
            "gender": pa.Column(str, pa.Check.isin(["male", "female"]), nullable=True),
            "registered_via": pa.Column("int64", pa.Check.ge(-1)),
            "registration_init_time": _date("registration_init_time"),
        },
        unique=["msno"],
        strict=True,
        ordered=True,
    ),
    "transactions": pa.DataFrameSchema(
        {
            "msno": _MSNO,
            "payment_method_id": pa.Column("int64", pa.Check.ge(1)),
            "payment_plan_days": pa.Column("int64", pa.Check.ge(0)),
            "plan_list_price": pa.Column("int64", pa.Check.ge(0)),
            "actual_amount_paid": pa.Column("int64", pa.Check.ge(0)),
            "is_auto_renew": _flag(),
            "transaction_date": _date("transaction_date"),
            "membership_expire_date": _date("membership_expire_date"),
            "is_cancel": _flag(),
        },
        strict=True,
        ordered=True,
    ),
    "user_logs": pa.DataFrameSchema(
        {
            "msno": _MSNO,
            "date": _date("date"),
            **{
                c: pa.Column("int64", pa.Check.ge(0))
                for c in ["num_25", "num_50", "num_75", "num_985", "num_100", "num_unq"]
            },
            "total_secs": pa.Column("float64"),  # v1 holds negative values (a real oddity)
        },
        strict=True,
        ordered=True,
    ),
}


@dataclass(frozen=True)
class RawSource:
    """Where the raw files come from: the real release or a generated twin."""

    path: Path | str  # a local folder, or a URL that Spark reads (s3a://…, hdfs://…, file:///…)
    kind: str  # "real" or "twin"
    scale: str | None = None
    seed: int | None = None

    def file(self, name: str) -> Path | str:
        if is_url(self.path):
            return f"{str(self.path).rstrip('/')}/{name}"
        return Path(self.path) / name

    def describe(self) -> str:
        if self.kind == "real":
            return f"real KKBOX files in {self.path}"
        return f"simulated twin (scale {self.scale}, seed {self.seed}) in {self.path}"


def is_url(path) -> bool:
    """A location with a scheme (s3a://, gs://, abfss://, hdfs://, file://): read by Spark's
    file systems, not by this process."""
    return "://" in str(path)


def has_files(folder: Path, names=REQUIRED) -> bool:
    return all((folder / n).is_file() for n in names)


def twin_dir(scale: str, seed: int) -> Path:
    return paths.TWIN / f"{scale}-seed{seed}"


def processed_dir(source: RawSource) -> Path:
    """Where the per-user tables built from ``source`` are written (notebook 20) and read."""
    return paths.PROCESSED / (f"{source.scale}-seed{source.seed}" if source.kind == "twin" else "real")


def _twin_is_current(folder: Path) -> bool:
    """A cached twin is reused only if complete and made by the current generator."""
    from study.churn.twin import TWIN_VERSION

    meta = folder / "twin.json"
    if not (has_files(folder) and meta.is_file()):
        return False
    m = json.loads(meta.read_text())
    return m.get("generator_version") == TWIN_VERSION and m.get("label_rule") == "as released"


def resolve_source(
    raw_dir: str | Path | None = None,
    scale: str = "quick",
    seed: int = 2017,
    generate: bool = True,
    progress: bool = False,
) -> RawSource:
    """The raw data to use: ``raw_dir`` if given, else real files in ``data/raw/kkbox/``, else
    the twin for (scale, seed), generated on first use."""
    if raw_dir and is_url(raw_dir):  # read by the engine (Spark); a missing file fails there, named
        return RawSource(str(raw_dir), "real")
    if raw_dir:
        folder = Path(raw_dir)
        if not has_files(folder):
            missing = [n for n in REQUIRED if not (folder / n).is_file()]
            raise RawDataError(f"{folder}: missing raw file(s) {', '.join(missing)}")
        meta = folder / "twin.json"
        if meta.is_file():
            m = json.loads(meta.read_text())
            return RawSource(folder, "twin", m.get("scale"), m.get("seed"))
        return RawSource(folder, "real")
    if has_files(paths.REAL_KKBOX):
        return RawSource(paths.REAL_KKBOX, "real")
    folder = twin_dir(scale, seed)
    if not _twin_is_current(folder):
        if not generate:
            raise RawDataError(
                f"no raw data: put the Kaggle files in {paths.REAL_KKBOX} or run "
                f"`study churn synth --scale {scale} --seed {seed}`"
            )
        from study.churn.twin import generate as make_twin

        make_twin(folder, scale=scale, seed=seed, progress=progress)
    return RawSource(folder, "twin", scale, seed)


# ---------------------------------------------------------------------------------------------
def _kind(path: Path, table: str | None) -> str:
    kind = table or FILES.get(path.name)
    if kind not in COLUMNS:
        raise RawDataError(f"{path.name}: unknown raw file; expected one of {', '.join(FILES)}")
    return kind


def check_header(path: Path, table: str | None = None) -> list[str]:
    """Exact Kaggle header, or a RawDataError naming what is missing, extra or misplaced."""
    kind = _kind(path, table)
    if not path.is_file():
        raise RawDataError(f"{path.name}: file not found in {path.parent}")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    first = head.split(b"\n", 1)[0]
    if not head.strip():
        raise RawDataError(f"{path.name}: the file is empty (no header line)")
    if b"\x00" in head:
        raise RawDataError(f"{path.name}: not a text CSV (binary content or UTF-16 encoding); expected UTF-8")
    try:
        header = first.decode("utf-8-sig").strip().split(",")
    except UnicodeDecodeError:
        raise RawDataError(f"{path.name}: the header is not UTF-8 text; expected a UTF-8 CSV") from None
    expected = list(COLUMNS[kind])
    if header != expected:
        missing = [c for c in expected if c not in header]
        extra = [c for c in header if c not in expected]
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(extra)}")
        if not parts:
            parts.append(f"columns in the wrong order ({', '.join(header)})")
        raise RawDataError(f"{path.name}: {'; '.join(parts)}; expected {', '.join(expected)}")
    return header


_LINE = re.compile(r"CSV Error on Line: (\d+)")
_CONVERT = re.compile(r'converting column "([^"]+)"\. Could not convert string "([^"]*)" to \'(\w+)\'')
_TYPE_WORDS = {"BIGINT": "integers", "DOUBLE": "numbers", "VARCHAR": "text"}


def _duckdb_message(path: Path, exc: Exception) -> str:
    text = str(exc)
    line = _LINE.search(text)
    where = f" on line {line.group(1)}" if line else ""
    conv = _CONVERT.search(text)
    if conv:
        col, value, typ = conv.groups()
        return f"{path.name}, column {col}: expected {_TYPE_WORDS.get(typ, typ)}, found {value!r}{where}"
    if "Invalid unicode" in text or "not utf-8" in text:
        return f"{path.name}: not UTF-8 encoded text{where}; expected a UTF-8 CSV"
    cols = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if cols:
        return f"{path.name}: a row has {cols.group(2)} fields instead of {cols.group(1)}{where}"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{path.name}: unreadable CSV{where} ({first})"


def read_sql(path: Path, kind: str) -> str:
    """DuckDB expression reading a raw file with its exact Kaggle types (shared with the features)."""
    cols = ", ".join(f"'{c}': '{t}'" for c, t in COLUMNS[kind].items())
    p = path.as_posix().replace("'", "''")
    return f"read_csv('{p}', header=true, auto_detect=false, delim=',', quote='\"', columns={{{cols}}}, nullstr='')"


def _schema_message(path: Path, err: pa.errors.SchemaErrors) -> str:
    fc = err.failure_cases
    lines = []
    for (col, check), grp in fc.groupby(["column", "check"], dropna=False, sort=False):
        examples = ", ".join(repr(v) for v in grp["failure_case"].drop_duplicates().head(3))
        col = "(table)" if pd.isna(col) else col
        what = str(check)
        if what.startswith("field_uniqueness") or "unique" in what:
            what = "values must be unique (duplicates found)"
        elif what == "not_nullable":
            what = "missing values"
        lines.append(f"{path.name}, column {col}: {what}: {len(grp)} bad value(s), e.g. {examples}")
    return "\n".join(lines)


def read_table(
    path: str | Path, table: str | None = None, limit: int | None = None, validate: bool = True
) -> pd.DataFrame:
    """Read one raw file (real or twin) into pandas with the Kaggle dtypes, validated.

    ``table`` names the kind (train, members, transactions, user_logs) when the file name is not
    a Kaggle one; ``limit`` reads the first rows only."""
    path = Path(path)
    kind = _kind(path, table)
    check_header(path, kind)
    sql = f"SELECT * FROM {read_sql(path, kind)}" + (f" LIMIT {int(limit)}" if limit else "")
    con = duckdb.connect()
    try:
        df = con.execute(sql).df()
    except duckdb.Error as exc:
        raise RawDataError(_duckdb_message(path, exc)) from None
    finally:
        con.close()
    if len(df) == 0:
        raise RawDataError(f"{path.name}: no data rows below the header")
    for c, t in COLUMNS[kind].items():
        if t == "VARCHAR":
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    if kind != "members" and df["msno"].isna().any():
        raise RawDataError(f"{path.name}, column msno: {int(df['msno'].isna().sum())} empty value(s)")
    if validate:
        try:
            df = SCHEMAS[kind].validate(df, lazy=True)
        except pa.errors.SchemaErrors as err:
            raise RawDataError(_schema_message(path, err)) from None
    return df


def load(source: RawSource, name: str, limit: int | None = None, validate: bool = True) -> pd.DataFrame:
    """Read a Kaggle file by name (``train_v2.csv`` …) from a resolved source."""
    return read_table(source.file(name), limit=limit, validate=validate)


__all__ = [
    "RawDataError",
    "RawSource",
    "resolve_source",
    "read_table",
    "load",
    "check_header",
    "read_sql",
    "COLUMNS",
    "FILES",
    "REQUIRED",
    "SCHEMAS",
    "twin_dir",
]
