"""Where the served models and the database come from, and whether they come from the same data.

A model card and the database's ``meta`` table both record the sha256 of the raw files they were
built from (:func:`source_digest`). The dashboard's About tab shows, for each model, the data it
was trained on, that hash and the report that describes it, and says plainly when the database it
scores holds other data than a model was trained on.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import pandas as pd

from study.churn.data import REQUIRED, RawSource
from study.hashing import sha256_file

STUDY_REPORT = "reports/30_modelling.html"  # the report describing the models notebook 30 saves
NO_REPORT = "none: trained by `study serve` because the study had not saved it"
CLI_REPORT = "none: trained by `study churn train`"


@lru_cache(maxsize=8)
def _digest(files: tuple[tuple[str, int, int], ...], folder: str) -> str:
    h = hashlib.sha256()
    for name, _, _ in files:
        h.update(f"{name}\0{sha256_file(Path(folder) / name)}\n".encode())
    return h.hexdigest()


def source_digest(source: RawSource) -> str:
    """sha256 over the raw files' names and contents (remembered per process by size and mtime)."""
    stats = tuple((n, (source.path / n).stat().st_size, (source.path / n).stat().st_mtime_ns) for n in sorted(REQUIRED))
    return _digest(stats, str(source.path))


def card_lineage(source: RawSource, report: str) -> dict:
    """What a model card adds about its origin: the report describing it and the raw data's hash."""
    return {"report": report, "source sha256": source_digest(source)}


def data_of(card: dict) -> dict:
    return card.get("data", {}) if isinstance(card.get("data"), dict) else {}


def table(meta: dict, cards: dict[str, dict]) -> pd.DataFrame:
    """One row per model: what it was trained on, the hashes, the report, and whether the database
    it scores holds the same data."""
    db_hash = meta.get("source_sha256", "")
    rows = []
    for name, card in cards.items():
        d = data_of(card)
        model_hash = d.get("source sha256", "")
        same = "unknown (not recorded)" if not (db_hash and model_hash) else ("yes" if db_hash == model_hash else "NO")
        rows.append(
            {
                "model": name,
                "trained on": d.get("source", "?"),
                "raw data sha256": model_hash[:16],
                "training frame sha256": str(d.get("sha256 of the training frame", ""))[:16],
                "described in": card.get("report", NO_REPORT),
                "same data as the database": same,
            }
        )
    rows.append(
        {
            "model": "(database)",
            "trained on": meta.get("source", "?"),
            "raw data sha256": db_hash[:16],
            "training frame sha256": "",
            "described in": "reports/40_database.html",
            "same data as the database": "",
        }
    )
    return pd.DataFrame(rows)


def mismatches(meta: dict, cards: dict[str, dict]) -> list[str]:
    """A plain sentence for each model whose training data is not the data in the database."""
    db_hash = meta.get("source_sha256", "")
    out = []
    for name, card in cards.items():
        d = data_of(card)
        if db_hash and d.get("source sha256") and d["source sha256"] != db_hash:
            out.append(
                f"The {name} model was trained on other data than the database holds: the model on "
                f"{d.get('source', '?')} (raw data {d['source sha256'][:12]}…), the database on "
                f"{meta.get('source', '?')} ({db_hash[:12]}…). Its scores and performance here are for data it "
                "was not built from; rerun the study (`./run_all.sh`) so both come from the same data."
            )
    return out
