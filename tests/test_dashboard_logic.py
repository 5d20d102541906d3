"""The logic behind every callback of the churn dashboard (study.churn.dashboard), on a quick
twin: trained models and an exported application database in a temporary folder."""
from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest

from study.churn import champion, dashboard as dash, database as db, features, scoring


@pytest.fixture(scope="module")
def ctx(quick_source, tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    scoring.train_original(quick_source, root / "models" / "original")
    pit = features.point_in_time(quick_source, months=db.PIT_MONTHS)
    champion.train_champion(pit, list(db.PIT_MONTHS), root / "models" / "champion", quick_source.describe())
    url = f"sqlite:///{(root / 'application.sqlite').as_posix()}"
    db.export_application(quick_source, url)
    dash.load_context.cache_clear()
    return dash.load_context(url, str(root / "models"))


@pytest.fixture(scope="module")
def processed_csv(quick_source) -> bytes:
    df = features.original_recipe(quick_source).head(200)
    return features.write_processed(df).encode()


def test_context_loads_both_models_once(ctx):
    assert set(ctx.models) == {"champion", "original"} and not ctx.problems
    assert dash.load_context(ctx.db_url, None) is dash.load_context(ctx.db_url, None)  # cached per kernel


def test_missing_models_are_a_sentence(tmp_path):
    dash.load_context.cache_clear()
    c = dash.load_context("sqlite:///" + str(tmp_path / "x.sqlite"), str(tmp_path))
    with pytest.raises(dash.UserError, match="not available.*study churn train"):
        c.model("champion")


def test_month_tab_offers_only_stored_months_and_scores_them(ctx):
    assert dash.month_choices(ctx) == {2017: [1, 2, 3]}
    for model in ("champion", "original"):
        table = dash.score_month(ctx, 2017, 3, model)
        assert list(table.columns[:4]) == ["msno", "expiry date", "risk %", "band"]
        assert {"reason_1", "reason_2", "reason_3"} <= set(table.columns)
        assert table["risk %"].is_monotonic_decreasing and table["risk %"].between(0, 100).all()
        counts = dash.band_counts(table)
        assert list(counts.index) == scoring.BAND_LABELS and counts.sum() == len(table)
    with pytest.raises(dash.UserError, match="No users expiring in 2016-05"):
        dash.score_month(ctx, 2016, 5, "champion")
    with pytest.raises(dash.UserError, match="months available: 2017-02, 2017-03"):
        dash.score_month(ctx, 2017, 1, "original")
    for y, m in [("2017'; DROP TABLE user; --", 3), (2017, "3 OR 1=1"), (None, None), (2017, 13)]:
        with pytest.raises(dash.UserError):
            dash.score_month(ctx, y, m, "champion")
    assert dash.month_choices(ctx)  # still there


def test_csv_download_link_round_trips():
    df = pd.DataFrame({"msno": ["a", "<b>x</b>"], "risk %": [12.5, 90.0]})
    uri = dash.csv_data_uri(df)
    assert uri.startswith("data:text/csv;charset=utf-8;base64,")
    back = pd.read_csv(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    pd.testing.assert_frame_equal(back, df)


def test_upload_scores_a_valid_file(ctx, processed_csv):
    frame = dash.parse_upload("users.csv", memoryview(processed_csv))
    table = dash.score_frame(ctx, frame, "original")
    assert len(table) == 200 and set(table.msno) == set(frame.msno)


def test_upload_of_the_real_sample_works_as_is(ctx, shared_kkbox):
    raw = (shared_kkbox / "processed_sample.csv").read_bytes()
    frame = dash.parse_upload("processed_sample.csv", raw)
    table = dash.score_frame(ctx, frame, "original")
    assert len(table) == len(frame) > 6000
    perf = dash.evaluate_upload(ctx, "processed_sample.csv", raw, 0.5)
    assert 0.5 < perf.scores["ROC AUC"] <= 1


def _mutate(csv: bytes, fn) -> bytes:
    df = pd.read_csv(io.BytesIO(csv), dtype=str, keep_default_na=False)
    return fn(df).to_csv(index=False).encode()


@pytest.mark.parametrize("case, message", [
    ("empty", "is empty"),
    ("binary", "not a CSV file"),
    ("utf16", "UTF-16"),
    ("latin1", "not UTF-8"),
    ("no header", "not a comma-separated file"),
    ("missing column", "missing column\\(s\\): city"),
    ("extra column", "unexpected column\\(s\\): <script>"),
    ("wrong type", "wrong type"),
    ("out of range", "out-of-range.*bd"),
    ("duplicate users", "more than once"),
    ("too large", "the limit is"),
    ("ragged", "cannot be read as CSV|wrong type"),
    ("header only", "no rows"),
])
def test_each_malformed_upload_gets_its_message(processed_csv, case, message):
    content = {
        "empty": b"",
        "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "utf16": processed_csv.decode().encode("utf-16"),
        "latin1": processed_csv.replace(b"male", "mâle".encode("latin-1"), 1),
        "no header": b"just some text\nmore text\n",
        "missing column": _mutate(processed_csv, lambda d: d.drop(columns="city")),
        "extra column": _mutate(processed_csv, lambda d: d.assign(**{"<script>": "1"})),
        "wrong type": _mutate(processed_csv, lambda d: d.assign(bd=["abc"] + list(d.bd[1:]))),
        "out of range": _mutate(processed_csv, lambda d: d.assign(bd=["150"] + list(d.bd[1:]))),
        "duplicate users": _mutate(processed_csv, lambda d: pd.concat([d, d.head(1)])),
        "too large": processed_csv,
        "ragged": processed_csv + b"a,b\n",
        "header only": processed_csv.split(b"\n", 1)[0] + b"\n",
    }[case]
    with pytest.raises(dash.UserError, match=message):
        dash.parse_upload("bad.csv", content, max_mb=0.001 if case == "too large" else dash.MAX_UPLOAD_MB)


def test_performance_metrics_against_sklearn_and_history(ctx):
    from sklearn.metrics import log_loss, roc_auc_score

    perf = dash.evaluate_month(ctx, 2017, 3, "champion", 0.3)
    table = dash.score_month(ctx, 2017, 3, "champion")
    frame = db.month_frame("2017-03", ctx.db_url)
    y = frame.set_index("msno").loc[table.msno, "is_churn"].to_numpy()
    p = table["risk %"].to_numpy() / 100
    assert perf.scores["ROC AUC"] == pytest.approx(roc_auc_score(y, p))
    assert perf.scores["log loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)), rel=1e-6)
    assert perf.confusion.to_numpy().sum() == len(y) == perf.n
    assert set(perf.risk_by_outcome.outcome) <= {"true positive", "false negative"}
    before = len(db.metric_history(ctx.db_url))
    hist = dash.log_performance(ctx, perf, "champion", "month 2017-03")
    assert len(hist) == before + 1 and hist.model.iloc[-1] == "champion"
    with pytest.raises(dash.UserError, match="single class"):
        dash.performance([0, 0, 0], [0.1, 0.2, 0.3])


def test_profit_at_the_threshold_by_hand():
    perf = dash.performance([1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1], threshold=0.5, offer_cost=10, save_rate=0.5, revenue=100)
    assert perf.profit == 1 * 0.5 * 100 - 2 * 10  # one churner reached, two contacts


def test_what_if_gives_a_risk_a_sentence_and_contributions(ctx):
    for model in ("champion", "original"):
        base = dash.random_customer(ctx, model, seed=1)
        inputs = dash.inputs_of(base, model)
        assert set(inputs) == set(dash.WHAT_IF_INPUTS)
        same = dash.what_if(ctx, base, inputs, model)
        table = dash.score_month(ctx, 2017, 3, model)
        assert same["risk"] * 100 == pytest.approx(table.set_index("msno").loc[base.msno, "risk %"], abs=0.06)
        assert "not the effect" in same["sentence"] and same["true label"] in (0, 1)
        changed = dash.what_if(ctx, base, {**inputs, "auto-renew": 1 - inputs["auto-renew"], "cancelled": 1}, model)
        assert 0 <= changed["risk"] <= 1 and len(changed["contributions"]) > 0
    with pytest.raises(dash.UserError, match="not a number"):
        dash.what_if(ctx, base, {"plan days": "thirty"}, "original")


def test_about_lists_data_and_model_cards(ctx):
    info = dash.about(ctx)
    assert info["data"]["users"] and {"champion", "original"} == set(info["models"])
    assert "threshold" in info["models"]["champion"]
