"""The study runner: every notebook through Papermill, each after the steps whose products it
reads (one at a time, or ``jobs`` at once when they do not wait for each other), rendered to
``reports/``.

Python rather than shell, so it knows which notebook failed, keeps going only while the chain
is sound, and never renders a failed notebook as a report (its stale HTML is removed and the
index says it failed). Scales are parameter files (``params/<scale>.yaml``), not edits.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill as pm
import yaml

from study import paths

PLOTLY_RENDERER = "plotly_mimetype+notebook"  # figures survive nbconvert's HTML


@dataclass
class NotebookResult:
    name: str
    title: str
    summary: str
    ok: bool
    seconds: float
    html: Path | None = None
    error: str = ""
    headline: dict = field(default_factory=dict)
    up_to_date: bool = False  # not run: its last run's products and report are current (study.steps)
    finished: str = ""  # when the run shown ended


@dataclass
class StudyResult:
    scale: str
    results: list[NotebookResult] = field(default_factory=list)
    index: Path | None = None
    seconds: float = 0.0  # wall time of the whole run
    jobs: int = 1  # steps run at once

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def load_params(scale: str, params_file: str | Path | None = None) -> dict:
    path = Path(params_file) if params_file else paths.PARAMS / f"{scale}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"parameter file {path} not found")
    return yaml.safe_load(path.read_text()) or {}


def notebook_info(path: Path) -> tuple[str, str]:
    """Title (the first heading) and one-line summary (notebook metadata ``study.summary``)."""
    nb = nbformat.read(path, as_version=4)
    summary = nb.metadata.get("study", {}).get("summary", "")
    title = path.stem
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("# ").strip(), summary
    return title, summary


def parameters_for(path: Path, params: dict) -> dict:
    """Common parameters plus the notebook's own, restricted to what its parameters cell declares."""
    declared = pm.inspect_notebook(str(path))
    merged = {k: v for k, v in params.items() if k != "notebooks"}
    merged.update((params.get("notebooks") or {}).get(path.stem, {}) or {})
    return {k: v for k, v in merged.items() if k in declared}


