"""The KKBOX twin: a simulation of members' subscription lives that writes the Kaggle files.

Why a simulation and not independent columns: churn in the real data is a consequence of
behaviour (auto-renew, plan, payment method, listening), and its label is computed from the
transactions by the organisers' rule. So the twin simulates each subscriber's renewal chain
with a hazard that depends on those drivers (FACTS.md section 2), listening logs that follow a
drifting latent engagement, and derives the labels with :func:`study.churn.labels.churn_labels`
from the very transactions it writes, including the post-expiry renewals that the real March
files contain. Everything is vectorised over users, one renewal cycle per loop step, and every
random draw comes from one seeded generator, so a seed gives identical bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from study.churn.labels import churn_labels, churn_labels_as_released, churn_labels_rebased

# A digest of the generator's own source: a cached twin made by other code is remade.
TWIN_VERSION = hashlib.sha256(
    b"".join(Path(__file__).with_name(n).read_bytes() for n in ("twin.py", "labels.py"))
).hexdigest()[:16]

# ---------------------------------------------------------------------------------------------
# Calendar: day 0 is 2014-07-01 (six months of burn-in before the files start on 2015-01-01).
EPOCH = np.datetime64("2014-07-01")
FILES_START = np.datetime64("2015-01-01")
V1_END = np.datetime64("2017-03-01")  # transactions.csv / user_logs.csv end on 2017-02-28
V2_START, V2_END = np.datetime64("2017-03-01"), np.datetime64("2017-04-01")
ODDITIES_BEFORE = np.datetime64("2017-01-01")
# April to June are simulated for the March labels (the outcome window ends 2017-05-31; renewals
# after it are what censoring hides), never written.
SIM_END = np.datetime64("2017-07-01")


def day(d: np.datetime64) -> int:
    return int((d - EPOCH).astype("timedelta64[D]").astype(int))


_DATE_LO = day(np.datetime64("1969-12-01"))
_DATE_HI = day(np.datetime64("2040-01-01"))
_YYYYMMDD = None


def yyyymmdd(days: np.ndarray) -> np.ndarray:
    """Day numbers → int32 YYYYMMDD through a lookup table (fast for tens of millions of rows)."""
    global _YYYYMMDD
    if _YYYYMMDD is None:
        dates = pd.DatetimeIndex(EPOCH + np.arange(_DATE_LO, _DATE_HI).astype("timedelta64[D]"))
        _YYYYMMDD = (dates.year * 10000 + dates.month * 100 + dates.day).to_numpy().astype(np.int32)
    return _YYYYMMDD[np.asarray(days) - _DATE_LO]


def month_last_day(days: np.ndarray) -> np.ndarray:
    """Day numbers → the day number of the last day of their month."""
    d = EPOCH + np.asarray(days).astype("timedelta64[D]")
    return ((d.astype("datetime64[M]") + 1).astype("datetime64[D]") - 1 - EPOCH).astype(np.int64)


def month_index(days: np.ndarray) -> np.ndarray:
    """Months since 2014-07 for day numbers (0 = July 2014)."""
    d = EPOCH + np.asarray(days).astype("timedelta64[D]")
    return (d.astype("datetime64[M]") - EPOCH.astype("datetime64[M]")).astype(int)


# ---------------------------------------------------------------------------------------------
# Scales and behavioural parameters.
@dataclass(frozen=True)
class Scale:
    name: str
    subscribers: int  # simulated subscribers ever (stock at burn-in + arrivals)
    member_ratio: float  # members_v3 rows per March-labelled user (real: 6.77 M / 0.97 M)
    v1_log_months: int  # months of user_logs.csv written before March 2017


# Subscribers per March-labelled user ≈ 1.57 (calibrated on the default scale): the full scale
# labels about as many March users as the real train_v2 (970,960).
SCALES = {
    "tiny": Scale("tiny", 2_400, 7.0, 2),
    "quick": Scale("quick", 13_200, 7.0, 4),
    "default": Scale("default", 276_000, 7.0, 4),
    "full": Scale("full", 2_600_000, 7.0, 4),
}


def _table(d: dict) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array(list(d.keys()))
    p = np.array(list(d.values()), dtype=float)
    return keys, p / p.sum()


# Registration channel of subscribers, and its share of known demographics and of auto-renew.
# Population shares, set so that the users left after the original joins match the real sample
# (7: 52 %, 9: 29 %, 3: 13 %, 4: 6 %): channel 7 pays automatically and stays longest.
VIA = _table({7: 0.407, 9: 0.313, 3: 0.172, 4: 0.104, 13: 0.004})
VIA_KNOWN_DEMO = {7: 0.17, 9: 0.86, 3: 0.85, 4: 0.50, 13: 0.0, 11: 0.5}
VIA_AUTO = {7: 0.95, 9: 0.72, 3: 0.56, 4: 0.46, 13: 1.0, 11: 0.6}
VIA_LOGIT = {7: -0.15, 9: 0.45, 3: 0.55, 4: 1.0, 13: -0.5, 11: 0.5}
# Non-subscribing members (most of members_v3) register mostly through 4 and 3.
VIA_EXTRA = _table({4: 0.50, 3: 0.28, 9: 0.16, 7: 0.035, 11: 0.015, 13: 0.01})

# City 1 is mostly the default of members without demographics (real sample: 82 % of channel 7,
# 6 % of channel 9).
CITY_KNOWN = _table(
    {
        1: 0.08,
        13: 0.14,
        5: 0.10,
        4: 0.07,
        15: 0.06,
        22: 0.06,
        6: 0.04,
        14: 0.03,
        12: 0.02,
        9: 0.015,
        11: 0.013,
        18: 0.012,
        8: 0.01,
        10: 0.008,
        17: 0.006,
        21: 0.006,
        3: 0.006,
        7: 0.004,
        16: 0.003,
        20: 0.002,
        19: 0.001,
    }
)

# Payment methods: auto-renewing ones (cards, telecom) and manual ones (prepaid), with the
# churn log-odds shift measured in FACTS.md section 2 (methods 3, 6, 13, 20, 22 ≈ 100 %, 32 ≈ 94 %).
METHOD_AUTO = _table(
    {
        41: 0.56,
        39: 0.10,
        40: 0.09,
        36: 0.085,
        37: 0.055,
        34: 0.04,
        33: 0.017,
        30: 0.016,
        31: 0.013,
        29: 0.012,
        27: 0.002,
        23: 0.002,
    }
)
METHOD_MANUAL = _table(
    {
        38: 0.40,
        32: 0.03,
        36: 0.05,
        29: 0.05,
        41: 0.06,
        40: 0.03,
        15: 0.035,
        20: 0.02,
        35: 0.02,
        17: 0.015,
        12: 0.015,
        8: 0.015,
        26: 0.02,
        28: 0.02,
        3: 0.006,
        6: 0.006,
        13: 0.006,
        22: 0.006,
        2: 0.003,
        10: 0.003,
        14: 0.003,
        16: 0.003,
        18: 0.003,
        19: 0.003,
        21: 0.003,
        11: 0.002,
        24: 0.002,
    }
)
# Churn log-odds shift by method. The real "≈100 %" methods (FACTS.md section 2) are prepaid long
# plans whose expiry falls after the labels' outcome window: censoring, which the as-released
# labeller produces by itself, so their behavioural shift here is small. Card methods 31, 33, 34
# and 39: no churner among the 846 real users expiring in April-May; auto-renewers with one March
# row: 40 2.1 %, 37 1.1 %, 36 0.6 %, 29 1.7 %.
METHOD_LOGIT = {
    36: 0.1,
    40: 1.3,
    37: 0.6,
    34: -3.0,
    31: -3.0,
    33: -3.0,
    39: -3.0,
    29: 1.2,
    30: 0.8,
    38: 0.5,
    32: 0.5,
    26: 1.5,
    28: 0.6,
    35: 1.0,
    15: 0.5,
    17: 1.0,
    12: 1.0,
    8: 1.0,
    3: 0.5,
    6: 1.0,
    13: 0.5,
    20: 0.5,
    22: 0.5,
}

# Long prepaid plans (90 days and more) are bought by hand, mostly through a few methods; manual
# payers switch to one at a renewal and back to a month when it ends (FACTS.md: plans of 90+ days
# bought in March, all manual, methods 32, 38, 15, 20, 22).
LONG_PLANS = _table({410: 0.26, 90: 0.26, 195: 0.16, 180: 0.16, 360: 0.09, 100: 0.03, 395: 0.02, 120: 0.02})
LONG_METHODS = _table({32: 0.38, 38: 0.35, 15: 0.14, 20: 0.05, 22: 0.04, 28: 0.02, 13: 0.01, 3: 0.01})
LONG_SWITCH = 0.45  # a manual payer on a monthly plan buys a long plan at a renewal
LONG_BACK = 0.5  # a long-plan payer comes back to a monthly plan at its end

PLAN_AUTO = _table({30: 0.975, 7: 0.02, 0: 0.005})
PLAN_MANUAL = _table(
    {30: 0.62, 90: 0.09, 180: 0.06, 195: 0.05, 410: 0.08, 395: 0.02, 360: 0.02, 7: 0.03, 100: 0.01, 120: 0.01, 60: 0.01}
)
PLAN_LOGIT = {
    7: 1.2,
    0: 0.5,
    60: 0.3,
    90: 0.3,
    100: 0.3,
    120: 0.3,
    180: 0.3,
    195: 0.3,
    360: 0.3,
    395: 0.3,
    410: 0.3,
}  # long plans: censoring, not behaviour (see METHOD_LOGIT)
PRICES = {
    30: _table({149: 0.45, 99: 0.32, 180: 0.09, 129: 0.06, 100: 0.05, 150: 0.02, 119: 0.01}),
    7: _table({0: 0.6, 35: 0.4}),
    0: _table({0: 1.0}),
    60: _table({300: 1.0}),
    90: _table({447: 0.3, 477: 0.3, 300: 0.2, 480: 0.2}),
    100: _table({480: 1.0}),
    120: _table({600: 1.0}),
    180: _table({536: 0.5, 600: 0.3, 894: 0.2}),
    195: _table({894: 1.0}),
    360: _table({1200: 1.0}),
    395: _table({1599: 1.0}),
    410: _table({1788: 1.0}),
}

BASE_LOGIT = -7.15  # auto-renew, method 41, 30-day plan, channel 7, unknown age, engagement 0
MANUAL_LOGIT = -0.7  # manual payers who buy at or after their expiry: 0 of 387 real ones churned
ENGAGEMENT_LOGIT = 0.1  # April-May churners listen a little more than stayers (real AUC 0.53)
DISCOUNT_END_LOGIT = 0.8
# February: the published rule keeps train.csv near its real 6.4 %; March 2017: more lapses
# (real: 1.6 % of the March candidates lapse in March without a renewal row).
MONTH_LOGIT = {2: 3.0, 3: 1.6}
CANCEL_SHARE_OF_AUTO_LEAVERS = 1.0
CANCEL_BEFORE_P = 0.1  # days between an auto-renewer's cancellation and the expiry: geometric, mean 10
STAYER_CANCEL = 0.016  # plan or method switch: cancel, then renew within days
RETURN_PROB, RETURN_MEAN_GAP = 0.35, 120.0
DISCOUNT_PROB = 0.006
PLAN_SWITCH_PROB = 0.02
ENGAGEMENT_STEP_SD = 0.08  # monthly drift of the latent engagement
LISTEN_GRACE_DAYS = 7
# How the last renewal was made shapes the next decision. Measured on real flagged users expiring
# in April-May (their next decision): auto-renewals at the expiry or a day before churn 0.1 %,
# 2-5 days before 7 %, 8-12 days 0.4 %, 16-22 days 6 %; a cancellation followed by a new purchase
# 57 %; manual payers buying at or after their expiry 0 of 387, before it 45 %.
# Days an auto-renewal is bought before the expiry (35-45: a month paid ahead, whose expiry a March
# purchase pushes past the outcome window; real: 27 such auto-renewers, all labelled churn).
AUTO_EARLY_DAYS = _table(
    {
        0: 0.33,
        1: 0.54,
        2: 0.02,
        3: 0.01,
        4: 0.006,
        5: 0.004,
        8: 0.02,
        12: 0.02,
        16: 0.015,
        22: 0.01,
        35: 0.006,
        45: 0.003,
    }
)
# Members of 4.5 to 8 years are the ones billed two to five days ahead (real, one March row: 40 % of
# them, 3-6 % of the others).
AUTO_EARLY_DAYS_VETERAN = _table(
    {0: 0.2, 1: 0.33, 2: 0.19, 3: 0.09, 4: 0.07, 5: 0.05, 8: 0.02, 12: 0.02, 16: 0.015, 22: 0.01, 35: 0.006, 45: 0.003}
)
VETERAN_DAYS = (1640, 2920)
AUTO_EARLY_LOGIT = {2: 2.0, 3: 2.0, 4: 2.0, 5: 2.0, 8: 1.4, 12: 1.4, 16: 4.1, 22: 4.1}
CANCEL_RENEW_LOGIT = 7.0  # a cancellation, then a new purchase before the expiry
MANUAL_EARLY_SHARE = 0.25  # manual payers who renew before their expiry (the rest at or after it)
EARLY_MANUAL_LOGIT = 6.0
PURCHASE_DAY_LOGIT = -0.07  # manual payers: per day of month of the last purchase (early buyers churn more)
# The spring 2017 decisions (April-May expiries, the labelled ones) of auto-renewers with one March
# row: none of the 3,897 renewed at the expiry or a day before churned but one; renewed 2-5 days
# before, 1.7 % when bought after the 13th, 12-19 % on days 1-13, whatever the tenure. Applied every
# month, these would reshape the whole history, so they are a spring 2017 event.
SPRING_FROM = np.datetime64("2017-04-01")
SPRING_LOGIT = {"on time": -2.3, "early": 0.6, "early, days 1-13": 3.2}
MONTH_END_BATCH = 0.9
# Measured on March 2017 only; applied to February and March 2017 (every month, it would pile the
# expiries up at month ends over the years).
BATCH_FROM = np.datetime64("2017-02-01")
TENURE_YEARS = 3.5  # mean years between registration and the first subscription of long-standing members
# Method 39 (a carrier bill) in March 2017: every real March candidate paying with it has two March
# rows, the renewal and a second month billed on 31 March (spans 32-56 days), and none churned
# (483 users). The twin bills that second month too.
# Method 34 is billed ahead the same way for some users (real: 3 late March users, all churned).
AHEAD_METHODS, AHEAD_DAY, AHEAD_OTHER_SHARE = (39, 34), np.datetime64("2017-03-31"), 0.05
AHEAD_QUIT, QUIT_LOGIT, AHEAD_TWICE = 0.012, 20.0, 0.015
# Auto-renewers who stack months in March 2017, then leave (real: 15 of the 6,023 joined users have
# 3 to 9 March rows of methods 41, 40 and 36, expiring June to December, all labelled churn; with one
# extra month, two March rows expiring in May, 15 of 16 churned).
STACK_METHODS, STACK_SHARE, STACK_LOGIT = (41, 40, 36, 37, 30), 0.008, 12.0
STACK_MONTHS = _table({1: 0.5, 2: 0.15, 3: 0.12, 4: 0.12, 6: 0.04, 8: 0.07})
MONTHLY_PRICE_LOGIT = 0.025  # per NTD of a 30-day plan's list price above 129 (real: 180 NTD 3.1 %, 99 NTD 1.3 %)
LEAVE_FADE = 1.0  # listening probability in the two weeks before a decided departure, relative
PRIOR_ROW_SHARE = 0.0  # real joined users: none whose latest row is a February purchase ending in March
NEWCOMER_AUTO_FACTOR = 0.85
# Legacy auto-renewers (real: 41 of the 6,023 joined users, all method 41, channel 7, 3 churned):
# their latest-expiry row in transactions_v2 is dated December 2015 to February 2016, with an expiry
# pushed months to years past April 2017 (to 2020).
LEGACY_SHARE = 0.0068
# Months of extension past the March row (real transaction_count - 1 of the 41).
LEGACY_MONTHS = _table(
    {
        1: 0.08,
        2: 0.12,
        3: 0.17,
        5: 0.08,
        6: 0.03,
        9: 0.05,
        10: 0.05,
        12: 0.05,
        13: 0.12,
        15: 0.07,
        19: 0.07,
        20: 0.07,
        29: 0.04,
    }
)
LEGACY_DATES = (
    np.datetime64("2015-11-30"),
    np.datetime64("2015-12-23"),
    np.datetime64("2016-01-24"),
    np.datetime64("2016-02-21"),
)
# Users without any listening row (11-12 % of the real labelled users): mostly manual payers, so
# that the inner joins drop churners more than stayers (real churn 9.0 % → 6.4 % after the joins).
NO_LOGS_AUTO, NO_LOGS_MANUAL = 0.08, 0.35


# The age gaps of the real labels (FACTS.md section 2) come mostly from who buys long plans
# (censoring); among flagged users expiring in April-May age separates nobody (AUC 0.50), so the
# behavioural effect is a fraction of them.
AGE_LOGIT_SCALE = 0.1


def _age_logit(age: np.ndarray) -> np.ndarray:
    out = np.full(age.shape, -0.6)  # unknown age → 5 % churn in the real data
    known = age > 0
    a = age[known]
    out[known] = np.select([a <= 15, a <= 19, a <= 24], [1.5, 0.75, 0.3], 0.0)
    return AGE_LOGIT_SCALE * out


def _draw(rng, table, n):
    keys, p = table
    return keys[rng.choice(len(keys), size=n, p=p)]


def _map(d: dict, keys: np.ndarray, default=0.0) -> np.ndarray:
    lut = np.full(int(keys.max(initial=0)) + 1, default, dtype=float)
    for k, v in d.items():
        if k < lut.size:
            lut[k] = v
    return lut[keys]


def _price(rng, plan: np.ndarray) -> np.ndarray:
    out = np.zeros(plan.shape, dtype=np.int32)
    for p, table in PRICES.items():
        m = plan == p
        if m.any():
            out[m] = _draw(rng, table, int(m.sum()))
    return out


def msno_strings(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct 44-character base64 ids (32 random bytes each, like the real msno)."""
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    head = np.frombuffer(base64.b64encode(raw[:, :30].tobytes()), dtype=np.uint8).reshape(n, 40)
    alphabet = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", np.uint8)
    b = raw[:, 30].astype(np.int32) << 8 | raw[:, 31]
    tail = np.stack(
        [alphabet[b >> 10], alphabet[(b >> 4) & 63], alphabet[(b & 15) << 2], np.full(n, ord("="), np.uint8)], axis=1
    )
    chars = np.ascontiguousarray(np.concatenate([head, tail], axis=1))
    return chars.view("S44").ravel().astype(str)


