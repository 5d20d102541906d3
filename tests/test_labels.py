"""The organisers' labelling rule on hand-made transaction histories (FACTS.md section 1)."""

from __future__ import annotations

import pandas as pd
import pytest

from study.churn.labels import churn_labels


def tx(*rows):
    """rows: (msno, transaction_date, membership_expire_date, is_cancel) with YYYYMMDD ints."""
    return pd.DataFrame(rows, columns=["msno", "transaction_date", "membership_expire_date", "is_cancel"])


def label(frame, year=2017, month=3) -> dict:
    out = churn_labels(frame, year, month)
    return dict(zip(out.msno, out.is_churn))


@pytest.mark.parametrize("renew_day, churn", [(20170409, 0), (20170410, 0), (20170411, 1), (20170413, 1)])
def test_gap_of_29_renews_and_31_churns(renew_day, churn):
    # current expiry 2017-03-12; renewal 28, 29, 30 or 32 days later: gap >= 30 is churn
    h = tx(("u", 20170210, 20170312, 0), ("u", renew_day, 20170512, 0))
    assert label(h) == {"u": churn}


def test_gap_of_exactly_29_and_31_days():
    h = tx(
        ("a", 20170201, 20170301, 0),
        ("a", 20170330, 20170430, 0),  # 29 days after
        ("b", 20170201, 20170301, 0),
        ("b", 20170401, 20170501, 0),
    )  # 31 days after
    assert label(h) == {"a": 0, "b": 1}


def test_no_later_transaction_is_churn_and_early_renewal_is_not():
    h = tx(("gone", 20170215, 20170315, 0), ("early", 20170215, 20170315, 0), ("early", 20170301, 20170414, 0))
    assert label(h) == {"gone": 1, "early": 0}


def test_cancellation_moves_the_expiry_earlier():
    # Without the cancel, renewing on 04-06 is 22 days after the 03-15 expiry: stays.
    stays = tx(("u", 20170215, 20170315, 0), ("u", 20170406, 20170506, 0))
    # The cancel on 03-05 moves the expiry to 03-05: the same renewal is 32 days late: churn.
    cancelled = tx(("u", 20170215, 20170315, 0), ("u", 20170305, 20170305, 1), ("u", 20170406, 20170506, 0))
    assert label(stays) == {"u": 0}
    assert label(cancelled) == {"u": 1}


def test_cancellation_with_a_later_expiry_does_not_move_it():
    h = tx(("u", 20170215, 20170315, 0), ("u", 20170305, 20170320, 1), ("u", 20170410, 20170510, 0))
    assert label(h) == {"u": 0}  # gap 26 days from 03-15


def test_cancelled_renewal_without_return_is_churn():
    h = tx(("u", 20170210, 20170310, 0), ("u", 20170301, 20170310, 1))
    out = churn_labels(h, 2017, 3)
    assert out.is_churn.tolist() == [1] and out.gap_days.isna().all()


def test_plan_change_on_the_same_day_renews():
    # Switch from a monthly plan to a 410-day plan: cancel and new subscription the same day.
    # On one day the subscription is read before the cancellation, so the first renewal counts.
    h = tx(("u", 20170205, 20170305, 0), ("u", 20170303, 20170303, 1), ("u", 20170303, 20180417, 0))
    assert label(h) == {"u": 0}


def test_history_order_on_one_day():
    # Last history day holds a renewal (expiry 03-20) and a cancellation (expiry 03-10):
    # the cancellation is read last, so the current expiry is 03-10, and a renewal on 04-12
    # (33 days later) is churn, although it is only 23 days after 03-20.
    h = tx(("u", 20170228, 20170320, 0), ("u", 20170228, 20170310, 1), ("u", 20170412, 20170512, 0))
    out = churn_labels(h, 2017, 3)
    assert out.current_expire.iloc[0] == pd.Timestamp("2017-03-10")
    assert out.is_churn.iloc[0] == 1


def test_several_renewals_on_one_day_latest_expiry_last():
    h = tx(("u", 20170220, 20170420, 0), ("u", 20170220, 20170322, 0))
    # latest expiry (04-20) is read last: not a March candidate
    assert label(h) == {}


def test_only_users_expiring_in_the_month_with_a_history_transaction_are_candidates():
    h = tx(
        ("april", 20170215, 20170415, 0),  # expires in April
        ("old", 20170110, 20170310, 0),  # no February transaction
        ("march", 20170201, 20170303, 0),
    )
    assert set(label(h)) == {"march"}


def test_accepts_datetimes_and_february_target():
    h = pd.DataFrame(
        {
            "msno": ["u", "u"],
            "transaction_date": pd.to_datetime(["2017-01-10", "2017-02-09"]),
            "membership_expire_date": pd.to_datetime(["2017-02-10", "2017-03-10"]),
            "is_cancel": [0, 0],
        }
    )
    assert label(h, 2017, 2) == {"u": 0}