PLOTLY_JS = "plotly.min.js"  # written once beside the reports, loaded by each of them
_INLINE_PLOTLY = re.compile(r"<script[^>]*>\s*/\*\*\s*\*\s*plotly\.js v[\s\S]*?</script>")
_REMOTE_SCRIPT = re.compile(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>')
_HEADING = re.compile(r'<h([12]) id="([^"]+)">(.*?)<a class="anchor-link"', re.S)
_READER = """<style>
body.study-hide-code .jp-CodeCell .jp-Cell-inputWrapper {display: none}
#study-toolbar {position: fixed; top: .5rem; right: .5rem; z-index: 10; font: 13px sans-serif}
#study-toc {font: 14px sans-serif; margin: 1rem 0 1.5rem; padding: .5rem 1rem; border: 1px solid #ddd}
#study-toc li.level2 {margin-left: 1.2rem}
</style>"""
_TOGGLE = """<div id="study-toolbar"><button id="study-code-toggle" type="button">Show code</button></div>
<script>
document.getElementById("study-code-toggle").addEventListener("click", function () {
  var hidden = document.body.classList.toggle("study-hide-code");
  this.textContent = hidden ? "Show code" : "Hide code";
});
</script>"""


def _reader_html(body: str) -> str:
    """A report for reviewers: code hidden behind a toggle, a table of contents from the headings,
    plotly.js loaded from the file beside the report instead of inlined (about 4.8 MB each), and
    no script fetched from the network (require.js and MathJax are not needed by these reports)."""
    body = _INLINE_PLOTLY.sub(f'<script src="{PLOTLY_JS}"></script>', body, count=1)
    body = _INLINE_PLOTLY.sub("", body)
    body = _REMOTE_SCRIPT.sub("", body)
    toc = "".join(
        f'<li class="level{level}"><a href="#{anchor}">{re.sub(r"<[^>]+>", "", text).strip()}</a></li>'
        for level, anchor, text in _HEADING.findall(body)
    )
    body = body.replace("</head>", _READER + "\n</head>", 1)
    body = body.replace('<body class="', '<body class="study-hide-code ', 1)
    return body.replace("<main>", f'<main>\n{_TOGGLE}\n<nav id="study-toc"><b>Contents</b><ul>{toc}</ul></nav>', 1)


def headline_numbers(executed: Path) -> dict:
    """The numbers an executed notebook handed over with ``ui.headline`` (name → value)."""
    from study.ui import HEADLINE_MIME

    out = {}
    for cell in nbformat.read(executed, as_version=4).cells:
        for output in cell.get("outputs", []):
            out.update(output.get("data", {}).get(HEADLINE_MIME, {}))
    return out


def _headline_text(numbers: dict) -> str:
    return "; ".join(
        f"{name} {value:.3f}" if abs(value) < 10 else f"{name} {value:,.0f}" for name, value in numbers.items()
    )


def render_html(executed: Path, target: Path) -> Path:
    """The executed notebook as a reviewer's HTML report beside ``plotly.min.js``; the notebook's
    default parameters cell is left out when Papermill injected the parameters of the run."""
    import shutil

    import plotly
    from nbconvert import HTMLExporter

    from study.ui import HEADLINE_MIME

    nb = nbformat.read(executed, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    if any("injected-parameters" in t for t in tags):
        nb.cells = [c for c, t in zip(nb.cells, tags) if "parameters" not in t]
    for cell in nb.cells:  # the headline numbers are for the index, not the page
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if HEADLINE_MIME not in o.get("data", {})]
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    target.write_text(_reader_html(body), encoding="utf-8")
    library = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
    if (
        not (target.parent / PLOTLY_JS).is_file()
        or (target.parent / PLOTLY_JS).stat().st_size != library.stat().st_size
    ):
        shutil.copyfile(library, target.parent / PLOTLY_JS)
    return target


def run_notebook(
    path: Path, params: dict, reports: Path, progress: bool = False, position: int | None = None
) -> NotebookResult:
    title, summary = notebook_info(path)
    executed = reports / "executed" / path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    target = reports / f"{path.stem}.html"
    target.unlink(missing_ok=True)  # a failed run must not leave an older report behind
    t0 = time.perf_counter()
    os.environ.setdefault("PLOTLY_RENDERER", PLOTLY_RENDERER)
    # cell n of m and the elapsed time on the terminal (Papermill's tqdm bar), not a silent wait
    bar = (
        {
            "desc": f"    {path.stem}",
            "unit": "cell",
            "bar_format": "{desc}: cell {n_fmt}/{total_fmt}, {elapsed} elapsed",
            "mininterval": 0.5 if sys.stderr.isatty() else 30,
            **({"position": position} if position is not None else {}),
        }
        if progress
        else False
    )
    try:
        pm.execute_notebook(
            str(path),
            str(executed),
            parameters=parameters_for(path, params),
            kernel_name="python3",
            cwd=str(path.parent),
            progress_bar=bar,
        )
    except pm.PapermillExecutionError as exc:
        return NotebookResult(
            path.stem,
            title,
            summary,
            False,
            time.perf_counter() - t0,
            error=f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}",
        )
    except Exception as exc:  # kernel died, notebook unreadable …: still a failure of this notebook
        return NotebookResult(
            path.stem, title, summary, False, time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}"
        )
    render_html(executed, target)
    return NotebookResult(
        path.stem, title, summary, True, time.perf_counter() - t0, html=target, headline=headline_numbers(executed)
    )


def _took(result: StudyResult) -> str:
    if not result.seconds:
        return ""
    beside = f", up to {result.jobs} steps at once (their times share the machine)" if result.jobs > 1 else ""
    return f" in {result.seconds / 60:.1f} min{beside}"


