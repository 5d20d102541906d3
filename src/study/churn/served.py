"""The two models the scoring dashboard serves, trained one way whoever trains them.

Notebook 30 saves them under ``data/models/`` when the study runs (``save_models``), and the
report it renders describes them; ``study serve`` trains only a model that is missing, through
the same function, and says so on its card. Both are fitted without the held-out cohorts the
database's dashboard scores (:mod:`study.churn.cohorts`), and their cards record the sha256 of
the raw data (:mod:`study.churn.lineage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from study import paths
from study.churn import champion, cohorts, features, lineage, scoring
from study.churn.data import RawSource

NAMES = ("original", "champion")


def missing(models_dir: Path | None = None) -> list[str]:
    root = models_dir or paths.MODELS
    return [name for name in NAMES if not (root / name / "manifest.json").is_file()]


@dataclass
class Saved:
    folders: dict[str, Path]  # model name → its folder
    selection: pd.DataFrame | None = None  # the champion's selection under the temporal protocol
    calibration: pd.DataFrame | None = None  # raw vs calibrated on the last month
    curves: pd.DataFrame | None = None  # reliability curves


def train(
    source: RawSource,
    names=NAMES,
    models_dir: Path | None = None,
    report: str = lineage.STUDY_REPORT,
    original: pd.DataFrame | None = None,
    pit: pd.DataFrame | None = None,
    log=print,
) -> Saved:
    """Fit and save ``names`` (original-format model, champion); ``original``/``pit``: the per-user
    tables when already built (notebook 30 reads them from notebook 20's products)."""
    root = models_dir or paths.MODELS
    months = list(cohorts.MONTHS)
    if "original" in names and original is None:
        original = features.original_recipe(source)
    if pit is None:
        pit = features.point_in_time(source, months=months)
    held_out = cohorts.held_out(source, tuple(months), original=original, pit=pit)
    extra = lineage.card_lineage(source, report)
    saved = Saved({})
    if "original" in names:
        log(f"training the original-format model on {source.describe()}")
        saved.folders["original"] = scoring.train_original(
            source, root / "original", held_out=held_out, frame=original, extra=extra
        )
    if "champion" in names:
        log(f"training the champion on {source.describe()}")
        folder, saved.selection, saved.calibration, saved.curves = champion.train_champion(
            pit[pit.month.isin(months)].reset_index(drop=True),
            months,
            root / "champion",
            source.describe(),
            held_out=held_out,
            extra=extra,
        )
        saved.folders["champion"] = folder
    return saved