# ---------------------------------------------------------------------------------------------
@dataclass
class Subscribers:
    """Static attributes and latent traits of every simulated subscriber."""

    start: np.ndarray
    via: np.ndarray
    known: np.ndarray
    age: np.ndarray
    gender: np.ndarray  # 0 unknown, 1 male, 2 female
    city: np.ndarray
    registration: np.ndarray
    auto: np.ndarray
    method: np.ndarray
    plan: np.ndarray
    price: np.ndarray
    z_month: np.ndarray  # latent engagement per month since 2014-07 (float32, users × months)
    no_logs: np.ndarray
    no_member: np.ndarray


def _subscribers(rng: np.random.Generator, n: int) -> Subscribers:
    sim_end = day(SIM_END)
    stock = rng.random(n) < 0.42  # already subscribed at burn-in; the rest arrive later
    start = np.where(stock, rng.integers(0, 31, n), rng.integers(0, day(V2_END), n)).astype(np.int32)
    via = _draw(rng, VIA, n)
    known = rng.random(n) < _map(VIA_KNOWN_DEMO, via)
    age = np.where(known, np.round(14 + rng.gamma(2.2, 6.5, n)), 0).astype(np.int32)
    gender = np.where(known, np.where(rng.random(n) < 0.53, 1, 2), 0)
    flip = rng.random(n)  # a few known genders without age and the reverse, as in the real data
    age = np.where(known & (flip < 0.03), 0, age)
    gender = np.where(~known & (flip < 0.02), rng.integers(1, 3, n), gender)
    city = np.where(known, _draw(rng, CITY_KNOWN, n), np.where(rng.random(n) < 0.9, 1, _draw(rng, CITY_KNOWN, n)))
    # Registration: long before for the stock, close to the first subscription for newcomers.
    years_back = rng.exponential(TENURE_YEARS, n)
    registration = start - np.where(
        stock | (rng.random(n) < 0.45), (years_back * 365).astype(np.int32), rng.integers(0, 60, n)
    )
    registration = np.maximum(registration, day(np.datetime64("2004-03-26")))
    # Newcomers pay by hand more often than the long-standing stock.
    auto = rng.random(n) < _map(VIA_AUTO, via) * np.where(stock, 1.0, NEWCOMER_AUTO_FACTOR)
    method = np.where(auto, _draw(rng, METHOD_AUTO, n), _draw(rng, METHOD_MANUAL, n)).astype(np.int32)
    # Methods 32 and the ≈100 % ones are one-shot prepaid plans: never auto-renewing.
    plan = np.where(auto, _draw(rng, PLAN_AUTO, n), _draw(rng, PLAN_MANUAL, n)).astype(np.int32)
    trial = ~stock & (rng.random(n) < 0.15)  # free 7-day trials, then a monthly plan
    plan[trial] = 7
    price = _price(rng, plan)
    n_months = int(month_index(np.array([sim_end]))[0]) + 2
    z0 = rng.standard_normal(n).astype(np.float32)
    steps = rng.normal(0, ENGAGEMENT_STEP_SD, (n, n_months)).astype(np.float32)
    steps[:, 0] = 0
    z_month = z0[:, None] + np.cumsum(steps, axis=1)
    no_logs = rng.random(n) < np.where(auto, NO_LOGS_AUTO, NO_LOGS_MANUAL)
    no_member = rng.random(n) < np.where(auto, 0.10, 0.16)
    return Subscribers(
        start,
        via,
        known,
        age,
        gender,
        city,
        registration.astype(np.int32),
        auto,
        method,
        plan,
        price,
        z_month,
        no_logs,
        no_member,
    )


