"""The two-view door classifier: its context crop, its two views, what it learns from, its saved
form (no pickle, identical outputs) and how the demo's classifier is chosen."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from study import paths
from study.doors import classify, data, pipeline, train

REAL = paths.SHARED_DOORS / "doordetect" / "states.csv"


def _photo(w: int = 200, h: int = 150) -> Image.Image:
    """Every pixel distinct enough to tell where a crop came from."""
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    return Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8))


def test_context_crop_centres_the_box_and_pads_outside_the_photo_with_grey():
    img = _photo()
    inside = data.context_crop(img, (60, 40, 100, 120))  # 40 × 80 box, margin 0.5 → 80 × 160
    assert inside.size == (80, 160)
    assert np.array_equal(np.asarray(inside)[60:100, 20:60], np.asarray(img)[60:100, 60:100])  # photo pixels, unmoved
    edge = np.asarray(data.context_crop(img, (0, 0, 40, 60)))  # box at the top-left corner
    assert edge.shape == (120, 80, 3)
    assert (edge[:30, :, :] == 127).all() and (edge[:, :20, :] == 127).all()  # outside the photo: grey
    assert np.array_equal(edge[30:, 20:], np.asarray(img)[:90, :60])


def test_the_door_view_is_the_box_with_its_tight_margin():
    img = _photo(400, 300)
    box = (150, 60, 210, 180)
    model = classify.TwoViewClassifier()
    door, context = model.views([data.context_crop(img, box)])
    expected = data.crop(img, box, margin=model.tight)
    assert abs(door[0].width - expected.width) <= 1 and abs(door[0].height - expected.height) <= 1
    a = np.asarray(door[0].resize(expected.size), dtype=float)
    assert np.abs(a - np.asarray(expected, dtype=float)).mean() < 3  # the same pixels, up to one-pixel rounding
    assert context[0].size == (120, 240)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("doors")
    data.generate(folder, "tiny", seed=11)
    return train.DoorData("tiny", "synthetic", data.synthetic_crops(folder), data.synthetic_scenes(folder), None, None)


def test_synthetic_crops_carry_the_context_of_their_scene(tiny):
    row = tiny.crops.iloc[0]
    scene = tiny.scenes[tiny.scenes.path.map(lambda p: p.name) == row.path.name].iloc[0]
    expected = data.context_crop(data.open_image(scene.path), tuple(scene.doors[0]))
    assert np.array_equal(np.asarray(row.context), np.asarray(expected))
    assert row.context.width > row.image.width  # more than the door crop


def test_two_view_round_trip_gives_identical_outputs_and_pickles_nothing(tiny, tmp_path):
    model = train.train_two_view(tiny, use_real=False)
    assert model.meta["closed_rows"] == "every crop"  # no real crop: it learns from what there is
    assert model.meta["chosen_on"] == "synthetic Valid"
    assert [t["strength"] for t in model.meta["trials"]] == list(model.strengths)
    contexts = list(tiny.crops.context[:8])
    before = model.predict_proba(contexts)
    np.testing.assert_allclose(before.sum(1), 1, atol=1e-12)
    model.save(tmp_path / "two_view")
    assert sorted(p.name for p in (tmp_path / "two_view").iterdir()) == ["model.json", "weights.safetensors"]
    loaded = classify.load(tmp_path / "two_view")
    assert type(loaded) is classify.TwoViewClassifier
    assert np.array_equal(before, loaded.predict_proba(contexts))
    assert np.array_equal(model.decide(before), loaded.decide(before))
    assert loaded.semi_threshold == model.semi_threshold and loaded.threshold == model.threshold


def test_closed_or_not_is_learnt_from_the_real_crops_alone_when_there_are_any(tiny):
    """Real crops of both kinds present: the synthetic ones do not move the closed-or-not stage."""
    sets = tiny.classifier_sets(use_real=False)
    tr, va = sets["Train"], sets["Valid"]
    real = tr.index.to_numpy() % 2 == 0
    real[:2] = True  # make sure both states are among the "real" rows
    y = tr.state.to_numpy()
    if len(set(y[real] == "closed")) < 2:
        pytest.skip("the tiny scenes drew one state only among the rows marked real")
    origins = np.where(real, "real", "synthetic")
    m1 = classify.TwoViewClassifier(strengths=(0.05,)).fit(
        list(tr.context), list(y), list(va.context), list(va.state), origins
    )
    flipped = y.copy()
    flipped[~real] = np.where(y[~real] == "closed", "open", "closed")  # nonsense labels on the synthetic rows
    m2 = classify.TwoViewClassifier(strengths=(0.05,)).fit(
        list(tr.context), list(flipped), list(va.context), list(va.state), origins
    )
    assert m1.meta["closed_rows"] == "real crops"
    np.testing.assert_array_equal(m1.stages["not_closed"]["coef"], m2.stages["not_closed"]["coef"])


def test_the_pipeline_gives_a_two_view_model_its_context_crop():
    img = _photo(400, 300)
    box = (150, 60, 210, 180)
    two_view, other = classify.TwoViewClassifier(), object()
    assert classify.door_input(two_view, img, box).size == data.context_crop(img, box).size
    assert classify.door_input(other, img, box).size == data.crop(img, box).size
    crops = pd.DataFrame({"image": ["door"], "context": ["context"]})
    assert classify.inputs(two_view, crops) == ["context"] and classify.inputs(other, crops) == ["door"]


class _Fixed:
    """A classifier whose P(not closed) is given per crop (by its position)."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=float)

    def predict_proba(self, images):
        s = self.scores[: len(images)]
        return np.column_stack([1 - s, s, np.zeros(len(s))])


