"""Presentation helpers shared by the Voilà dashboards: escaped tables, static charts, messages,
and the guard that turns any failure of a callback into a sentence in the page (never a
traceback; the traceback goes to the server log only)."""

from __future__ import annotations

import html
import math
import logging
import sys
import traceback
from contextlib import contextmanager

import pandas as pd

log = logging.getLogger("study.dashboard")
if not log.handlers:
    # The kernel's sys.stderr goes to the page; sys.__stderr__ is the process's own, which the
    # server inherits: tracebacks of "Something went wrong" land in the server log, not the page.
    _handler = logging.StreamHandler(sys.__stderr__)
    _handler.setFormatter(logging.Formatter("[study.dashboard] %(levelname)s %(message)s"))
    log.addHandler(_handler)
    log.propagate = False

STYLE = """
<style>
.study-table table {border-collapse: collapse; font-size: 12px;}
.study-table th, .study-table td {border: 1px solid #ddd; padding: 2px 6px; text-align: left;}
.study-msg-error {color: #a40000; font-weight: 600;}
.study-msg-ok {color: #1b5e20;}
.study-note, .study-msg-note {color: #555; font-style: italic;}
.study-previous {opacity: .45;}
a.study-download {display: inline-block; padding: 4px 12px; margin: 4px 0; border-radius: 3px; background: #1976d2;
  color: #fff !important; text-decoration: none; font-weight: 600;}
a.study-download:hover {background: #115293;}
</style>"""


class UserError(ValueError):
    """A problem with what the user gave or asked for, as one plain sentence (shown, not raised)."""


def number(name: str, value, lo: float, hi: float | None = None, above: bool = False) -> float:
    """A number a stakeholder typed, checked: ``lo`` ≤ value (``lo`` < value with ``above``) and
    value ≤ ``hi``; else a :class:`UserError` sentence naming the field and what it accepts."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v < lo or (above and v == lo) or (hi is not None and v > hi):
        if hi is not None:
            allowed = f"between {lo:g} and {hi:g}"
        else:
            allowed = f"a number {'above' if above else 'of at least'} {lo:g}"
        raise UserError(f"The {name} must be {allowed} (got {str(value)[:20]}).")
    return v


def message(text: str, kind: str = "ok") -> str:
    """HTML for a one-line status (text is escaped)."""
    return f'<div class="study-msg-{kind}">{html.escape(str(text))}</div>'


def table_html(df: pd.DataFrame, max_rows: int = 200, float_format: str = "{:,.4g}") -> str:
    """An HTML table with every value escaped (uploaded text never becomes markup)."""
    shown = df.head(max_rows)
    more = (
        f"<div class='study-note'>showing {max_rows:,} of {len(df):,} rows (download the CSV for all)</div>"
        if len(df) > max_rows
        else ""
    )
    body = shown.to_html(index=False, escape=True, border=0, float_format=float_format.format, na_rep="")
    return f"<div class='study-table'>{body}</div>{more}"


def spinner():
    """A 'working' bar, hidden until a callback runs (shown and hidden by :func:`guard`)."""
    import ipywidgets as W

    return W.IntProgress(
        value=1,
        min=0,
        max=1,
        bar_style="info",
        description="working",
        layout=W.Layout(visibility="hidden", width="220px"),
    )


def action(description: str):
    """A primary button and the spinner shown while its callback runs."""
    import ipywidgets as W

    return W.Button(description=description, button_style="primary"), spinner()


def tag(prefix: str, **widgets) -> None:
    """CSS classes ``<prefix>-<name>``, by which the style sheet and the browser tests find widgets."""
    for name, widget in widgets.items():
        widget.add_class(f"{prefix}-{name}")


def uploaded(upload, missing: str) -> dict:
    """The one file of a FileUpload (name, content, size), or ``missing`` as a :class:`UserError`."""
    if not upload.value:
        raise UserError(missing)
    return upload.value[0]


def tabs(children: dict):
    """A Tab of the widgets in ``children``, titled by their keys."""
    import ipywidgets as W

    tab = W.Tab(children=list(children.values()))
    for k, title in enumerate(children):
        tab.set_title(k, title)
    return tab


class Panel:
    """A request's status line and result areas (HTML by name, images by name and width), tagged
    ``<prefix>-<name>``. :meth:`guard` empties the results of the previous request first."""

    def __init__(self, prefix: str, *html: str, **images: str):
        import ipywidgets as W

        self.status = W.HTML()
        self.results = tuple(W.HTML() for _ in html) + tuple(image(width) for width in images.values())
        for name, widget in zip(html + tuple(images), self.results):
            setattr(self, name, widget)
        tag(prefix, status=self.status, **dict(zip(html + tuple(images), self.results)))

    def guard(self, working: str, progress=None, keep=()):
        """:func:`guard` clearing the panel's results, except those in ``keep``."""
        return guard(self.status, working, progress, clear=tuple(w for w in self.results if w not in keep))


