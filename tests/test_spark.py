"""The feature recipes on Apache Spark equal DuckDB's: in local mode and on a real standalone
cluster (a master and two workers started on 127.0.0.1 from pyspark's own launcher), also when a
worker dies in the middle of a job (Spark reruns its tasks elsewhere)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from conftest import train_churn_model, unavailable
from study.churn import data, engines, features, scoring, spark_scoring

pytestmark = pytest.mark.timeout(900)
STUDY = str(Path(sys.executable).parent / "study")


def _java_missing() -> str:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Java is absent (Spark needs Java 17+; .ci/run installs it)"
    return ""


@pytest.fixture(scope="module", autouse=True)
def _needs_java():
    if reason := _java_missing():
        unavailable(reason)


def assert_same(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Integers and strings exactly, floats to 1e-9 (relative, 1e-9 absolute near zero)."""
    assert list(duck.columns) == list(spark.columns)
    assert len(duck) == len(spark) > 0
    for c in duck.columns:
        if duck[c].dtype.kind == "f":
            np.testing.assert_allclose(spark[c], duck[c], rtol=1e-9, atol=1e-9, err_msg=c)
        else:
            assert duck[c].dtype == spark[c].dtype, c
            assert duck[c].equals(spark[c]), (c, int((duck[c] != spark[c]).sum()))


@pytest.fixture(scope="module")
def duckdb_frames(quick_source):
    return {
        "original": features.original_recipe(quick_source),
        "february": features.original_recipe_february(quick_source),
        "pit": features.point_in_time(quick_source, months=("2017-01", "2017-02", "2017-03")),
    }


@pytest.fixture(scope="module")
def original_model(tmp_path_factory, quick_source):
    """The original-format model (XGBoost JSON), trained by the command line."""
    return train_churn_model(tmp_path_factory, quick_source, "original")


@pytest.fixture(scope="module")
def original_parquet(tmp_path_factory, duckdb_frames):
    path = tmp_path_factory.mktemp("features") / "original.parquet"
    duckdb_frames["original"].to_parquet(path, index=False)
    return path


def assert_same_scores(model_dir: Path, frame: pd.DataFrame, scored: pd.DataFrame) -> None:
    """Spark's scores = the in-process scoring path's: risk to 1e-9, band and reasons exactly."""
    expected = scoring.score(scoring.load(model_dir), frame).set_index("msno").sort_index()
    got = scored.set_index("msno").sort_index()
    assert len(got) == len(expected) == len(frame)
    np.testing.assert_allclose(got.risk, expected.risk, rtol=1e-9, atol=1e-12)
    for c in ["expiry_date", "band", "reason_1", "reason_2", "reason_3"]:
        assert got[c].equals(expected[c]), c


def _build_all(source, master: str) -> dict:
    return {
        "original": features.original_recipe(source, engine="spark", master=master),
        "february": features.original_recipe_february(source, engine="spark", master=master),
        "pit": features.point_in_time(source, months=("2017-01", "2017-02", "2017-03"), engine="spark", master=master),
    }


def test_transpiled_sql_is_spark_sql():
    sql = engines.to_spark("SELECT a // 100 AS d, x::DECIMAL(38, 6) FROM t ORDER BY e DESC, pos")
    assert "DIV" in sql and "DECIMAL(38, 6)" in sql and "pos NULLS LAST" in sql


def test_unknown_engine_is_refused(quick_source):
    with pytest.raises(ValueError, match="unknown engine"):
        features.original_recipe(quick_source, engine="presto")


def test_local_mode_equals_duckdb(quick_source, duckdb_frames):
    for name, frame in _build_all(quick_source, "local[2]").items():
        assert_same(duckdb_frames[name], frame)


