"""Where things live: the repository, its data folders, and the optional ``../shared`` data."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(os.environ.get("STUDY_ROOT", Path(__file__).resolve().parents[2]))
DATA = ROOT / "data"
RAW = DATA / "raw"
REAL_KKBOX = RAW / "kkbox"  # real Kaggle files go here (README); used instead of the twin
TWIN = RAW / "twin"  # generated twins, one folder per scale
PROCESSED = DATA / "processed"
DB = DATA / "db"  # the SQLite databases of a run (application.sqlite and its _analytic twin)
DOORS_SYNTHETIC = DATA / "doors"  # generated door scenes, one folder per scale
SERVE_TOKEN = DATA / "serve-token"  # the dashboards' token when none is given (mode 600)
DASHBOARDS = ROOT / "dashboards"
MODELS = Path(os.environ.get("STUDY_MODELS_DIR") or DATA / "models")  # saved models (churn/, doors/)
DOOR_MODELS = MODELS / "doors"  # the door detector and classifiers the demo and `study doors predict` load
STEP_RECORDS = DATA / "cache" / "steps.json"  # what each study step last read and wrote (study.steps)
ONNX_CACHE = DATA / "cache" / "onnx"  # the ImageNet backbone's parts exported for ONNX Runtime (doors training)
REPORTS = ROOT / "reports"
NOTEBOOKS = ROOT / "notebooks"
PARAMS = ROOT / "params"

# ../shared beside the checkout (read in place, never copied); STUDY_SHARED overrides.
SHARED = Path(os.environ.get("STUDY_SHARED", ROOT.parent / "shared"))
SHARED_KKBOX = SHARED / "reference" / "kkbox"
SHARED_DOORS = SHARED / "doors"
