"""Regenerate the golden notebooks in tests/golden/ (run after an intended change of results).

A golden notebook is the notebook's exact source executed with its default (quick-scale)
parameters, its outputs stored. Cells whose output is deterministic are tagged
``nbval-check-output``, so nbval (lax mode) compares them on every test run; cells tagged
``nbval-ignore-output`` in the source (paths, progress bars, interactive plots) are not compared.
Usage: .venv/bin/python scripts/update_golden.py [00_data ...]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import papermill as pm

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ["00_data", "20_features"]
# cells that only show a constant of the code (the data dictionaries): comparing it with itself tests nothing
SHOWS_A_CONSTANT = ("features.dictionary_frame(",)


def update(name: str) -> Path:
    src = ROOT / "notebooks" / f"{name}.ipynb"
    out = ROOT / "tests" / "golden" / f"{name}.ipynb"
    os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype+notebook")
    pm.execute_notebook(str(src), str(out), kernel_name="python3", cwd=str(src.parent), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        tags = [t for t in cell.metadata.get("tags", []) if t != "nbval-check-output"]
        # stderr (progress bars, warnings) is never part of a golden result
        cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
        if "nbval-ignore-output" in tags:
            cell.outputs = []  # not compared: not stored either
        elif cell.outputs and not cell.source.startswith(SHOWS_A_CONSTANT):
            tags.append("nbval-check-output")
        cell.metadata["tags"] = tags
    nb.metadata.pop("papermill", None)
    nbformat.write(nb, out)
    return out


def update_datacard() -> Path:
    """The quick twin's data card as numbers (tests/test_datacard.py compares to a tolerance)."""
    import json

    from study.churn import data, datacard

    out = ROOT / "tests" / "golden" / "datacard_quick.json"
    card = datacard.build(data.resolve_source(None, scale="quick", seed=2017))
    out.write_text(json.dumps(card.numbers(), indent=1) + "\n")
    return out


if __name__ == "__main__":
    for n in sys.argv[1:] or GOLDEN:
        print("updated", update(n))
    if not sys.argv[1:] or "00_data" in sys.argv[1:]:
        print("updated", update_datacard())
