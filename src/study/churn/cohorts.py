"""The held-out test cohorts the dashboard scores: one per expiry month, drawn from that month's
own candidates, and disjoint from every user the saved models were trained on.

Why per month: drawing every month's users from March's test users (as the first version did)
keeps only February candidates who are also March candidates, i.e. who renewed in February, and
the dashboard then showed a February with no churner at all (survivorship). Each month's cohort is
a stratified ``fraction`` of that month's candidates (so its churn rate is the month's); March's is the
original protocol's test split (6 %, seed 40). Both saved models are fitted without any cohort user
(:func:`held_out`): the champion on every month, the original-format model on March.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from study.churn import features
from study.churn.data import RawSource
from study.churn.models import split_users

MONTHS = ("2017-01", "2017-02", "2017-03")
FRACTION = 0.06  # the original protocol's test share


def test_cohorts(
    source: RawSource,
    months=MONTHS,
    fraction: float = FRACTION,
    seed: int = 40,
    original: pd.DataFrame | None = None,
    pit: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """msno (full), month and label of each month's held-out users, sorted (``original``, ``pit``:
    the per-user tables of ``source`` when already built)."""
    from study.churn import products  # notebook 20's tables when current, else built

    quiet = lambda *_: None  # noqa: E731
    original = original if original is not None else products.load(source, "original", log=quiet)
    march_test = set(original.msno[split_users(original, seed=seed) == "test"])
    pit = pit if pit is not None else products.load(source, "pit", months=tuple(months), log=quiet)
    pit = pit[pit.month.isin(months)][["msno", "month", "is_churn"]]
    pit = pit.assign(short=features.short_msno(pit.msno))
    parts = []
    last = max(months)
    for m in months:
        cand = pit[pit.month == m]
        if m == last:
            part = cand[cand.short.isin(march_test)]
        else:  # a stratified sample of ALL the month's candidates: its churn is the month's churn
            n = int(round(fraction * len(cand)))
            if n == 0 or len(cand) <= n:
                part = cand
            else:
                stratify = cand.is_churn if cand.is_churn.value_counts().min() >= 2 else None
                part, _ = train_test_split(cand, train_size=n, stratify=stratify, random_state=seed)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)[["msno", "month", "is_churn"]]
    return out.sort_values(["month", "msno"], kind="mergesort").reset_index(drop=True)


def held_out(
    source: RawSource,
    months=MONTHS,
    seed: int = 40,
    original: pd.DataFrame | None = None,
    pit: pd.DataFrame | None = None,
) -> set[str]:
    """Every cohort user (full msno): the champion is fitted and calibrated without them."""
    return set(test_cohorts(source, months, seed=seed, original=original, pit=pit).msno)
