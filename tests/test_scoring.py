"""Risk bands, reason codes, and the original-format model through the command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import train_churn_model
from study import spreadsheet
from study.churn import scoring

STUDY = str(Path(sys.executable).parent / "study")


def test_band_edges():
    p = [0.0, 0.25, 0.2501, 0.5, 0.75, 0.9, 0.9001, 1.0]
    assert list(scoring.bands(p)) == [
        "≤ 25 %",
        "≤ 25 %",
        "25–50 %",
        "25–50 %",
        "50–75 %",
        "75–90 %",
        "> 90 %",
        "> 90 %",
    ]


def test_reason_codes_take_the_largest_positive_contributions():
    contrib = pd.DataFrame({"a": [0.5, -0.1], "b": [2.0, -0.3], "c": [-1.0, 0.2], "d": [0.1, -0.5]})
    r = scoring.reason_codes(contrib)
    assert r.iloc[0].tolist() == ["b", "a", "d"]
    assert r.iloc[1].tolist() == ["c", "", ""]  # only one feature pushes the risk up


@pytest.fixture(scope="module")
def original_model(tmp_path_factory, quick_source):
    return train_churn_model(tmp_path_factory, quick_source, "original")


def test_original_model_scores_our_processed_csv_with_reasons(original_model, quick_source, tmp_path):
    from study.churn import features

    df = features.original_recipe(quick_source).head(300)
    features.write_processed(df.drop(columns="is_churn"), tmp_path / "in.csv")  # is_churn is optional
    r = subprocess.run(
        [
            STUDY,
            "churn",
            "score",
            "--model-dir",
            str(original_model),
            "--input",
            str(tmp_path / "in.csv"),
            "--output",
            str(tmp_path / "out.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # BOM for spreadsheets
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False, encoding="utf-8-sig")
    assert list(out.columns) == ["msno", "risk", "band", "reason_1", "reason_2", "reason_3"]
    assert len(out) == 300 and out.risk.between(0, 1).all() and out.risk.is_monotonic_decreasing
    model = scoring.load(original_model)
    assert len(model.columns) == 30 and model.card["threshold"] > 0
    reasons = set(out.reason_1) - {""}
    assert reasons and all(r.endswith("(raises the risk)") for r in reasons)  # sentences, not column names
    assert not reasons & set(model.columns)


def test_original_model_on_the_real_sample(original_model, shared_kkbox, tmp_path):
    r = subprocess.run(
        [
            STUDY,
            "churn",
            "score",
            "--model-dir",
            str(original_model),
            "--input",
            str(shared_kkbox / "processed_sample.csv"),
            "--output",
            str(tmp_path / "real.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "scored 6,023 users" in r.stdout
    # the printed ROC AUC is that of the written risks against the sample's own labels
    out = pd.read_csv(tmp_path / "real.csv", keep_default_na=False, encoding="utf-8-sig")
    truth = pd.read_csv(shared_kkbox / "processed_sample.csv", usecols=["msno", "is_churn"])
    truth["msno"] = truth.msno.map(spreadsheet.neutralise)  # ids starting with "+" are written as "'+…"
    both = out.merge(truth, on="msno", validate="one_to_one")
    assert len(out) == len(both) == 6023
    auc = roc_auc_score(both.is_churn, both.risk)
    printed = float(re.search(r"ROC AUC (\d\.\d+)", r.stdout).group(1))
    assert printed == pytest.approx(auc, abs=2e-3) and auc > 0.6, (printed, auc)


def test_a_tampered_model_is_refused_by_the_cli(original_model, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(original_model, bad)
    with open(bad / "model.json", "a") as f:
        f.write(" ")
    (tmp_path / "in.csv").write_text("msno\n")
    r = subprocess.run(
        [
            STUDY,
            "churn",
            "score",
            "--model-dir",
            str(bad),
            "--input",
            str(tmp_path / "in.csv"),
            "--output",
            str(tmp_path / "o.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "model.json does not match" in r.stderr and "Traceback" not in r.stderr


def test_a_malformed_input_gets_a_message(original_model, tmp_path):
    (tmp_path / "in.csv").write_text("msno,city\nabc,1\n")
    r = subprocess.run(
        [
            STUDY,
            "churn",
            "score",
            "--model-dir",
            str(original_model),
            "--input",
            str(tmp_path / "in.csv"),
            "--output",
            str(tmp_path / "o.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "not a valid processed CSV" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def champion_model(tmp_path_factory, quick_source):
    return train_churn_model(tmp_path_factory, quick_source, "champion")


def test_champion_follows_its_declared_rule_and_keeps_its_calibration(champion_model, quick_source):
    from study.churn import features, zoo
    from study.churn.models import load_model

    model = load_model(champion_model)
    card = model.card
    losses = [row["log loss"] for row in card["selection (temporal protocol)"]]
    assert losses == sorted(losses) and card["model"] == card["selection (temporal protocol)"][0]["model"]
    assert model.calibration["kind"] == "isotonic" and len(model.calibration["x"]) >= 2
    pit = features.point_in_time(quick_source, months=("2017-03",))
    x = zoo.pit_matrix(pit)
    calibrated = model.predict_proba(x)
    raw = model._predict(model.matrix(x))
    assert np.all(np.diff(calibrated[np.argsort(raw)]) >= -1e-12)  # isotonic: order preserved
    assert card["metrics (test month, calibrated)"]["log loss"] <= card["metrics (test month, raw)"]["log loss"] + 0.02


def test_champion_scores_a_month_from_raw_tables(champion_model, quick_source, tmp_path):
    r = subprocess.run(
        [
            STUDY,
            "churn",
            "score",
            "--model",
            "champion",
            "--model-dir",
            str(champion_model),
            "--raw",
            str(quick_source.path),
            "--month",
            "2017-03",
            "--output",
            str(tmp_path / "c.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(tmp_path / "c.csv", keep_default_na=False)
    assert len(out) == len(pd.read_csv(quick_source.file("train_v2.csv"))) and "ROC AUC" in r.stdout
    missing = subprocess.run(
        [
            STUDY,
            "churn",
            "score",
            "--model",
            "champion",
            "--model-dir",
            str(champion_model),
            "--output",
            str(tmp_path / "d.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "--month" in missing.stderr


def test_tree_contributions_add_up_to_the_log_odds():
    from xgboost import XGBClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + rng.normal(0, 0.5, 400) > 1).astype(int)
    m = XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(x, y)
    c = scoring.tree_contributions(m, x, ["a", "b", "c"])
    logit = np.log(m.predict_proba(x)[:, 1] / (1 - m.predict_proba(x)[:, 1]))
    bias = logit - c.sum(axis=1).to_numpy()
    assert np.allclose(bias, bias[0], atol=1e-4)  # contributions + one bias = the model's log-odds
    assert c.abs().mean().idxmax() == "a"


def test_tree_contributions_of_an_xgboost_fitted_on_a_frame():
    """A champion fitted on a named frame (XGBoost keeps the names) is explained from the plain
    matrix the saved model hands over; the twin of issue 13 made XGBoost the champion and caught it."""
    from xgboost import XGBClassifier

    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(300, 2)), columns=["tenure_days", "secs_30"])
    y = (x.tenure_days + rng.normal(0, 0.5, 300) > 0.5).astype(int)
    m = XGBClassifier(n_estimators=10, max_depth=2, n_jobs=1).fit(x, y)
    c = scoring.tree_contributions(m, x.to_numpy(), list(x.columns))
    assert list(c.columns) == ["tenure_days", "secs_30"] and c.abs().mean().idxmax() == "tenure_days"
