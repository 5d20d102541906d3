"""The notebook runner: parameters by scale, failures named, a failed notebook never rendered."""
from __future__ import annotations

import nbformat
import pytest

from study import paths
from study.runner import load_params, parameters_for, run_study

from conftest import CHROMIUM, IN_CI


def make_notebook(path, body: str, params: str = "scale = 'quick'\nseed = 1", summary="a test notebook"):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "study": {"summary": summary}}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem} title"),
                nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("scale", ["quick", "default", "full"])
def test_each_scale_has_a_parameter_file(scale):
    p = load_params(scale)
    assert p["scale"] == scale and isinstance(p["seed"], int)


def test_only_declared_parameters_are_passed(tmp_path):
    nb = make_notebook(tmp_path / "00_a.ipynb", "print(scale)")
    got = parameters_for(nb, {"scale": "full", "seed": 3, "raw_dir": "", "notebooks": {"00_a": {"seed": 9}}})
    assert got == {"scale": "full", "seed": 9}


def test_runs_in_order_renders_html_and_stops_at_a_failure(tmp_path):
    nbs, reports = tmp_path / "notebooks", tmp_path / "reports"
    nbs.mkdir()
    make_notebook(nbs / "00_first.ipynb", "print('scale is', scale)")
    make_notebook(nbs / "10_broken.ipynb", "raise ValueError('boom in ' + scale)")
    make_notebook(nbs / "20_never.ipynb", "print('not reached')")
    reports.mkdir()
    (reports / "10_broken.html").write_text("stale report from an earlier run")
    params = tmp_path / "p.yaml"
    params.write_text("scale: quick\nseed: 5\n")
    lines = []
    result = run_study("quick", params_file=params, notebooks=nbs, reports=reports,
                       echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert not result.ok
    assert [r.name for r in result.results] == ["00_first", "10_broken"]
    assert (reports / "00_first.html").is_file()
    assert not (reports / "10_broken.html").exists()  # failed: never rendered, stale copy removed
    broken = result.results[1]
    assert "ValueError" in broken.error and "boom in quick" in broken.error
    index = (reports / "index.html").read_text()
    assert "00_first title" in index and "a test notebook" in index and "FAILED" in index
    assert any("10_broken" in line and "FAILED" in line for line in lines)
    executed = nbformat.read(reports / "executed" / "00_first.ipynb", as_version=4)
    assert "scale is quick" in "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


def test_study_notebooks_declare_a_parameters_cell_and_a_summary():
    from study.runner import discover, notebook_info

    found = discover(paths.NOTEBOOKS)
    assert found, "no notebooks found"
    for nb_path in found:
        nb = nbformat.read(nb_path, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), nb_path
        assert notebook_info(nb_path)[1], f"{nb_path.name} has no study.summary metadata"
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{nb_path} has outputs"


def test_papermill_sees_every_parameter_of_every_notebook():
    """A parameter papermill cannot parse is silently never injected: the scale files would not reach it."""
    import ast

    import papermill as pm

    from study.runner import discover

    for nb_path in discover(paths.NOTEBOOKS):
        nb = nbformat.read(nb_path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        assert set(pm.inspect_notebook(str(nb_path))) == assigned, nb_path.name


def test_headline_numbers_reach_the_index_but_not_the_report(tmp_path):
    nbs, reports = tmp_path / "notebooks", tmp_path / "reports"
    nbs.mkdir()
    make_notebook(nbs / "00_h.ipynb", "from study.ui import headline\n\nheadline(**{'churn rate': 0.0613, 'rows': 1234})")
    params = tmp_path / "p.yaml"
    params.write_text("scale: quick\nseed: 5\n")
    result = run_study("quick", params_file=params, notebooks=nbs, reports=reports, echo=lambda *a, **k: None)
    assert result.results[0].headline == {"churn rate": 0.0613, "rows": 1234.0}
    assert "churn rate 0.061; rows 1,234" in (reports / "index.html").read_text()
    assert (reports / "00_h.html").read_text().count("0.0613") == 1  # in the (hidden) code only, no output


@pytest.mark.skipif(not CHROMIUM and not IN_CI, reason="Debian chromium not installed (./run_tests.sh installs it)")
def test_reports_read_offline_with_code_hidden_and_plotly_loaded_once(tmp_path, browser):
    nbs, reports = tmp_path / "notebooks", tmp_path / "reports"
    nbs.mkdir()
    make_notebook(nbs / "00_plot.ipynb", "import plotly.express as px\n\npx.bar(x=[1, 2], y=[3, 4]).show()\n"
                                         "px.line(x=[1, 2], y=[4, 3]).show()\nprint('the end')")
    params = tmp_path / "p.yaml"
    params.write_text("scale: quick\nseed: 5\n")
    assert run_study("quick", params_file=params, notebooks=nbs, reports=reports, echo=lambda *a, **k: None).ok
    page_html = (reports / "00_plot.html").read_text()
    assert (reports / "plotly.min.js").is_file() and "plotly.js v" not in page_html  # the library: once, beside
    assert len(page_html) < 1_500_000 and page_html.count('src="plotly.min.js"') == 1
    # the run's parameters only, not the notebook's defaults too
    assert page_html.count("celltag_injected-parameters") == 1 and "celltag_parameters" not in page_html
    page = browser.new_page()
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
    page.goto((reports / "index.html").as_uri())
    page.click("text=00_plot title")
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    assert page.locator(".js-plotly-plot").count() == 2
    code = page.locator(".jp-CodeCell .jp-Cell-inputWrapper").first
    assert not code.is_visible() and page.locator("#study-toc a", has_text="00_plot title").count() == 1
    page.click("#study-code-toggle")
    assert code.is_visible()
    page.close()
    assert outside == []  # nothing leaves the machine