@pytest.mark.parametrize("recipe", ["original", "pit"])
def test_features_on_spark_from_the_command_line_and_a_url(recipe, quick_source, duckdb_frames, tmp_path):
    """The raw folder given as a URL (file:///…: what s3a://… or hdfs://… would be on a cluster)
    is read by Spark's file systems alone, labels included."""
    url = quick_source.path.resolve().as_uri()
    r = subprocess.run(
        [STUDY, "churn", "features", "--recipe", recipe, "--engine", "spark", "--master", "local[2]",
         "--raw", url, "--months", "2017-01", "2017-02", "2017-03", "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"real KKBOX files in {url} on spark" in r.stdout, r.stdout
    assert_same(
        duckdb_frames["pit" if recipe == "pit" else "original"], pd.read_parquet(tmp_path / f"{recipe}.parquet")
    )


def test_a_url_missing_files_is_named(tmp_path):
    url = tmp_path.as_uri()
    with pytest.raises(data.RawDataError, match="missing raw file.*transactions_v2.csv.*user_logs_v2.csv"):
        features.original_recipe(data.RawSource(url, "real"), engine="spark", master="local[2]")


def test_score_on_spark_from_the_command_line(original_model, original_parquet, duckdb_frames, tmp_path):
    out = tmp_path / "scores.parquet"
    r = subprocess.run(
        [STUDY, "churn", "score", "--engine", "spark", "--model-dir", str(original_model),
         "--input", str(original_parquet), "--output", str(out), "--partitions", "3"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"scored {len(duckdb_frames['original']):,} users" in r.stdout, r.stdout
    assert_same_scores(original_model, duckdb_frames["original"], pd.read_parquet(out))


# ---------------------------------------------------------------------------------------------
# A standalone cluster on this machine: what sbin/start-master.sh and start-worker.sh run.
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def _wait_port(port: int, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"Spark daemon exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    pytest.fail(f"Spark daemon not listening on {port} after {seconds} s: {log.read_text()[-2000:]}")


class Cluster:
    def __init__(self, root: Path):
        self.root, self.workers, self.procs = root, [], []
        self.env = {
            **os.environ,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_WORKER_DIR": str(root / "work"),
            "PYSPARK_PYTHON": sys.executable,
        }
        self.port = _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"

    def _start(self, name: str, *args: str, port: int) -> subprocess.Popen:
        log = self.root / f"{name}.log"
        proc = subprocess.Popen(
            [str(_spark_class()), *args], env=self.env, stdout=open(log, "wb"), stderr=subprocess.STDOUT
        )
        self.procs.append(proc)
        _wait_port(port, proc, log)
        return proc

    def start(self, workers: int = 2) -> Cluster:
        master = "org.apache.spark.deploy.master.Master"
        self._start("master", master, "--host", "127.0.0.1", "--port", str(self.port),
                    "--webui-port", str(_free_port()), port=self.port)  # fmt: skip
        for k in range(workers):
            port = _free_port()
            self.workers.append(
                self._start(
                    f"worker{k}",
                    "org.apache.spark.deploy.worker.Worker",
                    self.url,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(_free_port()),
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    port=port,
                )  # fmt: skip
            )
        return self

    def kill_worker(self, k: int) -> int:
        """SIGKILL a worker and its executor JVM (what a lost machine looks like); returns how many
        processes died."""
        root = psutil.Process(self.workers[k].pid)
        victims = [root, *root.children(recursive=True)]
        for p in victims:
            p.kill()
        return len(victims)

    def stop(self) -> None:
        for p in self.procs:
            try:
                for c in psutil.Process(p.pid).children(recursive=True):
                    c.kill()
            except psutil.NoSuchProcess:
                pass
            p.kill()
            p.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path):
    from pyspark.sql import SparkSession

    c = Cluster(tmp_path).start(workers=2)
    try:
        yield c
    finally:
        if (s := SparkSession.getActiveSession()) is not None:
            s.stop()
        c.stop()


def test_standalone_cluster_equals_duckdb(quick_source, duckdb_frames, cluster, original_model, original_parquet):
    spark = engines.spark_session(cluster.url)
    assert spark.sparkContext.master == cluster.url
    for name, frame in _build_all(quick_source, cluster.url).items():
        assert_same(duckdb_frames[name], frame)
    out = cluster.root / "scores.parquet"
    n = spark_scoring.score_to_parquet(original_model, out, original_parquet, cluster.url, partitions=4)
    assert n == len(duckdb_frames["original"])
    assert_same_scores(original_model, duckdb_frames["original"], pd.read_parquet(out))
    # an executor on each worker (the status lists the driver too)
    assert spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1 == 2


def test_worker_killed_mid_job_changes_nothing(quick_source, duckdb_frames, cluster):
    spark = engines.spark_session(cluster.url)
    tracker = spark.sparkContext.statusTracker()
    result, killed = {}, {}

    def job():
        result["pit"] = features.point_in_time(
            quick_source, months=("2017-01", "2017-02", "2017-03"), engine="spark", master=cluster.url
        )

    worker = threading.Thread(target=job)
    worker.start()
    end = time.monotonic() + 120
    while time.monotonic() < end and worker.is_alive():
        if tracker.getActiveStageIds():  # a stage is running: its tasks sit on both workers
            time.sleep(1.0)
            killed["processes"] = cluster.kill_worker(0)
            break
        time.sleep(0.1)
    worker.join(timeout=600)
    assert killed.get("processes", 0) >= 2, "the worker was not killed while the job ran"
    assert "pit" in result, "the job did not finish after losing a worker"
    assert_same(duckdb_frames["pit"], result["pit"])


def test_distributed_medians_equal_duckdb_on_spark():
    from conftest import median_case, medians_on

    eng = engines.SparkEngine("local[2]")
    try:
        got, expected = medians_on(eng, median_case())
    finally:
        eng.close()
    pd.testing.assert_series_equal(pd.Series(got), pd.Series(expected), check_exact=True)  # bit for bit, nulls too
