"""Doors (issue 7, first part): the synthetic scene generator and the box format."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from study.doors import backbone, data, detect


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_and_a_deepdoors2_layout(tmp_path):
    a, b, c = (data.generate(tmp_path / n, "tiny", seed=s) for n, s in (("a", 7), ("b", 7), ("c", 8)))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    assert a == b and sum(a["counts"].values()) == data.SCALES["tiny"]
    for split in ("Train", "Valid", "Test"):
        for folder in ("Closed", "Open", "Semi"):
            assert (tmp_path / "a" / split / folder).is_dir()
    # one door instance per scene, each scene in exactly one split
    scenes = [p.stem for p in (tmp_path / "a" / "Full").rglob("*.png")]
    assert len(scenes) == len(set(scenes)) == data.SCALES["tiny"]
    meta = json.loads(next((tmp_path / "a" / "Full").rglob("*.json")).read_text())
    assert set(meta) >= {"state", "angle", "box", "gap_pixels"}


def test_a_closed_door_shows_no_gap_and_wider_angles_show_more():
    gaps = {s: [data.render(1, i, s)[1].gap_pixels for i in range(12)] for s in data.STATES}
    assert all(g == 0 for g in gaps["closed"])
    assert min(gaps["semi"]) > 0 and np.mean(gaps["open"]) > np.mean(gaps["semi"])
    for s in data.STATES:
        scene = data.render(1, 3, s)[1]
        lo, hi = data.ANGLES[s]
        assert lo <= scene.angle <= hi
        x0, y0, x1, y1 = scene.box
        assert 0 <= x0 < x1 <= data.SIZE[0] and 0 <= y0 < y1 <= data.SIZE[1]
    with pytest.raises(ValueError, match="state must be one of"):
        data.render(1, 0, "ajar")


def test_box_conversions_round_trip_and_clip_at_the_borders():
    xyxy = np.array([[10, 20, 110, 220], [0, 0, 640, 480]], dtype=float)
    yolo = detect.xyxy_to_yolo(xyxy, 640, 480)
    np.testing.assert_allclose(detect.yolo_to_xyxy(yolo, 640, 480), xyxy)
    np.testing.assert_allclose(detect.xywh_to_xyxy([[10, 20, 100, 200]]), [[10, 20, 110, 220]])
    np.testing.assert_allclose(detect.xyxy_to_xywh([[10, 20, 110, 220]]), [[10, 20, 100, 200]])
    # a box hanging over the left and bottom borders is clipped, not wrapped
    np.testing.assert_allclose(detect.yolo_to_xyxy([[0.0, 0.95, 0.2, 0.3]], 640, 480), [[0, 384, 64, 480]])
    np.testing.assert_allclose(detect.clip([[-5, -5, 700, 500]], 640, 480), [[0, 0, 640, 480]])
    assert detect.iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]]).tolist() == [[pytest.approx(1 / 3), 0.0]]


def test_average_precision_agrees_with_hand_counted_cases():
    """pycocotools' AP@0.5 (101 recall points) on cases counted by hand."""
    door = [[0, 0, 10, 10]]
    one = detect.average_precision([[[0, 0, 10, 10, 0.9]]], [door])
    assert one["ap"] == pytest.approx(1.0) and one["truths"] == 1
    # Two photos, one door each: a hit (0.9), a miss (0.8), a hit (0.7, IoU 90/110): precision 1 up
    # to recall 0.5, then 2/3 up to recall 1 → (51 recall points × 1 + 50 × 2/3) / 101.
    res = detect.average_precision([[[0, 0, 10, 10, 0.9], [50, 50, 60, 60, 0.8]], [[1, 0, 11, 10, 0.7]]], [door, door])
    assert res["ap"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert res["matches"].matched.tolist() == [True, False, True]
    np.testing.assert_allclose(res["precision"], [1, 1 / 2, 2 / 3])
    np.testing.assert_allclose(res["recall"], [0.5, 0.5, 1.0])
    # IoU 0.32 < 0.5 is no match; a second box on a matched door is a false positive ranked after it.
    assert detect.average_precision([[[5.1, 0, 15.1, 10, 0.9]]], [door])["ap"] == pytest.approx(0.0)
    dup = detect.average_precision([[[0, 0, 10, 10, 0.9], [0, 0, 10, 10, 0.8]]], [door])
    assert dup["ap"] == pytest.approx(1.0) and dup["matches"].matched.tolist() == [True, False]
    # A false positive ranked first halves precision at full recall: (101 × 1/2) / 101.
    assert detect.average_precision([[[0, 0, 10, 10, 0.5], [50, 50, 60, 60, 0.9]]], [door])["ap"] == pytest.approx(0.5)
    assert detect.average_precision([np.zeros((0, 5))], [door])["ap"] == 0.0
    assert np.isnan(detect.average_precision([[[0, 0, 10, 10, 0.9]]], [np.zeros((0, 4))])["ap"])


def test_nms_and_losses_give_hand_computed_values():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    assert detect.nms(boxes, [0.9, 0.8, 0.7], 0.5) == [0, 2]
    assert detect.nms(boxes, [0.8, 0.9, 0.7], 0.95) == [1, 0, 2]
    # box voting: boxes 0 and 1 overlap by IoU 9/11 ≥ 0.7, so box 0 becomes their score-weighted
    # mean (0.9·0 + 0.8·1) / 1.7 on the left; the far box votes alone and keeps its place
    voted = detect.vote(boxes, [0.9, 0.8, 0.7], [0, 2], 0.7)
    assert voted == pytest.approx(np.array([[0.8 / 1.7, 0, 10 + 0.8 / 1.7, 10], [50, 50, 60, 60]]))
    assert detect.vote(boxes, [0.9, 0.8, 0.7], [0, 2], 0.85) == pytest.approx(boxes[[0, 2]])  # 9/11 < 0.85
    assert detect.vote(np.array([[5, 5, 5, 9.0]]), [0.4], [0]) == pytest.approx(np.array([[5, 5, 5, 9.0]]))  # no area
    assert detect.vote(boxes, [0.9, 0.8, 0.7], []).shape == (0, 4)
    torch = detect._torch()
    pos = torch.zeros(1, 2, 2, dtype=torch.bool)
    pos[0, 0, 0] = True
    dist = torch.full((1, 2, 2, 4), 8.0)
    logd = torch.full((1, 4, 2, 2), float(np.log(8.0 / detect.STRIDE)))  # predicted = true box
    focal, box = detect.DoorDetector._loss(torch.zeros(1, 2, 2), logd, pos, dist)
    # logit 0: p = 0.5, cross-entropy ln 2, (1 - p_t)^2 = 1/4; α 0.25 for the door, 0.75 for 3 background cells
    assert float(focal) == pytest.approx(np.log(2) / 4 * (0.25 + 3 * 0.75))
    assert float(box) == pytest.approx(0.0, abs=1e-6)
    # a predicted box twice the true one in each direction: IoU 1/4, enclosing box = prediction → 1 - 1/4
    _, box2 = detect.DoorDetector._loss(torch.zeros(1, 2, 2), logd + float(np.log(2.0)), pos, dist)
    assert float(box2) == pytest.approx(0.75, abs=1e-6)
    # hard negatives: one background cell inside a cabinet door weighs 4× (α 0.75 · 4)
    hard = torch.zeros(1, 2, 2, dtype=torch.bool)
    hard[0, 1, 1] = True
    focal_hard, _ = detect.DoorDetector._loss(torch.zeros(1, 2, 2), logd, pos, dist, hard, 4.0)
    assert float(focal_hard) == pytest.approx(np.log(2) / 4 * (0.25 + 2 * 0.75 + 4 * 0.75))


def test_the_box_loss_and_its_gradient_stay_finite_for_runaway_outputs():
    """A head whose log distances run away (exp overflows to inf: the NaN that stalled training at
    448 px) still gets a finite loss and gradient; ordinary outputs are untouched by the limit."""
    torch = detect._torch()
    pos = torch.zeros(1, 2, 2, dtype=torch.bool)
    pos[0, 0, 0] = True
    dist = torch.full((1, 2, 2, 4), 20.0)
    for value in (200.0, 1.0):
        logd = torch.full((1, 4, 2, 2), value, requires_grad=True)
        ls, lb = detect.DoorDetector._loss(torch.zeros(1, 2, 2), logd, pos, dist)
        (ls + lb).backward()
        assert bool(torch.isfinite(lb)) and bool(torch.isfinite(logd.grad).all())
    # exp(1) strides = 43.5 px against 20 px on each side: GIoU by hand (concentric squares)
    inter, union = 40.0**2, (2 * 16 * np.e) ** 2
    assert float(lb.detach()) == pytest.approx(1 - inter / union, rel=1e-5)


def test_hard_cells_are_inside_other_doors_and_never_a_door():
    grid = 4  # cell centres at 8, 24, 40, 56 px
    positive = np.zeros((grid, grid), bool)
    positive[0, 1] = True
    hard = detect.hard_cells([[0, 0, 30, 20]], grid, positive)  # covers centres x 8, 24 and y 8
    assert np.argwhere(hard).tolist() == [[0, 0]]  # (y, x): (8, 8); (8, 24) is a door's cell
    assert not detect.hard_cells(np.zeros((0, 4)), grid, positive).any()
    # the views of an image carry the other boxes through letterbox and mirror
    from PIL import Image

    det = detect.DoorDetector(input_size=64)
    views = det._variants(
        Image.new("RGB", (128, 64)), [[0, 0, 32, 64]], np.random.default_rng(0), 0, others=[[96, 32, 128, 64]]
    )
    (sq, doors, others), (_, mdoors, mothers) = views
    np.testing.assert_allclose(doors, [[0, 16, 16, 48]])
    np.testing.assert_allclose(others, [[48, 32, 64, 48]])
    np.testing.assert_allclose(mdoors, [[48, 16, 64, 48]])
    np.testing.assert_allclose(mothers, [[0, 32, 16, 48]])


def test_loaders_read_our_layout_and_refuse_what_is_not_an_image(tmp_path):
    data.generate(tmp_path / "dd", "tiny", seed=3)
    crops = data.load_deepdoors2(tmp_path / "dd")
    assert len(crops) == data.SCALES["tiny"] and set(crops.state) == set(data.STATES)
    assert set(crops.split) == {"Train", "Valid", "Test"}
    with pytest.raises(FileNotFoundError, match="no DeepDoors2 layout"):
        data.load_deepdoors2(tmp_path)
    png = (crops.path[0]).read_bytes()
    assert data.open_image(png).mode == "RGB"
    from PIL import Image

    Image.new("CMYK", (900, 300)).save(tmp_path / "cmyk.jpg")
    Image.new("LA", (50, 40)).save(tmp_path / "grey.png")
    assert data.open_image(tmp_path / "cmyk.jpg", max_side=300).size == (300, 100)
    assert data.open_image(tmp_path / "grey.png").mode == "RGB"
    for content, message in [
        (b"not an image at all", "is not an image"),
        (png[: len(png) // 2], "truncated or corrupt"),
        (b"", "is not an image"),
    ]:
        with pytest.raises(data.ImageError, match=message):
            data.open_image(content, "upload.png")
    with pytest.raises(data.ImageError, match="cannot be opened"):
        data.open_image(tmp_path / "missing.jpg")


def test_real_door_boxes_load_in_pixels(tmp_path):
    from study import paths

    if not (paths.SHARED_DOORS / "doordetect" / "states.csv").is_file():
        pytest.skip("../shared/doors is absent: real door photos not found")
    real = data.load_real_doors()
    assert len(real) == 580 and set(real.state) <= {"closed", "open", "semi", "unclear", "disputed"}
    assert (real.x0 >= 0).all() and (real.x1 <= real.width).all() and (real.y1 <= real.height).all()
    assert (real.x1 > real.x0).all() and (real.y1 > real.y0).all()
    with pytest.raises(FileNotFoundError, match="states.csv is missing"):
        data.load_real_doors(tmp_path)


# ---------------------------------------------------------------------------------------------
# Issue 18: odd images and damaged videos get a correct picture or a plain sentence.
def test_a_16_bit_tiff_keeps_its_picture(tmp_path):
    import io

    from PIL import Image

    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="TIFF")
    img = data.open_image(buf.getvalue(), "ramp.tif")
    a = np.asarray(img)
    assert img.mode == "RGB" and a.min() <= 1 and a.max() >= 254  # not all white
    assert abs(float(a[..., 0].mean()) - 127.5) < 3


def test_exif_orientation_is_applied():
    import io

    from PIL import Image

    im = Image.new("RGB", (80, 40), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 40, 40))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90° clockwise to view
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif, quality=95)
    out = data.open_image(buf.getvalue(), "phone.jpg")
    assert out.size == (40, 80)
    top = np.asarray(out)[5, 20]
    assert top[2] > 200 and top[0] < 60  # the blue half is now on top


