"""Scoring millions of users on Spark with a saved model: each partition loads the model's native
files (XGBoost JSON / LightGBM text, checked against their sha256 manifest; never a pickle) once
and runs the one scoring path, :func:`study.churn.scoring.score`, on its rows: risk, band and the
top-3 reasons per user, written as parquet by the executors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.churn import scoring

REASONS = [f"reason_{i + 1}" for i in range(3)]
SCHEMA = "msno STRING, expiry_date STRING, risk DOUBLE, band STRING, " + ", ".join(f"{r} STRING" for r in REASONS)


def score_partitions(model_files: dict[str, bytes]):
    """The function each partition runs: the saved model's files (shipped with the task as bytes,
    a few MB) are written to a temporary folder and loaded once per partition (the manifest's
    sha256 checked), then every batch of rows is scored."""

    def run(batches):
        import tempfile

        from study.churn.models import load_model

        with tempfile.TemporaryDirectory(prefix="study-model-") as tmp:
            for name, content in model_files.items():
                (Path(tmp) / name).write_bytes(content)
            model = load_model(tmp)
            for frame in batches:
                if len(frame):
                    yield scoring.score(model, frame.reset_index(drop=True))[SCHEMA_COLUMNS]

    return run


SCHEMA_COLUMNS = ["msno", "expiry_date", "risk", "band", *REASONS]


def score_dataframe(model_dir: str | Path, frame):
    """A Spark DataFrame of feature rows (the model's recipe) → a Spark DataFrame of scores."""
    files = {p.name: p.read_bytes() for p in Path(model_dir).iterdir() if p.is_file()}
    return frame.mapInPandas(score_partitions(files), SCHEMA)


def read_features(spark, path: str | Path):
    """Feature rows from parquet (a file or a folder, any URL Spark reads) or a processed CSV."""
    path = str(path)
    if path.endswith(".csv"):
        from study.churn.features import read_processed

        return spark.createDataFrame(read_processed(path))
    return spark.read.parquet(path)


def score_to_parquet(
    model_dir: str | Path,
    output: str | Path,
    features: str | Path | pd.DataFrame,
    master: str | None = None,
    partitions: int | None = None,
) -> int:
    """Score the feature rows (a path, or a pandas frame already built) with the saved model on
    Spark; the executors write ``output`` (a parquet folder). Returns the number of users scored."""
    from study.churn.engines import spark_session

    spark = spark_session(master)
    frame = spark.createDataFrame(features) if isinstance(features, pd.DataFrame) else read_features(spark, features)
    if partitions:
        frame = frame.repartition(int(partitions))
    scored = score_dataframe(model_dir, frame)
    scored.write.mode("overwrite").parquet(str(output))
    return spark.read.parquet(str(output)).count()
