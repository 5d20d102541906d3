"""The split (stratified, by user, reproducible) and safe saved models (round trip, tampering)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from study.churn.models import ModelIntegrityError, load_model, save_model, split_users


@pytest.fixture()
def frame():
    rng = np.random.default_rng(0)
    n = 4000
    users = np.repeat([f"u{i:05d}" for i in range(n // 2)], 2)  # two months per user
    y = (rng.random(n) < 0.08).astype(int)
    x = pd.DataFrame({"a": rng.normal(size=n) + y, "b": rng.normal(size=n), "c": rng.integers(0, 5, n)})
    return x.assign(msno=users, is_churn=y)


def test_split_is_stratified_by_user_and_reproducible(frame):
    s = split_users(frame)
    assert s.equals(split_users(frame)) and not s.equals(split_users(frame, seed=41))
    per_user = frame.assign(split=s).groupby("msno").split.nunique()
    assert (per_user == 1).all()  # no user on both sides
    shares = s.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.70, abs=0.01) and shares["test"] == pytest.approx(0.06, abs=0.01)
    user_churn = frame.groupby("msno").is_churn.max()
    side = frame.assign(split=s).groupby("msno").split.first()
    rates = user_churn.groupby(side).mean()
    assert rates.max() - rates.min() < 0.02


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_save_load_round_trip_and_tampering(tmp_path, frame, kind):
    cols = ["a", "b", "c"]
    scaler = StandardScaler().fit(frame[cols])
    x = scaler.transform(frame[cols])
    if kind == "xgboost":
        from xgboost import XGBClassifier

        model = XGBClassifier(n_estimators=30, max_depth=3, random_state=0, n_jobs=1).fit(x, frame.is_churn)
    else:
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(n_estimators=30, random_state=0, n_jobs=1, verbose=-1).fit(x, frame.is_churn)
    folder = save_model(tmp_path / kind, model, cols, {"name": kind, "threshold": 0.34}, scaler=scaler)
    loaded = load_model(folder)
    np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(x)[:, 1], rtol=0, atol=1e-7)
    assert loaded.card["threshold"] == 0.34 and "library versions" in loaded.card
    assert not list(folder.glob("*.pkl")) and not list(folder.glob("*.pickle"))

    pre = folder / "preprocess.json"
    spec = json.loads(pre.read_text())
    spec["columns"] = ["b", "a", "c"]  # a quiet change of column order
    pre.write_text(json.dumps(spec))
    with pytest.raises(ModelIntegrityError, match="preprocess.json does not match"):
        load_model(folder)


def test_missing_manifest_or_file_is_refused(tmp_path, frame):
    from xgboost import XGBClassifier

    model = XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(frame[["a", "b"]], frame.is_churn)
    folder = save_model(tmp_path / "m", model, ["a", "b"], {})
    (folder / "model.json").unlink()
    with pytest.raises(ModelIntegrityError, match="model.json is missing"):
        load_model(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ModelIntegrityError, match="no manifest"):
        load_model(folder)


def test_only_native_formats_are_saved(tmp_path):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match="native formats"):
        save_model(tmp_path / "x", LogisticRegression(), ["a"], {})
