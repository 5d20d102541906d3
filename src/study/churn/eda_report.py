"""The EDA report's steps and texts (notebook 10): samples of the raw tables with their outliers,
churn by category, correlations, churners against stayers, the ANOVA ranking and the conclusions
in numbers. The statistics themselves are in :mod:`study.churn.eda`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from study.churn import eda, features
from study.churn.data import RawSource

# the raw tables, with the categorical columns drawn as counts
TABLES = {
    "train_v2.csv": [],
    "members_v3.csv": ["city", "gender", "registered_via"],
    "transactions_v2.csv": ["payment_method_id", "payment_plan_days", "is_auto_renew", "is_cancel"],
    "user_logs_v2.csv": [],
}
# the numeric columns whose |z| > 3 outliers are counted
NUMERIC = {
    "members_v3.csv": ["bd"],
    "transactions_v2.csv": ["payment_plan_days", "plan_list_price", "actual_amount_paid"],
    "user_logs_v2.csv": features.LOG_METRICS,
}
CATEGORIES = [
    "is_auto_renew",
    "is_cancel",
    "payment_plan_days",
    "payment_method_id",
    "registered_via",
    "city",
    "gender",
    "age_band",
]
SHOWN_CATEGORIES = ["is_auto_renew", "is_cancel", "registered_via", "age_band"]
TESTED = [f"{m}Sum" for m in features.LOG_METRICS] + [
    "count",
    "transaction_count",
    "payment_plan_days",
    "plan_list_price",
    "price_per_day",
    "days_fidelity",
]


@dataclass
class RawTables:
    sizes: dict[str, tuple[int, int]]
    samples: dict[str, pd.DataFrame]
    outliers: dict[str, pd.DataFrame]

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"table": n, "rows": r, "columns": c, "rows sampled": len(self.samples[n])}
                for n, (r, c) in self.sizes.items()
            ]
        )


def raw_tables(source: RawSource, sample_size: int, seed: int) -> RawTables:
    """Each raw table's size and a reproducible sample, with the outliers of its numeric columns."""
    sizes = {name: eda.table_size(source, name) for name in TABLES}
    samples = {name: eda.sample_table(source, name, sample_size, seed) for name in TABLES}
    outliers = {name: eda.zscore_outliers(samples[name], cols)[0] for name, cols in NUMERIC.items()}
    return RawTables(sizes, samples, outliers)


def category_panels(raw: RawTables) -> dict[str, pd.DataFrame]:
    return {
        f"{name.removesuffix('.csv')}: {c}": eda.top_counts(raw.samples[name], c)
        for name, cols in TABLES.items()
        for c in cols
    }


def raw_conclusion(raw: RawTables) -> str:
    logs = raw.outliers["user_logs_v2.csv"]
    mem, tx = raw.samples["members_v3.csv"], raw.samples["transactions_v2.csv"]
    num_100 = logs.set_index("column").loc["num_100"]
    return (
        f"**Conclusion (raw tables).** The label file holds {raw.sizes['train_v2.csv'][0]:,} users; "
        f"{100 * mem.gender.isna().mean():.1f} % of members have no gender and {100 * (mem.bd == 0).mean():.1f} % "
        f"have bd = 0; {100 * (tx.payment_plan_days == 30).mean():.1f} % of transactions are 30-day plans and "
        f"{100 * tx.is_auto_renew.mean():.1f} % auto-renew. In the daily logs, the |z| > 3 rule replaces "
        f"{logs['share %'].mean():.2f} % of cells on average ({int(logs['outlier cells'].sum()):,} cells in the "
        f"sample), all in the upper tail ({int(logs['upper tail'].sum()):,}); num_100 drops from a maximum of "
        f"{num_100['max before']:,.0f} to {num_100['max after']:,.0f}."
    )


def with_age_band(users: pd.DataFrame) -> pd.DataFrame:
    return users.assign(age_band=eda.age_band(users.bd))


