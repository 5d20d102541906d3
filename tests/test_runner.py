"""The notebook runner: parameters by scale, failures named, a failed notebook never rendered."""

from __future__ import annotations

import functools

import nbformat
import pytest

from study import paths
from study.runner import load_params, parameters_for, run_study

from conftest import CHROMIUM, IN_CI


def make_notebook(path, body: str, params: str = "scale = 'quick'\nseed = 1", summary="a test notebook"):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "study": {"summary": summary},
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {path.stem} title"),
        nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ]
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
    result = run_study(
        "quick",
        params_file=params,
        notebooks=nbs,
        reports=reports,
        echo=lambda *a, **k: lines.append(" ".join(map(str, a))),
    )
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
        assigned = {
            t.id
            for node in ast.parse(cell.source).body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        assert set(pm.inspect_notebook(str(nb_path))) == assigned, nb_path.name


def test_headline_numbers_reach_the_index_but_not_the_report(tmp_path):
    nbs, reports = tmp_path / "notebooks", tmp_path / "reports"
    nbs.mkdir()
    make_notebook(
        nbs / "00_h.ipynb", "from study.ui import headline\n\nheadline(**{'churn rate': 0.0613, 'rows': 1234})"
    )
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
    make_notebook(
        nbs / "00_plot.ipynb",
        "import plotly.express as px\n\npx.bar(x=[1, 2], y=[3, 4]).show()\n"
        "px.line(x=[1, 2], y=[4, 3]).show()\nprint('the end')",
    )
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


def test_a_step_reruns_only_when_what_decides_it_changed(tmp_path, monkeypatch):
    """Up to date is skipped; its notebook, a parameter, the package code it imports (through the
    package's own imports), an upstream product or its report changing reruns it; --force runs all."""
    from study import steps

    nbs, reports, out = tmp_path / "notebooks", tmp_path / "reports", tmp_path / "out"
    nbs.mkdir(), out.mkdir()
    pkg = nbs / "toypkg"  # the kernel runs in the notebooks' folder: it imports this package
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from toypkg.helper import VALUE\n")
    (pkg / "helper.py").write_text("VALUE = 'one'\n")
    monkeypatch.setattr(steps, "PACKAGE", "toypkg")
    params = "scale = 'quick'\nseed = 1\nout_dir = ''"
    make = make_notebook(
        nbs / "00_make.ipynb",
        "import toypkg\nfrom pathlib import Path\n\n"
        "Path(out_dir, 'made.txt').write_text(toypkg.VALUE + ' ' + str(seed))",
        params,
    )
    use = make_notebook(nbs / "10_use.ipynb", "print(open(out_dir + '/made.txt').read())", params)
    for path, reads, writes in ((make, [], ["{out_dir}/made.txt"]), (use, ["{out_dir}/made.txt"], [])):
        nb = nbformat.read(path, as_version=4)
        nb.metadata["study"].update(reads=reads, writes=writes)
        nbformat.write(nb, path)
    param_file = tmp_path / "p.yaml"
    param_file.write_text(f"scale: quick\nseed: 5\nout_dir: {out}\n")

    def run(**kw):
        lines = []
        result = run_study(
            "quick",
            params_file=param_file,
            notebooks=nbs,
            reports=reports,
            code_root=nbs,
            echo=lambda *a, **k: lines.append(" ".join(map(str, a))),
            **kw,
        )
        assert result.ok, lines
        return {r.name for r in result.results if not r.up_to_date}, lines

    assert run()[0] == {"00_make", "10_use"}
    ran, lines = run()
    assert ran == set() and sum("up to date" in line for line in lines) == 2
    assert "up to date (last run" in (reports / "index.html").read_text()
    # package code: a change that leaves the product as it was reruns the producer only
    (pkg / "helper.py").write_text("VALUE = 'one'  # reworded\n")
    ran, lines = run()
    assert ran == {"00_make"} and any("package code" in line for line in lines)
    (pkg / "helper.py").write_text("VALUE = 'two'\n")  # a new product: its reader reruns
    ran, lines = run()
    assert ran == {"00_make", "10_use"} and any("reads {out_dir}/made.txt" in line for line in lines)
    nb = nbformat.read(use, as_version=4)  # the reader's notebook
    nb.cells[-1].source += "\nprint('more')"
    nbformat.write(nb, use)
    assert run()[0] == {"10_use"}
    param_file.write_text(f"scale: quick\nseed: 6\nout_dir: {out}\n")  # a parameter both declare
    assert run()[0] == {"00_make", "10_use"}
    (reports / "10_use.html").unlink()  # a missing report
    assert run()[0] == {"10_use"}
    (out / "made.txt").write_text("edited by hand")  # a product changed behind the study's back
    ran, lines = run()  # its maker reruns and restores it; the reader's input is then as it last read it
    assert ran == {"00_make"} and any("product changed or missing" in line for line in lines)
    assert (out / "made.txt").read_text() == "two 6"
    assert run(force=True)[0] == {"00_make", "10_use"}


def test_study_notebooks_declare_reads_and_writes_that_resolve():
    from study import steps
    from study.runner import discover, load_params

    where = steps.placeholders(load_params("quick"))
    for nb_path in discover(paths.NOTEBOOKS):
        decl = steps.declaration(nb_path)
        assert decl.reads, f"{nb_path.name} declares no inputs"
        assert all(
            p is not None for p in steps.resolve(decl.reads + decl.writes, {**where, "app_db": "x", "analytic_db": "y"})
        )
    assert steps.declaration(paths.NOTEBOOKS / "20_features.ipynb").writes  # the per-user tables are products


def test_a_place_that_cannot_be_fingerprinted_or_is_unknown_is_said():
    from pathlib import Path

    from study import steps

    assert steps.resolve(["{a}/x", "{b}", "plain"], {"a": "/t", "b": None}) == [Path("/t/x"), None, Path("plain")]
    with pytest.raises(ValueError, match="unknown placeholder"):
        steps.resolve(["{nowhere}/x"], {"a": "/t"})


def declared_step(folder, name, reads, writes):
    """A one-cell notebook step ``name`` in ``folder`` that declares what it reads and writes."""
    path = make_notebook(folder / f"{name}.ipynb", "x = 1", "scale = 'quick'")
    nb = nbformat.read(path, as_version=4)
    nb.metadata["study"].update(reads=reads, writes=writes)
    nbformat.write(nb, path)
    return path


def test_steps_run_after_the_steps_whose_products_they_read(tmp_path):
    """Declared reads and writes order the steps (the EDA reads the per-user table the feature
    step writes, though numbered before it); otherwise by name; a cycle is refused."""
    from study import runner, steps

    step = functools.partial(declared_step, tmp_path)

    a = step("00_data", ["{raw}"], [])
    b = step("10_eda", ["{raw}", "{processed}/original.parquet"], [])
    c = step("20_features", ["{raw}"], ["{processed}/original.parquet", "{processed}/pit.parquet"])
    d = step("30_models", ["{processed}"], ["{models}/champion"])
    e = step("40_db", ["{models}"], [])
    assert [p.stem for p in steps.order([e, d, c, b, a])] == ["00_data", "20_features", "10_eda", "30_models", "40_db"]
    study_order = [p.stem for p in steps.order(runner.discover(paths.NOTEBOOKS))]
    assert study_order.index("20_features") < study_order.index("10_eda") < study_order.index("30_modelling")
    step("50_loop", ["{models}/champion"], ["{processed}/pit.parquet/x"])
    d2 = step("30_models", ["{processed}"], ["{models}/champion"])
    with pytest.raises(ValueError, match="cycle"):
        steps.order([c, d2, tmp_path / "50_loop.ipynb"])


def test_steps_that_do_not_wait_for_each_other_run_at_once(tmp_path):
    """``jobs=2``: two independent steps each wait for the other's mark (so they can only finish
    when they run at the same time), each kernel with 1 of the 2 threads; the step reading a
    product starts only after its maker, and a failure leaves later steps unstarted."""
    nbs, reports, out = tmp_path / "notebooks", tmp_path / "reports", tmp_path / "out"
    nbs.mkdir()
    out.mkdir()

    def step(name, body, reads=(), writes=()):
        path = make_notebook(nbs / f"{name}.ipynb", body, f"scale = 'quick'\nout_dir = {str(out)!r}")
        nb = nbformat.read(path, as_version=4)
        nb.metadata["study"].update(reads=list(reads), writes=list(writes))
        nbformat.write(nb, path)

    meet = (
        "import os, pathlib, time\n"
        "assert os.environ['STUDY_TORCH_THREADS'] == '1' and os.environ['OMP_NUM_THREADS'] == '1'\n"
        "pathlib.Path(out_dir, '{me}.mark').write_text('here')\n"
        "t0 = time.time()\n"
        "while not pathlib.Path(out_dir, '{other}.mark').exists():\n"
        "    assert time.time() - t0 < 120, 'the other step never ran beside this one'\n"
        "    time.sleep(0.2)\n"
        "pathlib.Path(out_dir, '{me}.txt').write_text('{me}')\n"
    )
    step("00_doors", meet.format(me="doors", other="churn"), writes=["{out_dir}/doors.txt"])
    step("10_churn", meet.format(me="churn", other="doors"), writes=["{out_dir}/churn.txt"])
    step(
        "20_uses_churn",
        "import pathlib\nassert pathlib.Path(out_dir, 'churn.txt').read_text() == 'churn'",
        reads=["{out_dir}/churn.txt"],
    )
    params = tmp_path / "p.yaml"
    params.write_text(f"scale: quick\nseed: 1\nout_dir: {out}\n")
    lines = []

    def run():
        lines.clear()
        return run_study(
            "quick",
            params_file=params,
            notebooks=nbs,
            reports=reports,
            echo=lambda *a, **k: lines.append(" ".join(map(str, a))),
            jobs=2,
        )

    result = run()
    assert result.ok, lines
    assert sorted(r.name for r in result.results) == ["00_doors", "10_churn", "20_uses_churn"]
    assert all((reports / f"{n}.html").is_file() for n in ("00_doors", "10_churn", "20_uses_churn"))
    assert "up to 2 steps at once" in (reports / "index.html").read_text() and "Run took" in lines[-1]
    again = run()  # nothing changed: every step up to date, none started
    assert again.ok and len(again.results) == 3 and all(r.up_to_date for r in again.results), lines

    # a failing step: the step waiting for its product is never started, the index says so
    step("10_churn", "raise ValueError('boom')", writes=["{out_dir}/churn.txt"])
    result = run()
    assert not result.ok
    assert "20_uses_churn" not in {r.name for r in result.results}
    assert any("10_churn FAILED" in line and "boom" in line for line in lines)


def test_the_command_line_takes_the_number_of_steps_at_once(capsys):
    from study.cli import build_parser

    assert build_parser().parse_args(["run", "--jobs", "2"]).jobs == 2
    assert build_parser().parse_args(["run"]).jobs == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--jobs", "0"])
    assert "at least 1, got '0'" in capsys.readouterr().err


def test_the_longest_chain_of_work_starts_first(tmp_path):
    """critical_path: a step's own seconds plus the longest chain that waits for it (hand-counted)."""
    from study import steps

    step = functools.partial(declared_step, tmp_path)

    raw = step("00_data", [], ["{raw}"])
    feat = step("20_features", ["{raw}"], ["{processed}"])
    model = step("30_models", ["{processed}"], [])
    db = step("40_db", ["{processed}"], [])
    doors = step("50_doors", ["{shared}"], [])
    chain = steps.critical_path([raw, feat, model, db, doors], {raw: 70, feat: 100, model: 900, db: 300, doors: 800})
    # 00 → 20 → 30 is 1,070 s; 20 leads to the longer of 30 (900) and 40 (300); 50 stands alone
    assert chain == {raw: 1070, feat: 1000, model: 900, db: 300, doors: 800}


def test_a_first_run_starts_steps_by_the_seconds_measured_at_its_scale(tmp_path):
    """Without a record of this scale, the params file's ``expected_seconds`` order the steps (a
    fresh run used to start the EDA before the modelling step the whole run waits for)."""
    from study import runner, steps

    step = functools.partial(declared_step, tmp_path)
    eda = step("10_eda", ["{processed}"], [])
    model = step("30_models", ["{processed}"], [])
    book = steps.Records(tmp_path / "steps.json")
    params = {"scale": "default", "expected_seconds": {"10_eda": 20, "30_models": 1000}}
    runs = runner._Runs([eda, model], params, tmp_path, book, False, print, None, runner.StudyResult("default"))
    assert runs.expected_seconds() == {eda: 20.0, model: 1000.0}
    chain = steps.critical_path([eda, model], runs.expected_seconds())
    assert max([eda, model], key=lambda p: (chain[p], -[eda, model].index(p))) == model  # what beside() starts
    book.steps["30_models"] = {"seconds": 84.0, "scale": "quick"}  # timed here at another scale: the prior holds
    assert runs.expected_seconds()[model] == 1000.0
    book.steps["30_models"] = {"seconds": 900.0, "scale": "default"}  # timed here at this scale: that time
    assert runs.expected_seconds()[model] == 900.0
    runs.params = {"scale": "default"}
    assert runs.expected_seconds()[eda] == 0.0  # nothing known: 0, the steps' own order


def test_the_params_files_expect_seconds_of_existing_steps_only():
    names = {p.stem for p in paths.NOTEBOOKS.glob("*.ipynb")}
    for scale in ("quick", "default", "full"):
        expected = load_params(scale).get("expected_seconds") or {}
        assert set(expected) <= names, (scale, set(expected) - names)
        assert all(isinstance(v, (int, float)) and v >= 0 for v in expected.values())
