"""The modelling report's building blocks (study.churn.modelling) on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.churn import facts, modelling


def test_expiry_vs_label_counts_churners_and_stayers_apart():
    df = pd.DataFrame(
        {"membership_expire_date": ["2017-03-05", "2017-04-01", "2017-03-30", "2017-05-01"], "is_churn": [1, 1, 0, 0]}
    )
    got = modelling.expiry_vs_label(df, "2017-03")
    assert got["churners whose latest expiry is in the label month"] == 0.5
    assert got["stayers whose latest expiry is in the label month"] == 0.5
    leak = modelling.leak_table(df.assign(membership_expire_date=["2017-02-01"] * 4), df)
    assert list(leak.index) == ["2017-02", "2017-03"] and leak.iloc[0].tolist() == [1.0, 1.0]


def test_side_by_side_keeps_every_original_model_and_ours():
    table = pd.DataFrame(
        [
            {
                "model": facts.ORIGINAL_RESULTS[0][0],
                **dict(zip(facts.ORIGINAL_RESULT_COLUMNS[1:], [0.9, 0.2, 0.5, 0.5, 0.5, 0.5])),
            },
            {"model": "something new", **dict(zip(facts.ORIGINAL_RESULT_COLUMNS[1:], [0.8, 0.3, 0.4, 0.4, 0.4, 0.4]))},
        ]
    )
    side = modelling.side_by_side(table)
    assert len(side) == len(facts.ORIGINAL_RESULTS) + 1
    assert side.loc[facts.ORIGINAL_RESULTS[0][0], "ours: ROC AUC"] == 0.9 and np.isnan(
        side.loc["something new", "original study: log loss"]
    )


def test_thresholds_three_ways_and_the_capacity_policy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 400), 0, 1)
    th = modelling.thresholds(y, p, offer_cost=10, save_rate=0.5, revenue=100, top_k_share=0.1)
    assert list(th.table.rule) == ["0.5", "MCC-F1", "max profit"] and th.table.threshold[1] == th.mcc
    assert th.top["K"] == 40 and len(th.figures) == 2 and th.best_profit > 0


def test_ladders_figure_groups_both_recipes():
    lad = pd.DataFrame({"protocol": ["random split", "later month"], "log loss": [0.2, 0.3], "ROC AUC": [0.9, 0.8]})
    both, fig = modelling.ladders_figure(lad, lad.assign(**{"log loss": [0.05, 0.6]}))
    assert both.loc[("original recipe", "later month"), "log loss"] == 0.6 and len(fig.data) == 2


def test_the_datasets_report_says_the_audit_numbers():
    from study.churn import datasets_report

    audit = pd.DataFrame({"one-feature AUC": [0.71, 0.52, 0.93, 0.61]})
    audit.attrs["users"] = 1234
    said = datasets_report.leakage_sentence(audit)
    assert "On 1,234 March users" in said and "reaches AUC 0.930" in said and "reaches 0.610" in said
    assert "is_cancel: 0.710 without the cutoff vs 0.520 with it" in said
    users = pd.DataFrame({"msno": ["a", "b"], "is_churn": [0, 1]})
    lines = datasets_report.conclusions(users, users.assign(month="2017-03"), ["2017-03"], 1.0, 2.0, audit)
    assert len(lines) == 3 and "churn 50.00%" in lines[0] and "without the cutoff vs 0.610" in lines[2]


def test_explanation_averages_a_seeded_sample_and_explains_the_riskiest_users():
    from study.churn import scoring, zoo

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=300) > 1).astype(int)
    tuned = zoo.xgb(n_estimators=20, max_depth=3).fit(x, y)
    columns = ["a", "b", "c", "d"]
    result = zoo.ProtocolResult(pd.DataFrame(), fitted={zoo.TUNED_XGB_NAME: tuned}, columns=columns)
    fig, reasons = modelling.explanation(result, x, sample=120, top=5)
    fig_again, _ = modelling.explanation(result, x, sample=120, top=5)
    rows = np.sort(np.random.default_rng(40).choice(300, size=120, replace=False))
    expected = scoring.tree_contributions(tuned, x[rows], columns).abs().mean()
    bars = dict(zip(fig.data[0].y, fig.data[0].x))
    assert bars == dict(zip(fig_again.data[0].y, fig_again.data[0].x))  # seeded
    assert bars.keys() == set(columns) and all(np.isclose(bars[c], expected[c]) for c in columns)
    assert "120 of 300 validation users" in fig.layout.title.text
    risk = tuned.predict_proba(x)[:, 1]
    assert list(reasons.index) == list(np.argsort(-risk, kind="stable")[:5])  # riskiest first
    assert np.allclose(reasons.risk, np.sort(risk)[::-1][:5])
    full = scoring.reason_codes(scoring.tree_contributions(tuned, x, columns))
    assert reasons.drop(columns="risk").equals(full.loc[reasons.index])
    # fewer users than the sample: all of them
    small, _ = modelling.explanation(result, x[:50], sample=120, top=5)
    assert "50 of 50 validation users" in small.layout.title.text
