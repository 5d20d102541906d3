"""What the door demo draws: its two sliders, the notes beside the inputs, and how an analysed
image or video fills a panel. The analysis itself is in :mod:`study.doors.demo`; the notebook only
lays these out and wires the buttons."""

from __future__ import annotations

import ipywidgets as W

from study import ui
from study.doors import demo

SLIDERS_NOTE = (
    "<div class='study-note'>Boxes below the detection confidence are hidden; a state below the classification "
    "threshold is shown as 'uncertain'.</div>"
)
VIDEO_NOTE = (
    f"<div class='study-note'>MP4, AVI, WEBM, MOV or MKV up to {demo.MAX_VIDEO_BYTES // 10**6} MB; about "
    f"{demo.VIDEO_FPS:g} frames per second of video are analysed, the first "
    f"{demo.VIDEO_MAX_FRAMES / demo.VIDEO_FPS:.0f} s at most.</div>"
)
CAMERA_NOTE = (
    "<div class='study-note'>The browser asks for permission; the picture stays in this page until you take a "
    "snapshot, which is analysed like an uploaded image.</div>"
)


def load_pipeline():
    """The saved door pipeline, or ``None`` and the sentence saying why it is not there."""
    try:
        return demo.load_pipeline(), ""
    except demo.UserError as exc:
        return None, str(exc) + " Ask the operator to run `study doors train`."


def sliders() -> tuple[W.FloatSlider, W.FloatSlider, W.VBox]:
    """The detection confidence and state threshold sliders, and the box showing them with their note."""
    common = {"style": {"description_width": "110px"}, "layout": W.Layout(width="380px")}
    confidence = W.FloatSlider(value=0.3, min=0.05, max=0.95, step=0.05, description="detection ≥", **common)
    threshold = W.FloatSlider(value=0.5, min=0.0, max=0.99, step=0.01, description="state ≥", **common)
    ui.tag("study-door", confidence=confidence, threshold=threshold)
    return confidence, threshold, W.VBox([W.HTML(SLIDERS_NOTE), W.HBox([confidence, threshold])])


def show_image(panel: ui.Panel, result: demo.ImageResult, done: ui.Outcome) -> None:
    """The annotated image and its detections table; the result's sentence stays in the status line."""
    ui.show_png(panel.image, result.annotated)
    panel.table.value = ui.table_html(result.table, float_format="{:.3f}")
    done.html = ui.message(result.message)


def show_video(panel: ui.Panel, clip: W.Box, out: demo.VideoOutcome, done: ui.Outcome) -> None:
    """The annotated clip (a Video widget only once there is one: an empty one makes the browser
    fetch an empty clip and log an error), the state timeline and the table."""
    clip.children = (
        W.Video(
            value=out.clip, format="mp4", autoplay=False, loop=False, controls=True, layout=W.Layout(max_width="900px")
        ),
    )
    ui.show_png(panel.timeline, out.timeline_png)
    panel.table.value = ui.table_html(out.table, float_format="{:.3f}")
    done.html = ui.message(out.message)
