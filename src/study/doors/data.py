"""Synthetic door scenes (the embedded default data of the doors case) and the DeepDoors2-like layout.

A scene is a room corner (wall, floor, ceiling band, lighting gradient, texture), a door frame on
the wall and a door leaf turned about its hinge by an angle drawn from the class (closed 0°,
semi-open 10–60°, open 65–110°). The leaf is drawn in a simple perspective: its free edge moves
toward the hinge by cos θ and grows taller by sin θ, as a leaf swinging toward the camera does;
the opening it uncovers shows the space behind (a darker room with its own floor). Distractors
(windows, cabinets, people-like shapes), blur, noise and colour casts make the task less trivial.

Every random draw comes from one seeded generator per scene, so a scene is a pure function of
(seed, index): the same seed gives the same bytes. Boxes are xyxy in pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

if TYPE_CHECKING:
    import pandas as pd

STATES = ("closed", "open", "semi")
FOLDER = {"closed": "Closed", "open": "Open", "semi": "Semi"}
ANGLES = {"closed": (0.0, 0.0), "semi": (10.0, 60.0), "open": (65.0, 110.0)}
SPLITS = (("Train", 0.7), ("Valid", 0.15), ("Test", 0.15))
SCALES = {"tiny": 24, "quick": 180, "default": 1800}  # scenes per scale
SIZE = (320, 240)


@dataclass
class Scene:
    index: int
    state: str
    angle: float
    box: tuple  # door frame, xyxy pixels
    gap_pixels: int  # pixels of the frame opening not covered by the leaf (0 when closed)
    distractors: list


def _colour(rng, lo=60, hi=230) -> tuple:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _shade(c, f) -> tuple:
    return tuple(int(max(0, min(255, v * f))) for v in c)


def leaf_polygon(frame: tuple, angle_deg: float, hinge_left: bool) -> list[tuple[float, float]]:
    """The leaf's corners for a frame (xyxy) turned by ``angle_deg`` about its hinge side."""
    x0, y0, x1, y1 = frame
    w, h = x1 - x0, y1 - y0
    t = np.radians(angle_deg)
    reach = w * np.cos(t)  # horizontal extent of the turned leaf
    grow = 0.18 * h * np.sin(t)  # the free edge comes toward the camera: taller
    if hinge_left:
        xf = x0 + reach
        return [(x0, y0), (xf, y0 - grow), (xf, y1 + grow * 0.5), (x0, y1)]
    xf = x1 - reach
    return [(x1, y0), (xf, y0 - grow), (xf, y1 + grow * 0.5), (x1, y1)]


