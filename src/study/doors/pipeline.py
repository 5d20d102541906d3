"""Image → door boxes → crops → state and probability → annotated image; video → annotated frames.

Boxes are xyxy in pixels of the image given (x0, y0, x1, y1; x right, y down), everywhere: in
``Detection``, in the JSON of ``study doors predict`` and in the dashboard's table.
"""

from __future__ import annotations

import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    import pandas as pd

from study.doors import classify, detect
from study.doors.data import STATES, ImageError, open_image

# what the demo and `study doors predict` use by default: the one metrics.json names (chosen on the
# real Valid crops, ``train.preferred``), else the first of these that was trained
PREFERRED_CLASSIFIERS = ("two_view", "finetuned", "transfer")

COLOURS = {"closed": (46, 139, 87), "open": (230, 126, 34), "semi": (142, 68, 173), "uncertain": (127, 127, 127)}
MAX_SIDE = 4096  # larger images are downscaled on load (the detector sees 320 px anyway)


def models_folder() -> Path:
    from study import paths

    return paths.DOOR_MODELS


def preferred_classifier(folder: str | Path | None = None) -> str:
    """The classifier a models folder serves by default: the one its ``metrics.json`` names (when
    saved), else the first of ``PREFERRED_CLASSIFIERS`` present, else the last of them."""
    folder = Path(folder) if folder else models_folder()
    try:
        named = json.loads((folder / "metrics.json").read_text()).get("preferred_classifier")
    except (OSError, ValueError):
        named = None
    if named and (folder / named / "model.json").is_file():
        return named
    return next((c for c in PREFERRED_CLASSIFIERS if (folder / c / "model.json").is_file()), PREFERRED_CLASSIFIERS[-1])


@dataclass
class Detection:
    box: tuple  # x0, y0, x1, y1 in pixels of the image
    score: float  # detector confidence that this is a door
    state: str  # closed, open, semi, or "uncertain" below the classification threshold
    probability: float  # the classifier's probability of the most likely state
    probabilities: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "box_xyxy": [round(float(v), 1) for v in self.box],
            "score": round(self.score, 4),
            "state": self.state,
            "probability": round(self.probability, 4),
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
        }

    def flat(self) -> dict:
        """One table row: state, probability, score, x0..y1, p(state) for each state."""
        return {
            "state": self.state,
            "probability": round(self.probability, 4),
            "score": round(self.score, 4),
            **{k: round(float(v), 1) for k, v in zip(("x0", "y0", "x1", "y1"), self.box)},
            **{f"p({k})": round(v, 4) for k, v in self.probabilities.items()},
        }

    @property
    def label(self) -> str:
        return f"{self.state} {self.probability:.0%}"


class VideoError(ValueError):
    """A file that cannot be used as a video, in one sentence."""


