"""The dashboards' shared guard: a request empties its result areas first, a failure leaves its
sentence alone (nothing from an earlier request), and an unexpected error's traceback goes to the
server's log (the process's stderr), never to the page."""

from __future__ import annotations

import ipywidgets as W
import pytest

from study import ui


def _areas():
    table, link, chart, box = W.HTML("old table"), W.HTML("old link"), ui.image(), W.Box([W.HTML("old clip")])
    ui.show_png(chart, b"\x89PNG old")
    return table, link, chart, box


def test_a_new_request_starts_from_empty_result_areas():
    status, areas = W.HTML(), _areas()
    seen = {}
    with ui.guard(status, "Working…", clear=areas):
        seen = {
            "table": areas[0].value,
            "link": areas[1].value,
            "chart": areas[2].value,
            "display": areas[2].layout.display,
            "box": areas[3].children,
            "status": status.value,
        }
    assert seen == {
        "table": "",
        "link": "",
        "chart": b"",
        "display": "none",
        "box": (),
        "status": ui.message("Working…"),
    }
    assert status.value == ""


@pytest.mark.parametrize("error", [ui.UserError("No users expiring in 2017-01."), RuntimeError("boom")])
def test_a_failure_leaves_only_its_sentence(error):
    status, areas = W.HTML(), _areas()
    with ui.guard(status, "Working…", clear=areas):
        areas[0].value = "half-written table"
        raise error
    assert (
        areas[0].value == "" and areas[1].value == "" and areas[2].layout.display == "none" and areas[3].children == ()
    )
    assert "study-msg-error" in status.value and "Traceback" not in status.value


def test_an_unexpected_error_logs_its_traceback_to_the_server(capfd):
    status = W.HTML()
    with ui.guard(status):
        raise ZeroDivisionError("while scoring")
    err = capfd.readouterr().err
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError: while scoring" in err
    assert "Something went wrong (ZeroDivisionError: while scoring)" in status.value


def test_an_empty_picture_stays_hidden():
    img = ui.image()
    assert img.layout.display == "none"  # no broken-image icon before the first result
    ui.show_png(img, b"\x89PNG")
    assert img.layout.display == ""


def test_a_panel_tags_its_areas_and_keeps_the_sentence_a_request_leaves():
    p = ui.Panel("study-x", "table", "link", chart="500px")
    assert [w._dom_classes for w in (p.status, p.table, p.link, p.chart)] == [
        ("study-x-status",),
        ("study-x-table",),
        ("study-x-link",),
        ("study-x-chart",),
    ]
    assert p.results == (p.table, p.link, p.chart) and p.chart.layout.max_width == "500px"
    p.table.value, p.link.value = "old table", "old link"
    with p.guard("Working…", keep=(p.link,)) as done:
        assert p.table.value == "" and p.link.value == "old link"
        done.html = ui.message("3 doors found.")
    assert p.status.value == ui.message("3 doors found.")
    with p.guard("Working…"):
        pass
    assert p.status.value == "" and p.link.value == ""  # nothing set: the status line empties


def test_a_missing_upload_is_a_sentence_and_tabs_carry_their_titles():
    upload = W.FileUpload()
    with pytest.raises(ui.UserError, match="Choose a file"):
        ui.uploaded(upload, "Choose a file first.")
    tabs = ui.tabs({"One": W.HTML("1"), "Two": W.HTML("2")})
    assert [tabs.get_title(k) for k in range(2)] == ["One", "Two"] and len(tabs.children) == 2
    button, spin = ui.action("Go")
    assert button.button_style == "primary" and spin.layout.visibility == "hidden"