def test_the_demo_classifier_is_the_one_that_ranks_the_selection_crops_best(tiny, tmp_path):
    va, _ = train.selection_set(tiny, use_real=False)
    is_open = (va.state != "closed").to_numpy().astype(float)
    good, poor = _Fixed(is_open), _Fixed(1 - is_open)
    aucs = train.selection_aucs({"finetuned": good, "two_view": poor, "transfer": good}, tiny, use_real=False)
    assert aucs == {"finetuned": 1.0, "two_view": 0.0, "transfer": 1.0}
    assert train.preferred(aucs) == "finetuned"  # transfer is not a candidate
    assert train.preferred({"finetuned": 0.0, "two_view": 1.0}) == "two_view"
    assert train.preferred({"finetuned": 0.9, "two_view": 0.9}) == "two_view"  # ties: the first candidate
    assert train.preferred({"finetuned": float("nan"), "two_view": 0.6}) == "two_view"
    # the saved choice is what the pipeline loads by default
    for name in ("finetuned", "two_view"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.json").write_text("{}")
    (tmp_path / "metrics.json").write_text(json.dumps({"preferred_classifier": "finetuned"}))
    assert pipeline.preferred_classifier(tmp_path) == "finetuned"
    (tmp_path / "metrics.json").write_text("{}")
    assert pipeline.preferred_classifier(tmp_path) == "two_view"


@pytest.mark.skipif(not REAL.is_file(), reason="real door photos (../shared/doors) not present")
def test_with_real_photos_it_learns_closed_or_not_from_real_crops_and_is_chosen_on_real_valid(tiny):
    real = data.real_crops()
    d = train.DoorData("tiny", "synthetic", tiny.crops, tiny.scenes, None, real)
    model = train.train_two_view(d)
    assert model.meta["closed_rows"] == "real crops" and model.meta["chosen_on"] == "real Valid"
    assert model.meta["train_rows_by_origin"]["real"] == int((real.split == "Train").sum())
    test = real[real.split == "Test"]
    r = classify.evaluate(model, classify.inputs(model, test), list(test.state))
    point = train.state_operating_point({"crops": test, "pred": r["pred"]})
    assert point["open recall"] > 0.5 and point["closed recall"] > 0.7, point  # measured 0.95 / 0.85


class _Counting:
    """A real classifier that records how many crops each call hands it."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def predict_proba(self, images):
        self.calls.append(len(images))
        return self.model.predict_proba(images)


def test_predictions_run_each_crop_through_a_model_once_and_equal_its_own(tiny):
    crops = tiny.crops
    real = classify.TransferClassifier(seed=3).fit(
        list(crops.image[10:]), list(crops.state[10:]), list(crops.image[:10]), list(crops.state[:10])
    )
    model = _Counting(real)
    seen = classify.Predictions()
    valid = list(crops.image[:10])
    part = valid[6:]  # the real Valid crops are part of Valid
    first = seen.proba(model, part)
    both = seen.proba(model, valid + valid[:2])  # repeats are predicted once too
    assert model.calls == [4, 6]
    assert np.allclose(both[:10], real.predict_proba(valid), atol=1e-6)
    assert np.allclose(both[6:10], first) and np.allclose(both[10:], both[:2])
    assert seen.proba(model, []).shape == (0, len(data.STATES)) and model.calls == [4, 6]
    r = classify.evaluate(model, valid, list(crops.state[:10]), seen)
    assert model.calls == [4, 6] and np.allclose(r["proba"], both[:10])