class DoorPipeline:
    """A detector and a state classifier; ``confidence`` filters boxes, ``state_threshold`` marks a
    door "uncertain" when its most likely state is less probable than that."""

    def __init__(
        self, detector, classifier, confidence: float = 0.3, state_threshold: float = 0.0, nms_iou: float = 0.5
    ):
        self.detector, self.classifier = detector, classifier
        self.confidence, self.state_threshold, self.nms_iou = confidence, state_threshold, nms_iou

    @classmethod
    def load(cls, folder: str | Path | None = None, classifier: str | None = None, **kw) -> "DoorPipeline":
        """The saved detector and a classifier: the one named, else the one ``metrics.json`` names
        as preferred, else the first of ``PREFERRED_CLASSIFIERS`` that was trained."""
        folder = Path(folder) if folder else models_folder()
        if classifier is None:
            classifier = preferred_classifier(folder)
        return cls(detect.DoorDetector.load(folder / "detector"), classify.load(folder / classifier), **kw)

    @classmethod
    def deployed(cls, detector, classifier, **kw) -> "DoorPipeline":
        """The pipeline as it runs once its models are saved and loaded (their networks in ONNX
        Runtime), from models in memory: what a report should time."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            detector.save(Path(tmp) / "detector")
            classifier.save(Path(tmp) / "classifier")
            return cls(detect.DoorDetector.load(Path(tmp) / "detector"), classify.load(Path(tmp) / "classifier"), **kw)

    def predict(self, image, confidence: float | None = None, state_threshold: float | None = None) -> list[Detection]:
        """Doors of one image (PIL, a path or bytes), best first."""
        if not isinstance(image, Image.Image):
            image = open_image(image, max_side=MAX_SIDE)
        conf = self.confidence if confidence is None else confidence
        thr = self.state_threshold if state_threshold is None else state_threshold
        boxes = self.detector.detect([image], confidence=conf, nms_iou=self.nms_iou)[0]
        crops = [classify.door_input(self.classifier, image, b[:4]) for b in boxes]
        proba = self.classifier.predict_proba(crops) if crops else np.zeros((0, len(STATES)))
        out = []
        decided = classify.decide(self.classifier, proba) if len(proba) else []
        for b, p, k in zip(boxes, proba, decided):
            k = int(k)
            state = STATES[k] if p[k] >= thr else "uncertain"
            out.append(
                Detection(
                    tuple(float(v) for v in b[:4]),
                    float(b[4]),
                    state,
                    float(p[k]),
                    {s: float(v) for s, v in zip(STATES, p)},
                )
            )
        return out

    def predict_video(
        self,
        source,
        every: int | None = None,
        max_frames: int = 300,
        fps_target: float = 5.0,
        name: str = "the video",
        progress=None,
        confidence: float | None = None,
        state_threshold: float | None = None,
    ) -> "VideoResult":
        """Doors in frames of a video (path or bytes): one frame in ``every`` (by default enough to
        analyse about ``fps_target`` frames per second of video), at most ``max_frames``."""
        frames, timeline, t0, fps_in, n_read, report = [], [], time.perf_counter(), None, 0, {}
        for index, t, image, rate in read_video(source, name=name, report=report):
            fps_in = rate
            step = every or max(1, int(round((rate or fps_target) / fps_target)))
            n_read += 1
            if index % step:
                continue
            found = self.predict(image, confidence, state_threshold)
            frames.append(annotate(image, found))
            timeline += [{"frame": index, "time_s": round(t, 3), "door": k, **d.flat()} for k, d in enumerate(found)]
            if not found:
                timeline.append({"frame": index, "time_s": round(t, 3), "door": -1, "state": "no door"})
            if progress:
                progress(len(frames))
            if len(frames) >= max_frames:
                break
        if not frames:
            raise VideoError(f"{name} has no frames that could be decoded.")
        import pandas as pd

        seconds = time.perf_counter() - t0
        return VideoResult(
            frames,
            pd.DataFrame(timeline),
            fps_in or 0.0,
            len(frames) / seconds,
            n_read,
            seconds,
            report.get("damaged", ""),
        )


@dataclass
class VideoResult:
    frames: list  # annotated PIL frames
    timeline: "pd.DataFrame"  # one row per door per analysed frame (door -1: no door found)
    video_fps: float
    processed_fps: float  # analysed frames per second of wall time (decode + detect + classify)
    frames_read: int
    seconds: float
    damaged: str = ""  # why the file ended early (truncated or damaged), "" when read to its end


def read_video(source, name: str = "the video", report: dict | None = None):
    """(frame index, time in seconds, PIL image, frames per second) for each frame of a video file
    (path or bytes; MP4, AVI, WEBM, MKV, MOV…), with a VideoError sentence for anything else.
    ``report["damaged"]`` says why, when a truncated or damaged file ended before its last frame."""
    import av

    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise VideoError(f"{name} is empty.")
        fp = io.BytesIO(bytes(source))
    else:
        if not Path(source).is_file():
            raise VideoError(f"{name} does not exist.")
        if Path(source).stat().st_size == 0:
            raise VideoError(f"{name} is empty.")
        fp = str(source)
    try:
        container = av.open(fp, mode="r")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise VideoError(
            f"{name} is not a video that can be read (MP4, AVI, WEBM, MOV or MKV expected): {_av_reason(exc)}."
        ) from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{name} has no video stream.")
        stream = container.streams.video[0]
        if stream.codec_context is None or not stream.codec_context.name:
            raise VideoError(f"{name} uses a video codec that is not supported.")
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        declared = int(stream.frames or 0)
        index = 0
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else index / (rate or 1)
                yield index, t, frame.to_image().convert("RGB"), rate
                index += 1
        except av.error.FFmpegError as exc:
            if index == 0:
                raise VideoError(
                    f"{name} could not be decoded (unsupported codec or corrupt data: {_av_reason(exc)})."
                ) from None
            if report is not None:  # a truncated or damaged tail: the frames decoded so far are kept
                report["damaged"] = f"decoding stopped after {index} frames ({_av_reason(exc)})"
            return
        if report is None:
            return
        duration = float(container.duration) / 1e6 if container.duration else 0.0  # microseconds
        last = t if index else 0.0
        if declared and index < declared:
            report["damaged"] = f"the file declares {declared} frames but only {index} could be decoded"
        elif duration and rate and last + 2.5 / rate < duration:
            report["damaged"] = f"the file declares {duration:.1f} s but its frames end at {last:.1f} s"


def _av_reason(exc: Exception) -> str:
    """FFmpeg's reason without its error number ("[Errno 1094995529] Invalid data found…: '<none>'")."""
    text = getattr(exc, "strerror", None) or str(exc)
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(text)).split(": '", 1)[0].strip()
    return (text or type(exc).__name__)[:80].rstrip(".").lower()