def render(seed: int, index: int, state: str, size=SIZE) -> tuple[Image.Image, Scene]:
    """One scene of the given state (deterministic for seed and index)."""
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    rng = np.random.default_rng([seed, index])
    W, H = size
    img = Image.new("RGB", size, _colour(rng, 150, 235))
    d = ImageDraw.Draw(img)
    wall = _colour(rng, 140, 235)
    horizon = int(H * rng.uniform(0.72, 0.85))
    ceiling = int(H * rng.uniform(0.03, 0.1))
    for y in range(ceiling, horizon):  # lighting gradient on the wall
        d.line([(0, y), (W, y)], fill=_shade(wall, 0.85 + 0.25 * y / H))
    d.rectangle([0, 0, W, ceiling], fill=_shade(wall, 1.1))
    floor = _colour(rng, 60, 170)
    d.polygon([(0, horizon), (W, horizon), (W, H), (0, H)], fill=floor)
    for x in range(-W, 2 * W, int(rng.integers(18, 40))):  # floor boards in perspective
        d.line([(W / 2 + (x - W / 2) * 0.4, horizon), (x, H)], fill=_shade(floor, 0.8))

    # the door frame standing on the floor line
    fh = int((horizon - ceiling) * rng.uniform(0.7, 0.92))
    fw = int(fh * rng.uniform(0.38, 0.5))
    fx0 = int(rng.integers(int(0.05 * W), max(int(0.05 * W) + 1, W - fw - int(0.05 * W))))
    frame = (fx0, horizon - fh, fx0 + fw, horizon)
    distractors = []
    for _ in range(int(rng.integers(0, 3))):  # windows, cabinets, people-like shapes, away from the door
        kind = str(rng.choice(["window", "cabinet", "person"]))
        for _try in range(10):
            w_, h_ = int(W * rng.uniform(0.12, 0.25)), int(H * rng.uniform(0.15, 0.35))
            x_, y_ = int(rng.integers(0, W - w_)), int(rng.integers(ceiling, max(ceiling + 1, horizon - h_)))
            if x_ + w_ < frame[0] - 8 or x_ > frame[2] + 8:
                break
        else:
            continue
        box = (x_, y_, x_ + w_, y_ + h_)
        if kind == "window":
            d.rectangle(box, fill=(170, 200, 230), outline=(240, 240, 240), width=4)
            d.line([((box[0] + box[2]) / 2, box[1]), ((box[0] + box[2]) / 2, box[3])], fill=(240, 240, 240), width=3)
            d.line([(box[0], (box[1] + box[3]) / 2), (box[2], (box[1] + box[3]) / 2)], fill=(240, 240, 240), width=3)
        elif kind == "cabinet":
            c = _colour(rng, 80, 200)
            d.rectangle(box, fill=c, outline=_shade(c, 0.6), width=2)
            d.line([((box[0] + box[2]) / 2, box[1]), ((box[0] + box[2]) / 2, box[3])], fill=_shade(c, 0.6), width=2)
        else:
            c = _colour(rng, 30, 120)
            cx = (box[0] + box[2]) / 2
            d.ellipse([cx - w_ * 0.15, box[1], cx + w_ * 0.15, box[1] + h_ * 0.2], fill=c)
            d.rectangle([cx - w_ * 0.25, box[1] + h_ * 0.2, cx + w_ * 0.25, box[3]], fill=c)
        distractors.append({"kind": kind, "box": box})

    # the space behind the opening, the leaf, then the frame on top
    behind = _colour(rng, 20, 90)
    d.rectangle(frame, fill=behind)
    d.polygon(
        [
            (frame[0], frame[3] - fh * 0.15),
            (frame[2], frame[3] - fh * 0.15),
            (frame[2], frame[3]),
            (frame[0], frame[3]),
        ],
        fill=_shade(floor, 0.6),
    )
    angle = float(rng.uniform(*ANGLES[state])) if state != "closed" else 0.0
    hinge_left = bool(rng.integers(0, 2))
    leaf = _colour(rng, 70, 220)
    poly = leaf_polygon(frame, angle, hinge_left)
    d.polygon(poly, fill=_shade(leaf, 1.0 - 0.35 * np.sin(np.radians(angle))))
    knob_x = poly[1][0] + (-6 if hinge_left else 6) * np.cos(np.radians(angle))
    d.ellipse(
        [knob_x - 3, (frame[1] + frame[3]) / 2 - 3, knob_x + 3, (frame[1] + frame[3]) / 2 + 3], fill=(200, 180, 60)
    )
    # gap = frame opening not covered by the leaf, measured on a mask before the frame is drawn
    mask = Image.new("1", size, 0)
    ImageDraw.Draw(mask).rectangle([frame[0] + 1, frame[1] + 1, frame[2] - 1, frame[3] - 1], fill=1)
    ImageDraw.Draw(mask).polygon(poly, fill=0)
    gap = int(np.asarray(mask).sum())
    d.rectangle(frame, outline=_shade(wall, 0.55), width=3)

    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.2))))
    arr = np.asarray(img).astype(np.float32)
    arr *= rng.uniform(0.85, 1.15, 3)  # colour cast
    arr += rng.normal(0, rng.uniform(1, 8), arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img, Scene(index, state, angle, frame, gap, distractors)


def crop(img: Image.Image, box: tuple, margin: float = 0.08) -> Image.Image:
    """The door crop (box xyxy) with a small margin, clipped at the borders."""
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return img.crop(
        (max(0, int(x0 - mx)), max(0, int(y0 - my)), min(img.width, int(x1 + mx)), min(img.height, int(y1 + my)))
    )


CONTEXT_MARGIN = 0.5  # the two-view classifier's context: half the door's size on every side


def context_crop(img: Image.Image, box: tuple, margin: float = CONTEXT_MARGIN) -> Image.Image:
    """The door (box xyxy) with ``margin`` of its width and height on every side: what lies beside
    a door (the leaf swung into the room, the room behind) tells open from closed. Outside the photo
    is mid-grey, so the box always fills the centre 1 / (1 + 2·margin) of each side."""
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    left, top = int(round(x0 - mx)), int(round(y0 - my))
    right, bottom = max(left + 1, int(round(x1 + mx))), max(top + 1, int(round(y1 + my)))
    out = Image.new("RGB", (right - left, bottom - top), (127, 127, 127))
    inside = (max(0, left), max(0, top), min(img.width, right), min(img.height, bottom))
    if inside[0] < inside[2] and inside[1] < inside[3]:
        out.paste(img.convert("RGB").crop(inside), (inside[0] - left, inside[1] - top))
    return out


def generate(out: str | Path, scale: str = "quick", seed: int = 2017) -> dict:
    """Write the DeepDoors2-like layout: ``Full/<Split>/`` scenes with ``<id>.json`` boxes and
    ``<Split>/<Closed|Open|Semi>/<id>.png`` crops. Each scene is one door instance and lives in
    exactly one split. Classes are balanced by construction (a third each)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    out = Path(out)
    n = SCALES[scale]
    counts: dict = {}
    order = np.random.default_rng(seed).permutation(n)
    per_class = {st: [int(i) for i in order if int(i) % 3 == k] for k, st in enumerate(STATES)}
    for state, members in per_class.items():  # splits stratified by class, each scene in one split
        bounds = np.cumsum([int(round(f * len(members))) for _, f in SPLITS[:-1]])
        for rank, i in enumerate(members):
            split = SPLITS[int(np.searchsorted(bounds, rank, side="right"))][0]
            _write_scene(out, seed, i, state, split, counts)
    meta = {
        "scale": scale,
        "seed": seed,
        "scenes": n,
        "size": SIZE,
        "counts": {f"{s}/{c}": v for (s, c), v in sorted(counts.items())},
    }
    (out / "doors.json").write_text(json.dumps(meta, indent=1))
    return meta


def _write_scene(out: Path, seed: int, i: int, state: str, split: str, counts: dict) -> None:
    """Render one scene and write its full image, its boxes and its door crop."""
    img, scene = render(seed, int(i), state)
    sid = f"scene{int(i):05d}"
    (out / "Full" / split).mkdir(parents=True, exist_ok=True)
    (out / split / FOLDER[state]).mkdir(parents=True, exist_ok=True)
    img.save(out / "Full" / split / f"{sid}.png")
    (out / "Full" / split / f"{sid}.json").write_text(json.dumps(asdict(scene)))
    crop(img, scene.box).save(out / split / FOLDER[state] / f"{sid}.png")
    counts[(split, state)] = counts.get((split, state), 0) + 1


# ---------------------------------------------------------------------------------------------
# Loaders: images in, with a clear error for anything that is not one.
class ImageError(ValueError):
    """A file that cannot be used as an image, in one sentence."""


def open_image(source, name: str = "the file", max_side: int | None = None) -> Image.Image:
    """An RGB image from a path or bytes (greyscale, RGBA, CMYK and palette converted), optionally
    downscaled so its longer side is at most ``max_side``; anything else raises ImageError."""
    import io

    from PIL import UnidentifiedImageError

    try:
        fp = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")
    except OSError as exc:
        raise ImageError(f"{name} cannot be opened: {exc.strerror or exc}.") from None
    with fp:
        try:
            img = Image.open(fp)
            w, h = img.size
            if w * h > MAX_PIXELS:  # checked before decoding: a decompression bomb never fills memory
                raise ImageError(
                    f"{name} is {w:,}×{h:,} pixels ({w * h / 1e6:,.0f} megapixels); the limit is "
                    f"{MAX_PIXELS / 1e6:.0f} megapixels."
                )
            img.load()
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(f"{name} is not an image (JPEG, PNG, BMP, WebP or TIFF expected).") from None
        except Image.DecompressionBombError as exc:  # Pillow's own guard, raised while reading the header
            import re

            found = re.search(r"(\d+) pixels", str(exc))
            size = f" ({int(found.group(1)) / 1e6:,.0f} megapixels)" if found else ""
            raise ImageError(
                f"{name} has too many pixels{size}; the limit is {MAX_PIXELS / 1e6:.0f} megapixels."
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{name} is truncated or corrupt ({str(exc)[:80]}).") from None
    img = _to_rgb(ImageOps.exif_transpose(img))  # a phone photo stored sideways is turned upright
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side))
    return img


MAX_PIXELS = 100_000_000  # 10,000 × 10,000: far above any camera, far below a decompression bomb


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode; 16-bit and 32-bit greyscale scaled to 0–255 (a plain convert clips
    them, and a 16-bit TIFF comes out all white)."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or (img.mode == "I" and a.min() >= 0 and a.max() <= 65535 and a.max() > 255):
            a = a / 257.0
        elif img.mode == "F" and a.min() >= 0 and a.max() <= 1.0:
            a = a * 255.0
        elif a.max() > 255 or a.min() < 0:
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) / ((hi - lo) or 1.0) * 255.0
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


def load_deepdoors2(folder: str | Path) -> "pd.DataFrame":
    """The crops of a DeepDoors2-style folder (``<Split>/<Closed|Open|Semi>/*``; ours or the real
    data set's): path, split, state."""
    import pandas as pd

    folder = Path(folder)
    rows = [
        {"path": p, "split": split, "state": state}
        for split, _ in SPLITS
        for state in STATES
        for p in sorted((folder / split / FOLDER[state]).glob("*"))
        if p.suffix.lower() in (".png", ".jpg", ".jpeg")
    ]
    if not rows:
        raise FileNotFoundError(f"no DeepDoors2 layout under {folder} (expected Train|Valid|Test/Closed|Open|Semi/)")
    return pd.DataFrame(rows)


def load_real_doors(folder: str | Path | None = None) -> "pd.DataFrame":
    """The real door boxes of ``../shared/doors/doordetect`` with their states: image path, box
    index, xyxy pixels, state (closed, open, semi, unclear or disputed)."""
    import pandas as pd

    from study import paths
    from study.doors.detect import yolo_to_xyxy

    folder = Path(folder) if folder else paths.SHARED_DOORS / "doordetect"
    states = folder / "states.csv"
    if not states.is_file():
        raise FileNotFoundError(f"real door photos not found: {states} is missing (see ../shared/doors/README.md)")
    df = pd.read_csv(states, dtype={"image": str})
    sizes = {}
    boxes = []
    for r in df.itertuples():
        path = folder / "images" / f"{r.image}.jpg"
        if r.image not in sizes:
            with Image.open(path) as im:
                sizes[r.image] = im.size
        w, h = sizes[r.image]
        boxes.append(yolo_to_xyxy([[r.x, r.y, r.w, r.h]], w, h)[0])
    out = pd.DataFrame({"path": [folder / "images" / f"{i}.jpg" for i in df.image], "box": df.box, "state": df.state})
    out[["x0", "y0", "x1", "y1"]] = np.array(boxes).reshape(-1, 4)
    out[["width", "height"]] = [sizes[i] for i in df.image]
    return out


# ---------------------------------------------------------------------------------------------
# Real photos split by image (seeded), and the crop tables the classifiers train and test on.
REAL_SPLITS = (("Train", 0.6), ("Valid", 0.2), ("Test", 0.2))
DOOR, HANDLE, CABINET_DOOR, FRIDGE_DOOR = 0, 1, 2, 3


def real_images(folder: str | Path | None = None, seed: int = 2017) -> "pd.DataFrame":
    """Every DoorDetect photo (with or without doors): id, path, width, height, split (Train 60 %,
    Valid 20 %, Test 20 %, drawn per image with ``seed``, stratified on having a door), ``doors``
    (xyxy pixel boxes of class 0) and ``others`` (cabinet and refrigerator doors, for the analysis
    of false positives)."""
    import pandas as pd

    from study import paths
    from study.doors.detect import yolo_to_xyxy

    folder = Path(folder) if folder else paths.SHARED_DOORS / "doordetect"
    if not (folder / "labels").is_dir():
        raise FileNotFoundError(f"real door photos not found under {folder} (see ../shared/doors/README.md)")
    rows = []
    for label in sorted((folder / "labels").glob("*.txt")):
        path = folder / "images" / f"{label.stem}.jpg"
        if not path.is_file():
            continue
        with Image.open(path) as im:
            w, h = im.size
        lines = [ln.split() for ln in label.read_text().splitlines() if ln.strip()]
        cls = np.array([int(ln[0]) for ln in lines], dtype=int)
        boxes = yolo_to_xyxy([[float(v) for v in ln[1:5]] for ln in lines], w, h) if lines else np.zeros((0, 4))
        rows.append(
            {
                "id": label.stem,
                "path": path,
                "width": w,
                "height": h,
                "doors": boxes[cls == DOOR],
                "others": boxes[(cls == CABINET_DOOR) | (cls == FRIDGE_DOOR)],
            }
        )
    df = pd.DataFrame(rows)
    rng = np.random.default_rng(seed)
    df["split"] = ""
    for has_door in (True, False):
        idx = df.index[df.doors.map(len).gt(0) == has_door].to_numpy()
        idx = idx[rng.permutation(len(idx))]
        bounds = np.cumsum([int(round(f * len(idx))) for _, f in REAL_SPLITS[:-1]])
        for rank, i in enumerate(idx):
            df.loc[i, "split"] = REAL_SPLITS[int(np.searchsorted(bounds, rank, side="right"))][0]
    return df


def real_crops(folder: str | Path | None = None, seed: int = 2017) -> "pd.DataFrame":
    """Crops of the real door boxes whose state the two raters agreed on (closed, open, semi), with
    the split of their photo: image (PIL), state, split, origin, path, box."""
    import pandas as pd

    doors = load_real_doors(folder)
    split = real_images(folder, seed).set_index("path")["split"]
    doors = doors[doors.state.isin(STATES)].reset_index(drop=True)
    images, contexts, cache = [], [], {}
    for r in doors.itertuples():
        if r.path not in cache:
            cache = {r.path: open_image(r.path)}
        images.append(crop(cache[r.path], (r.x0, r.y0, r.x1, r.y1)))
        contexts.append(context_crop(cache[r.path], (r.x0, r.y0, r.x1, r.y1)))
    return pd.DataFrame(
        {
            "image": images,
            "context": contexts,
            "state": doors.state,
            "split": doors.path.map(split).to_numpy(),
            "origin": "real",
            "path": doors.path,
            "box": [tuple(b) for b in doors[["x0", "y0", "x1", "y1"]].to_numpy()],
        }
    )


def synthetic_crops(folder: str | Path) -> "pd.DataFrame":
    """The crops of a generated (or real DeepDoors2) layout, loaded: image, context (``context_crop``
    of the door in its full scene when the layout has one, else of the crop itself), state, split,
    origin, path."""
    df = load_deepdoors2(folder)
    df["image"] = [open_image(p) for p in df.path]
    df["context"] = [scene_context(folder, p, im) for p, im in zip(df.path, df.image)]
    df["origin"] = "synthetic"
    return df[["image", "context", "state", "split", "origin", "path"]]


def scene_context(folder: str | Path, crop_path: str | Path, image: Image.Image) -> Image.Image:
    """The context crop of a layout's door: from ``Full/<split>/<id>.png`` and its box when the
    scene is there (generated layouts), else from the crop alone (DeepDoors2 ships no boxes)."""
    crop_path = Path(crop_path)
    scene = Path(folder) / "Full" / crop_path.parent.parent.name / crop_path.name
    box_file = scene.with_suffix(".json")
    if scene.is_file() and box_file.is_file():
        return context_crop(open_image(scene), tuple(json.loads(box_file.read_text())["box"]))
    return context_crop(image, (0, 0, image.width, image.height))


def synthetic_scenes(folder: str | Path) -> "pd.DataFrame":
    """The full scenes of a generated layout with their door boxes: path, split, doors (xyxy)."""
    import pandas as pd

    rows = []
    for split, _ in SPLITS:
        for meta in sorted((Path(folder) / "Full" / split).glob("*.json")):
            scene = json.loads(meta.read_text())
            rows.append(
                {
                    "path": meta.with_suffix(".png"),
                    "split": split,
                    "state": scene["state"],
                    "doors": np.array([scene["box"]], dtype=float),
                    "others": np.zeros((0, 4)),
                }
            )
    return pd.DataFrame(rows)