@dataclass
class History:
    """Simulated transactions (hidden uid, day numbers) and service segments for the logs."""

    tx: pd.DataFrame
    segments: pd.DataFrame  # uid, start, end, weight: +1 service bought, −1 cut by a cancellation
    leaves: pd.DataFrame  # uid, day: the expiry at which a subscriber decided to leave


def _simulate(rng: np.random.Generator, s: Subscribers, progress: bool) -> History:
    n = s.start.size
    sim_end = day(SIM_END)
    rows: list[dict] = []
    segs: list[tuple] = []
    cuts: list[tuple] = []
    leaves: list[tuple] = []

    def emit(uid, tdate, expire, plan, price, paid, auto, method, cancel):
        rows.append(
            dict(
                uid=uid,
                tdate=tdate.astype(np.int32),
                expire=expire.astype(np.int32),
                plan=plan.astype(np.int32),
                price=price.astype(np.int32),
                paid=paid.astype(np.int32),
                auto=auto.astype(np.int8),
                method=method.astype(np.int32),
                cancel=np.full(uid.size, cancel, np.int8),
            )
        )

    # First purchase of every subscriber.
    uid = np.arange(n)
    t = s.start.copy()
    plan, price, method, auto = s.plan.copy(), s.price.copy(), s.method.copy(), s.auto.copy()
    expire = t + np.maximum(plan, 1) + (rng.random(n) < 0.4)
    emit(uid, t, expire, plan, price, price, auto, method, 0)
    segs.append((uid, t, expire))
    discounted = np.zeros(n, bool)
    last_way = np.zeros(n)  # log-odds from how the last renewal was bought (see AUTO_EARLY_DAYS)
    last_t = t.copy()
    billed_ahead = np.zeros(n, bool)
    last_k = np.full(n, -9, np.int16)  # days the last automatic renewal was bought before the expiry (-9: none)

    age_logit = _age_logit(s.age)
    static_logit = BASE_LOGIT + _map(VIA_LOGIT, s.via) + age_logit + AGE_LOGIT_SCALE * np.where(s.gender == 2, 0.2, 0.0)
    bar = tqdm(desc="renewal cycles", unit="cycle", disable=not progress)
    active = expire < sim_end
    while active.any():
        bar.update(1)
        i = uid[active]
        E, P = expire[i], plan[i]
        m_exp = month_index(E)
        z = s.z_month[i, np.minimum(m_exp, s.z_month.shape[1] - 1)]
        month_of_year = (m_exp + 6) % 12 + 1
        k_last = last_k[i]
        spring = np.where(
            (k_last >= -1) & (k_last <= 1),
            SPRING_LOGIT["on time"],
            np.where(
                (k_last >= 2) & (k_last <= 5),
                np.where(yyyymmdd(last_t[i]) % 100 <= 13, SPRING_LOGIT["early, days 1-13"], SPRING_LOGIT["early"]),
                0.0,
            ),
        )
        spring = np.where(auto[i] & (E >= day(SPRING_FROM)), spring, 0.0)
        logit = (
            static_logit[i]
            + _map(METHOD_LOGIT, method[i])
            + spring
            + _map(PLAN_LOGIT, P)
            + np.where(auto[i], 0.0, MANUAL_LOGIT)
            + ENGAGEMENT_LOGIT * z
            + np.where(discounted[i], DISCOUNT_END_LOGIT, 0.0)
            + _map(MONTH_LOGIT, month_of_year)
            + last_way[i]
            + np.where(auto[i], 0.0, PURCHASE_DAY_LOGIT * (yyyymmdd(last_t[i]) % 100 - 15))
            + np.where(P == 30, MONTHLY_PRICE_LOGIT * (price[i] - 129), 0.0)
        )
        leave = rng.random(i.size) < 1 / (1 + np.exp(-logit))
        k = i.size
        u = rng.random((k, 8))

        # --- leavers: auto-renewers mostly cancel inside the period; the rest lapse silently.
        lv = i[leave]
        leaves.append((lv, expire[lv]))
        cancel = leave & auto[i] & (u[:, 0] < CANCEL_SHARE_OF_AUTO_LEAVERS)
        ci = i[cancel]
        if ci.size:
            # Dated in the days before the expiry (a cancellation read in March 2017 takes the user out of
            # the flagged March buyers; real: 44 such churners against 89 flagged auto-renewers).
            before = np.ceil(np.log1p(-u[cancel, 1]) / np.log1p(-CANCEL_BEFORE_P)).astype(np.int32)
            tc = np.clip(expire[ci] - before, last_t[ci] + 1, expire[ci])
            exp_c = np.where(u[cancel, 2] < 0.3, tc, expire[ci])
            emit(ci, tc, exp_c, plan[ci], price[ci], price[ci], np.ones(ci.size, bool), method[ci], 1)
            cuts.append((ci, exp_c, expire[ci]))  # service stops at the moved expiry
            expire[ci] = exp_c
        # A share of leavers return after a gap of 30 days or more, possibly on a new method.
        ret = leave & (u[:, 3] < RETURN_PROB)
        ri = i[ret]
        gap = 30 + rng.exponential(RETURN_MEAN_GAP, ri.size).astype(np.int32)
        new_t = expire[ri] + gap
        switch = rng.random(ri.size) < 0.5
        auto[ri] = np.where(switch, rng.random(ri.size) < _map(VIA_AUTO, s.via[ri]) * NEWCOMER_AUTO_FACTOR, auto[ri])
        method[ri] = np.where(
            switch, np.where(auto[ri], _draw(rng, METHOD_AUTO, ri.size), _draw(rng, METHOD_MANUAL, ri.size)), method[ri]
        )
        plan[ri] = np.where(
            switch, np.where(auto[ri], _draw(rng, PLAN_AUTO, ri.size), _draw(rng, PLAN_MANUAL, ri.size)), plan[ri]
        )
        price[ri] = np.where(switch, _price(rng, plan[ri]), price[ri])
        gone = i[leave & ~ret]
        active[gone] = False

        # --- stayers: some switch plan through a cancellation first.
        st = ~leave
        si = i[st]
        sw = st & auto[i] & (u[:, 4] < STAYER_CANCEL)
        wi = i[sw]
        if wi.size:
            lo, hi = last_t[wi] + 1, np.maximum(expire[wi] - 1, last_t[wi] + 2)
            tc = np.minimum((lo + (hi - lo) * u[sw, 5]).astype(np.int32), expire[wi])
            emit(wi, tc, expire[wi], plan[wi], price[wi], price[wi], np.ones(wi.size, bool), method[wi], 1)
            auto[wi] = rng.random(wi.size) < 0.5
            method[wi] = np.where(auto[wi], method[wi], _draw(rng, METHOD_MANUAL, wi.size))
        # Trials turn into monthly plans; a few others switch plan at renewal.
        ch = (plan[si] == 7) | (plan[si] == 0) | (rng.random(si.size) < PLAN_SWITCH_PROB)
        cj = si[ch]
        plan[cj] = np.where(auto[cj], 30, _draw(rng, PLAN_MANUAL, cj.size))
        price[cj] = _price(rng, plan[cj])
        # Manual payers move between monthly and long prepaid plans.
        u_long = rng.random(si.size)
        on_long = plan[si] >= 60
        to_long = si[~auto[si] & ~on_long & ~ch & (u_long < LONG_SWITCH)]
        plan[to_long] = _draw(rng, LONG_PLANS, to_long.size)
        method[to_long] = _draw(rng, LONG_METHODS, to_long.size)
        back = si[~auto[si] & on_long & (u_long < LONG_BACK)]
        plan[back] = 30
        method[back] = np.where(
            np.isin(method[back], (38, 41, 36, 40)), method[back], _draw(rng, METHOD_MANUAL, back.size)
        )
        changed = np.concatenate([to_long, back])
        price[changed] = _price(rng, plan[changed])
        # Renewal date: auto-renewers at or just before expiry; manual payers early or late (< 30 d).
        au = auto[si]
        tenure = expire[si] - s.registration[si]
        veteran = (tenure > VETERAN_DAYS[0]) & (tenure <= VETERAN_DAYS[1])
        k_auto = np.where(veteran, _draw(rng, AUTO_EARLY_DAYS_VETERAN, si.size), _draw(rng, AUTO_EARLY_DAYS, si.size))
        # Month-end batch (February and March 2017): expiries on the 29th to the 31st are renewed on the
        # month's last day (February's on 1 March), expiring 30 days later (real: 624 of the 3,897
        # on-time March renewals are dated 31 March, expiring 30 April; none on the 29th or 30th); an
        # expiry on a month's last day set by a renewal dated the 1st is renewed the next day (real: 44
        # users bought 1 March, expiring 31 March, stayed).
        E_si = expire[si]
        dom = yyyymmdd(E_si) % 100
        last = month_last_day(E_si)
        february = (yyyymmdd(E_si) // 100) % 100 == 2
        batch = ((dom >= 29) | (february & (E_si == last))) & (E_si >= day(BATCH_FROM)) & (E_si < day(V2_END))
        batch_day = np.where(february, last + 1, last)
        from_first = (E_si == last) & (yyyymmdd(last_t[si]) % 100 == 1)
        batch_day = np.where(from_first, E_si + 1, batch_day)
        k_auto = np.where(batch & (rng.random(si.size) < MONTH_END_BATCH), E_si - batch_day, k_auto)
        k_auto = np.where(billed_ahead[si], 0, k_auto)  # a carrier bill paid ahead renews at its expiry
        early = rng.random(si.size) < MANUAL_EARLY_SHARE
        k_manual = np.where(early, -rng.geometric(0.2, si.size) + 1, rng.geometric(0.15, si.size))
        k_manual = np.minimum(k_manual, 29)
        tr = np.where(au, expire[si] - k_auto, expire[si] + k_manual).astype(np.int32)
        tr = np.maximum(tr, last_t[si])
        base = np.maximum(expire[si], tr)
        new_exp = base + np.maximum(plan[si], 1)
        disc = rng.random(si.size) < DISCOUNT_PROB
        paid = np.where(disc, np.round(price[si] * rng.choice([0.0, 0.5, 0.8], si.size)), price[si])
        emit(si, tr, new_exp, plan[si], price[si], paid, au, method[si], 0)
        ahead = au & np.isin(method[si], AHEAD_METHODS) & (tr >= day(V2_START)) & (tr <= day(AHEAD_DAY))
        ahead &= (method[si] == AHEAD_METHODS[0]) | (rng.random(si.size) < AHEAD_OTHER_SHARE)
        # A few cancel in March instead of being billed ahead, and leave (real: 5 method-39 users with a
        # March cancellation of an April expiry, all churned; 0 of the 485 billed ahead churned).
        quit_ahead = ahead & (rng.random(si.size) < AHEAD_QUIT)
        if quit_ahead.any():
            qi = si[quit_ahead]
            tq = np.minimum(
                tr[quit_ahead] + 1 + (rng.random(qi.size) * (day(AHEAD_DAY) - 1 - tr[quit_ahead])).astype(np.int32),
                day(AHEAD_DAY) - 1,
            )
            emit(qi, tq, new_exp[quit_ahead], plan[qi], price[qi], price[qi], np.ones(qi.size, bool), method[qi], 1)
            ahead &= ~quit_ahead
        if ahead.any():
            hi = si[ahead]
            new_exp[ahead] += 30
            emit(
                hi,
                np.full(hi.size, day(AHEAD_DAY)),
                new_exp[ahead],
                plan[hi],
                price[hi],
                price[hi],
                np.ones(hi.size, bool),
                method[hi],
                0,
            )
            # A few are billed two months ahead (real: 7 method-39 users with three March rows, expiring
            # in June, all churned: censored).
            twice = rng.random(hi.size) < AHEAD_TWICE
            if twice.any():
                new_exp[np.flatnonzero(ahead)[twice]] += 30
                ti = hi[twice]
                emit(
                    ti,
                    np.full(ti.size, day(AHEAD_DAY)),
                    new_exp[ahead][twice],
                    plan[ti],
                    price[ti],
                    price[ti],
                    np.ones(ti.size, bool),
                    method[ti],
                    0,
                )
        billed_ahead[si] = ahead
        last_k[si] = np.where(au & ~ahead, k_auto, -9)
        # Months stacked in March 2017: extra rows, each a month past the previous expiry.
        stack = au & np.isin(method[si], STACK_METHODS) & (tr >= day(V2_START)) & (tr < day(V2_END)) & ~ahead
        stack &= rng.random(si.size) < STACK_SHARE
        if stack.any():
            ki = si[stack]
            extra = _draw(rng, STACK_MONTHS, ki.size)
            rep = np.repeat(np.arange(ki.size), extra)
            step = np.arange(rep.size) - np.repeat(np.cumsum(extra) - extra, extra) + 1  # 1 .. extra
            emit(
                ki[rep],
                np.minimum(tr[stack][rep] + step, day(V2_END) - 1),
                new_exp[stack][rep] + 30 * step,
                plan[ki[rep]],
                price[ki[rep]],
                price[ki[rep]],
                np.ones(rep.size, bool),
                method[ki[rep]],
                0,
            )
            new_exp[stack] += 30 * extra
        last_way[si] = np.where(
            au, _map(AUTO_EARLY_LOGIT, np.maximum(k_auto, 0)), np.where(early & (k_manual < 0), EARLY_MANUAL_LOGIT, 0.0)
        )
        # A cancellation, then a renewal: only renewals that stay automatic (a switch to paying by hand
        # follows the manual payers' rule; real manual payers buying at their expiry: 0 of 387 churned).
        last_way[wi] = np.where(auto[wi], CANCEL_RENEW_LOGIT, last_way[wi])
        if quit_ahead.any():
            last_way[qi] = QUIT_LOGIT
        if stack.any():
            last_way[ki] = STACK_LOGIT
        segs.append((si, tr, new_exp))
        discounted[si] = disc
        last_t[si] = tr
        expire[si] = new_exp
        if ahead.any():
            last_t[hi] = day(AHEAD_DAY)
            last_way[hi] = 0.0

        # Returners start a new chain.
        if ri.size:
            exp_r = new_t + np.maximum(plan[ri], 1) + (rng.random(ri.size) < 0.4)
            emit(ri, new_t, exp_r, plan[ri], price[ri], price[ri], auto[ri], method[ri], 0)
            segs.append((ri, new_t, exp_r))
            last_t[ri] = new_t
            expire[ri] = exp_r
            discounted[ri] = False
            last_way[ri] = 0.0
            last_k[ri] = -9
        active &= expire < sim_end
    bar.close()

    tx = pd.DataFrame({k: np.concatenate([r[k] for r in rows]) for k in rows[0]})
    both = segs + cuts
    segments = pd.DataFrame(
        {
            "uid": np.concatenate([a for a, _, _ in both]),
            "start": np.concatenate([b for _, b, _ in both]).astype(np.int32),
            "end": np.concatenate([c for _, _, c in both]).astype(np.int32),
            "weight": np.concatenate(
                [np.full(a.size, 1 if j < len(segs) else -1, np.int16) for j, (a, _, _) in enumerate(both)]
            ),
        }
    )
    lv = pd.DataFrame({"uid": np.concatenate([a for a, _ in leaves]), "day": np.concatenate([b for _, b in leaves])})
    return History(tx, segments, lv)


def _legacy_rows(rng: np.random.Generator, march: pd.DataFrame, labelled: np.ndarray, via: np.ndarray) -> pd.DataFrame:
    """Rows of the legacy auto-renewers (see LEGACY_SHARE), added to transactions_v2 only, after the
    labels: an old-dated row does not change the expiry standing at any date the labels read."""
    last = march[march.cancel == 0].sort_values(["uid", "tdate", "expire"], kind="mergesort").groupby("uid").tail(1)
    eligible = last[last.auto.astype(bool) & (last.method == 41) & (via[last.uid] == 7) & last.uid.isin(labelled)]
    k = min(len(eligible), round(LEGACY_SHARE * len(labelled)))
    pick = eligible.iloc[np.sort(rng.choice(len(eligible), k, replace=False))]
    d0, d1, d2, d3 = (day(d) for d in LEGACY_DATES)
    u = rng.random(k)
    tdate = np.where(u < 0.75, d0 + (d1 - d0) * u / 0.75, d2 + (d3 - d2) * (u - 0.75) / 0.25).astype(np.int32)
    # One row per month of extension (real: transaction_count ≈ months past March 2017 + 1), dated
    # on consecutive days, each expiry a month beyond the previous one.
    months = _draw(rng, LEGACY_MONTHS, k)
    rows = pick.iloc[np.repeat(np.arange(k), months)]
    step = np.arange(len(rows)) - np.repeat(np.cumsum(months) - months, months)  # 0 .. months-1
    return rows.assign(
        tdate=(np.repeat(tdate, months) + step).astype(np.int32),
        expire=(rows.expire.to_numpy() + 30 * (step + 1)).astype(rows.expire.dtype),
        paid=rows.price.to_numpy(),
    )


def _add_oddities(rng: np.random.Generator, tx: pd.DataFrame) -> pd.DataFrame:
    """The real files' oddities at their real rates: expiry before the transaction date,
    expiry on 1970-01-01, far-future expiries (to 2036) and exact duplicate rows."""
    n = len(tx)
    expire = tx["expire"].to_numpy().copy()
    u = rng.random(n)
    # Not on rows dated from 2017 on: the real labelled users' latest rows carry none (a corrupted
    # March renewal would make its user a censored churner nobody in the real sample resembles).
    u[tx["tdate"].to_numpy() >= day(ODDITIES_BEFORE)] = 1.0
    before = u < 0.0066
    expire[before] = tx["tdate"].to_numpy()[before] - rng.integers(1, 400, int(before.sum()))
    expire[(u >= 0.0066) & (u < 0.0066 + 7.7e-5)] = day(np.datetime64("1970-01-01"))
    far = (u >= 0.0067) & (u < 0.0068)
    expire[far] = tx["tdate"].to_numpy()[far] + rng.integers(1000, 7000, int(far.sum()))
    tx = tx.assign(expire=np.clip(expire, _DATE_LO, _DATE_HI - 1))
    dup = tx.iloc[np.flatnonzero(rng.random(n) < 0.0005)]
    return pd.concat([tx, dup], ignore_index=True)


# ---------------------------------------------------------------------------------------------
def _logs_for_month(rng, s: Subscribers, hist: History, month_start: np.datetime64) -> pd.DataFrame:
    """Daily listening rows for one calendar month: a row for each day a covered user listened."""
    d0 = day(month_start)
    nd = int(((month_start.astype("datetime64[M]") + 1).astype("datetime64[D]") - month_start).astype(int))
    seg = hist.segments
    seg = seg[(seg.end + LISTEN_GRACE_DAYS > d0) & (seg.start < d0 + nd)]
    # Service coverage per user and day, from the union of segments (difference-array trick).
    users, inv = np.unique(seg.uid.to_numpy(), return_inverse=True)
    keep = ~s.no_logs[users]
    diff = np.zeros((users.size, nd + 1), np.int16)
    a = np.clip(seg.start.to_numpy() - d0, 0, nd)
    # Members keep listening for a while after their plan ends (grace / free tier): a +1
    # segment extends by LISTEN_GRACE_DAYS, a cancellation cut is not extended.
    grace = np.where(seg.weight.to_numpy() > 0, LISTEN_GRACE_DAYS, 0)
    b = np.clip(seg.end.to_numpy() + grace - d0, 0, nd)
    w = seg.weight.to_numpy()
    np.add.at(diff, (inv, a), w)
    np.add.at(diff, (inv, b), -w)
    covered = np.cumsum(diff[:, :nd], axis=1) > 0
    m = month_index(np.array([d0 + 14]))[0]
    z = s.z_month[users, min(m, s.z_month.shape[1] - 1)]
    p_day = 1 / (1 + np.exp(-(0.25 + 1.15 * z)))
    p = np.repeat(p_day[:, None], nd, axis=1)
    # Listening fades in the two weeks before a decided departure.
    lv = hist.leaves[(hist.leaves.day > d0 - 1) & (hist.leaves.day < d0 + nd + 14)]
    lv = lv[np.isin(lv.uid.to_numpy(), users)]
    if len(lv):
        row = np.searchsorted(users, lv.uid.to_numpy())
        days = np.arange(nd)[None, :] + d0
        fade = (days >= lv.day.to_numpy()[:, None] - 14) & (days < lv.day.to_numpy()[:, None])
        p[row] = np.where(fade, p[row] * LEAVE_FADE, p[row])
    listen = covered & (rng.random(covered.shape) < p) & keep[:, None]
    ui, di = np.nonzero(listen)
    uid = users[ui]
    n = ui.size
    zz = z[ui]
    activity = np.exp(2.55 + 0.6 * zz + rng.normal(0, 0.8, n))
    tail = rng.random(n) < 1e-4  # the heavy right tail (bots, looping players)
    activity[tail] *= rng.pareto(1.3, int(tail.sum())) * 6 + 3
    user_skip = np.exp(0.45 * rng.standard_normal(users.size))[ui]  # skippers vs full listeners
    num_100 = rng.poisson(activity)
    num_25 = rng.poisson(activity * 0.205 * user_skip)
    num_50 = rng.poisson(activity * 0.050 * user_skip)
    num_75 = rng.poisson(activity * 0.031 * user_skip)
    num_985 = rng.poisson(activity * 0.036 * user_skip)
    plays = num_100 + num_25 + num_50 + num_75 + num_985
    num_25 = np.where(plays == 0, 1, num_25)
    plays = np.maximum(plays, 1)
    q_unq = np.clip(rng.beta(6, 2.2, n), 0.05, 1.0)
    num_unq = 1 + rng.binomial(plays - 1, q_unq)
    song = 236.0 * np.exp(rng.normal(0, 0.12, n))
    total_secs = song * (num_100 + 0.985 * num_985 + 0.75 * num_75 + 0.5 * num_50 + 0.15 * num_25)
    total_secs = np.maximum(np.round(total_secs + rng.random(n), 3), 0.001)
    out = pd.DataFrame(
        {
            "uid": uid,
            "date": yyyymmdd(d0 + di),
            "num_25": num_25,
            "num_50": num_50,
            "num_75": num_75,
            "num_985": num_985,
            "num_100": num_100,
            "num_unq": num_unq,
            "total_secs": total_secs,
        }
    )
    return out


# ---------------------------------------------------------------------------------------------
@dataclass
class TwinSummary:
    scale: str
    seed: int
    rows: dict
    churn: dict
    seconds: float


def _members(rng, s: Subscribers, n_extra: int) -> pd.DataFrame:
    """members_v3: subscribers (minus the ~12 % missing) plus members who never subscribed."""
    keep = ~s.no_member
    sub = pd.DataFrame(
        {
            "uid": np.flatnonzero(keep),
            "city": s.city[keep],
            "bd": s.age[keep],
            "gender": s.gender[keep],
            "registered_via": s.via[keep],
            "reg": s.registration[keep],
        }
    )
    known = rng.random(n_extra) < 0.22
    via = _draw(rng, VIA_EXTRA, n_extra)
    age = np.where(known & (rng.random(n_extra) < 0.97), np.round(14 + rng.gamma(2.2, 6.5, n_extra)), 0)
    g = np.where(known, np.where(rng.random(n_extra) < 0.52, 1, 2), 0)
    city = np.where(
        known, _draw(rng, CITY_KNOWN, n_extra), np.where(rng.random(n_extra) < 0.93, 1, _draw(rng, CITY_KNOWN, n_extra))
    )
    # Registration rising to 2016, a few in 2017 (FACTS.md section 1).
    years = rng.choice(
        np.arange(2004, 2018),
        n_extra,
        p=_table(
            {
                2004: 1,
                2005: 1.5,
                2006: 1.7,
                2007: 2.2,
                2008: 2,
                2009: 2,
                2010: 3.2,
                2011: 5,
                2012: 6,
                2013: 8,
                2014: 9,
                2015: 14,
                2016: 18,
                2017: 2.5,
            }
        )[1],
    )
    reg = np.array([day(np.datetime64(f"{y}-01-01")) for y in range(2004, 2018)])[years - 2004]
    reg = reg + rng.integers(0, 365, n_extra)
    reg = np.minimum(reg, day(np.datetime64("2017-04-29")))
    extra = pd.DataFrame(
        {
            "uid": s.start.size + np.arange(n_extra),
            "city": city,
            "bd": age.astype(np.int32),
            "gender": g,
            "registered_via": via,
            "reg": reg.astype(np.int32),
        }
    )
    m = pd.concat([sub, extra], ignore_index=True)
    m["bd"] = m["bd"].astype(np.int64)
    # bd outliers: negative values and birth years typed as ages (−7168 … 2016), ~0.4 % of rows.
    u = rng.random(len(m))
    odd = u < 0.004
    m.loc[odd, "bd"] = np.where(
        rng.random(int(odd.sum())) < 0.5, -rng.integers(1, 7169, int(odd.sum())), rng.integers(71, 2017, int(odd.sum()))
    )
    m["gender"] = pd.Series(np.array([None, "male", "female"], dtype=object)[m.gender.to_numpy()], dtype=object)
    m["registration_init_time"] = yyyymmdd(m.pop("reg").to_numpy())
    return m.iloc[rng.permutation(len(m))].reset_index(drop=True)


def _write_csv(df: pd.DataFrame, path: Path, ids: pa.Array) -> None:
    """Plain CSV like Kaggle's: header, no index, no quoting, empty field for missing values.

    Frames carry an integer ``uid``; the 44-character msno is attached as an Arrow dictionary
    (each id stored once), which keeps full-scale writes within memory."""
    import duckdb

    cols = {"msno": pa.DictionaryArray.from_arrays(pa.array(df["uid"].to_numpy(np.int32)), ids)}
    for c in df.columns.drop("uid"):
        cols[c] = pa.array(df[c].to_numpy(), from_pandas=True) if df[c].dtype != object else pa.array(df[c].tolist())
    table = pa.table(cols)
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        con.register("df", table)
        con.execute(f"COPY (SELECT * FROM df) TO '{path.as_posix()}' (HEADER, DELIMITER ',', QUOTE '', NULLSTR '')")
    finally:
        con.close()


LABEL_RULES = ("as released", "rule", "rebased")
_MARCH_RULES = {"as released": churn_labels_as_released, "rule": churn_labels, "rebased": churn_labels_rebased}


def _labels(rule, tx: pd.DataFrame, month: int) -> pd.DataFrame:
    lab = rule(tx, 2017, month)
    return pd.DataFrame({"uid": lab.msno.to_numpy(np.int32), "is_churn": lab.is_churn.to_numpy()})


def label_variant_file(rule: str) -> str:
    """Where a twin keeps March's labels under another rule (the same members and files; only
    train_v2.csv's labels differ): the labeller experiment of notebooks/20 reads them."""
    return f"label_variants/train_v2.{rule.replace(' ', '-')}.csv"


def generate(
    out_dir: str | Path, scale: str = "quick", seed: int = 2017, progress: bool = True, label_rule: str = "as released"
) -> TwinSummary:
    """Simulate the twin and write the Kaggle files into ``out_dir``; returns a summary.

    ``label_rule="as released"`` (the default) labels March (train_v2.csv) the way the real release
    was labelled (:func:`churn_labels_as_released`: expiry standing at the end of March, renewals
    observed to 2017-05-31, none → churn) and February (train.csv) with the organisers' published
    rule, which reproduces it; ``"rule"`` labels both months with the published rule and
    ``"rebased"`` labels March with :func:`churn_labels_rebased`, experiments that notebooks/20
    keeps to show why the real train_v2 churners contradict the published rule.

    Files are written as soon as they are complete and freed, month by month for the logs, so
    the full scale (18 M March log rows) stays within a few GB."""
    if label_rule not in LABEL_RULES:
        raise ValueError(f"label_rule must be one of {LABEL_RULES}")
    t0 = time.perf_counter()
    sc = SCALES[scale]
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    bar = tqdm(total=6 + sc.v1_log_months + 1, desc=f"twin {scale}", disable=not progress)

    subs = _subscribers(rng, sc.subscribers)
    hist = _simulate(rng, subs, progress=False)
    tx = _add_oddities(rng, hist.tx)
    hist.tx = None
    ids = msno_strings(rng, sc.subscribers)
    bar.update(1)

    # Labels from the transactions themselves (April to June included, as the organisers had them).
    # Rows before December 2016 cannot change a February or March label.
    recent = tx[tx.tdate >= day(np.datetime64("2016-12-01"))]
    tx_lab = pd.DataFrame(
        {
            "msno": recent.uid.to_numpy(),
            "transaction_date": EPOCH + recent.tdate.to_numpy().astype("timedelta64[D]"),
            "membership_expire_date": EPOCH + recent.expire.to_numpy().astype("timedelta64[D]"),
            "is_cancel": recent.cancel.to_numpy(),
        }
    )
    labelled = {
        "train.csv": _labels(churn_labels, tx_lab, 2),  # February: the published rule, whatever the choice
        "train_v2.csv": _labels(_MARCH_RULES[label_rule], tx_lab, 3),
    }
    # March under the other rules, for the same simulated members (no random draw: the files stay as they are)
    variants = {rule: _labels(fn, tx_lab, 3) for rule, fn in _MARCH_RULES.items() if rule != label_rule}
    churn = {name: float(df.is_churn.mean()) for name, df in labelled.items()}
    del tx_lab, recent
    n_extra = max(int(sc.member_ratio * len(labelled["train_v2.csv"])) - int((~subs.no_member).sum()), 0)
    all_ids = pa.array(np.concatenate([ids, msno_strings(rng, n_extra)]))
    del ids

    def write(name: str, df: pd.DataFrame) -> None:
        _write_csv(df, out / name, all_ids)
        rows[name] = len(df)
        bar.update(1)

    for name, df in labelled.items():
        write(name, df)
    (out / "label_variants").mkdir(exist_ok=True)
    for rule, df in variants.items():
        _write_csv(df, out / label_variant_file(rule), all_ids)

    def tx_frame(part: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "uid": part.uid.to_numpy(),
                "payment_method_id": part.method.to_numpy(),
                "payment_plan_days": part.plan.to_numpy(),
                "plan_list_price": part.price.to_numpy(),
                "actual_amount_paid": part.paid.to_numpy(),
                "is_auto_renew": part.auto.to_numpy(),
                "transaction_date": yyyymmdd(part.tdate.to_numpy()),
                "membership_expire_date": yyyymmdd(part.expire.to_numpy()),
                "is_cancel": part.cancel.to_numpy(),
            }
        )

    tx = tx.iloc[rng.permutation(len(tx))].reset_index(drop=True)  # the real files are unordered
    in_v1 = (tx.tdate >= day(FILES_START)) & (tx.tdate < day(V1_END))
    in_march = (tx.tdate >= day(V2_START)) & (tx.tdate < day(V2_END))
    # transactions_v2 also carries, for members still covered on 2017-03-01 without a March row,
    # the row that defines their running membership (hence its dates back to 2015): always when
    # it runs past March, for a share of those ending in March.
    prior = tx[(tx.tdate < day(V2_START)) & (tx.tdate >= day(FILES_START)) & (tx.cancel == 0)]
    prior = prior.sort_values(["uid", "tdate", "expire"], kind="mergesort").groupby("uid").tail(1)
    prior = prior[(prior.expire >= day(V2_START)) & ~prior.uid.isin(tx.uid[in_march])]
    prior = prior[(prior.expire >= day(V2_END)) | (rng.random(len(prior)) < PRIOR_ROW_SHARE)]
    write("transactions.csv", tx_frame(tx[in_v1]))
    legacy = _legacy_rows(rng, tx[in_march], labelled["train_v2.csv"].uid.to_numpy(), subs.via)
    write("transactions_v2.csv", tx_frame(pd.concat([tx[in_march], prior, legacy]).sort_index(kind="mergesort")))
    del tx, prior, legacy
    write("members_v3.csv", _members(rng, subs, n_extra))

    # Listening logs, one month at a time; user_logs.csv is the v1 months concatenated.
    months = [np.datetime64(V2_START.astype("datetime64[M]") - k, "D") for k in range(sc.v1_log_months, 0, -1)]
    v1_path = out / "user_logs.csv"
    rows["user_logs.csv"] = 0
    with open(v1_path, "wb") as v1:
        for k, mstart in enumerate(months + [V2_START]):
            logs = _logs_for_month(rng, subs, hist, np.datetime64(mstart, "D"))
            logs = logs.iloc[rng.permutation(len(logs))].reset_index(drop=True)
            if mstart == V2_START:
                write("user_logs_v2.csv", logs)
                continue
            neg = rng.random(len(logs)) < 1.6e-4  # v1 negative total_secs, down to about −9.2e15
            logs.loc[neg, "total_secs"] = -np.round(9.2233720368547e15 * rng.random(int(neg.sum())) ** 6, 3)
            logs = pd.concat([logs, logs.iloc[np.flatnonzero(rng.random(len(logs)) < 1e-4)]], ignore_index=True)
            part = out / f".user_logs.part{k}.csv"
            _write_csv(logs, part, all_ids)
            with open(part, "rb") as f:
                if k > 0:
                    f.readline()  # one header only
                shutil.copyfileobj(f, v1, 1 << 24)
            part.unlink()
            rows["user_logs.csv"] += len(logs)
            bar.update(1)
            del logs
    bar.close()

    summary = TwinSummary(scale=scale, seed=seed, rows=rows, churn=churn, seconds=round(time.perf_counter() - t0, 2))
    # Deterministic metadata only (no timings), so a seed gives identical bytes in every file.
    meta = {
        "generator_version": TWIN_VERSION,
        "scale": scale,
        "seed": seed,
        "label_rule": label_rule,
        "rows": rows,
        "churn": churn,
        "label_variants": {rule: label_variant_file(rule) for rule in variants},
        "scale_parameters": asdict(sc),
    }
    (out / "twin.json").write_text(json.dumps(meta, indent=2))
    return summary