@pytest.mark.parametrize("side", [30_000, 40_000])
def test_decompression_bombs_are_refused_before_decoding(side):
    import io
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    # a valid PNG header announcing side × side pixels (1-bit greyscale) with a tiny body
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    mp = f"{side * side / 1e6:,.0f} megapixels"
    with pytest.raises(
        data.ImageError,
        match=rf"bomb.png (is {side:,}×{side:,} pixels \({mp}\)|has too many pixels "
        rf"\({mp}\)); the limit is 100 megapixels",
    ):
        data.open_image(io.BytesIO(png).getvalue(), "bomb.png")


def _clip(path, frames=20, **options):
    import av

    from study.doors import pipeline

    images = [data.render(5, i, "open")[0] for i in range(frames)]
    if not options:
        return pipeline.write_video(images, path, fps=5).read_bytes()
    with av.open(str(path), "w", options=options) as out:
        st = out.add_stream("libx264", rate=5)
        st.width, st.height, st.pix_fmt = images[0].width // 2 * 2, images[0].height // 2 * 2, "yuv420p"
        for im in images:
            for pk in st.encode(av.VideoFrame.from_image(im.crop((0, 0, st.width, st.height)))):
                out.mux(pk)
        for pk in st.encode():
            out.mux(pk)
    return path.read_bytes()


