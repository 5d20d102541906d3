"""Door models and pipeline: save/load round trips, the pipeline on synthetic and real images and
videos, clear errors for what is not an image or a video, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from study import paths
from study.doors import classify, data, detect, pipeline, train

REAL = paths.SHARED_DOORS / "doordetect" / "states.csv"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny synthetic scenes (24) and, when ../shared is present, 40 real Train photos."""
    folder = tmp_path_factory.mktemp("doors")
    data.generate(folder, "tiny", seed=11)
    d = train.DoorData("tiny", "synthetic", data.synthetic_crops(folder), data.synthetic_scenes(folder), None, None)
    return folder, d


@pytest.fixture(scope="module")
def models(tiny, tmp_path_factory):
    """A detector trained on the tiny scenes, a transfer classifier, a 1-epoch CNN and a 1-epoch
    fine-tuned EfficientNet-Lite0, saved."""
    folder, d = tiny
    out = tmp_path_factory.mktemp("models")
    sets = d.classifier_sets(use_real=False)
    tr, va = sets["Train"], sets["Valid"]
    cnn = classify.OriginalCNN(epochs=1).fit(list(tr.image), list(tr.state), list(va.image), list(va.state))
    transfer = classify.TransferClassifier(augment_copies=1).fit(
        list(tr.image), list(tr.state), list(va.image), list(va.state)
    )
    finetuned = train.train_finetuned(d, use_real=False, epochs=1, views=2)
    det = detect.DoorDetector(epochs=25, augment=1).fit(train.detector_sets(d)["Train"])
    train.save_all({"original_cnn": cnn, "transfer": transfer, "finetuned": finetuned}, det, out, {"note": "test"})
    return out, d, {"original_cnn": cnn, "transfer": transfer, "finetuned": finetuned, "detector": det}


def test_the_original_cnn_has_the_original_layers():
    model = classify.OriginalCNN().build()
    layers = [
        (type(layer).__name__, getattr(layer, "filters", getattr(layer, "units", None)))
        for layer in model.layers
        if type(layer).__name__ != "Rescaling"
    ]
    assert layers == [
        ("Conv2D", 32),
        ("Conv2D", 64),
        ("MaxPooling2D", None),
        ("Conv2D", 128),
        ("Conv2D", 256),
        ("MaxPooling2D", None),
        ("Flatten", None),
        ("Dense", 64),
        ("Dense", 3),
    ]
    assert model.input_shape == (None, 140, 140, 3)
    assert model.layers[-1].activation.__name__ == "softmax"


def test_the_original_cnn_keeps_its_best_epoch_and_its_valid_probabilities_are_reused(tiny, monkeypatch):
    _, d = tiny
    sets = d.classifier_sets(use_real=False)
    tr, va = sets["Train"], sets["Valid"]
    cnn = classify.OriginalCNN(epochs=3).fit(list(tr.image), list(tr.state), list(va.image), list(va.state))
    h = cnn.history_
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(h) and len(h["val_accuracy"]) == 3
    best = cnn.meta["best_epoch"]
    # the premise that makes the restore testable: a later epoch ran and changed the network
    assert best < len(h["val_accuracy"]) and h["val_loss"][best - 1] != pytest.approx(h["val_loss"][-1], rel=1e-4)
    images, proba = cnn.valid_proba_
    after = cnn.predict_proba(list(va.image))  # the network holds the kept epoch's weights
    np.testing.assert_allclose(proba, after, atol=1e-6)
    truth = np.array([data.STATES.index(s) for s in va.state])
    assert (after.argmax(1) == truth).mean() == pytest.approx(h["val_accuracy"][best - 1])
    y = after[np.arange(len(truth)), truth].clip(1e-7, 1)
    # the kept epoch's loss, not the last one's: the weights were restored (meta's best_epoch is the first
    # of the best accuracies, so keeping a later equal epoch fails here too)
    assert -np.log(y).mean() == pytest.approx(h["val_loss"][best - 1], rel=1e-4)
    seen = classify.Predictions({"original_cnn": cnn})
    monkeypatch.setattr(cnn, "predict_proba", lambda _: pytest.fail("the Valid crops were predicted again"))
    assert np.array_equal(seen.proba(cnn, list(va.image)), proba)


