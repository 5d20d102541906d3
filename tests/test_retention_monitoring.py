"""Retention economics and monitoring: the campaign planner's optimum and the PSI on cases worked
by hand, the action rules, the checks a stakeholder's input gets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from study.churn import monitoring, retention
from study.ui import UserError


@pytest.fixture()
def scored():
    return pd.DataFrame(
        {"msno": list("abcd"), "risk": [0.9, 0.5, 0.2, 0.05], "band": ["> 90 %", "25–50 %", "≤ 25 %", "≤ 25 %"],
         "reason_1": ["r1", "r2", "", ""], "reason_2": "", "reason_3": ""}
    )  # fmt: skip


@pytest.fixture()
def frame():  # point-in-time columns (the champion's)
    return pd.DataFrame(
        {"msno": list("abcd"), "plan_list_price": [149, 99, 149, 0], "last_is_cancel": [1, 0, 0, 0],
         "is_auto_renew": [1, 0, 1, 1], "secs_30": [50_000, 50_000, 100, 50_000], "payment_plan_days": [30, 30, 30, 90],
         "actual_amount_paid": 149, "payment_method_id": 41}
    )  # fmt: skip


def test_planner_optimum_on_a_case_worked_by_hand(scored, frame):
    # expected profit = risk · 0.5 · 100 − 10: 35, 15, 0, −7.5 → only a and b pay
    p = retention.plan(scored, frame, budget=15, cost=10, save_rate=0.5, value=100, model_name="champion")
    assert list(p.contacts.msno) == ["a"] and p.affordable == 1 and p.expected_return == pytest.approx(35)
    p = retention.plan(scored, frame, budget=1000, cost=10, save_rate=0.5, value=100, model_name="champion")
    assert list(p.contacts.msno) == ["a", "b"] and p.expected_return == pytest.approx(50)
    assert p.expected_saves == pytest.approx(0.45 + 0.25)
    sd = 100 * math.sqrt(0.45 * 0.55 + 0.25 * 0.75)
    assert p.interval == pytest.approx((50 - 1.6449 * sd, 50 + 1.6449 * sd))
    assert list(p.contacts.action) == ["win-back offer", "re-enable auto-renew"]
    assert list(p.contacts.reason_1) == ["r1", "r2"] and "Contact 2 of 4 users" in p.sentence()
    nobody = retention.plan(scored, frame, budget=1000, cost=1000, save_rate=0.5, value=100, model_name="champion")
    assert nobody.contacts.empty and "No contact pays" in nobody.sentence()


def test_action_rules_are_data_and_read_either_recipe(frame):
    got = retention.suggest(frame.set_index("msno"), "champion")
    assert list(got.action) == ["win-back offer", "re-enable auto-renew", "activation (playlists and tips)",
                                "personal retention call"]  # fmt: skip
    original = frame.rename(columns={"last_is_cancel": "is_cancel", "secs_30": "total_secsSum"}).set_index("msno")
    assert list(retention.suggest(original, "original").action) == list(got.action)


@pytest.mark.parametrize(
    "bad, says",
    [({"budget": "ten"}, "budget must be a number of at least 0"), ({"cost": 0}, "cost per contact must be a number above 0"),
     ({"save_rate": 1.5}, "save rate must be between 0 and 1"), ({"value": -1}, "value per saved user")],
)  # fmt: skip
def test_bad_campaign_inputs_get_a_sentence(scored, frame, bad, says):
    args = {"budget": 100, "cost": 10, "save_rate": 0.3, "value": 100} | bad
    with pytest.raises(UserError, match=says):
        retention.plan(scored, frame, model_name="champion", **args)


def test_revenue_at_risk_sums_risk_times_price(scored, frame):
    t = retention.revenue_at_risk(scored, frame).set_index("band")
    assert t.loc["all", "users"] == 4 and t.loc["all", "expected_churners"] == pytest.approx(1.65)
    assert t.loc["all", "revenue_at_risk"] == pytest.approx(0.9 * 149 + 0.5 * 99 + 0.2 * 149)
    assert t.loc["75–90 %", "users"] == 0  # every band listed


def test_psi_on_hand_computed_bins():
    ref = pd.Series([1.0, 2.0] * 50)
    cur = pd.Series([1.0] * 75 + [2.0] * 25)
    bins = monitoring.frozen_bins(ref)
    assert bins == [1.0, 2.0]
    expected = 0.25 * math.log(0.75 / 0.5) + (-0.25) * math.log(0.25 / 0.5)  # the two empty bins add 0
    assert monitoring.psi(monitoring.shares(ref, bins), monitoring.shares(cur, bins)) == pytest.approx(expected)
    assert monitoring.status(expected) == "alert" and monitoring.status(0.12) == "warn"


def test_drift_is_zero_on_the_same_month_and_large_on_a_shift():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=5000)})
    same = monitoring.drift(ref, ref, ["x"]).iloc[0]
    assert same.psi == pytest.approx(0) and same.ks == 0 and same.status == "stable"
    moved = monitoring.drift(ref, ref + 1, ["x"]).iloc[0]
    assert moved.psi > monitoring.PSI_ALERT and moved.ks > 0.3 and moved.status == "alert"
    # numeric bins: deciles of the reference, each holding a tenth of it
    np.testing.assert_allclose(monitoring.shares(ref.x, monitoring.frozen_bins(ref.x))[:10], 0.1, atol=1e-3)


def test_quality_checks_count_what_fails():
    f = pd.DataFrame(
        {"msno": ["a", "a", "b"], "transaction_date": ["2017-03-01", "2017-03-01", "2017-03-10"],
         "membership_expire_date": ["2017-04-01", "2017-04-01", "2017-03-01"], "bd": [20, None, 500]}
    )  # fmt: skip
    q = monitoring.quality(f, {"bd": (0, 100)}).set_index("check")
    assert q.loc["missing cells", "failing"] == 1 and q.loc["duplicate users", "failing"] == 1
    assert q.loc["values outside the training range", "failing"] == 1
    assert q.loc["expiry before the transaction", "failing"] == 1 and (q.status == "check").all()


def test_label_lag():
    assert monitoring.label_lag("2017-03", "2017-04-29") == "labels complete on 2017-04-30"
    assert monitoring.label_lag("2017-03", "2017-04-30") == "labelled"


def test_quality_reads_the_point_in_time_columns_too():
    f = pd.DataFrame({"msno": ["a", "b"], "days_to_expiry": [-5, 10], "days_since_last_transaction": [2, 20]})
    q = monitoring.quality(f).set_index("check")
    assert q.loc["expiry before the transaction", "failing"] == 1  # a: expiry 3 days before its transaction
