"""The ``study`` command line: synth writes the Kaggle files; bad data gets a message, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from study.churn.data import FILES

STUDY = str(Path(sys.executable).parent / "study")


def test_churn_synth_writes_every_kaggle_file(tmp_path):
    out = tmp_path / "twin"
    r = subprocess.run(
        [STUDY, "churn", "synth", "--scale", "tiny", "--seed", "3", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.glob("*.csv")} == set(FILES)
    meta = json.loads((out / "twin.json").read_text())
    assert meta["seed"] == 3 and meta["scale"] == "tiny"
    assert "churn in train_v2.csv" in r.stdout
    v = subprocess.run([STUDY, "churn", "validate", "--raw", str(out)], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.count(" ok (") == len(FILES), v.stdout


def test_validate_reports_a_malformed_file_without_a_traceback(tmp_path):
    out = tmp_path / "twin"
    subprocess.run([STUDY, "churn", "synth", "--scale", "tiny", "--out", str(out), "--quiet"], check=True)
    lines = (out / "members_v3.csv").read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",2017-02-30"
    (out / "members_v3.csv").write_text("\n".join(lines) + "\n")
    v = subprocess.run([STUDY, "churn", "validate", "--raw", str(out)], capture_output=True, text=True)
    assert v.returncode == 1
    assert "members_v3.csv, column registration_init_time: expected integers, found '2017-02-30' on line 6" in v.stdout
    assert "Traceback" not in v.stdout + v.stderr


def test_missing_data_is_a_message(tmp_path):
    r = subprocess.run([STUDY, "churn", "validate", "--raw", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "missing raw file" in r.stderr and "Traceback" not in r.stderr


def test_export_db_writes_both_databases_and_explains_failures(tmp_path, quick_source):
    url = f"sqlite:///{(tmp_path / 'db' / 'application.sqlite').as_posix()}"
    r = subprocess.run(
        [
            STUDY,
            "churn",
            "export-db",
            "--url",
            url,
            "--raw",
            str(quick_source.path),
            "--quiet",
            "--sample-fraction",
            "0.02",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "db" / "application.sqlite").is_file() and (tmp_path / "db" / "analytic.sqlite").is_file()
    assert "one transaction" in r.stdout and "features_pit" in r.stdout
    bad = subprocess.run(
        [
            STUDY,
            "churn",
            "export-db",
            "--url",
            url,
            "--raw",
            str(quick_source.path),
            "--quiet",
            "--sample-fraction",
            "1.5",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "sample fraction must be in (0, 1]" in bad.stderr and "Traceback" not in bad.stderr
    down = subprocess.run(
        [
            STUDY,
            "churn",
            "export-db",
            "--url",
            "mysql+pymysql://nobody:secret@127.0.0.1:1/none",
            "--raw",
            str(quick_source.path),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert down.returncode == 2 and "error: database:" in down.stderr and "secret" not in down.stdout + down.stderr
