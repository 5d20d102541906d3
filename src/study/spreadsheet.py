"""CSV files that are safe to open in a spreadsheet.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by Excel,
LibreOffice and Google Sheets as a formula (CSV injection, OWASP). Real KKBOX ids are base64 and
may begin with ``+``; every text cell written for a user is therefore prefixed with an apostrophe
when it begins with one of those characters (numbers stay numbers). The file starts with a UTF-8
byte-order mark so that Excel reads "≤ 25 %" and "–" as written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells (and column names) cannot start a formula."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def csv_bytes(df: pd.DataFrame) -> bytes:
    """The CSV of ``df`` for a person: neutralised cells, UTF-8 with a byte-order mark."""
    return safe_frame(df).to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")  # RFC 4180


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write :func:`csv_bytes` to ``path``."""
    path = Path(path)
    path.write_bytes(csv_bytes(df))
    return path
