"""Splits and safe saved models.

* :func:`split_users`: the original protocol's stratified 70 / 24 / 6 % split, by user, so that no
  user is on both sides even when a frame holds several months per user.
* :func:`save_model` / :func:`load_model`: native formats only (XGBoost JSON, LightGBM text,
  scaler and column lists as JSON), a model card, and a sha256 manifest that the loader checks
  before reading anything: no pickle, and a tampered file is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from study.hashing import sha256_file

SPLIT_NAMES = ("train", "valid", "test")


def split_users(
    df: pd.DataFrame, fractions=(0.70, 0.24, 0.06), seed: int = 40, user: str = "msno", label: str = "is_churn"
) -> pd.Series:
    """'train' / 'valid' / 'test' per row, stratified on each user's label (churned in any month),
    every row of a user on the same side, reproducible for a seed (the original study used 40)."""
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError("fractions must sum to 1")
    users = df.groupby(user, sort=True)[label].max()
    ids, y = users.index.to_numpy(), users.to_numpy()
    train_ids, rest_ids, _, rest_y = train_test_split(ids, y, train_size=fractions[0], stratify=y, random_state=seed)
    valid_share = fractions[1] / (fractions[1] + fractions[2])
    valid_ids, test_ids = train_test_split(rest_ids, train_size=valid_share, stratify=rest_y, random_state=seed)
    side = pd.Series("train", index=ids)
    side[valid_ids] = "valid"
    side[test_ids] = "test"
    return df[user].map(side).rename("split")


# ---------------------------------------------------------------------------------------------
class ModelIntegrityError(RuntimeError):
    """A saved model whose files do not match its manifest (tampered, truncated or incomplete)."""


def _versions() -> dict:
    import sklearn

    out = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
    }
    for name in ("xgboost", "lightgbm"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def save_model(
    folder: str | Path, model, columns: list[str], card: dict, scaler=None, calibration: dict | None = None
) -> Path:
    """Write ``model`` (a fitted XGBClassifier or LGBMClassifier) in its native format, the
    preprocessing as JSON, the model card, and the manifest of their sha256 digests."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kind = type(model).__name__
    if kind == "XGBClassifier":
        model_file = "model.json"
        model.save_model(folder / model_file)
    elif kind == "LGBMClassifier":
        model_file = "model.txt"
        model.booster_.save_model(str(folder / model_file))
    else:
        raise TypeError(f"{kind}: only XGBoost and LightGBM classifiers are saved (native formats, no pickle)")
    pre = {"columns": list(columns), "kind": kind, "model_file": model_file}
    if scaler is not None:
        pre["scaler"] = {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()}
    if calibration is not None:
        pre["calibration"] = calibration  # {"kind": "isotonic", "x": [...], "y": [...]}
    (folder / "preprocess.json").write_text(json.dumps(pre, indent=1))
    full_card = {
        "saved": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "library versions": _versions(),
        **card,
    }
    (folder / "card.json").write_text(json.dumps(full_card, indent=1, default=str))
    files = [model_file, "preprocess.json", "card.json"]
    (folder / "manifest.json").write_text(json.dumps({"sha256": {f: sha256_file(folder / f) for f in files}}, indent=1))
    return folder


@dataclass
class ScoringModel:
    """A loaded model: the columns it needs, optional scaling, native booster."""

    columns: list[str]
    card: dict
    _predict: object
    _mean: np.ndarray | None = None
    _scale: np.ndarray | None = None
    booster: object = None  # the native model (XGBClassifier or lightgbm.Booster), for contributions
    calibration: dict | None = None

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"missing model column(s): {', '.join(missing[:10])}")
        x = frame[self.columns].to_numpy(dtype=float)
        if self._mean is not None:
            x = (x - self._mean) / self._scale
        return x

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn probability per row (calibrated when the model carries a calibration)."""
        p = self._predict(self.matrix(frame))
        if self.calibration:
            p = np.interp(p, self.calibration["x"], self.calibration["y"])
        return p


def verify(folder: str | Path) -> dict:
    """Check every file against the manifest; returns the manifest or raises ModelIntegrityError."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ModelIntegrityError(f"{folder}: no manifest.json, refusing to load")
    manifest = json.loads(manifest_path.read_text())
    for name, digest in manifest.get("sha256", {}).items():
        path = folder / name
        if not path.is_file():
            raise ModelIntegrityError(f"{folder}: {name} is missing")
        if sha256_file(path) != digest:
            raise ModelIntegrityError(f"{folder}: {name} does not match its sha256 in the manifest (modified?)")
    required = {"preprocess.json", "card.json"}
    if not required <= set(manifest.get("sha256", {})):
        raise ModelIntegrityError(f"{folder}: manifest does not cover {', '.join(sorted(required))}")
    return manifest


def load_model(folder: str | Path) -> ScoringModel:
    folder = Path(folder)
    verify(folder)
    pre = json.loads((folder / "preprocess.json").read_text())
    card = json.loads((folder / "card.json").read_text())
    path = folder / pre["model_file"]
    if pre["kind"] == "XGBClassifier":
        from xgboost import XGBClassifier

        booster = XGBClassifier()
        booster.load_model(path)
        predict = lambda x: booster.predict_proba(x)[:, 1]  # noqa: E731
    elif pre["kind"] == "LGBMClassifier":
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path))
        predict = booster.predict
    else:
        raise ModelIntegrityError(f"{folder}: unknown model kind {pre['kind']!r}")
    scaler = pre.get("scaler")
    return ScoringModel(
        pre["columns"],
        card,
        predict,
        np.asarray(scaler["mean"]) if scaler else None,
        np.asarray(scaler["scale"]) if scaler else None,
        booster,
        pre.get("calibration"),
    )
