"""Reason codes in plain language: the features pushing a customer's risk up most, written as
sentences a stakeholder reads ("auto-renew is off", "listening fell 40 % over the last two
weeks", "subscription ends in 5 days"), with the value and the direction of the contribution.

The wording is data, not code: ``reasons.csv`` beside this module maps each model input (a
trailing ``*`` matches one-hot dummies such as ``registered_via_7``) to a value format and two
sentence templates; an input missing from the table falls back to its column name and value.
"""

from __future__ import annotations

import csv
import fnmatch
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

TABLE = Path(__file__).with_name("reasons.csv")
FORMATS = ("number", "money", "days", "hours", "date", "flag", "share", "ratio", "category")


@lru_cache(maxsize=1)
def table() -> dict[str, dict]:
    """feature (or pattern) → {format, when_high, when_low}, read once from reasons.csv."""
    with open(TABLE, encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    out = {}
    for r in rows:
        if r["format"] not in FORMATS:
            raise ValueError(f"reasons.csv: {r['feature']}: unknown format {r['format']!r}")
        out[r["feature"]] = r
    return out


def rule(feature: str) -> dict | None:
    """The table row for a feature: its exact name first, then a dummy pattern."""
    t = table()
    if feature in t:
        return t[feature]
    for pattern, row in t.items():
        if "*" in pattern and fnmatch.fnmatchcase(feature, pattern):
            return row
    return None


def _number(v: float) -> str:
    return f"{v:,.0f}" if abs(v - round(v)) < 1e-9 or abs(v) >= 100 else f"{v:,.1f}"


def _format(kind: str, v: float) -> str:
    if kind == "money":
        return f"NT${v:,.0f}" if abs(v) >= 10 else f"NT${v:,.2f}"
    if kind == "days":
        d = abs(int(round(v)))
        return f"{d:,} day" + ("" if d == 1 else "s")
    if kind == "hours":
        h = v / 3600
        return f"{h:,.1f} h" if h >= 0.1 or h == 0 else f"{v / 60:,.0f} min"
    if kind == "date":
        s = str(int(v))
        return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if len(s) == 8 else s
    if kind == "share":
        return f"{100 * v:.0f} %"
    if kind == "ratio":
        return f"{abs(100 * (v - 1)):.0f} %"
    return _number(v)


def _high(kind: str, v: float) -> bool:
    if kind in ("flag", "category"):
        return v >= 0.5
    if kind == "ratio":
        return v >= 1
    return v > 0


def describe(feature: str, value, contribution: float, capital: bool = True) -> str:
    """One reason as a sentence: what the value is, and which way it moves the risk."""
    direction = "raises the risk" if contribution > 0 else "lowers the risk"
    r = rule(feature)
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if r is None or not np.isfinite(v):
        return f"{feature} = {value} ({direction})"  # a column the table does not know yet
    category = feature[len(r["feature"]) - 1 :] if r["feature"].endswith("*") else ""
    template = r["when_high"] if _high(r["format"], v) else r["when_low"]
    text = template.format(value=_format(r["format"], v), category=category)
    return f"{text[:1].upper() if capital else text[:1]}{text[1:]} ({direction})"


def reason_texts(contrib: pd.DataFrame, values: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The k features pushing each row's risk up most, as sentences (empty when fewer push it up).

    ``contrib``: SHAP contributions (rows × model inputs); ``values``: the same inputs unscaled.
    """
    c = contrib.to_numpy()
    order = np.argsort(-c, axis=1, kind="stable")[:, :k]
    cols = np.asarray(contrib.columns)
    vals = values.reindex(columns=contrib.columns).to_numpy()
    rows = np.arange(len(c))[:, None]
    top_c, top_v, top_f = c[rows, order], vals[rows, order], cols[order]
    out = np.full(order.shape, "", dtype=object)
    cache: dict[tuple, str] = {}
    for i, j in zip(*np.nonzero(top_c > 0)):
        key = (top_f[i, j], top_v[i, j])
        text = cache.get(key)
        if text is None:
            text = cache[key] = describe(top_f[i, j], top_v[i, j], 1.0)
        out[i, j] = text
    return pd.DataFrame(out, columns=[f"reason_{i + 1}" for i in range(k)], index=contrib.index)