def test_classifiers_round_trip_with_identical_outputs(models):
    out, d, fitted = models
    crops = list(d.crops.image[:6])
    for name in ("original_cnn", "transfer", "finetuned"):
        loaded = classify.load(out / name)
        assert type(loaded) is type(fitted[name])
        before, after = fitted[name].predict_proba(crops), loaded.predict_proba(crops)
        assert before.shape == (6, 3)
        np.testing.assert_allclose(before.sum(1), 1, atol=1e-5)
        if name == "finetuned":  # loaded, it runs its exported network in ONNX Runtime
            assert loaded.engine == "onnxruntime" and fitted[name].engine == "pytorch"
            np.testing.assert_allclose(after, before, atol=1e-5)
            loaded.session = None  # the same weights in PyTorch: bit-identical
            assert np.array_equal(before, loaded.predict_proba(crops)), name
        else:
            assert np.array_equal(before, after), name
        assert np.array_equal(classify.decide(fitted[name], before), classify.decide(loaded, after)), name
    assert fitted["finetuned"].meta["chosen_on"] == "synthetic Valid"  # no real photos in this fixture
    # "ajar" calibrated on the Valid crops' open and ajar doors, and kept by the saved model
    cal = fitted["finetuned"].meta["ajar_calibration"]
    valid = d.classifier_sets(use_real=False)["Valid"].state
    assert (cal["open"], cal["ajar"]) == ((valid == "open").sum(), (valid == "semi").sum())
    assert classify.load(out / "finetuned").semi_threshold == fitted["finetuned"].semi_threshold
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.pickle"))


def test_fine_tuning_stops_when_the_kept_epoch_is_not_beaten(tiny):
    _, d = tiny
    model = train.train_finetuned(d, use_real=False, epochs=5, views=2, patience=1)
    best, run = model.meta["best_epoch"], model.meta["epochs_run"]
    assert run == min(5, best + 1) == len(model.meta["history"])
    aucs = [(round(r["valid_auc_not_closed"], 12), -r["valid_log_loss"]) for r in model.meta["history"]]
    assert aucs.index(max(aucs)) + 1 == best  # the kept epoch is the best one run


def test_the_detector_is_evaluated_on_real_valid_beside_real_test(models):
    """Real Valid chooses the detector's settings, so its AP is reported beside real Test; the
    false positives are analysed on Test only. The tiny scenes stand in for the photos here."""
    _, d, fitted = models
    scenes = d.scenes.assign(others=[np.zeros((0, 4))] * len(d.scenes))
    photos = train.DoorData(d.scale, d.source, d.crops, d.scenes, scenes, None)
    sets = train.detector_sets(photos)
    assert len(sets["real Valid"]) == (scenes.split == "Valid").sum() > 0
    assert len(sets["real Test"]) == (scenes.split == "Test").sum() > 0
    results = train.evaluate_detector(fitted["detector"], sets, photos)
    assert list(results) == ["real Valid", "real Test", "synthetic Test"]
    assert results["real Valid"]["truths"] == sum(len(b) for b in scenes[scenes.split == "Valid"].doors)
    assert "false_positives" in results["real Test"] and "false_positives" not in results["real Valid"]
    # the Test "photos" are the synthetic Test scenes: the same detections, the same AP
    assert results["real Test"]["ap"] == results["synthetic Test"]["ap"]


def test_detector_round_trip_and_finds_the_synthetic_door(models):
    out, d, fitted = models
    loaded = detect.DoorDetector.load(out / "detector")
    scenes = d.scenes[d.scenes.split != "Train"]
    images = [data.open_image(p) for p in scenes.path]
    a, b = fitted["detector"].detect(images, confidence=0.05), loaded.detect(images, confidence=0.05)
    assert loaded.engine == "onnxruntime" and fitted["detector"].engine == "onnxruntime backbone, pytorch head"
    assert [len(x) for x in a] == [len(y) for y in b]
    assert all(np.allclose(x, y, atol=1e-3) for x, y in zip(a, b))  # one exported network vs two parts: rounding
    loaded.session = None  # the same weights and path as the trained detector: bit-identical
    assert all(np.array_equal(x, y) for x, y in zip(a, loaded.detect(images, confidence=0.05)))
    loaded.eager = True  # everything in PyTorch (the benchmark's baseline): float rounding
    assert loaded.engine == "pytorch"
    eager = loaded.detect(images, confidence=0.05)
    assert [len(x) for x in eager] == [len(x) for x in a]
    assert all(np.allclose(x, y, atol=1e-3) for x, y in zip(a, eager))
    best = [detect.iou(boxes[:1, :4], truth).max() if len(boxes) else 0.0 for boxes, truth in zip(a, scenes.doors)]
    assert np.mean(np.array(best) >= 0.5) >= 0.5, best  # held-out scenes: the best box is the door


def test_pipeline_on_a_synthetic_scene_returns_boxes_with_states(models):
    out, _d, _ = models
    pipe = pipeline.DoorPipeline.load(out, confidence=0.05)
    image, scene = data.render(99, 1, "open")
    found = pipe.predict(image)
    assert found, "no box at confidence 0.05"
    for det in found:
        x0, y0, x1, y1 = det.box
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
        assert det.state in data.STATES and 0 <= det.probability <= 1 and 0 <= det.score <= 1
        assert abs(sum(det.probabilities.values()) - 1) < 1e-5
    annotated = pipeline.annotate(image, found)
    assert annotated.size == image.size and annotated.tobytes() != image.tobytes()
    uncertain = pipe.predict(image, state_threshold=1.01)
    assert {d.state for d in uncertain} == {"uncertain"}


