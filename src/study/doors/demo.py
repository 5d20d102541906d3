"""What the door demo dashboard does, without widgets: load the pipeline once, analyse an image or
a video, list the gallery, and turn every bad input into one sentence (``UserError``)."""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from study.doors import pipeline
from study.doors.data import STATES, ImageError, open_image, render

IMAGE_TYPES = ".jpg,.jpeg,.png,.bmp,.webp,.tif,.tiff,.gif"
VIDEO_TYPES = ".mp4,.avi,.webm,.mov,.mkv,.m4v"
MAX_IMAGE_BYTES = 40_000_000
MAX_VIDEO_BYTES = 100_000_000
MAX_SIDE = 1600  # uploads are downscaled to this longer side (the detector sees 320 px)
VIDEO_FPS = 5.0  # frames analysed per second of video
VIDEO_MAX_FRAMES = 150  # 30 s of video at 5 fps


from study.ui import UserError  # noqa: E402 - shown as one sentence by ui.guard


@lru_cache(maxsize=1)
def load_pipeline(folder: str | None = None) -> pipeline.DoorPipeline:
    try:
        return pipeline.DoorPipeline.load(folder)
    except FileNotFoundError as exc:
        raise UserError(f"The door models are missing ({exc}).") from None


@lru_cache(maxsize=1)
def gallery() -> dict:
    """Label → a function returning the image: real photos of the held-out Test split first, when
    ../shared/doors is present (what users upload; listed once per kernel: it reads 1,213 labels),
    then three synthetic scenes."""
    items = {}
    synthetic = {f"synthetic {s} door": (lambda s=s, k=k: render(2017, 10_000 + k, s)[0]) for k, s in enumerate(STATES)}
    try:
        from study.doors.data import real_images

        real = real_images()
    except FileNotFoundError:
        return synthetic
    test = real[(real.split == "Test") & (real.doors.map(len) > 0)].head(4)
    for r in test.itertuples():
        items[f"real photo {r.id} (DoorDetect)"] = lambda p=r.path: open_image(p, max_side=MAX_SIDE)
    return {**items, **synthetic}


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class ImageResult:
    annotated: bytes  # PNG
    table: pd.DataFrame
    message: str
    seconds: float


def decode_upload(content, name: str, limit: int, kind: str, size: int | None = None) -> bytes:
    """The bytes of an upload within its limit (``size``: what the browser reported; a file over
    the limit arrives without its content)."""
    if size and size > limit:
        raise UserError(f"{name} is {size / 1e6:.0f} MB; the limit for {kind} is {limit / 1e6:.0f} MB.")
    data = bytes(content or b"")
    if not data:
        raise UserError(f"{name} is empty.")
    if len(data) > limit:
        raise UserError(f"{name} is {len(data) / 1e6:.0f} MB; the limit for {kind} is {limit / 1e6:.0f} MB.")
    return data


def detections_table(found) -> pd.DataFrame:
    rows = [
        {
            "door": k + 1,
            "state": d.state,
            "probability": round(d.probability, 3),
            "detector score": round(d.score, 3),
            "x0": round(d.box[0]),
            "y0": round(d.box[1]),
            "x1": round(d.box[2]),
            "y1": round(d.box[3]),
            **{f"p({s})": round(d.probabilities.get(s, 0.0), 3) for s in STATES},
        }
        for k, d in enumerate(found)
    ]
    return pd.DataFrame(
        rows,
        columns=["door", "state", "probability", "detector score", "x0", "y0", "x1", "y1"]
        + [f"p({s})" for s in STATES],
    )


