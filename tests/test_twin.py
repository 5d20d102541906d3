"""The KKBOX twin: same loader as real files, labels derived by the rule, determinism, calibration."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest

from study.churn import data, datacard, facts
from study.churn.labels import churn_labels
from study.churn.twin import generate, label_variant_file, msno_strings


def digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.csv"))}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, "tiny", seed=7, progress=False)
    generate(b, "tiny", seed=7, progress=False)
    generate(c, "tiny", seed=8, progress=False)
    da, db, dc = digest(a), digest(b), digest(c)
    assert set(da) == set(data.FILES)
    assert da == db
    assert da["train_v2.csv"] != dc["train_v2.csv"]
    assert (a / "twin.json").read_bytes() == (b / "twin.json").read_bytes()


def test_msno_are_44_character_base64_and_distinct():
    ids = msno_strings(np.random.default_rng(0), 5000)
    assert len(set(ids)) == 5000
    assert all(re.fullmatch(data.MSNO_PATTERN, s) for s in ids)
    assert len({s[10:22] for s in ids}) == 5000  # the original study's 12-character key is unique


def test_every_twin_file_loads_through_the_real_file_loader(quick_source):
    expected = {"train": "int64", "members": "int64", "transactions": "int64", "user_logs": "float64"}
    for name, kind in data.FILES.items():
        df = data.load(quick_source, name)
        assert list(df.columns) == list(data.COLUMNS[kind])
        assert len(df) > 0
        last = df.columns[-1]
        assert str(df[last].dtype) == expected[kind], (name, df.dtypes)


def test_raw_files_have_the_kaggle_header_and_yyyymmdd_dates(quick_source):
    head = quick_source.file("transactions_v2.csv").read_text().splitlines()[:2]
    assert head[0] == ",".join(data.COLUMNS["transactions"])
    fields = head[1].split(",")
    assert re.fullmatch(r"20\d{6}", fields[6]) and re.fullmatch(r"\d{8}", fields[7])
    members = quick_source.file("members_v3.csv").read_text().splitlines()
    assert any(line.split(",")[3] == "" for line in members[1:200])  # empty gender, not "nan"


def _both_transactions(source) -> pd.DataFrame:
    return pd.concat([data.load(source, "transactions.csv"), data.load(source, "transactions_v2.csv")])


def test_february_labels_are_recomputed_exactly_from_the_released_transactions(quick_source):
    """train.csv's outcome window ends in March, so the released files determine it (FACTS.md §1)."""
    relabel = churn_labels(_both_transactions(quick_source), 2017, 2)[["msno", "is_churn"]]
    train = data.load(quick_source, "train.csv").sort_values("msno").reset_index(drop=True)
    pd.testing.assert_frame_equal(relabel.reset_index(drop=True), train, check_dtype=False)


def test_march_files_contain_the_post_expiry_renewals(quick_source):
    """As in the real v2 files, stayers' renewals dated on or after their March expiry are in
    transactions_v2: the leak the original study's features see."""
    lab = churn_labels(_both_transactions(quick_source), 2017, 3)
    v2 = data.load(quick_source, "transactions_v2.csv")
    v2 = v2[v2.is_cancel == 0].assign(t=data.parse_yyyymmdd(v2.transaction_date))
    after = v2.merge(lab[lab.is_churn == 0], on="msno")
    after = after[after.t >= after.current_expire]
    assert after.msno.nunique() > 0.3 * (lab.is_churn == 0).sum()


def test_churn_rates_land_near_the_real_ones(quick_source):
    """March ≈ 9 %, February ≈ 6.4 %, ≈ 6.4 % after the original study's inner joins.
    Tolerances are about three binomial standard errors at the quick scale (≈ 5 k users)."""
    card = datacard.build(quick_source)
    churn = card.churn.set_index("label set")["churn"]
    assert abs(churn["train_v2.csv (March expiries)"] - 0.0899) < 0.012
    assert abs(churn["train.csv (February expiries)"] - 0.0639) < 0.012
    assert abs(churn["after the original study's inner joins"] - 0.0642) < 0.012
    assert churn["after the original study's inner joins"] < churn["train_v2.csv (March expiries)"]


def test_churn_follows_the_real_drivers(quick_source):
    """Auto-renew, cancellation and payment method move churn as measured on the real data (§2)."""
    tx = data.load(quick_source, "transactions_v2.csv")
    last = tx.sort_values("membership_expire_date").groupby("msno").tail(1)
    df = data.load(quick_source, "train_v2.csv").merge(last, on="msno")
    by_auto = df.groupby("is_auto_renew").is_churn.mean()
    assert by_auto[0] > 3 * by_auto[1]
    by_cancel = df.groupby("is_cancel").is_churn.mean()
    assert by_cancel[1] > 0.4 and by_cancel[0] < 0.1
    m32 = df[df.payment_method_id == 32].is_churn.mean()
    assert m32 > 0.6


def test_marginals_and_oddities_are_at_real_rates(quick_source):
    card = datacard.build(quick_source)
    m = card.marginals.set_index("figure")["ratio to real"]
    assert m.between(0.6, 1.5).all(), m[~m.between(0.6, 1.5)]
    odd = card.oddities.set_index("oddity")["count"]
    assert (odd > 0).all(), odd
    logs = card.logs.set_index("column")
    assert 0.7 < logs.loc["num_100", "mean"] / facts.REAL_LOG_MARGINALS["num_100"][0] < 1.3
    assert 0.7 < logs.loc["total_secs", "q50"] / facts.REAL_LOG_MARGINALS["total_secs"][3] < 1.3


def test_resolve_source_prefers_a_given_folder_and_reports_missing_files(tmp_path, quick_source):
    src = data.resolve_source(quick_source.path)
    assert src.kind == "twin" and src.scale == "quick"
    (tmp_path / "train_v2.csv").write_text("msno,is_churn\n")
    with pytest.raises(data.RawDataError, match="missing raw file"):
        data.resolve_source(tmp_path)


def test_the_label_variants_are_the_same_members_labelled_by_another_rule(tmp_path):
    """What the labeller experiment (notebooks/20) compares: the as-released twin's variant for the
    published rule is exactly the train_v2.csv of a twin labelled by that rule, and back."""
    released, rule = tmp_path / "released", tmp_path / "rule"
    generate(released, "tiny", seed=7, progress=False)
    generate(rule, "tiny", seed=7, progress=False, label_rule="rule")
    assert (released / label_variant_file("rule")).read_bytes() == (rule / "train_v2.csv").read_bytes()
    assert (rule / label_variant_file("as released")).read_bytes() == (released / "train_v2.csv").read_bytes()
    assert (released / "train.csv").read_bytes() == (rule / "train.csv").read_bytes()
    variants = {p.name for p in (released / "label_variants").iterdir()}
    assert variants == {"train_v2.rule.csv", "train_v2.rebased.csv"}
    labels = {r: pd.read_csv(released / label_variant_file(r)) for r in ("rule", "rebased")}
    assert labels["rule"].is_churn.mean() != labels["rebased"].is_churn.mean()
    with pytest.raises(ValueError, match="label_rule"):
        generate(tmp_path / "bad", "tiny", seed=7, progress=False, label_rule="guess")
    assert not (tmp_path / "bad").exists()  # refused before anything is written