def write_index(result: StudyResult, reports: Path, notebooks: list[Path] = ()) -> Path:
    """reports/index.html: every notebook of the study, with this run's status; a notebook left
    out of this run (``--only``) keeps its link when an earlier report of it exists."""
    done = {r.name for r in result.results}
    results = list(result.results)
    for path in notebooks:
        if path.stem not in done:
            title, summary = notebook_info(path)
            html_path = reports / f"{path.stem}.html"
            results.append(
                NotebookResult(
                    path.stem,
                    title,
                    summary,
                    True,
                    0.0,
                    html=html_path if html_path.is_file() else None,
                    error="not run",
                )
            )
    results.sort(key=lambda r: r.name)
    rows = []
    for r in results:
        name = html.escape(r.title)
        link = f'<a href="{r.html.name}">{name}</a>' if r.html else name
        if r.up_to_date:
            status = f"up to date (last run {html.escape(r.finished)})"
        elif r.error == "not run":
            status = "not run this time" + (" (earlier report)" if r.html else "")
        else:
            status = "ok" if r.ok else f"<b>FAILED</b>: {html.escape(r.error)}"
        rows.append(
            f"<tr><td>{link}</td><td>{html.escape(r.summary)}</td><td>{html.escape(_headline_text(r.headline))}</td>"
            f"<td>{status}</td><td>{r.seconds:.0f} s</td></tr>"
        )
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>KKBOX churn and doors study</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}td,th{{padding:.4rem .8rem;
border-bottom:1px solid #ddd;text-align:left;vertical-align:top}}</style></head><body>
<h1>KKBOX churn and doors study: reports</h1>
<p>Scale <b>{html.escape(result.scale)}</b>, run on {when}{_took(result)}. Each report opens with what it shows and ends
with its conclusions in numbers.</p>
<table><tr><th>report</th><th>what it shows</th><th>headline numbers</th><th>status</th><th>time</th></tr>
{"".join(rows)}
</table></body></html>"""
    index = reports / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def discover(notebooks: Path = paths.NOTEBOOKS) -> list[Path]:
    return sorted(p for p in notebooks.glob("[0-9][0-9]_*.ipynb"))


# what a notebook running beside others may use: its share of the cores (the kernel inherits these)
THREAD_VARIABLES = ("STUDY_TORCH_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _run_beside(
    path: Path, params: dict, reports: Path, progress: bool, threads: int, slot: int, jobs: int
) -> NotebookResult:
    """run_notebook in a worker process whose kernels get ``threads`` CPU threads and know that
    ``jobs`` steps share the machine (their timings say so)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ["STUDY_RUN_JOBS"] = str(jobs)
    return run_notebook(path, params, reports, progress, position=slot if progress else None)


def run_study(
    scale: str = "default",
    only: list[str] | None = None,
    params_file: str | Path | None = None,
    notebooks: Path = paths.NOTEBOOKS,
    reports: Path = paths.REPORTS,
    echo=print,
    force: bool = False,
    progress: bool = False,
    records: Path | None = None,
    code_root: Path | None = None,
    jobs: int = 1,
) -> StudyResult:
    """Run the study's steps, each after the steps whose products it reads; a step whose inputs,
    parameters, notebook and package code are unchanged since its last successful run, with its
    products and report intact, is said "up to date" and not run again (``force`` runs every step).

    ``jobs`` > 1 runs up to that many independent steps at once (the doors beside the churn chain),
    each kernel with its share of the CPU threads (:func:`study.compute.cpu_threads` // jobs), the
    steps on the longest remaining chain first. A failure starts nothing new; the steps already
    running finish."""
    from study import steps

    params = load_params(scale, params_file)
    params.setdefault("scale", scale)
    reports.mkdir(parents=True, exist_ok=True)
    result = StudyResult(scale, jobs=jobs)
    t0 = time.perf_counter()
    everything = discover(notebooks)
    todo = steps.order([p for p in everything if not only or p.stem in only])
    if only and len(todo) != len(set(only)):
        unknown = sorted(set(only) - {p.stem for p in todo})
        raise FileNotFoundError(f"no notebook named {', '.join(unknown)} in {notebooks}")
    # the study's records live with its data; a run rendering elsewhere (tests, a scratch copy) keeps its own
    book = steps.Records(records or (paths.STEP_RECORDS if reports == paths.REPORTS else reports / "steps.json"))
    runs = _Runs(todo, params, reports, book, force, echo, code_root, result)
    if jobs > 1:
        runs.beside(jobs, progress)
    else:
        for path in todo:
            if runs.start(path) and not runs.finish(path, run_notebook(path, params, reports, progress)):
                break
    result.seconds = time.perf_counter() - t0
    result.index = write_index(result, reports, everything)
    echo(
        f"\nRun took {result.seconds / 60:.1f} min. Reports: {result.index}"
        + ("" if result.ok else "  (with failures)"),
        flush=True,
    )
    return result


class _Runs:
    """The bookkeeping of one ``run_study``: up-to-date checks, numbering, records, messages."""

    def __init__(self, todo, params, reports, book, force, echo, code_root, result):
        self.todo, self.params, self.reports, self.book = todo, params, reports, book
        self.force, self.echo, self.code_root, self.result = force, echo, code_root, result
        self.counter = 0
        self.checked: dict[Path, tuple] = {}

    def _outputs(self, path: Path) -> list[Path]:
        return [self.reports / f"{path.stem}.html", self.reports / "executed" / path.name]

    def start(self, path: Path) -> bool:
        """Check the step: True when it needs to run (announced), False when up to date (recorded)."""
        from study import steps

        passed = parameters_for(path, self.params)
        where = steps.placeholders({**self.params, **passed})
        self.checked[path] = (passed, where)
        check = self.book.check(path, passed, where, self._outputs(path), self.code_root)
        self.counter += 1
        n = f"[{self.counter}/{len(self.todo)}] {path.stem}"
        if check.up_to_date and not self.force:
            rec = check.record
            title, summary = notebook_info(path)
            self.result.results.append(
                NotebookResult(
                    path.stem,
                    title,
                    summary,
                    True,
                    rec.get("seconds", 0.0),
                    html=self._outputs(path)[0],
                    headline=rec.get("headline", {}),
                    up_to_date=True,
                    finished=rec.get("finished", ""),
                )
            )
            self.echo(
                f"{n}: up to date (last run {rec.get('finished', '?')}, {rec.get('seconds', 0):.0f} s)", flush=True
            )
            return False
        self.echo(f"{n} … ({'forced' if self.force else check.reason})", flush=True)
        return True

    def finish(self, path: Path, r: NotebookResult) -> bool:
        """Record a step's run; False when it failed."""
        self.result.results.append(r)
        if r.ok:
            passed, where = self.checked[path]
            self.book.remember(
                path,
                passed,
                where,
                self._outputs(path),
                {"seconds": r.seconds, "scale": self.params.get("scale"), "headline": r.headline},
                self.code_root,
            )
            r.finished = self.book.steps[path.stem]["finished"]
            self.echo(f"    {path.stem} ok in {r.seconds:.0f} s → {r.html}", flush=True)
            return True
        self.echo(
            f"    {path.stem} FAILED in {r.seconds:.0f} s: {r.error}\n    executed notebook kept at "
            f"{self.reports / 'executed' / path.name}; steps not yet started are skipped",
            flush=True,
        )
        return False

    def expected_seconds(self) -> dict[Path, float]:
        """Each step's expected seconds, for the order ``beside`` starts steps in: its last run here at
        this scale, else the scale's measured ``expected_seconds`` (params file), else 0 (the steps'
        order). Without them a first run started the one-minute EDA before the modelling step that
        the whole run waits for."""
        prior = self.params.get("expected_seconds") or {}
        out = {}
        for p in self.todo:
            rec = self.book.steps.get(p.stem, {})
            same_scale = rec.get("seconds") and rec.get("scale") == self.params.get("scale")
            out[p] = float(rec["seconds"] if same_scale else prior.get(p.stem, 0.0))
        return out

    def beside(self, jobs: int, progress: bool) -> None:
        """Up to ``jobs`` steps at once in worker processes, a step as soon as its upstream steps
        are done, the longest remaining chain first (by ``expected_seconds``)."""
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        from study import compute, steps

        needs = steps.upstream(self.todo)
        chain = steps.critical_path(self.todo, self.expected_seconds())
        threads = max(1, compute.cpu_threads() // jobs)
        waiting, done, running, failed = list(self.todo), set(), {}, False
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            while True:
                ready = [p for p in waiting if needs[p] <= done]
                while not failed and ready and len(running) < jobs:
                    path = max(ready, key=lambda p: (chain[p], -self.todo.index(p)))
                    ready.remove(path)
                    waiting.remove(path)
                    if not self.start(path):
                        done.add(path)
                        ready = [p for p in waiting if needs[p] <= done]
                        continue
                    slot = min(set(range(jobs)) - {s for _, s in running.values()})
                    future = pool.submit(_run_beside, path, self.params, self.reports, progress, threads, slot, jobs)
                    running[future] = (path, slot)
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    path, _ = running.pop(future)
                    try:
                        r = future.result()
                    except Exception as exc:  # the worker process itself died
                        title, summary = notebook_info(path)
                        r = NotebookResult(path.stem, title, summary, False, 0.0, error=f"{type(exc).__name__}: {exc}")
                    if self.finish(path, r):
                        done.add(path)
                    else:
                        failed = True
