"""Where the feature SQL runs: DuckDB (the embedded default) or Apache Spark (data bigger than a
machine). The recipes in :mod:`study.churn.features` are written once, in DuckDB's dialect, as a
few named tables built from the raw files; Spark runs the same text transpiled by SQLGlot. No
feature is written twice.

An engine offers five operations: ``exists`` (whether a raw file is there, asked of the engine's
own file system: Spark's for a URL), ``load`` a raw Kaggle file as a named table (with its exact
types; ``position`` adds ``pos``, the row's place in the file, since "first on ties" depends on
it), ``register`` a pandas frame as a table, ``create`` a named table from a query, and ``frame`` a query's result as pandas."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

from study.churn.data import COLUMNS, RawDataError, is_url, read_sql

ENGINES = ("duckdb", "spark")
SPARK_TYPES = {"VARCHAR": "STRING", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE", "INTEGER": "INT"}
DEFAULT_MASTER = "local[2]"


class DuckDBEngine:
    """An in-memory DuckDB; past ``memory_limit`` it spills to a temporary folder."""

    name = "duckdb"

    def __init__(self, threads: int = 2, memory_limit: str | None = "4GB"):
        from study.churn.features import connect

        self._spill = tempfile.TemporaryDirectory(prefix="study-duckdb-")
        self.con = connect(threads, memory_limit, self._spill.name)

    def exists(self, path) -> bool:
        return Path(self._local(path)).is_file()

    @staticmethod
    def _local(path):
        if is_url(path):
            raise RawDataError(f"{path}: the DuckDB engine reads local files; for a URL use --engine spark")
        return path

    def load(self, name: str, path: Path, kind: str, position: bool = False) -> None:
        path = self._local(path)
        if position:  # materialised first, in file order, so that rowid is the file order
            self.con.execute("SET preserve_insertion_order = true")
            self.con.execute(f"CREATE TEMP TABLE {name}_file AS SELECT * FROM {read_sql(path, kind)}")
            self.con.execute(f"CREATE TEMP TABLE {name} AS SELECT *, rowid AS pos FROM {name}_file")
            self.con.execute(f"DROP TABLE {name}_file")
            self.con.execute("SET preserve_insertion_order = false")  # nothing else needs an order
        else:
            self.con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {read_sql(path, kind)}")

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.con.register(name, frame)

    def create(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE TEMP TABLE {name} AS {sql}")

    def frame(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def close(self) -> None:
        self.con.close()
        self._spill.cleanup()


def spark_session(master: str | None = None, app: str = "study-churn"):
    """A Spark session on ``master`` (``local[2]`` by default; ``spark://host:7077``, ``yarn``,
    ``k8s://…``). UTC session time zone (dates are calendar days), no UI, driver on 127.0.0.1 when
    local: nothing listens beyond this machine unless the master says so. Under ``spark-submit``
    its command line (master, ``--conf``, memory) wins over these defaults."""
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    submitted = SparkConf()  # what spark-submit (or spark-defaults.conf) already set
    master = master or os.environ.get("STUDY_SPARK_MASTER") or submitted.get("spark.master", None) or DEFAULT_MASTER
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (the scoring) run this interpreter unless told otherwise: on a real cluster set
    # PYSPARK_PYTHON to an environment with the study installed
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master != master:
        active.stop()  # one Spark context per process: a different master needs a new one
    defaults = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": os.environ.get("STUDY_SPARK_PARTITIONS", "8"),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if master.startswith("local") or "127.0.0.1" in master or "localhost" in master:
        defaults |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    if master.startswith("local"):  # local mode: the driver JVM does all the work (its default is 1 GB)
        defaults["spark.driver.memory"] = os.environ.get("STUDY_SPARK_DRIVER_MEMORY", "4g")
    builder = SparkSession.builder.master(master).appName(app).config("spark.sql.session.timeZone", "UTC")
    for key, value in defaults.items():
        if not submitted.contains(key):
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def to_spark(sql: str) -> str:
    """DuckDB SQL → Spark SQL (SQLGlot); raises on anything it cannot translate faithfully."""
    import sqlglot

    return sqlglot.transpile(sql, read="duckdb", write="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)[0]


class SparkEngine:
    """The same tables on Spark: raw files read with the Kaggle types (any path or URL Spark reads),
    each step a temporary view of the transpiled query."""

    name = "spark"

    def __init__(self, master: str | None = None, session=None):
        self.spark = session or spark_session(master)
        self._kept: list = []

    def exists(self, path) -> bool:
        """Whether a file is there, asked of the file system Spark reads ``path`` with (local,
        HDFS, s3a, gs, abfs…, as configured)."""
        jvm = self.spark.sparkContext._jvm
        p = jvm.org.apache.hadoop.fs.Path(str(path))
        try:
            return bool(p.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration()).isFile(p))
        except Exception as exc:  # no file system for the scheme, no credentials…: say which
            raise RawDataError(f"{path}: Spark cannot reach it ({str(exc).splitlines()[0][:300]})") from None

    def load(self, name: str, path, kind: str, position: bool = False) -> None:
        from pyspark.sql import functions as F

        schema = ", ".join(f"{c} {SPARK_TYPES[t]}" for c, t in COLUMNS[kind].items())
        df = self.spark.read.csv(str(path), schema=schema, header=True, sep=",", quote='"', mode="FAILFAST")
        if position:  # ids grow with the file split and the row inside it: the file order
            df = df.withColumn("pos", F.monotonically_increasing_id())
        df.createOrReplaceTempView(name)

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.spark.createDataFrame(frame).createOrReplaceTempView(name)

    def create(self, name: str, sql: str) -> None:
        # kept (memory, then disk) like DuckDB's temporary tables: a later step reading it twice
        # (the point-in-time set reads the history and the log windows once per month) does not
        # rescan the files; a lost executor's blocks are recomputed from the lineage
        df = self.spark.sql(to_spark(sql)).persist()
        self._kept.append(df)
        df.createOrReplaceTempView(name)

    def frame(self, sql: str) -> pd.DataFrame:
        return self.spark.sql(to_spark(sql)).toPandas()

    def close(self) -> None:
        for df in self._kept:
            df.unpersist()
        for t in self.spark.catalog.listTables():
            if t.isTemporary:
                self.spark.catalog.dropTempView(t.name)


def open_engine(engine: str = "duckdb", master: str | None = None, threads: int = 2, memory_limit: str = "4GB"):
    """The engine by name. ``threads`` and ``memory_limit`` size DuckDB; Spark takes its resources
    from the master (and ``spark_session``'s defaults)."""
    if engine == "duckdb":
        return DuckDBEngine(threads, memory_limit)
    if engine == "spark":
        return SparkEngine(master)
    raise ValueError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
