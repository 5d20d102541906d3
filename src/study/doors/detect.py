"""Door boxes. The one box format of the doors case is **xyxy in pixels** (x0, y0, x1, y1), x
right and y down, x1 > x0 and y1 > y0; YOLO label files (relative centre x, centre y, width,
height) are converted at the border of the program, never carried inside it."""
from __future__ import annotations

import numpy as np


def yolo_to_xyxy(boxes, width: int, height: int) -> np.ndarray:
    """Relative (xc, yc, w, h) rows → pixel xyxy rows, clipped to the image."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    xyxy = np.column_stack([(b[:, 0] - b[:, 2] / 2) * width, (b[:, 1] - b[:, 3] / 2) * height,
                            (b[:, 0] + b[:, 2] / 2) * width, (b[:, 1] + b[:, 3] / 2) * height])
    return clip(xyxy, width, height)


def xyxy_to_yolo(boxes, width: int, height: int) -> np.ndarray:
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.column_stack([(b[:, 0] + b[:, 2]) / 2 / width, (b[:, 1] + b[:, 3]) / 2 / height,
                            (b[:, 2] - b[:, 0]) / width, (b[:, 3] - b[:, 1]) / height])


def xywh_to_xyxy(boxes) -> np.ndarray:
    """Pixel (x0, y0, w, h) → xyxy (the format some tools use; named so it cannot be mixed up)."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]])


def clip(boxes, width: int, height: int) -> np.ndarray:
    """Clip xyxy boxes to [0, width] × [0, height]."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    return b


def iou(a, b) -> np.ndarray:
    """Pairwise intersection over union of xyxy boxes (len(a) × len(b))."""
    a, b = np.asarray(a, dtype=float).reshape(-1, 4), np.asarray(b, dtype=float).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x1 - x0).clip(0) * (y1 - y0).clip(0)
    area = lambda r: (r[:, 2] - r[:, 0]).clip(0) * (r[:, 3] - r[:, 1]).clip(0)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