def write_video(frames, path: str | Path, fps: float = 5.0) -> Path:
    """Annotated frames → an H.264 MP4 (or VP9 WEBM when the suffix is .webm) the browser plays."""
    import av

    path = Path(path)
    codec = "libvpx-vp9" if path.suffix == ".webm" else "libx264"
    w, h = frames[0].size
    w, h = w - w % 2, h - h % 2
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=max(1, int(round(fps))))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for im in frames:
            frame = av.VideoFrame.from_image(im.crop((0, 0, w, h)))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def annotate(image: Image.Image, detections: list[Detection]) -> Image.Image:
    """A copy of the image with each door framed in its state's colour and labelled "open 97 %"."""
    out = image.copy()
    d = ImageDraw.Draw(out)
    line = max(2, round(max(out.size) / 250))
    font = _font(max(12, round(max(out.size) / 40)))
    for det in detections:
        colour = COLOURS.get(det.state, COLOURS["uncertain"])
        x0, y0, x1, y1 = det.box
        d.rectangle([x0, y0, x1, y1], outline=colour, width=line)
        text = det.label
        tb = d.textbbox((0, 0), text, font=font)
        tw, th = tb[2] - tb[0], tb[3] - tb[1]
        ty = y0 - th - 2 * line if y0 - th - 2 * line >= 0 else y0
        d.rectangle([x0, ty, x0 + tw + 2 * line, ty + th + 2 * line], fill=colour)
        d.text((x0 + line, ty + line - tb[1]), text, fill=(255, 255, 255), font=font)
    return out


def predict_files(paths, pipeline: DoorPipeline | None = None, out_dir: str | Path | None = None) -> list[dict]:
    """Per image file: its doors (``Detection.to_dict``) or the sentence saying why it could not be read."""
    pipeline = pipeline or DoorPipeline.load()
    results = []
    for p in paths:
        try:
            image = open_image(p, name=str(p), max_side=MAX_SIDE)
        except ImageError as exc:
            results.append({"image": str(p), "error": str(exc)})
            continue
        found = pipeline.predict(image)
        row = {"image": str(p), "width": image.width, "height": image.height, "doors": [d.to_dict() for d in found]}
        if out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            target = Path(out_dir) / f"{Path(p).stem}_doors.png"
            annotate(image, found).save(target)
            row["annotated"] = str(target)
        results.append(row)
    return results