def test_rebased_variant_reads_the_expiry_after_the_whole_month():
    from study.churn.labels import churn_labels_rebased

    h = tx(
        ("prepaid", 20170210, 20170312, 0),
        ("prepaid", 20170305, 20180419, 0),  # 410-day plan, nothing later
        ("monthly", 20170210, 20170312, 0),
        ("monthly", 20170312, 20170412, 0),
        ("monthly", 20170412, 20170512, 0),
    )
    assert label(h) == {"prepaid": 0, "monthly": 0}  # the rule: the March purchase renews
    rebased = churn_labels_rebased(h, 2017, 3)
    assert dict(zip(rebased.msno, rebased.is_churn)) == {"prepaid": 1, "monthly": 0}


# ---------------------------------------------------------------------------------------------
# The rule the released train_v2 labels follow: expiry standing at the end of March, outcome
# window to 2017-05-31 (issue 13).
def released(frame, horizon=None) -> dict:
    from study.churn.labels import churn_labels_as_released

    out = churn_labels_as_released(frame, 2017, 3, horizon)
    return dict(zip(out.msno, out.is_churn))


def test_a_long_plan_bought_in_march_is_censored_as_churn():
    # expiry 03-15 from February; a 90-day plan bought 03-10 expires 06-13, past the window
    h = tx(("u", 20170213, 20170315, 0), ("u", 20170310, 20170613, 0))
    assert label(h) == {"u": 0}  # the published rule reads the March purchase as a renewal
    assert released(h) == {"u": 1}


def test_auto_renew_renewed_in_april_stays():
    h = tx(("u", 20170220, 20170320, 0), ("u", 20170320, 20170419, 0), ("u", 20170419, 20170519, 0))
    assert released(h) == {"u": 0}


def test_a_march_renewal_without_a_later_one_churns_only_past_the_window():
    h = tx(
        ("kept", 20170220, 20170320, 0),
        ("kept", 20170320, 20170419, 0),
        ("kept", 20170419, 20170519, 0),
        ("lapsed", 20170220, 20170320, 0),
        ("lapsed", 20170320, 20170419, 0),
    )
    assert released(h) == {"kept": 0, "lapsed": 1}


def test_a_cancellation_pulls_the_expiry_earlier():
    # expiry 04-30 after a March renewal; a cancellation on 04-10 moves it to 04-10, so renewing on
    # 05-15 is 35 days late (churn); without the cancellation it is 15 days late (stays)
    base = [("u", 20170220, 20170331, 0), ("u", 20170305, 20170430, 0)]
    assert released(tx(*base, ("u", 20170515, 20170615, 0))) == {"u": 0}
    assert released(tx(*base, ("u", 20170410, 20170410, 1), ("u", 20170515, 20170615, 0))) == {"u": 1}


@pytest.mark.parametrize("renew_day, churn", [(20170429, 0), (20170430, 1), (20170501, 1)])
def test_renewal_29_30_31_days_after_the_expiry(renew_day, churn):
    # expiry standing at the end of March: 03-31 (no March purchase); renewal 29, 30 or 31 days later
    h = tx(("u", 20170228, 20170331, 0), ("u", renew_day, renew_day + 100, 0))
    assert released(h) == {"u": churn}


def test_the_horizon_is_inclusive_and_configurable():
    # expiry 05-20 after a March renewal; renewing on 05-31 is inside the window, on 06-01 outside
    base = [("u", 20170220, 20170320, 0), ("u", 20170320, 20170520, 0)]
    assert released(tx(*base, ("u", 20170531, 20170630, 0))) == {"u": 0}
    assert released(tx(*base, ("u", 20170601, 20170701, 0))) == {"u": 1}
    assert released(tx(*base, ("u", 20170601, 20170701, 0)), horizon="2017-06-30") == {"u": 0}


def test_candidates_are_the_published_cohort():
    h = tx(("march", 20170210, 20170312, 0), ("april", 20170210, 20170412, 0), ("old", 20170110, 20170312, 0))
    assert set(released(h)) == set(label(h)) == {"march"}


def test_label_signature_on_a_hand_made_processed_frame():
    from study.churn.realism import label_signature

    rows = [  # transaction_date, membership_expire_date, is_cancel, is_auto_renew, plan days, is_churn
        ("2017-03-05", "2017-04-04", 0, 1, 30, 0),  # flagged, expiry by the horizon, auto-renew
        ("2017-03-06", "2017-05-05", 0, 0, 60, 1),  # flagged, expiry by the horizon, manual, churned
        ("2017-03-10", "2017-06-08", 0, 0, 90, 1),  # flagged, censored long plan
        ("2017-03-20", "2017-03-25", 1, 1, 30, 1),  # a cancellation: not flagged
        ("2017-02-15", "2017-04-15", 0, 0, 60, 0),  # bought in February: not flagged
    ]
    df = pd.DataFrame(
        rows,
        columns=[
            "transaction_date",
            "membership_expire_date",
            "is_cancel",
            "is_auto_renew",
            "payment_plan_days",
            "is_churn",
        ],
    )
    s = label_signature(df)
    assert s["churn"] == 0.6 and s["flagged share of churners"] == pytest.approx(2 / 3)
    assert s["churn, flagged, expiry by the horizon"] == 0.5 and s["  auto-renew"] == 0 and s["  manual"] == 1
    assert s["churn, flagged, expiry after the horizon"] == 1 and s["churn, plans of 90+ days bought in the month"] == 1
    assert s["churn, not flagged"] == 0.5 and s["share flagged, expiry after the horizon"] == 0.2
