"""The per-user tables notebook 20 writes and the later steps read instead of rebuilding them.

``data/processed/<scale>-seed<seed>/`` (or ``real/``) holds the original recipe for March and its
February analogue and the point-in-time set, as parquet, with ``products.json`` naming the raw
data they were built from (its sha256). A reader gets a table only if it was built from the very
raw data in use (and, for the point-in-time set, for the months it needs); otherwise the table is
built from the raw data on the spot, so a notebook run by hand never reads a stale product.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from study.churn import features
from study.churn.data import RawSource, processed_dir
from study.churn.lineage import source_digest

FILES = {"original": "original.parquet", "february": "original_february.parquet", "pit": "pit.parquet"}
STAMP = "products.json"


def build(source: RawSource, name: str, months=("2017-01", "2017-02", "2017-03")) -> pd.DataFrame:
    if name == "original":
        return features.original_recipe(source)
    if name == "february":
        return features.original_recipe_february(source)
    if name == "pit":
        return features.point_in_time(source, months=tuple(months))
    raise ValueError(f"unknown product {name!r}; known: {', '.join(FILES)}")


def write(source: RawSource, tables: dict[str, pd.DataFrame], folder: str | Path | None = None) -> Path:
    """Write ``tables`` (names of :data:`FILES`) and the stamp naming their raw data."""
    folder = Path(folder) if folder else processed_dir(source)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = {"source": source.describe(), "source sha256": source_digest(source), "tables": {}}
    for name, frame in tables.items():
        frame.to_parquet(folder / FILES[name], index=False)
        stamp["tables"][name] = {
            "rows": int(len(frame)),
            **({"months": sorted(set(frame.month))} if "month" in frame else {}),
        }
    (folder / STAMP).write_text(json.dumps(stamp, indent=1))
    return folder


def save_study(source: RawSource, original: pd.DataFrame, pit: pd.DataFrame, folder: str | Path | None = None) -> str:
    """Notebook 20's products: the two tables it built, the February analogue when the raw data
    has February, and the original recipe as CSV in the original study's format."""
    tables = {"original": original, "pit": pit}
    if features.has_february(source):  # the one-month-earlier analogue notebook 30 compares with
        tables["february"] = features.original_recipe_february(source)
    out = write(source, tables, folder)
    features.write_processed(original, out / "original.csv")
    return f"Saved to `{out}`: " + ", ".join(sorted(p.name for p in out.iterdir())) + "."


def load(
    source: RawSource, name: str, months=("2017-01", "2017-02", "2017-03"), folder: str | Path | None = None, log=print
) -> pd.DataFrame:
    """The table notebook 20 wrote for this raw data, else built now (and said so)."""
    folder = Path(folder) if folder else processed_dir(source)
    why = _unusable(source, name, months, folder)
    if why is None:
        frame = pd.read_parquet(folder / FILES[name])
        return frame[frame.month.isin(months)].reset_index(drop=True) if name == "pit" else frame
    log(f"{name}: built from the raw data ({why})")
    return build(source, name, months)


def _unusable(source: RawSource, name: str, months, folder: Path) -> str | None:
    try:
        stamp = json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return f"no products in {folder}: notebook 20 writes them"
    if name not in stamp.get("tables", {}) or not (folder / FILES[name]).is_file():
        return f"{FILES[name]} not in {folder}"
    if stamp.get("source sha256") != source_digest(source):
        return f"{folder} was built from other raw data"
    if name == "pit" and not set(months) <= set(stamp["tables"][name].get("months", [])):
        return f"{FILES[name]} lacks some of the months {', '.join(months)}"
    return None
