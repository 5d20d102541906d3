"""Exploratory statistics of the raw tables and the per-user table (notebooks/10_eda).

Each function returns a tidy frame the notebook displays and plots; the numbers in the
notebook's conclusions come from these frames, never typed by hand.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.feature_selection import f_classif

from study.churn import features
from study.churn.data import FILES, RawSource, read_sql
from study.churn.datacard import connect


def sample_table(source: RawSource, name: str, n: int, seed: int = 2017) -> pd.DataFrame:
    """A reproducible random sample of a raw file (reservoir sampling in DuckDB, out of core)."""
    con = connect(source)
    try:
        con.execute("SET threads TO 1")  # DuckDB's REPEATABLE sample is reproducible single-threaded only
        kind = FILES[name]
        return con.execute(
            f"SELECT * FROM {read_sql(source.file(name), kind)} "
            f"USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed)})"
        ).df()
    finally:
        con.close()


def table_size(source: RawSource, name: str) -> tuple[int, int]:
    con = connect(source)
    try:
        rows = con.execute(f"SELECT count(*) FROM {name.removesuffix('.csv')}").fetchone()[0]
    finally:
        con.close()
    return int(rows), len(pd.read_csv(source.file(name), nrows=0).columns)


def overview(df: pd.DataFrame) -> pd.DataFrame:
    """Per column: dtype, missing count and share, distinct values, min, median, max."""
    rows = []
    for c in df.columns:
        s = df[c]
        num = pd.api.types.is_numeric_dtype(s)
        rows.append(
            {
                "column": c,
                "dtype": str(s.dtype),
                "missing": int(s.isna().sum()),
                "missing %": 100 * s.isna().mean(),
                "distinct": int(s.nunique()),
                "min": s.min() if num else None,
                "median": s.median() if num else None,
                "max": s.max() if num else None,
            }
        )
    return pd.DataFrame(rows)


def zscore_outliers(df: pd.DataFrame, columns, limit: float = 3.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The original study's rule: cells with |z| > limit (population sd) replaced by the median of
    the column's other cells. Returns (counts per column, capped copy)."""
    capped = df.copy()
    rows = []
    for c in columns:
        x = df[c].astype("float64")
        capped[c], out = features.cap_outliers(x, limit)
        med = x[~out].median()
        rows.append(
            {
                "column": c,
                "outlier cells": int(out.sum()),
                "share %": 100 * out.mean(),
                "upper tail": int((out & (x > x.mean())).sum()),
                "replacement (median)": med,
                "max before": x.max(),
                "max after": capped[c].max(),
            }
        )
    return pd.DataFrame(rows), capped


def wilson(k: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion k/n (well-behaved for small n and rates near 0 or 1)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    p = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def top_counts(df: pd.DataFrame, column: str, top: int = 15) -> pd.DataFrame:
    """Rows per value of ``column`` (as text, missing values included), most frequent first."""
    return df[column].astype(str).value_counts().head(top).rename_axis(column).reset_index(name="rows")


def churn_by(
    df: pd.DataFrame, column: str, label: str = "is_churn", min_users: int = 1, top: int | None = 15
) -> pd.DataFrame:
    """Churn rate per category with its 95 % Wilson interval, most frequent categories first."""
    g = df.groupby(column, dropna=False)[label].agg(users="size", churners="sum").reset_index()
    g = g[g.users >= min_users].sort_values("users", ascending=False)
    if top:
        g = g.head(top)
    g["churn"] = g.churners / g.users
    g["ci low"], g["ci high"] = wilson(g.churners.to_numpy(), g.users.to_numpy())
    return g.reset_index(drop=True)


def churn_tests(df: pd.DataFrame, columns, label: str = "is_churn") -> pd.DataFrame:
    """Churners vs stayers per numeric column: Welch t-test with Cohen's d, Mann-Whitney U with
    the rank-biserial correlation (effect sizes, since with many users every p is tiny)."""
    y = df[label].to_numpy() == 1
    rows = []
    for c in columns:
        a, b = df.loc[y, c].astype(float).to_numpy(), df.loc[~y, c].astype(float).to_numpy()
        with warnings.catch_warnings():  # near-constant columns: the statistic is still reported
            warnings.simplefilter("ignore", RuntimeWarning)
            t, p_t = stats.ttest_ind(a, b, equal_var=False)
        pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
        u, p_u = stats.mannwhitneyu(a, b, alternative="two-sided")
        rows.append(
            {
                "column": c,
                "mean churners": a.mean(),
                "mean stayers": b.mean(),
                "Welch t": t,
                "p (t)": p_t,
                "Cohen d": (a.mean() - b.mean()) / pooled if pooled > 0 else 0.0,
                "Mann-Whitney U": u,
                "p (U)": p_u,
                "rank-biserial r": 1 - 2 * u / (len(a) * len(b)),
            }
        )
    return pd.DataFrame(rows).sort_values("Cohen d", key=np.abs, ascending=False).reset_index(drop=True)


def anova_ranking(x: pd.DataFrame, y) -> pd.DataFrame:
    """One-way ANOVA F of each feature against the label (sklearn's f_classif), highest first."""
    x = x.fillna(0)
    x = x.loc[:, x.nunique() > 1]  # constant columns (absent categories) carry no F
    f, p = f_classif(x, y)
    return (
        pd.DataFrame({"feature": x.columns, "F": f, "p": p})
        .sort_values("F", ascending=False, na_position="last")
        .reset_index(drop=True)
    )


def correlations(df: pd.DataFrame, columns) -> pd.DataFrame:
    return df[list(columns)].astype(float).corr(method="pearson")


def strongest_pairs(corr: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    c = corr.where(np.triu(np.ones(corr.shape, bool), k=1)).stack()
    c = c.reindex(c.abs().sort_values(ascending=False).index).head(n)
    return c.rename("r").reset_index().rename(columns={"level_0": "a", "level_1": "b"})


AGE_BANDS = ([-2, 0, 15, 19, 24, 34, 44, 70], ["unknown", "≤15", "16–19", "20–24", "25–34", "35–44", "45+"])


def age_band(bd: pd.Series) -> pd.Series:
    """Age bands of the cleaned bd (−1 = unknown), matching the real data's churn drivers (13–15, 16–19 …)."""
    edges, labels = AGE_BANDS
    return pd.cut(bd, edges, labels=labels).astype(str)
