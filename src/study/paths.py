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
REPORTS = ROOT / "reports"
NOTEBOOKS = ROOT / "notebooks"
PARAMS = ROOT / "params"

# ../shared beside the checkout (read in place, never copied); STUDY_SHARED overrides.
SHARED = Path(os.environ.get("STUDY_SHARED", ROOT.parent / "shared"))
SHARED_KKBOX = SHARED / "reference" / "kkbox"
SHARED_DOORS = SHARED / "doors"
