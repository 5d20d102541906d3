"""Time to churn: spells from hand-made transaction chains, Kaplan–Meier and Breslow against
hand computation and scikit-survival, the integrated Brier score on cases worked by hand, both models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.churn import survival

COLS = ["msno", "payment_method_id", "payment_plan_days", "plan_list_price", "actual_amount_paid",
        "is_auto_renew", "transaction_date", "membership_expire_date", "is_cancel"]  # fmt: skip


def tx(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLS)


@pytest.fixture()
def chains() -> pd.DataFrame:
    return tx(
        # A: three monthly renewals, then nothing for a year → one spell, churned at 2016-04-01
        ("A", 41, 30, 149, 149, 1, 20160101, 20160201, 0),
        ("A", 41, 30, 149, 149, 1, 20160201, 20160301, 0),
        ("A", 41, 30, 149, 149, 1, 20160301, 20160401, 0),
        # B: back 60 days after the expiry → two spells; the second still open at the end of the files
        ("B", 39, 30, 99, 99, 0, 20160101, 20160201, 0),
        ("B", 38, 90, 300, 300, 0, 20161201, 20170301, 0),
        # C: a cancellation moves the expiry to 02-15; the renewal 24 days later continues the spell
        ("C", 41, 180, 894, 894, 1, 20160101, 20160701, 0),
        ("C", 41, 180, 894, 894, 1, 20160201, 20160215, 1),
        ("C", 41, 30, 149, 149, 1, 20160310, 20160410, 0),
        # D: a lone cancellation says nothing of a plan
        ("D", 41, 30, 149, 149, 1, 20160105, 20160110, 1),
    )


def test_spells_follow_the_thirty_day_rule(chains):
    members = pd.DataFrame({"msno": ["A", "B", "C"], "registered_via": [7, 9, 3]})
    sp = survival.spells(chains, members, data_end="2017-03-15").set_index(["msno", "spell"])
    assert list(sp.index) == [("A", 0), ("B", 0), ("B", 1), ("C", 0)]
    a, b0, b1, c = (sp.loc[k] for k in sp.index)
    assert (a.start, a.end, a.event, a.n_renewals) == (pd.Timestamp("2016-01-01"), pd.Timestamp("2016-04-01"), 1, 2)
    assert a.duration == pytest.approx(91 / 30) and a.registered_via == 7
    assert (b0.end, b0.event, b0.plan_days) == (pd.Timestamp("2016-02-01"), 1, 30)  # ended by the later spell
    assert (b1.start, b1.end, b1.event, b1.plan_days) == (pd.Timestamp("2016-12-01"), pd.Timestamp("2017-03-01"), 0, 90)
    assert b1.monthly_price == pytest.approx(100.0)  # 300 for 90 days
    assert (c.end, c.event, c.had_cancel, c.plan_days) == (pd.Timestamp("2016-04-10"), 1, 1, 30)


def test_a_spell_is_censored_until_thirty_days_after_its_expiry(chains):
    at = {d: survival.spells(chains, data_end=d).set_index(["msno", "spell"]).loc[("B", 1), "event"]
          for d in ("2017-03-30", "2017-03-31")}  # fmt: skip
    assert at == {"2017-03-30": 0, "2017-03-31": 1}  # expiry 03-01 + 30 days = 03-31


def test_kaplan_meier_equals_the_product_limit_by_hand():
    sp = pd.DataFrame({"duration": [1, 2, 2, 3, 4, 5], "event": [1, 1, 0, 1, 0, 1], "seg": list("aaaaaa")})
    km = survival.kaplan_meier(sp, by="seg", grid=[0, 1, 2, 3, 4, 5])
    # at risk 6,5,3,2,1 at the event times 1,2,3,5: S = 5/6, ·4/5, ·2/3, ·0
    expected = [1, 5 / 6, 5 / 6 * 4 / 5, 5 / 6 * 4 / 5 * 2 / 3, 5 / 6 * 4 / 5 * 2 / 3, 0]
    np.testing.assert_allclose(km.survival, expected)
    assert list(km.at_risk) == [6, 6, 5, 3, 2, 1]
    assert survival.log_rank(sp.assign(seg=list("aaabbb")), "seg")["segments"] == 2


def test_breslow_with_equal_risks_is_nelson_aalen():
    from sksurv.nonparametric import nelson_aalen_estimator

    rng = np.random.default_rng(3)
    T = rng.integers(1, 20, 200).astype(float)
    E = rng.integers(0, 2, 200).astype(float)
    times, H = survival.breslow(T, E, np.ones_like(T))
    na_times, na = nelson_aalen_estimator(E.astype(bool), T)
    np.testing.assert_allclose(H, na[np.searchsorted(na_times, times)])
    assert H[0] == pytest.approx((E[T == times[0]]).sum() / 200)  # the first jump by hand


def test_integrated_brier_on_cases_worked_by_hand():
    train = pd.DataFrame({"duration": [1.0, 2.0, 3.0, 4.0], "event": [1, 1, 1, 1]})  # no censoring: G = 1
    test = pd.DataFrame({"duration": [0.5, 3.5], "event": [1, 1]})
    months = np.array([1.0, 2.0, 3.0])
    perfect = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # S(t) = 1 until each dies
    assert survival.integrated_brier(train, test, perfect, months) == pytest.approx(0.0)
    coin = np.full((2, 3), 0.5)
    assert survival.integrated_brier(train, test, coin, months) == pytest.approx(0.25)
    # one wrong month: the first spell still given S = 1 at month 1 → (1² + 0) / 2 at t = 1, then 0
    late = perfect.copy()
    late[0, 0] = 1.0
    assert survival.integrated_brier(train, test, late, months) == pytest.approx((0.5 + 0) / 2 / 2)


def synthetic_spells(n=3000, seed=0) -> pd.DataFrame:
    """Spells whose hazard falls with auto-renew and longer plans (a known truth)."""
    rng = np.random.default_rng(seed)
    sp = pd.DataFrame({
        "plan_days": rng.choice([30, 90, 180], n), "auto_renew": rng.integers(0, 2, n),
        "n_renewals": rng.integers(0, 10, n), "had_cancel": rng.integers(0, 2, n),
    })  # fmt: skip
    sp["monthly_price"], sp["payment_method"], sp["ends_cancelled"] = 149.0, rng.choice([41, 39, 36], n), 0
    hazard = 0.15 * np.exp(-1.0 * sp.auto_renew - 0.006 * sp.plan_days + 0.8 * sp.had_cancel)
    t = rng.exponential(1 / hazard)
    c = rng.uniform(0, 30, n)
    sp["duration"] = np.minimum(t, c).clip(0.05)
    sp["event"] = (t <= c).astype("int8")
    return sp


@pytest.mark.parametrize("kind", ["cox", "xgboost"])
def test_models_order_spells_and_give_bounded_remaining_months(kind):
    train, test = synthetic_spells(seed=1), synthetic_spells(seed=2)
    model = survival.fit(train, kind)
    assert survival.concordance(test, model) > 0.65
    months = np.arange(1, 13, dtype=float)
    ibs = survival.integrated_brier(train, test, model.survival(survival.design(test), months), months)
    assert 0 < ibs < 0.2
    left = survival.remaining_months(model, test.head(50), horizon=12)
    assert ((left > 0) & (left <= 12 + 1e-9)).all()
    risky = test.head(50).assign(auto_renew=0, had_cancel=1)
    assert (survival.remaining_months(model, risky, horizon=12) <= left + 1e-9).mean() > 0.9


def test_temporal_split_keeps_the_inputs_of_the_cutoff_and_the_outcome_after_it(chains):
    split = survival.temporal_split(chains, None, "2016-02-15")
    t = split.test.set_index("msno")
    assert sorted(t.index) == ["A", "B", "C"]  # open at the cutoff (D never had a plan)
    assert t.loc["A", "duration"] == pytest.approx(60 / 30) and t.loc["A", "n_renewals"] == 1  # as of the cutoff
    assert t.loc["A", "remaining"] == pytest.approx(31 / 30) and t.loc["A", "event"] == 1
    assert t.loc["B", "remaining"] == 0 and t.loc["B", "event"] == 1  # lapsed at the expiry it had paid
    assert t.loc["C", "remaining"] == pytest.approx(55 / 30)  # paid to 02-15 (cancelled), renewed to 04-10