@pytest.mark.parametrize("name, options", [("cut.mp4", {"movflags": "faststart"}), ("cut.webm", {}), ("cut.mkv", {})])
def test_a_truncated_video_is_said_to_be_damaged(tmp_path, name, options):
    from study.doors import pipeline

    whole = _clip(tmp_path / name, **options)
    report = {}
    assert sum(1 for _ in pipeline.read_video(whole, name, report=report)) == 20 and report == {}
    report = {}
    n = sum(1 for _ in pipeline.read_video(whole[: len(whole) * 6 // 10], name, report=report))
    assert 0 < n < 20 and report["damaged"]


def test_video_errors_carry_no_errno_jargon():
    from study.doors import pipeline

    with pytest.raises(pipeline.VideoError) as err:
        list(pipeline.read_video(b"\x00\x01garbage" * 50, "junk.mp4"))
    assert "Errno" not in str(err.value) and "'<none>'" not in str(err.value)


def test_the_head_normalises_its_tower_and_older_heads_still_load(tmp_path):
    """New heads carry GroupNorm in their tower (training diverged without it); a head saved
    before that (no ``tower_norm`` in model.json) is rebuilt without it and gives its own outputs;
    one saved before the Lite2 backbone (no ``variant``) is rebuilt on Lite0."""
    torch = detect._torch()
    assert any(isinstance(m, torch.nn.GroupNorm) for m in detect._head_module(32).tower)
    torch.manual_seed(0)
    old = detect.DoorDetector(input_size=64, width=32, norm="none", backbone="lite0")
    old.head = detect._head_module(32, "none", "lite0").eval()
    assert [k for k in old.head.state_dict() if k.startswith("tower")] == [
        "tower.0.weight",
        "tower.0.bias",
        "tower.2.weight",
        "tower.2.bias",
    ]
    old.meta = {"kind": old.kind, "input_size": 64, "epochs": 1, "learning_rate": 1e-3, "seed": 7, "width": 32}
    folder = old.save(tmp_path / "old")
    assert not {"tower_norm", "variant"} & set(json.loads((folder / "model.json").read_text()))
    loaded = detect.DoorDetector.load(folder)
    assert loaded.norm == "none" and not any(isinstance(m, torch.nn.GroupNorm) for m in loaded.head.tower)
    assert loaded.backbone == "lite0" and loaded.session is not None
    f16, f32 = torch.randn(1, 112, 4, 4), torch.randn(1, 320, 2, 2)
    with torch.no_grad():
        for a, b in zip(old.head(f16, f32), loaded.head(f16, f32)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_the_head_takes_the_channels_its_backbone_gives(variant):
    """``pyramid_channels`` is read off the stage table; the network's own maps must agree, or a
    head on Lite2 would be built for Lite0's widths."""
    torch = detect._torch()
    with torch.no_grad():
        maps = backbone.imagenet(variant).pyramid(torch.zeros(1, 3, 64, 64))
    assert backbone.pyramid_channels(variant) == (maps[16].shape[1], maps[32].shape[1])
    head = detect._head_module(32, "group", variant).eval()
    with torch.no_grad():
        logits, logd = head(maps[16], maps[32])
    assert tuple(logits.shape) == (1, 4, 4) and tuple(logd.shape) == (1, 4, 4, 4)
    assert backbone.pyramid_channels("lite0") != backbone.pyramid_channels("lite2")
