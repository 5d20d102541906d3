"""One lineage from data to dashboard: models and database carry the raw data's hash; the About
tab compares them; ``study serve`` serves the study's models and trains only what is missing."""

from __future__ import annotations

import json
import shutil

import pytest

from study.churn import lineage
from study.churn.data import REQUIRED, RawSource


def _copy(source: RawSource, folder) -> RawSource:
    folder.mkdir()
    for name in REQUIRED:
        shutil.copyfile(source.path / name, folder / name)
    return RawSource(folder, "real")


def test_the_raw_data_hash_follows_content(tmp_path, quick_source):
    a, b = _copy(quick_source, tmp_path / "a"), _copy(quick_source, tmp_path / "b")
    assert lineage.source_digest(a) == lineage.source_digest(b) == lineage.source_digest(quick_source)
    with open(b.path / "members_v3.csv", "a") as f:
        f.write("extra,1,0,,20170101,20170101\n")
    assert lineage.source_digest(b) != lineage.source_digest(a)


def test_a_model_from_other_data_is_named_in_a_sentence():
    meta = {"source": "twin A", "source_sha256": "a" * 64}
    same = {"data": {"source": "twin A", "source sha256": "a" * 64}, "report": lineage.STUDY_REPORT}
    other = {"data": {"source": "twin B", "source sha256": "b" * 64}}
    old = {"data": {"source": "twin A"}}  # a card from before hashes were recorded
    cards = {"champion": same, "original": other, "legacy": old}
    table = lineage.table(meta, cards).set_index("model")
    assert table.loc["champion", "same data as the database"] == "yes"
    assert table.loc["original", "same data as the database"] == "NO"
    assert table.loc["legacy", "same data as the database"].startswith("unknown")
    assert table.loc["champion", "described in"] == lineage.STUDY_REPORT
    assert table.loc["original", "described in"] == lineage.NO_REPORT
    said = lineage.mismatches(meta, cards)
    assert len(said) == 1 and "original model was trained on other data" in said[0] and "twin B" in said[0]
    assert lineage.mismatches({"source": "x"}, cards) == []  # nothing recorded: nothing claimed


def test_serve_uses_the_study_models_and_trains_only_what_is_missing(tmp_path, quick_source, monkeypatch):
    from study import serve
    from study.churn import dashboard, database, served

    models = tmp_path / "models"
    saved = served.train(quick_source, models_dir=models, log=lambda *_: None).folders  # as notebook 30 does
    manifests = {name: (folder / "manifest.json").read_text() for name, folder in saved.items()}
    card = json.loads((models / "champion" / "card.json").read_text())
    assert card["report"] == lineage.STUDY_REPORT
    assert card["data"]["source sha256"] == lineage.source_digest(quick_source)

    db = f"sqlite:///{(tmp_path / 'app.sqlite').as_posix()}"
    monkeypatch.setenv(database.ENV_URL, db)
    lines = []
    serve.prepare_churn(models, "quick", 2017, None, log=lines.append)
    assert not any("training" in line for line in lines), lines  # the study's models are kept as they are
    assert {name: (models / name / "manifest.json").read_text() for name in saved} == manifests
    assert database.read_meta(db)["source_sha256"] == lineage.source_digest(quick_source)

    ctx = dashboard.load_context(db, str(models))
    assert {name: m.card["saved"] for name, m in ctx.models.items()} == {
        name: json.loads((models / name / "card.json").read_text())["saved"] for name in saved
    }
    info = dashboard.about(ctx)
    assert set(info["lineage"]["same data as the database"][:2]) == {"yes"} and info["mismatches"] == []

    shutil.rmtree(models / "original")  # only the missing model is trained, and its card says by whom
    lines.clear()
    serve.prepare_churn(models, "quick", 2017, None, log=lines.append)
    assert [line for line in lines if "training" in line] == [
        f"training the original-format model on {quick_source.describe()}"
    ]
    assert (models / "champion" / "manifest.json").read_text() == manifests["champion"]
    assert json.loads((models / "original" / "card.json").read_text())["report"] == lineage.NO_REPORT


@pytest.mark.parametrize("name", ["original", "champion"])
def test_served_model_names_are_the_dashboard_models(name):
    from study.churn import dashboard, served

    assert name in served.NAMES and name in dashboard.MODEL_NAMES


def test_products_are_read_only_when_built_from_the_data_in_use(tmp_path, quick_source):
    import pandas as pd

    from study.churn import products

    marker = pd.DataFrame({"msno": ["a"], "month": ["2017-03"], "is_churn": [1]})  # no real build looks like this
    products.write(quick_source, {"pit": marker}, tmp_path / "p")
    said = []
    got = products.load(quick_source, "pit", months=("2017-03",), folder=tmp_path / "p", log=said.append)
    assert got.equals(marker) and said == []  # read, not rebuilt
    got = products.load(quick_source, "pit", months=("2017-02", "2017-03"), folder=tmp_path / "p", log=said.append)
    assert "lacks some of the months" in said[-1] and set(got.month) == {"2017-02", "2017-03"} and len(got) > 100
    other = _copy(quick_source, tmp_path / "other")
    with open(other.path / "members_v3.csv", "a") as f:
        f.write("extra,1,0,,20170101,20170101\n")
    got = products.load(other, "pit", months=("2017-03",), folder=tmp_path / "p", log=said.append)
    assert "built from other raw data" in said[-1] and len(got) > 1 and not got.msno.eq("a").any()
    products.load(quick_source, "original", folder=tmp_path / "p", log=said.append)
    assert "original.parquet not in" in said[-1]