def test_the_reports_pipeline_loads_what_it_saved_and_equals_a_fresh_export(models, monkeypatch):
    from study.doors import report

    out, _d, fitted = models
    image, _scene = data.render(99, 1, "open")
    from_saved = report.deployed(fitted["detector"], fitted, "transfer", out)
    exported = []
    monkeypatch.setattr(
        detect.DoorDetector, "save", lambda self, f, real=detect.DoorDetector.save: exported.append(f) or real(self, f)
    )
    assert report.deployed(fitted["detector"], fitted, "transfer", out).predict(image) == from_saved.predict(image)
    assert exported == []  # loaded from the folder just saved: no second ONNX export
    fresh = report.deployed(fitted["detector"], fitted, "transfer", None)
    assert len(exported) == 1
    a, b = from_saved.predict(image, confidence=0.05), fresh.predict(image, confidence=0.05)
    assert a and [d.to_dict() for d in a] == [d.to_dict() for d in b]


@pytest.mark.skipif(not REAL.is_file(), reason="real door photos (../shared/doors) absent")
def test_pipeline_on_a_real_photo(models):
    out, _d, _ = models
    pipe = pipeline.DoorPipeline.load(out, confidence=0.05)
    real = data.load_real_doors()
    path = real.path.iloc[0]
    found = pipe.predict(path)
    image = data.open_image(path)
    assert found
    assert all(0 <= d.box[0] < d.box[2] <= image.width and 0 <= d.box[1] < d.box[3] <= image.height for d in found)
    assert all(d.state in data.STATES for d in found)


def test_corrupt_or_non_image_input_gives_a_sentence(models, tmp_path):
    out, _d, _ = models
    pipe = pipeline.DoorPipeline.load(out)
    with pytest.raises(data.ImageError, match="not an image"):
        pipe.predict(b"certainly not a picture")
    png = tmp_path / "door.png"
    data.render(1, 0, "closed")[0].save(png)
    with pytest.raises(data.ImageError, match="truncated or corrupt"):
        pipe.predict(png.read_bytes()[:200])


def _video(path, n=12, fps=6):
    frames = [data.render(5, i, "open" if i < n // 2 else "closed")[0] for i in range(n)]
    return pipeline.write_video(frames, path, fps=fps)


def test_video_gives_annotated_frames_and_a_timeline(models, tmp_path):
    out, _d, _ = models
    pipe = pipeline.DoorPipeline.load(out, confidence=0.05)
    video = _video(tmp_path / "clip.mp4")
    result = pipe.predict_video(video.read_bytes(), fps_target=3)
    assert result.video_fps == pytest.approx(6)
    assert len(result.frames) == 6 and result.frames_read == 12  # every second frame at 3 of 6 fps
    assert set(result.timeline.frame) == {0, 2, 4, 6, 8, 10}
    assert result.processed_fps > 0
    assert result.frames[0].size == (data.SIZE[0], data.SIZE[1])


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "is empty"),
        (b"RIFF\x00\x00\x00\x00AVI garbage" * 20, "not a video|no video stream"),
        (b"\x1aE\xdf\xa3" + bytes(range(256)) * 8, "not a video|no video stream|could not be decoded|no frames"),
    ],
)
def test_bad_videos_give_a_sentence(payload, message):
    pipe = pipeline.DoorPipeline(None, None)
    with pytest.raises(pipeline.VideoError, match=message):
        pipe.predict_video(payload)


def test_an_image_is_not_a_video(tmp_path):
    png = tmp_path / "door.png"
    data.render(1, 0, "closed")[0].save(png)
    with pytest.raises(pipeline.VideoError):
        pipeline.DoorPipeline(None, None).predict_video(png.read_bytes()[:100])


def test_cli_predict_prints_xyxy_boxes_and_refuses_a_corrupt_file(models, tmp_path):
    out, _d, _ = models
    good, bad = tmp_path / "scene.png", tmp_path / "broken.jpg"
    data.render(3, 2, "semi")[0].save(good)
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "study.cli",
            "doors",
            "predict",
            str(good),
            str(bad),
            "--json",
            "--models",
            str(out),
            "--confidence",
            "0.05",
            "--annotate",
            str(tmp_path / "ann"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stderr  # one of the files could not be read
    results = json.loads(run.stdout)
    assert results[0]["doors"] and len(results[0]["doors"][0]["box_xyxy"]) == 4
    assert results[0]["doors"][0]["state"] in data.STATES
    assert "error" in results[1] and ("not an image" in results[1]["error"] or "corrupt" in results[1]["error"])
    assert (tmp_path / "ann" / "scene_doors.png").is_file()
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------------------------------------
# The dashboard's logic (study.doors.demo): every kind of bad input is a sentence, odd images work.
def _encoded(image, fmt):
    import io

    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode, fmt", [("L", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"), ("P", "PNG"), ("RGB", "WEBP")])
