"""Shared fixtures: the quick twin (generated once under data/raw/twin/, as the notebooks use it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from study import paths


# Under CI=true (``.ci/run``) every suite must run: a missing browser or database server fails the
# run instead of skipping its tests (elsewhere they skip with the reason).
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str):
    """Skip the test with ``reason``, or fail it under CI."""
    (pytest.fail if IN_CI else pytest.skip)(reason)


@pytest.fixture(scope="session")
def quick_source():
    from study.churn.data import resolve_source

    return resolve_source(None, scale="quick", seed=2017)


def train_churn_model(tmp_path_factory, source, kind: str) -> Path:
    """A churn model (original or champion) trained by the command line into a temporary folder."""
    out = tmp_path_factory.mktemp("models") / kind
    r = subprocess.run(
        [str(Path(sys.executable).parent / "study"), "churn", "train", "--model", kind, "--raw", str(source.path),
         "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def shared_kkbox():
    sample = paths.SHARED_KKBOX / "processed_sample.csv"
    if not sample.is_file():
        pytest.skip(f"../shared is absent: {sample} not found (real KKBOX sample needed)")
    return paths.SHARED_KKBOX


# ---------------------------------------------------------------------------------------------
# The live dashboards (both browser test files share one server and one browser).
CHROMIUM = os.environ.get("STUDY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory, quick_source):
    """``study serve --scale quick`` in a temporary folder, shared by the browser tests of both
    dashboards. The door models are trained first on quick synthetic scenes only (about two minutes;
    the real photos would add several), the churn models and database by the server itself."""
    from study.doors.train import train_all

    root = tmp_path_factory.mktemp("serve")
    train_all("quick", out=root / "models" / "doors", use_real=False, echo=lambda *_: None)
    port, token = _free_port(), "t0k-" + os.urandom(12).hex()
    env = {
        **os.environ,
        "STUDY_MODELS_DIR": str(root / "models"),
        "STUDY_TOKEN": token,
        "STUDY_DB_URL": f"sqlite:///{(root / 'application.sqlite').as_posix()}",
    }
    log = open(root / "serve.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "study"), "serve", "--scale", "quick", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"study serve exited: {(root / 'serve.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{base}/?token={token}", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(1)
    else:
        proc.terminate()
        pytest.fail("study serve did not answer within 10 minutes")
    yield {
        "base": base,
        "token": token,
        "url": f"{base}/voila/render/churn_scoring.ipynb?token={token}",
        "root": root,
        "log": root / "serve.log",
    }
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def playwright():
    """One Playwright driver for the session (the sync API allows one at a time)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright):
    if not CHROMIUM:
        unavailable("Debian chromium not installed (./run_tests.sh installs it)")
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
    yield b
    b.close()


def close_page(page) -> None:
    """Close a page the way a person closes a tab (beforeunload runs, so Voilà's shutdown beacon
    releases its kernel), then its browser context."""
    ctx = page.context
    page.close(run_before_unload=True)
    ctx.close()


def median_case():
    """Daily-log cells that exercise the distributed exact medians of the z-score capping: ranks
    straddling two buckets, ties, a null, a constant column, distinct values inside one bucket,
    an all-null column and a long tail with outliers."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 2001
    df = pd.DataFrame({"msno": [f"user{i:04d}" for i in range(n)]})
    df["num_25"] = np.r_[np.ones(1000), np.full(1000, 2.0), [50_000.0]]  # 2000 inliers: median 1.5
    df["num_50"] = rng.integers(0, 5, n).astype(float)
    df.loc[3, "num_50"] = np.nan  # 2000 cells left: an even count of tied integers
    df["num_75"] = 4.0  # sd 0: no outlier, median 4
    df["num_985"] = np.r_[rng.poisson(3, n - 1), [10**6]].astype(float)
    df["num_100"] = 1 + rng.integers(0, 50, n) * 1e-9  # distinct values in one bucket: ranked
    df["num_unq"] = np.nan  # no value: no median
    df["total_secs"] = rng.lognormal(7, 1.5, n)
    return df


def medians_on(eng, frame) -> tuple[dict, dict]:
    """(the recipe's exact medians, DuckDB's median aggregate) of ``frame`` seen as the log rows."""
    import duckdb

    from study.churn import features

    eng.register("logs", frame)
    for name, step in features._log_median_steps():
        eng.create(name, step)
    got = eng.frame("SELECT * FROM log_medians").iloc[0].to_dict()
    con = duckdb.connect()
    con.register("logs", frame)
    _, stats = features._log_median_steps()[0]
    con.execute(f"CREATE TABLE log_stats AS {stats}")
    ref = ", ".join(
        f"median({m}) FILTER (WHERE coalesce({features._z(m)}, 0) <= {features.Z_LIMIT}) AS med_{m}"
        for m in features.LOG_METRICS
    )
    expected = con.execute(f"SELECT {ref} FROM logs, log_stats").df().iloc[0].to_dict()
    return got, expected