def churn_by_category(users: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {c: eda.churn_by(users, c, min_users=20) for c in CATEGORIES}


def _rate(by: dict, column: str, value) -> float:
    return by[column].set_index(column).loc[value, "churn"]


def category_conclusion(by: dict[str, pd.DataFrame]) -> str:
    age = by["age_band"].set_index("age_band").churn
    return (
        f"**Conclusion (churn by category).** Churn is {_rate(by, 'is_auto_renew', 0):.1%} without auto-renew vs "
        f"{_rate(by, 'is_auto_renew', 1):.1%} with it (real data: 36 % vs 8 %), {_rate(by, 'is_cancel', 1):.1%} after a "
        f"cancellation vs {_rate(by, 'is_cancel', 0):.1%} (real: 59 % vs 8 %); by channel it ranges from "
        f"{by['registered_via'].churn.min():.1%} to {by['registered_via'].churn.max():.1%}; by age band from "
        f"{age.min():.1%} ({age.idxmin()}) to {age.max():.1%} ({age.idxmax()}; real: 13–15 → 30–41 %, unknown → 5 %)."
    )


@dataclass
class Correlations:
    matrix: pd.DataFrame
    pairs: pd.DataFrame
    with_label: pd.Series

    def figure(self) -> go.Figure:
        return px.imshow(
            self.matrix,
            color_continuous_scale="RdBu_r",
            zmin=-1,
            zmax=1,
            title="Pearson correlations (per-user table)",
            width=900,
            height=900,
        )

    def sentence(self) -> str:
        p, w = self.pairs, self.with_label
        return (
            f"**Conclusion (correlations).** The strongest pair is {p.a[0]} ~ {p.b[0]} (r = {p.r[0]:.2f}); "
            f"the feature most correlated with churn is {w.index[0]} (r = {w.iloc[0]:.2f})."
        )


def correlations(users: pd.DataFrame) -> Correlations:
    numeric = [c for c in users.columns if c not in ("msno", "is_churn") and pd.api.types.is_numeric_dtype(users[c])]
    corr = eda.correlations(users, numeric + ["is_churn"])
    pairs = eda.strongest_pairs(corr.drop(index="is_churn", columns="is_churn"))
    with_label = corr["is_churn"].drop("is_churn").sort_values(key=np.abs, ascending=False).head(8)
    return Correlations(corr, pairs, with_label.rename("r with is_churn"))


def churner_tests(users: pd.DataFrame) -> pd.DataFrame:
    return eda.churn_tests(users, TESTED)


def tests_conclusion(tests: pd.DataFrame) -> str:
    t = tests.set_index("column").loc["total_secsSum"]
    return (
        f"**Conclusion (tests).** Churners listen {t['mean churners']:,.0f} s in March vs {t['mean stayers']:,.0f} s "
        f"for stayers (Cohen d = {t['Cohen d']:.2f}, Welch p = {t['p (t)']:.1e}; real data: 113 k vs 127 k s). The "
        f"largest effect is on {tests.column[0]} (d = {tests['Cohen d'][0]:.2f}, rank-biserial r = "
        f"{tests['rank-biserial r'][0]:.2f})."
    )


def anova(users: pd.DataFrame) -> pd.DataFrame:
    """ANOVA F of each column of the original study's model matrix against churn."""
    return eda.anova_ranking(features.original_model_matrix(users.drop(columns=["age_band"])), users.is_churn)


def anova_figure(ranking: pd.DataFrame) -> go.Figure:
    return px.bar(
        ranking.head(20), x="feature", y="F", log_y=True, title="ANOVA F of each feature against churn (top 20)"
    )


def conclusions(users: pd.DataFrame, raw: RawTables, by: dict, tests: pd.DataFrame, ranking: pd.DataFrame) -> str:
    logs = raw.outliers["user_logs_v2.csv"]
    d = tests.set_index("column").loc["total_secsSum", "Cohen d"]
    lines = [
        f"{len(users):,} labelled users after the original study's inner joins, churn {users.is_churn.mean():.2%}.",
        f"Auto-renew and cancellation dominate: churn {_rate(by, 'is_auto_renew', 0):.1%} vs "
        f"{_rate(by, 'is_auto_renew', 1):.1%} by auto-renew, {_rate(by, 'is_cancel', 1):.1%} vs "
        f"{_rate(by, 'is_cancel', 0):.1%} by cancellation.",
        f"Top three ANOVA features: {', '.join(ranking.feature[:3])} "
        f"(F = {ranking.F[0]:,.0f}, {ranking.F[1]:,.0f}, {ranking.F[2]:,.0f}).",
        f"Listening differs modestly: Cohen d of total listening = {d:.2f}.",
        f"The |z| > 3 rule touches {logs['share %'].mean():.2f} % of log cells, upper tail only.",
    ]
    return "\n".join(f"- {line}" for line in lines)