def test_demo_reads_greyscale_rgba_cmyk_palette_and_webp(models, mode, fmt):
    from study.doors import demo

    out, _d, _ = models
    pipe = pipeline.DoorPipeline.load(out)
    image = data.render(6, 1, "closed")[0].convert(mode)
    result = demo.analyse_image(_encoded(image, fmt), f"door.{fmt.lower()}", pipe=pipe)
    assert result.annotated[:8] == b"\x89PNG\r\n\x1a\n"
    assert "door(s) found" in result.message
    assert list(result.table.columns[:4]) == ["door", "state", "probability", "detector score"]


def test_demo_downscales_a_huge_image_and_says_so(models):
    from PIL import Image

    from study.doors import demo

    out, _d, _ = models
    big = data.render(6, 2, "open")[0].resize((6000, 4500), Image.NEAREST)
    result = demo.analyse_image(_encoded(big, "JPEG"), "big.jpg", pipe=pipeline.DoorPipeline.load(out))
    assert "downscaled to 1600×1200" in result.message
    assert Image.open(__import__("io").BytesIO(result.annotated)).size == (1600, 1200)


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"", "is empty"),
        (b"%PDF-1.4 not an image", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "truncated or corrupt|not an image"),
    ],
)
def test_demo_bad_images_are_sentences(models, payload, expected):
    from study.doors import demo

    out, _d, _ = models
    with pytest.raises(demo.UserError, match=expected):
        demo.analyse_image(payload, "upload.png", pipe=pipeline.DoorPipeline.load(out))


def test_demo_video_gives_a_clip_and_bad_videos_are_sentences(models, tmp_path):
    from study.doors import demo

    out, _d, _ = models
    pipe = pipeline.DoorPipeline.load(out)
    clip = _video(tmp_path / "v.mp4", n=10, fps=5).read_bytes()
    res = demo.analyse_video(clip, "v.mp4", pipe=pipe)
    assert res.clip[4:8] == b"ftyp" and res.timeline_png[:4] == b"\x89PNG"
    assert "frames analysed" in res.message and set(res.table.frame) == set(range(10))
    webm = pipeline.write_video([data.render(5, i, "open")[0] for i in range(4)], tmp_path / "v.webm", fps=4)
    assert len(demo.analyse_video(webm.read_bytes(), "v.webm", pipe=pipe).table.frame.unique()) == 4
    for payload, expected in ((b"", "is empty"), (b"GIF89a" + b"\x00" * 100, "not a video|no video stream|could not")):
        with pytest.raises(demo.UserError, match=expected):
            demo.analyse_video(payload, "bad.mp4", pipe=pipe)
    # truncated uploads: our MP4 keeps its index at the end, so cut in half it is refused with a
    # sentence; a WebM cut at 70 % keeps exactly the frames before the cut
    with pytest.raises(demo.UserError, match="not a video that can be read"):
        demo.analyse_video(clip[: len(clip) // 2], "cut.mp4", pipe=pipe)
    whole = pipeline.write_video([data.render(5, i, "open")[0] for i in range(10)], tmp_path / "ten.webm", fps=5)
    cut = demo.analyse_video(whole.read_bytes()[: int(0.7 * whole.stat().st_size)], "cut.webm", pipe=pipe)
    assert sorted(cut.table.frame.unique()) == [0, 1, 2]


def test_demo_camera_snapshot_must_be_an_image_data_url():
    import base64

    from study.doors import demo

    jpeg = _encoded(data.render(1, 1, "open")[0], "JPEG")
    assert demo.snapshot_bytes("data:image/jpeg;base64," + base64.b64encode(jpeg).decode()) == jpeg
    for bad in ("", "data:text/html;base64,PGI+", "data:image/jpeg;base64,@@@not base64@@@"):
        with pytest.raises(demo.UserError):
            demo.snapshot_bytes(bad)


@pytest.mark.skipif(not REAL.is_file(), reason="the real DoorDetect photos (../shared/doors) are absent")
def test_the_demo_gallery_shows_real_photos_first():
    from study.doors import demo

    labels = list(demo.gallery())
    assert labels[0].startswith("real photo") and labels[-1].startswith("synthetic")
    assert sum(label.startswith("real photo") for label in labels) == 4
