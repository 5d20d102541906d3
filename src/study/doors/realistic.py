"""Real-texture synthesis: open and ajar doors made from real closed doors of the Train photos.

Only 77 real open and 6 real semi-open doors exist offline, against 407 agreed closed ones, and the
procedural scenes do not look like real rooms. So a real closed door is turned about a hinge side
in perspective to an angle of the class (its real leaf, swinging away from the camera: the free
edge moves toward the hinge by cos θ and looks shorter with distance), and the opening it uncovers
is filled with real imagery of another indoor photo (a random region, darkened and blurred as
the depth behind a door suggests). Everything happens inside the door's box; the rest of the
photo is untouched. Each example is a pure function of (seed, index), and only photos of the
Train split are read (the caller passes them; ``synthesise`` refuses any other split).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from study.doors.data import ANGLES, crop, open_image

DEPTH = 0.12  # how much shorter the free edge looks at 90° (it is further from the camera)


def perspective_coefficients(dest: list, source: list) -> list:
    """PIL's PERSPECTIVE coefficients that map each ``dest`` corner to its ``source`` corner
    (PIL's transform samples the source at the position the coefficients give for an output pixel)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dest, source):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return list(np.linalg.solve(np.array(rows, float), np.array(rhs, float)))


def leaf_quad(width: int, height: int, angle_deg: float, hinge_left: bool) -> list:
    """Corners (top hinge, top free, bottom free, bottom hinge) of a leaf turned away from the
    camera by ``angle_deg``, in the box's own pixel coordinates."""
    t = np.radians(angle_deg)
    reach = width * np.cos(t)
    shrink = DEPTH * height * np.sin(t)
    hinge, free = (0.0, reach) if hinge_left else (float(width), width - reach)
    return [(hinge, 0.0), (free, shrink), (free, height - 0.6 * shrink), (hinge, float(height))]


def turn_door(photo: Image.Image, box, state: str, backdrop: Image.Image, rng: np.random.Generator) -> tuple:
    """``photo`` with its closed door in ``box`` (xyxy) turned to a random angle of ``state`` and
    the revealed opening showing a region of ``backdrop``; returns (image, angle, hinge_left)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box[:4])
    w, h = x1 - x0, y1 - y0
    angle = float(rng.uniform(*ANGLES[state]))
    hinge_left = bool(rng.integers(0, 2))
    # the space behind: a random region of another photo with the door's aspect, darker and softer
    bw, bh = backdrop.size
    side = rng.uniform(0.35, 0.8)
    rw = max(8, int(min(bw, bh * w / h) * side))
    rh = max(8, int(rw * h / w))
    rx, ry = int(rng.integers(0, max(1, bw - rw))), int(rng.integers(0, max(1, bh - rh)))
    behind = backdrop.convert("RGB").crop((rx, ry, rx + rw, ry + rh)).resize((w, h), Image.BILINEAR)
    behind = ImageEnhance.Brightness(behind).enhance(rng.uniform(0.35, 0.8))
    behind = behind.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))
    # the real leaf, warped onto its turned outline and a little darker as it faces away
    leaf = photo.convert("RGB").crop((x0, y0, x1, y1))
    quad = leaf_quad(w, h, angle, hinge_left)
    source = [(0, 0), (w, 0), (w, h), (0, h)] if hinge_left else [(w, 0), (0, 0), (0, h), (w, h)]
    warped = leaf.transform((w, h), Image.PERSPECTIVE, perspective_coefficients(quad, source), Image.BILINEAR)
    warped = ImageEnhance.Brightness(warped).enhance(1.0 - 0.35 * np.sin(np.radians(angle)))
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon(quad, fill=255)
    behind.paste(warped, (0, 0), mask)
    out = photo.convert("RGB").copy()
    out.paste(behind, (x0, y0))
    return out, angle, hinge_left


def synthesise(
    closed: pd.DataFrame, photos: pd.DataFrame, per_door: dict | None = None, seed: int = 2017
) -> pd.DataFrame:
    """Open and ajar crops made from the real closed doors in ``closed`` (rows of
    ``data.real_crops``: path, box, split, state), backdrops drawn from ``photos`` (rows of
    ``data.real_images``). Both must be of the Train split. ``per_door``: examples per closed door
    and state (default one open, one ajar). Returns image, state, split, origin, path, box, angle."""
    per_door = per_door or {"open": 1, "semi": 1}
    for name, frame in (("closed doors", closed), ("backdrop photos", photos)):
        if len(frame) and set(frame.split) != {"Train"}:
            raise ValueError(
                f"real-texture synthesis reads Train photos only; its {name} include "
                f"{sorted(set(frame.split) - {'Train'})}"
            )
    closed = closed[closed.state == "closed"].reset_index(drop=True)
    backdrops = list(photos.path)
    rows, index, cache = [], 0, {}

    def image(path):
        if path not in cache:
            cache.clear()  # consecutive doors often share a photo; keep one in memory
            cache[path] = open_image(path)
        return cache[path]

    for door in closed.itertuples():
        for state, count in per_door.items():
            for _ in range(count):
                rng = np.random.default_rng([seed, index])
                index += 1
                candidates = [p for p in backdrops if p != door.path] or backdrops
                backdrop = open_image(candidates[int(rng.integers(0, len(candidates)))])
                turned, angle, _ = turn_door(image(door.path), door.box, state, backdrop, rng)
                rows.append(
                    {
                        "image": crop(turned, tuple(door.box)),
                        "state": state,
                        "split": "Train",
                        "origin": "real texture",
                        "path": door.path,
                        "box": door.box,
                        "angle": angle,
                    }
                )
    return pd.DataFrame(rows, columns=["image", "state", "split", "origin", "path", "box", "angle"])
