"""The per-user datasets report's texts and experiments (notebook 20): the leakage conclusion, the
transfer to real users, the realism summary, the labeller experiment and the conclusions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.express as px
from IPython.display import Markdown

from study import paths
from study.churn import features, realism
from study.churn.data import RawSource

REAL_SAMPLE = paths.SHARED_KKBOX / "processed_sample.csv"


def timed(build, *args, **kwargs) -> tuple[pd.DataFrame, float]:
    """A table and the seconds it took to build."""
    t0 = time.perf_counter()
    table = build(*args, **kwargs)
    return table, time.perf_counter() - t0


def original_summary(original: pd.DataFrame) -> pd.DataFrame:
    same = list(original.columns) == features.PROCESSED_COLUMNS
    return pd.DataFrame(
        [
            {
                "rows": len(original),
                "columns": original.shape[1],
                "churn": original.is_churn.mean(),
                "same columns as the original study's format": same,
            }
        ]
    )


def pit_summary(pit: pd.DataFrame) -> pd.DataFrame:
    return (
        pit.groupby("month")
        .agg(
            users=("msno", "size"),
            churn=("is_churn", "mean"),
            with_logs=("has_logs", "mean"),
            with_member=("has_member", "mean"),
        )
        .reset_index()
    )


def leakage_sentence(audit: pd.DataFrame) -> str:
    exp_orig, exp_pit = audit["one-feature AUC"][2], audit["one-feature AUC"][3]
    return (
        f"**Conclusion (leakage).** On {audit.attrs['users']:,} March users, the latest expiry date of the original recipe alone "
        f"reaches AUC {exp_orig:.3f}; the current expiry known before the cutoff reaches {exp_pit:.3f}. is_cancel: "
        f"{audit['one-feature AUC'][0]:.3f} without the cutoff vs {audit['one-feature AUC'][1]:.3f} with it. "
        "The gap is what the original recipe learns from seeing the renewal; the point-in-time set cannot see it."
    )


def transfer_sentence(transfer: pd.DataFrame) -> str:
    t, target = transfer.iloc[0], realism.TRANSFER_TARGET
    met = t["ROC AUC"] >= target["ROC AUC"] and t["log loss"] <= target["log loss"]
    return (
        f"**Transfer to real users.** Trained on the twin, the original-format model scores the real sample at ROC AUC **{t['ROC AUC']:.3f}**, "
        f"log loss **{t['log loss']:.3f}**, F1 {t['F1']:.3f}, MCC {t['MCC']:.3f} (threshold 0.5); targets AUC ≥ {target['ROC AUC']} and "
        f"log loss ≤ {target['log loss']} ({'met' if met else 'not met'}). "
        f"Real users teach the same recipe AUC {transfer['ROC AUC'][1]:.3f} / log loss {transfer['log loss'][1]:.3f} in cross-validation on this sample."
    )


def realism_sentence(
    fit: realism.Realism, original: pd.DataFrame, real: pd.DataFrame, demographics: pd.DataFrame, transfer: pd.DataFrame
) -> str:
    sig_twin, sig_real = realism.label_signature(original), realism.label_signature(real)
    return (
        f"**Realism.** Median KS over numeric columns: **{fit.median_ks:.3f}** (target ≤ 0.10); median TVD over "
        f"categorical columns: {fit.median_tvd:.3f}. Churn after the joins: twin {fit.churn['twin']:.2%}, real sample "
        f"{fit.churn['real sample']:.2%}. Flagged share of churners: twin {sig_twin['flagged share of churners']:.1%}, real "
        f"{sig_real['flagged share of churners']:.1%}; flagged churn by 31 May {sig_twin['churn, flagged, expiry by the horizon']:.1%} vs "
        f"{sig_real['churn, flagged, expiry by the horizon']:.1%}, after it {sig_twin['churn, flagged, expiry after the horizon']:.1%} vs "
        f"{sig_real['churn, flagged, expiry after the horizon']:.1%}; not flagged {sig_twin['churn, not flagged']:.1%} vs "
        f"{sig_real['churn, not flagged']:.1%}. Demographics: "
        + ", ".join(f"{r.column} {r.statistic} {r.value:.3f}" for r in demographics.itertuples())
        + f" (target ≤ {realism.DEMOGRAPHIC_TARGET}). Transfer: AUC {transfer['ROC AUC'][0]:.3f}, log loss {transfer['log loss'][0]:.3f}. "
        f"What is left is mostly inside the flagged users expiring by 31 May ({sig_real['share flagged, expiry by the horizon']:.0%} of the real "
        f"users, {sig_real['churn, flagged, expiry by the horizon']:.1%} churn): real users tell their churners apart better than the twin "
        "teaches, and the twin's users whose latest row is not such a purchase churn more than the real ones."
    )


def label_sensitivity(
    source, seed: int, original: pd.DataFrame, real: pd.DataFrame, fit: realism.Realism
) -> tuple[pd.DataFrame, str]:
    """The labeller experiment: the twin's March labelled as released, by the organisers' published
    rule and rebased, each scored against the real sample. The variants are the same simulated
    members labelled otherwise (``label_variants/`` beside the twin's files), so only the labels
    differ between the rows."""
    from study.churn.twin import label_variant_file

    missing = [r for r in ("rule", "rebased") if not Path(source.file(label_variant_file(r))).is_file()]
    if missing:
        return pd.DataFrame(), (
            f"The labeller experiment needs March's labels under the other rules ({', '.join(missing)}), "
            f"which the twin in {source.path} does not carry (an earlier generator made it, or it is labelled "
            f"by another rule). "
            f"`study churn synth --scale {source.scale} --seed {seed}` remakes it with them."
        )
    variants = {r: features.original_recipe(source, label_file=label_variant_file(r)) for r in ("rule", "rebased")}
    ceiling = fit.transfer.iloc[1].to_dict()  # the real sample's own cross-validation, already run
    rows = []
    for label, frame in (
        ("as released (default)", original),
        ("organisers' published rule", variants["rule"]),
        ("rebased variant", variants["rebased"]),
    ):
        f = fit if frame is original else realism.evaluate(frame, real, ceiling=ceiling)
        rows.append(
            {
                "March labels": label,
                "twin churn after joins": f.churn["twin"],
                "share of churners with an in-month renewal": realism.rule_inconsistent_churners(frame)["share"],
                "train-on-twin AUC (real)": f.twin_to_real_auc,
                "log loss (real)": f.transfer["log loss"][0],
            }
        )
    rows.append(
        {
            "March labels": "real sample (CV)",
            "twin churn after joins": fit.churn["real sample"],
            "share of churners with an in-month renewal": realism.rule_inconsistent_churners(real)["share"],
            "train-on-twin AUC (real)": fit.transfer["ROC AUC"][1],
            "log loss (real)": fit.transfer["log loss"][1],
        }
    )
    compare = pd.DataFrame(rows)
    auc = compare["train-on-twin AUC (real)"]
    return compare, (
        f"Labelled as released, the twin transfers at AUC {auc[0]:.3f}; with the published rule "
        f"{auc[1]:.3f}, rebased {auc[2]:.3f}."
    )


def conclusions(
    original: pd.DataFrame,
    pit: pd.DataFrame,
    months,
    t_original: float,
    t_pit: float,
    audit: pd.DataFrame,
    transfer: pd.DataFrame | None = None,
    fit: realism.Realism | None = None,
    demographics: pd.DataFrame | None = None,
) -> list[str]:
    exp_orig, exp_pit = audit["one-feature AUC"][2], audit["one-feature AUC"][3]
    lines = [
        f"- Original recipe: {len(original):,} users × {original.shape[1]} columns (the original study's format), churn {original.is_churn.mean():.2%}, built in {t_original:.1f} s.",
        f"- Point-in-time: {len(pit):,} user-months over {', '.join(months)}, {pit.shape[1]} columns, built in {t_pit:.1f} s.",
        f"- Leakage: the expiry date alone gives AUC {exp_orig:.3f} without the cutoff vs {exp_pit:.3f} with it.",
    ]
    if transfer is not None:
        lines.append(
            f"- Transfer: the original-format model trained on the twin scores the real sample at AUC {transfer['ROC AUC'][0]:.3f}, "
            f"log loss {transfer['log loss'][0]:.3f}, F1 {transfer['F1'][0]:.3f}, MCC {transfer['MCC'][0]:.3f} (real-sample CV "
            f"{transfer['ROC AUC'][1]:.3f} / {transfer['log loss'][1]:.3f}; original study on real users {transfer['ROC AUC'][2]:.3f} / {transfer['log loss'][2]:.3f})."
        )
    if fit is not None and demographics is not None:
        lines.append(
            f"- Realism: median KS {fit.median_ks:.3f}, median TVD {fit.median_tvd:.3f}; demographics "
            + ", ".join(f"{r.column} {r.value:.3f}" for r in demographics.itertuples())
            + "."
        )
    return lines


@dataclass
class RealUsers:
    """The twin against the real users of ``../shared`` (or why that comparison is skipped); each
    ``*_view`` is what the report shows for one part, as objects to ``display``."""

    skipped: str = ""
    original: pd.DataFrame | None = None
    real: pd.DataFrame | None = None
    transfer: pd.DataFrame | None = None
    fit: realism.Realism | None = None
    demographics: pd.DataFrame | None = None

    def transfer_view(self) -> list:
        if self.skipped:
            return [Markdown(f"**Skipped:** {self.skipped}.")]
        return [
            self.transfer,
            Markdown(transfer_sentence(self.transfer)),
            self.fit.distances.sort_values("value", ascending=False),
        ]

    def distances_view(self) -> list:
        if self.skipped:
            return []
        return [
            px.bar(
                self.fit.distances.sort_values("value"),
                x="value",
                y="column",
                color="statistic",
                orientation="h",
                title="Twin vs real users: KS (numeric) and TVD (categorical) per column",
                height=800,
            )
        ]

    def labels_view(self) -> list:
        if self.skipped:
            return []
        inconsistent = pd.DataFrame(
            [
                {"data": "real sample", **realism.rule_inconsistent_churners(self.real)},
                {"data": "twin", **realism.rule_inconsistent_churners(self.original)},
            ]
        )
        return [pd.DataFrame([self.fit.churn]), self.fit.transfer, inconsistent]

    def signature_view(self) -> list:
        if self.skipped:
            return []
        return [
            pd.DataFrame(
                {"twin": realism.label_signature(self.original), "real sample": realism.label_signature(self.real)}
            )
        ]

    def demographics_view(self) -> list:
        if self.skipped:
            return []
        both = pd.concat([self.original.assign(data="twin"), self.real.assign(data="real sample")]).query("bd > 0")
        ages = px.histogram(
            both,
            x="bd",
            color="data",
            histnorm="probability",
            barmode="overlay",
            nbins=50,
            title="Known ages of the joined users (bd; −1 = unknown left out)",
            height=350,
        )
        return [self.demographics, ages]

    def summary_view(self) -> list:
        if self.skipped:
            return []
        return [Markdown(realism_sentence(self.fit, self.original, self.real, self.demographics, self.transfer))]

    def labeller_view(self, source: RawSource, seed: int) -> list:
        if self.skipped:
            return []
        compare, sentence = label_sensitivity(source, seed, self.original, self.real, self.fit)
        return [compare, Markdown(sentence)] if len(compare) else [Markdown(sentence)]

    def known(self) -> dict:
        return {} if self.skipped else {"transfer": self.transfer, "fit": self.fit, "demographics": self.demographics}


def against_real_users(source: RawSource, original: pd.DataFrame, seed: int, sample=REAL_SAMPLE) -> RealUsers:
    """Transfer, realism and demographics of the twin against the real sample (skipped, with the
    reason, when the data in use is real or the sample is absent)."""
    if source.kind == "real":
        return RealUsers("the data in use is real")
    if not sample.is_file():
        return RealUsers(f"{sample} is absent (../shared not available)")
    real = features.read_processed(sample)
    fit = realism.evaluate(original, real)
    return RealUsers(
        "",
        original,
        real,
        realism.transfer_original(source, real, seed=seed, original=original),
        fit,
        realism.demographic_distances(original, real),
    )


def headline(original: pd.DataFrame, vs_real: RealUsers) -> dict:
    numbers = {"churn rate": original.is_churn.mean()}
    if not vs_real.skipped:
        numbers["AUC on real users (model trained on the twin)"] = vs_real.transfer["ROC AUC"][0]
    return numbers