def analyse_image(
    source,
    name: str = "the image",
    confidence: float = 0.3,
    state_threshold: float = 0.0,
    pipe: pipeline.DoorPipeline | None = None,
    size: int | None = None,
) -> ImageResult:
    """An uploaded file's bytes (or a PIL image from the gallery) → annotated PNG, table, sentence."""
    t0 = time.perf_counter()
    pipe = pipe or load_pipeline()
    note = ""
    if isinstance(source, Image.Image):
        image = source
    else:
        data = decode_upload(source, name, MAX_IMAGE_BYTES, "images", size)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                turned = probe.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientation: quarter turn
                original = probe.size[::-1] if turned else probe.size
        except Exception:  # noqa: BLE001 - open_image says what is wrong in a sentence
            original = None
        try:
            image = open_image(data, name=name, max_side=MAX_SIDE)
        except ImageError as exc:
            raise UserError(str(exc)) from None
        if original and max(original) > max(image.size):
            note = f" The image ({original[0]}×{original[1]}) was downscaled to {image.width}×{image.height}."
    found = pipe.predict(image, confidence=confidence, state_threshold=state_threshold)
    seconds = time.perf_counter() - t0
    counts = pd.Series([d.state for d in found]).value_counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) if found else "no door"
    message = (
        f"{len(found)} door(s) found ({summary}) at detection confidence ≥ {confidence:.2f} in "
        f"{seconds * 1000:.0f} ms.{note}"
    )
    return ImageResult(png_bytes(pipeline.annotate(image, found)), detections_table(found), message, seconds)


@dataclass
class VideoOutcome:
    clip: bytes  # MP4 (H.264) of the annotated frames
    timeline_png: bytes
    table: pd.DataFrame
    message: str
    seconds: float


def state_timeline(timeline: pd.DataFrame) -> bytes:
    """A plot of the state of each door over the video's time (PNG)."""
    from study import ui

    fig, (ax,) = ui.figure(1, width=8, height=2.4)
    levels = list(STATES) + ["uncertain", "no door"]
    for state, colour in list(pipeline.COLOURS.items()) + [("no door", (200, 200, 200))]:
        rows = timeline[timeline.state == state]
        if len(rows):
            ax.scatter(rows.time_s, [levels.index(state)] * len(rows), color=np.array(colour) / 255, s=14, label=state)
    ax.set_yticks(range(len(levels)), levels)
    ax.set_xlabel("time in the video (s)")
    ax.set_title("state per analysed frame")
    fig.tight_layout()
    return ui.png(fig)


def analyse_video(
    content,
    name: str = "the video",
    confidence: float = 0.3,
    state_threshold: float = 0.0,
    pipe: pipeline.DoorPipeline | None = None,
    progress=None,
    size: int | None = None,
) -> VideoOutcome:
    """An uploaded video's bytes → an annotated clip (about 5 analysed frames per second of video,
    at most 30 s), a state timeline and a per-frame table."""
    import tempfile

    t0 = time.perf_counter()
    data = decode_upload(content, name, MAX_VIDEO_BYTES, "videos", size)
    pipe = pipe or load_pipeline()
    try:
        result = pipe.predict_video(
            data,
            max_frames=VIDEO_MAX_FRAMES,
            fps_target=VIDEO_FPS,
            name=name,
            progress=progress,
            confidence=confidence,
            state_threshold=state_threshold,
        )
    except pipeline.VideoError as exc:
        raise UserError(str(exc)) from None
    frames = [
        f
        if max(f.size) <= 960
        else f.resize((960, round(960 * f.height / f.width)))
        if f.width >= f.height
        else f.resize((round(960 * f.width / f.height), 960))
        for f in result.frames
    ]
    with tempfile.TemporaryDirectory() as tmp:
        clip = pipeline.write_video(frames, Path(tmp) / "doors.mp4", fps=VIDEO_FPS).read_bytes()
    table = result.timeline
    seconds = time.perf_counter() - t0
    truncated = result.frames_read and len(result.frames) >= VIDEO_MAX_FRAMES
    message = (
        f"{len(result.frames)} frames analysed of {result.frames_read} read (video at {result.video_fps:.1f} fps) "
        f"in {seconds:.1f} s: {result.processed_fps:.1f} analysed frames per second."
        + (f" Only the first {VIDEO_MAX_FRAMES / VIDEO_FPS:.0f} s were analysed." if truncated else "")
        + (
            f" The file is truncated or damaged: {result.damaged}; only the frames before that were analysed."
            if result.damaged
            else ""
        )
    )
    return VideoOutcome(clip, state_timeline(table), table, message, seconds)


def snapshot_bytes(data_url: str) -> bytes:
    """The JPEG bytes of a camera snapshot sent by the browser as a data URL."""
    head, _, payload = (data_url or "").partition(",")
    if not head.startswith("data:image/") or ";base64" not in head:
        raise UserError("The camera snapshot did not arrive as an image.")
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        raise UserError("The camera snapshot could not be decoded.") from None