def limit_upload(upload, max_mb: float) -> None:
    """Refuse, in the browser, a file larger than ``max_mb`` before it is sent over the websocket
    (a file over the server's message limit would drop the connection): the page template's
    guard reads this class and says so next to the picker."""
    upload.add_class(f"study-max-bytes-{int(max_mb * 1e6)}")


def image(max_width: str = "900px"):
    """An ipywidgets Image that stays hidden while it has nothing to show (no broken-image icon)."""
    import ipywidgets as W

    return W.Image(format="png", layout=W.Layout(display="none", max_width=max_width))


def show_png(widget, data: bytes) -> None:
    widget.value = data
    widget.layout.display = "" if data else "none"


def reset(*widgets) -> None:
    """Empty result areas so that nothing from a previous request stays on screen: HTML → "",
    images hidden, boxes emptied."""
    import ipywidgets as W

    for w in widgets:
        if isinstance(w, W.Image):
            show_png(w, b"")
        elif isinstance(w, W.Box):
            w.children = ()
        else:
            w.value = ""


class Outcome:
    """What a guarded block leaves in the status line when it succeeds (``html``; empty by default)."""

    html = ""


@contextmanager
def guard(status_widget, working: str = "Working…", progress=None, clear=()):
    """Empty the result areas in ``clear`` and show ``working`` while the block runs, then the
    block's ``Outcome.html`` (success; empty unless set) or one sentence (failure): a failed
    request never leaves an earlier result beside its message."""
    reset(*clear)
    status_widget.value = message(working)
    if progress is not None:
        progress.layout.visibility = "visible"
    outcome = Outcome()
    try:
        yield outcome
        status_widget.value = outcome.html
    except UserError as exc:
        reset(*clear)
        status_widget.value = message(str(exc), "error")
    except Exception as exc:  # noqa: BLE001 — the page gets a sentence, the log the traceback
        reset(*clear)
        log.error("dashboard callback failed\n%s", traceback.format_exc())
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        status_widget.value = message(
            f"Something went wrong ({type(exc).__name__}: {first}). "
            "Nothing was changed; please try again or report it.",
            "error",
        )
    finally:
        if progress is not None:
            progress.layout.visibility = "hidden"


def png(fig) -> bytes:
    """PNG bytes of a matplotlib figure (shown in an ipywidgets Image: static, no JavaScript)."""
    import io

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def figure(ncols: int = 1, width: float = 4.6, height: float = 3.0):
    """A figure from matplotlib's object API (Agg canvas, no pyplot state shared between users)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height))
    axes = fig.subplots(1, ncols, squeeze=False)
    return fig, list(axes[0])


HEADLINE_MIME = "application/vnd.study.headline+json"  # read by the runner for reports/index.html


def headline(**numbers: float) -> None:
    """Hand a report's headline numbers (name → value) to ``reports/index.html``: an output the
    runner reads from the executed notebook and the HTML report does not show."""
    from IPython.display import display

    display({HEADLINE_MIME: {k: float(v) for k, v in numbers.items()}}, raw=True)
