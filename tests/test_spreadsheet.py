"""CSV files for people: no cell a spreadsheet would run as a formula, UTF-8 with a BOM."""

from __future__ import annotations

import io

import pandas as pd

from study import spreadsheet


def test_formula_like_text_cells_are_neutralised_and_numbers_kept():
    ids = [
        "+xq1NmFICWhEe373b6FTdlThNnlULHv5u1wRvzFrY=",
        "=cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1)",
        "\tx",
        "\rx",
        "9o5fQS25OZ9wkN/NR2+P2GqO8iOKrtY+zh+aCSyvs+s=",
        "",
    ]
    df = pd.DataFrame({"msno": ids, "risk": [-0.5, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "=col": ["a"] * 8})
    raw = spreadsheet.csv_bytes(df)
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(io.BytesIO(raw), encoding="utf-8-sig", keep_default_na=False)
    assert back.msno.tolist() == ["'" + i for i in ids[:6]] + ids[6:]
    assert back.risk.tolist() == df.risk.tolist()  # numbers stay numbers, negatives included
    assert list(back.columns) == ["msno", "risk", "'=col"]
    assert not any(str(v).startswith(spreadsheet.FORMULA_START) for v in back.msno)
    assert df.msno.tolist() == ids  # the caller's frame is not changed


def test_write_csv_writes_the_same_bytes(tmp_path):
    df = pd.DataFrame({"band": ["≤ 25 %", "25–50 %"]})
    path = spreadsheet.write_csv(df, tmp_path / "x.csv")
    assert path.read_bytes() == spreadsheet.csv_bytes(df)
    assert "≤ 25 %" in path.read_text(encoding="utf-8-sig")
