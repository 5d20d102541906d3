"""The quick twin's data card against its golden numbers, to a tolerance (not as rendered HTML:
a change in formatting or in the last bits of a float is not a change of the data)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from study.churn import datacard

GOLDEN = Path(__file__).parent / "golden" / "datacard_quick.json"
REL, ABS = 1e-6, 1e-9


def _differences(got, want, where="") -> list[str]:
    if isinstance(want, dict):
        keys = set(got) | set(want)
        return [d for k in sorted(keys) for d in _differences(got.get(k), want.get(k), f"{where}/{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items, expected {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in _differences(g, w, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(want, numbers) and isinstance(got, numbers) and not isinstance(want, bool):
        return [] if math.isclose(got, want, rel_tol=REL, abs_tol=ABS) else [f"{where}: {got!r}, expected {want!r}"]
    return [] if got == want else [f"{where}: {got!r}, expected {want!r}"]


def test_the_comparison_tolerates_rounding_but_not_changes():
    want = {"t": {"columns": ["a", "rate"], "data": [["x", 0.061234567], ["y", 12]]}}
    assert _differences({"t": {"columns": ["a", "rate"], "data": [["x", 0.0612345671], ["y", 12.0]]}}, want) == []
    assert _differences({"t": {"columns": ["a", "rate"], "data": [["x", 0.0613], ["y", 12]]}}, want) == [
        "/t/data[0][1]: 0.0613, expected 0.061234567"
    ]
    assert _differences({"t": {"columns": ["a", "rate"], "data": [["z", 0.061234567], ["y", 12]]}}, want)
    assert _differences({"t": {"columns": ["a"], "data": []}}, want)


def test_the_quick_data_card_matches_its_golden_numbers(quick_source):
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} missing: run scripts/update_golden.py 00_data")
    got = json.loads(json.dumps(datacard.build(quick_source).numbers()))
    problems = _differences(got, json.loads(GOLDEN.read_text()))
    assert not problems, "the data card changed (scripts/update_golden.py if intended):\n" + "\n".join(problems[:20])
