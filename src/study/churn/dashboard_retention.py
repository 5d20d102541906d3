"""The logic behind the scoring dashboard's Retention and Monitoring tabs (the notebook lays out
widgets and calls these; :mod:`study.churn.dashboard_views` draws). Like :mod:`study.churn.dashboard`:
data out, or a :class:`~study.ui.UserError` sentence."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from study.churn import dashboard as dash
from study.churn import database, evaluation, monitoring, retention, scoring, survival
from study.ui import UserError


# ---------------------------------------------------------------------------------------------
# Retention.
@lru_cache(maxsize=4)
def _curves(db_url: str) -> tuple[int, dict[str, pd.DataFrame]]:
    tx = database.transactions_frame(db_url)
    sp = survival.spells(tx, tx[["msno", "registered_via"]].drop_duplicates("msno"))
    return len(sp), {name: survival.kaplan_meier(sp, by=col, top=4) for name, col in survival.SEGMENTS.items()}


def survival_curves(ctx: dash.Context) -> tuple[int, dict[str, pd.DataFrame]]:
    """(spells, Kaplan–Meier table per segment dimension) of the memberships stored in the
    database, rebuilt once per kernel."""
    try:
        n, curves = _curves(ctx.db_url)
    except database.DatabaseError as exc:
        raise UserError(str(exc)) from None
    if n == 0:
        raise UserError("The database holds no transactions: run `study churn export-db` first.")
    return n, curves


@dataclass
class Retention:
    month: str
    model: str
    revenue: pd.DataFrame  # revenue at risk by band
    plan: retention.Plan

    def download(self) -> pd.DataFrame:
        c = self.plan.contacts
        return c.assign(risk=c.risk.round(4), expected_profit=c.expected_profit.round(2))


def plan_campaign(ctx: dash.Context, year, month, model_name: str, budget, cost, save_rate, value) -> Retention:
    """Revenue at risk of the month's expiring users and the profit-optimal contact list (reasons
    computed for the contacts only)."""
    retention.check_campaign(budget, cost, save_rate, value)  # a sentence before any work
    frame = dash.month_frame(ctx, year, month, model_name)
    scored = dash.score_frame(ctx, frame, model_name, reasons_for=0)
    plan = retention.plan(scored, frame, budget, cost, save_rate, value, model_name)
    if len(plan.contacts):
        chosen = scored.set_index("msno").loc[plan.contacts.msno].reset_index()
        reasons = dash.with_reasons(ctx, chosen, frame, model_name).set_index("msno")
        for c in ("reason_1", "reason_2", "reason_3"):
            plan.contacts[c] = reasons.loc[plan.contacts.msno, c].to_numpy()
    m = f"{int(year):04d}-{int(month):02d}"
    return Retention(m, model_name, retention.revenue_at_risk(scored, frame), plan)


# ---------------------------------------------------------------------------------------------
# Monitoring.
@dataclass
class Monitoring:
    model: str
    reference: str
    data_end: pd.Timestamp
    rows: pd.DataFrame  # the log_monitoring rows of this run

    def summary(self) -> pd.DataFrame:
        """One row per month: the worst input drift, the score's drift, the inputs to watch or
        act on, failing quality checks, ROC AUC and log loss where labelled, the label status."""
        r = self.rows
        out = []
        for m, g in r.groupby("month", sort=True):
            d = g[(g.kind == "drift") & (g.statistic == "psi")]
            inputs, score = d[d.name != "score"], d[d.name == "score"]
            perf = g[g.kind == "performance"].set_index("statistic").value
            out.append({
                "month": m,
                "max input PSI": inputs.value.max(),
                "score PSI": score.value.iloc[0] if len(score) else np.nan,
                "inputs warn": int((inputs.status == "warn").sum()),
                "inputs alert": int((inputs.status == "alert").sum()),
                "quality checks failing": int(((g.kind == "quality") & (g.status == "check")).sum()),
                "ROC AUC": perf.get("ROC AUC", np.nan),
                "log loss": perf.get("log loss", np.nan),
                "labels": g.loc[g.kind == "labels", "status"].iloc[0] if (g.kind == "labels").any() else "",
            })  # fmt: skip
        return pd.DataFrame(out)

    def inputs(self, month: str) -> pd.DataFrame:
        """The drift of each input (and the score) in ``month``: PSI, KS, status, worst first."""
        g = self.rows[(self.rows.month == month) & (self.rows.kind == "drift")]
        t = g.pivot_table(index="name", columns="statistic", values="value", aggfunc="first")
        t["status"] = g[g.statistic == "psi"].set_index("name").status
        return t.sort_values("psi", ascending=False).reset_index()


def monitor(ctx: dash.Context, model_name: str, log: bool = True) -> Monitoring:
    """Every stored month against the reference month (the earliest one the model scores: the
    closest to its training data): input and score drift, data quality, performance where the
    labels are stored; appended to ``log_monitoring`` when ``log``."""
    model = ctx.model(model_name)
    recipe, allowed = scoring.recipe_of(model), scoring.scored_months(model)
    try:
        months = [m for m in database.available_months(ctx.db_url, recipe) if allowed is None or m in allowed]
        frames = {m: database.month_frame(m, ctx.db_url, recipe) for m in months}
    except database.DatabaseError as exc:
        raise UserError(str(exc)) from None
    if not months:
        raise UserError("The database holds no month this model scores: run `study churn export-db` first.")
    reference = months[0]
    # "today" for the label lag: the last day of the latest month stored
    data_end = pd.Timestamp(f"{months[-1]}-01") + pd.offsets.MonthEnd(0)
    inputs = {m: scoring.model_inputs(model, f) for m, f in frames.items()}
    risk = {m: np.asarray(model.predict_proba(x), dtype=float) for m, x in inputs.items()}
    ref = inputs[reference].assign(score=risk[reference])
    numeric = frames[reference].select_dtypes("number").drop(columns=["is_churn"], errors="ignore")
    ranges = {c: (float(numeric[c].min()), float(numeric[c].max())) for c in numeric.columns}
    rows = []
    for m in months:
        cur = inputs[m].assign(score=risk[m])
        for d in monitoring.drift(ref, cur, list(cur.columns)).itertuples():
            rows += [(m, "drift", d.input, "psi", d.psi, d.status), (m, "drift", d.input, "ks", d.ks, d.status)]
        for q in monitoring.quality(frames[m], ranges).itertuples():
            rows.append((m, "quality", q.check, "failing share", q.share, q.status))
        lag = monitoring.label_lag(m, data_end)
        y = frames[m].get("is_churn")
        if y is not None and y.notna().all() and y.nunique() == 2:
            s = evaluation.scores(y.to_numpy(int), risk[m], 0.5)
            rows += [(m, "performance", k, k, float(s[k]), "labelled") for k in ("ROC AUC", "log loss")]
            status = lag if lag == "labelled" else f"stored; in production {lag}"  # the release labelled it early
            rows.append((m, "labels", "labels", "status", np.nan, status))
        else:
            rows.append((m, "labels", "labels", "status", np.nan, lag))
    t = pd.DataFrame(rows, columns=["month", "kind", "name", "statistic", "value", "status"])
    t.insert(0, "model", model_name)
    t.insert(2, "reference_month", reference)
    if log:
        database.log_monitoring_run(t, ctx.db_url)
    return Monitoring(model_name, reference, data_end, t)


def monitoring_history(ctx: dash.Context, model_name: str) -> pd.DataFrame:
    """The stored runs of ``model_name``: per run and month, the score's PSI and the ROC AUC."""
    h = database.monitoring_history(ctx.db_url, model_name)
    if h.empty:
        return h
    keep = ((h.kind == "drift") & (h.name == "score") & (h.statistic == "psi")) | (h.statistic == "ROC AUC")
    h = h[keep].assign(figure=lambda d: np.where(d.statistic == "psi", "score PSI", "ROC AUC"))
    return h.pivot_table(index=["computed_at", "month"], columns="figure", values="value").reset_index()
