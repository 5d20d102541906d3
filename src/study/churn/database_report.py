"""The database report's steps and texts (notebook 40): both exports timed, the round trip from
SQL checked, a re-run shown to change nothing, the month queries timed, the conclusions."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from study.churn import database as db
from study.churn.data import RawSource


@dataclass
class Exports:
    users: pd.DataFrame
    app_counts: dict
    analytic_counts: dict
    app_seconds: float
    analytic_seconds: float
    fraction: float

    def table(self) -> pd.DataFrame:
        both = {"application rows": pd.Series(self.app_counts), "analytic rows": pd.Series(self.analytic_counts)}
        return pd.DataFrame(both).fillna(0).astype(int)

    def sentence(self) -> str:
        return (
            f"{len(self.users):,} test users (6 % of the original-recipe users, split by user, seed 40). "
            f"Application: {sum(self.app_counts.values()):,} rows in {self.app_seconds:.1f} s; analytic "
            f"({self.fraction:g} sample): {sum(self.analytic_counts.values()):,} rows in {self.analytic_seconds:.1f} s "
            "(this includes computing the cached feature frames)."
        )


def export_both(source: RawSource, app: str, analytic: str, fraction: float) -> Exports:
    """The application database (the held-out test users) and the analytic one (a stratified sample)."""
    users = db.test_users(source)
    t0 = time.perf_counter()
    app_counts = db.export_application(source, app, users=users)
    t1 = time.perf_counter()
    analytic_counts = db.export_analytic(source, analytic, fraction=fraction)
    return Exports(users, app_counts, analytic_counts, t1 - t0, time.perf_counter() - t1, fraction)


def diagrams() -> str:
    return "\n\n".join(
        f"**{name} database**\n```mermaid\n{db.er_diagram(meta)}\n```"
        for name, meta in (("Analytic", db.an_meta), ("Application", db.app_meta))
    )


def row_counts(app: str, analytic: str) -> pd.DataFrame:
    counts = db.row_counts(app).merge(
        db.row_counts(analytic, analytic=True), on="table", how="outer", suffixes=(" (application)", " (analytic)")
    )
    return counts.set_index("table").astype("Int64")


def round_trip(source: RawSource, users: pd.DataFrame, app: str) -> pd.DataFrame:
    """The frames rebuilt from SQL against those built from the raw files; stops the report when
    any differs (the table says which)."""
    checks = db.verify_round_trip(source, users, app)
    equal = checks.filter(like="=").fillna(True)
    checks.attrs["equal"] = int(equal.all(axis=1).sum())
    if not equal.all().all():
        raise AssertionError(f"a round trip differs:\n{checks.to_string()}")
    return checks


def month_latency(app: str, repeats: int = 5) -> pd.DataFrame:
    """Median time from a month query to the feature frame, per month and recipe."""
    rows = []
    original_months = db.available_months(app, "original")
    for month in db.available_months(app):
        for recipe in ("pit", "original"):
            if recipe == "original" and month not in original_months:
                continue
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                frame = db.month_frame(month, app, recipe)
                times.append(time.perf_counter() - t0)
            rows.append(
                {"month": month, "recipe": recipe, "users": len(frame), "median ms": 1000 * pd.Series(times).median()}
            )
    return pd.DataFrame(rows)


def conclusions(exports: Exports, checks: pd.DataFrame, latency: pd.DataFrame, app: str) -> str:
    a, n = exports.app_counts, exports.analytic_counts
    lines = [
        f"Application database: {len(exports.users):,} test users, {a['transactions']:,} transactions, {a['logs']:,} "
        f"log rows, {a['features_pit']:,} point-in-time rows for {len(db.PIT_MONTHS)} months; written in "
        f"{exports.app_seconds:.1f} s as one transaction (that a second export leaves the same content is a test, "
        "`test_export_twice_gives_the_same_content`, not rerun here).",
        f"Analytic database: a {exports.fraction:g} stratified sample, {n['user']:,} users, {n['logs']:,} log rows, "
        f"{n['time_save']:,} dates in the date dimension.",
        f"Round trip: {checks.attrs['equal']} of {len(checks)} month × recipe checks equal, dtypes included.",
        f"Month query → frame: median {latency['median ms'].median():.1f} ms (max {latency['median ms'].max():.1f} ms) "
        f"for up to {latency.users.max():,} users on `{db.backend_name(app)}` (the original study: 2.1–5.5 s per request).",
    ]
    return "\n".join(f"- {line}" for line in lines)
