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
    h = tx(("a", 20170201, 20170301, 0), ("a", 20170330, 20170430, 0),   # 29 days after
           ("b", 20170201, 20170301, 0), ("b", 20170401, 20170501, 0))   # 31 days after
    assert label(h) == {"a": 0, "b": 1}


def test_no_later_transaction_is_churn_and_early_renewal_is_not():
    h = tx(("gone", 20170215, 20170315, 0),
           ("early", 20170215, 20170315, 0), ("early", 20170301, 20170414, 0))
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
    h = tx(("april", 20170215, 20170415, 0),      # expires in April
           ("old", 20170110, 20170310, 0),        # no February transaction
           ("march", 20170201, 20170303, 0))
    assert set(label(h)) == {"march"}


def test_accepts_datetimes_and_february_target():
    h = pd.DataFrame({"msno": ["u", "u"],
                      "transaction_date": pd.to_datetime(["2017-01-10", "2017-02-09"]),
                      "membership_expire_date": pd.to_datetime(["2017-02-10", "2017-03-10"]),
                      "is_cancel": [0, 0]})
    assert label(h, 2017, 2) == {"u": 0}


def test_rebased_variant_reads_the_expiry_after_the_whole_month():
    from study.churn.labels import churn_labels_rebased

    h = tx(("prepaid", 20170210, 20170312, 0), ("prepaid", 20170305, 20180419, 0),  # 410-day plan, nothing later
           ("monthly", 20170210, 20170312, 0), ("monthly", 20170312, 20170412, 0), ("monthly", 20170412, 20170512, 0))
    assert label(h) == {"prepaid": 0, "monthly": 0}                 # the rule: the March purchase renews
    rebased = churn_labels_rebased(h, 2017, 3)
    assert dict(zip(rebased.msno, rebased.is_churn)) == {"prepaid": 1, "monthly": 0}
