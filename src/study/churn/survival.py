"""Time to churn: memberships as spells, Kaplan–Meier curves by segment, and a survival model
giving each user's expected remaining months and revenue.

A *spell* is one unbroken membership, rebuilt from the transactions with the organisers' rule
(FACTS.md section 1, :mod:`study.churn.labels`): rows read in the labeller's order; a cancellation
moves the current expiry earlier; a renewal within 30 days of the current expiry continues the
spell (its expiry becomes the current one), a renewal 30 days or more after it starts a new spell
and ends the previous one with churn. A spell's last expiry is its end: an *event* (churn) when no
renewal followed within 30 days inside the files, *censored* when the files end before 30 days
after it had passed (the user might still renew). Durations are in months of 30 days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from study.churn.labels import CHURN_GAP_DAYS, _ordered, to_datetime
from study.compute import cpu_threads

DAYS_PER_MONTH = 30.0
SEGMENTS = {
    "plan length": "plan_days",
    "payment method": "payment_method",
    "auto-renew": "auto_renew",
    "registration channel": "registered_via",
}
COVARIATES = ["plan_days", "monthly_price", "auto_renew", "n_renewals", "had_cancel", "ends_cancelled"]


def spells(transactions: pd.DataFrame, members: pd.DataFrame | None = None, data_end=None) -> pd.DataFrame:
    """One row per membership spell: ``msno``, ``spell`` (0, 1, … per user), ``start``, ``end``
    (last expiry), ``duration`` (months), ``event`` (1 churned, 0 censored), the plan of its last
    renewal (``plan_days``, ``payment_method``, ``auto_renew``, ``list_price``, ``monthly_price``),
    ``n_renewals``, ``had_cancel``, ``ends_cancelled`` (its latest row is a cancellation) and, with
    ``members``, ``registered_via``.

    ``data_end``: the last day the files cover (default: the latest transaction date)."""
    tx = pd.DataFrame(
        {
            "msno": transactions["msno"].to_numpy(),
            "tdate": to_datetime(transactions["transaction_date"]).to_numpy(),
            "expire": to_datetime(transactions["membership_expire_date"]).to_numpy(),
            "is_cancel": transactions["is_cancel"].astype("int8").to_numpy(),
            "plan_days": transactions["payment_plan_days"].astype("int64").to_numpy(),
            "payment_method": transactions["payment_method_id"].astype("int64").to_numpy(),
            "auto_renew": transactions["is_auto_renew"].astype("int8").to_numpy(),
            "list_price": transactions["plan_list_price"].astype("float64").to_numpy(),
        }
    ).drop_duplicates()
    end_of_data = pd.Timestamp(data_end) if data_end is not None else tx.tdate.max()
    tx = _ordered(tx).reset_index(drop=True)
    renewal = tx.is_cancel.to_numpy() == 0
    first = ~tx.msno.duplicated().to_numpy()
    # the current expiry before each row: the latest renewal's expiry, moved earlier by the
    # cancellations read since (a block = a renewal and the cancellations after it)
    block = pd.Series(renewal.astype(np.int64)).groupby(tx.msno.to_numpy()).cumsum().to_numpy()
    cur_after = tx.expire.groupby([tx.msno.to_numpy(), block]).cummin().to_numpy()
    cur_before = np.r_[np.datetime64("NaT"), cur_after[:-1]].astype("datetime64[ns]")
    cur_before[first] = np.datetime64("NaT")
    gap = (tx.tdate.to_numpy() - cur_before) / np.timedelta64(1, "D")
    # a renewal 30+ days after the current expiry starts a spell; so does a user's first row
    new_spell = first | (renewal & ~np.isnan(gap) & (gap >= CHURN_GAP_DAYS))
    tx["spell"] = pd.Series(new_spell.astype(np.int64)).groupby(tx.msno.to_numpy()).cumsum().to_numpy() - 1
    tx["cur_after"] = cur_after
    tx["renewal"] = renewal
    g = tx.groupby(["msno", "spell"], sort=True)
    out = g.agg(start=("tdate", "first"), end=("cur_after", "last"), n_rows=("tdate", "size"))
    out["n_renewals"] = g["renewal"].sum().astype("int64") - 1
    out["had_cancel"] = (g["is_cancel"].max() > 0).astype("int8")
    out["ends_cancelled"] = g["is_cancel"].last().astype("int8")  # the spell's latest row cancels it
    last_renewal = tx[renewal].groupby(["msno", "spell"]).tail(1).set_index(["msno", "spell"])
    for c in ["plan_days", "payment_method", "auto_renew", "list_price"]:
        out[c] = last_renewal[c].reindex(out.index)
    out = out.reset_index().drop(columns="n_rows")
    out["n_renewals"] = out["n_renewals"].clip(lower=0)
    # a first row that is a cancellation leaves no plan: the spell's rows say nothing of one
    out = out.dropna(subset=["plan_days"]).astype(
        {"plan_days": "int64", "payment_method": "int64", "auto_renew": "int8"}
    )
    out["monthly_price"] = np.where(out.plan_days > 0, out.list_price / out.plan_days * DAYS_PER_MONTH, 0.0)
    later = out.groupby("msno")["spell"].transform("max") > out.spell
    lapsed = out.end + pd.Timedelta(days=CHURN_GAP_DAYS) <= end_of_data
    out["event"] = (later | lapsed).astype("int8")
    out["duration"] = ((out.end - out.start).dt.days.clip(lower=1)) / DAYS_PER_MONTH
    if members is not None:
        reg = members.drop_duplicates("msno").set_index("msno")["registered_via"]
        out["registered_via"] = out.msno.map(reg).fillna(-1).astype("int64")
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
def _outcome(sp: pd.DataFrame):
    """The spells' (event, duration) as scikit-survival's structured array."""
    from sksurv.util import Surv

    return Surv.from_arrays(sp.event.to_numpy().astype(bool), sp.duration.to_numpy(dtype=float))


def _km_at(duration, event, at) -> np.ndarray:
    """The Kaplan–Meier estimate (scikit-survival) evaluated at ``at`` (1 before the first time)."""
    from sksurv.nonparametric import kaplan_meier_estimator

    times, surv = kaplan_meier_estimator(np.asarray(event).astype(bool), np.asarray(duration, dtype=float))
    idx = np.searchsorted(times, np.asarray(at, dtype=float), side="right") - 1
    return np.where(idx >= 0, surv[np.clip(idx, 0, None)], 1.0)


def kaplan_meier(sp: pd.DataFrame, by: str | None = None, top: int = 5, grid=None) -> pd.DataFrame:
    """Kaplan–Meier survival per segment of column ``by`` (its ``top`` largest segments), on a
    grid of months: columns ``segment``, ``month``, ``survival``, ``at_risk``, ``n``."""
    grid = np.arange(0, 37) if grid is None else np.asarray(grid)
    groups = [("all", sp)] if by is None else [(str(k), sp[sp[by] == k]) for k in sp[by].value_counts().index[:top]]
    rows = []
    for name, part in groups:
        s = _km_at(part.duration, part.event, grid)
        at_risk = [(part.duration >= t).sum() for t in grid]
        rows.append(pd.DataFrame({"segment": name, "month": grid, "survival": s, "at_risk": at_risk, "n": len(part)}))
    return pd.concat(rows, ignore_index=True)


def log_rank(sp: pd.DataFrame, by: str, top: int = 5) -> dict:
    """Log-rank test (scikit-survival) across the ``top`` largest segments of ``by``: χ² with
    (segments − 1) degrees of freedom and its p-value."""
    from sksurv.compare import compare_survival

    part = sp[sp[by].isin(sp[by].value_counts().index[:top])]
    chisq, p = compare_survival(_outcome(part), part[by].to_numpy())
    return {"segments": int(part[by].nunique()), "statistic": float(chisq), "p": float(p)}


# ---------------------------------------------------------------------------------------------
# the payment methods and registration channels common enough to get their own input (FACTS.md)
METHODS = (41, 40, 39, 38, 37, 36, 34)
CHANNELS = (3, 4, 7, 9)


def design(sp: pd.DataFrame) -> pd.DataFrame:
    """The model inputs of each spell: its plan (length, monthly price, auto-renew), renewals so
    far, whether it saw a cancellation, and indicators of the common payment methods and
    registration channels."""
    X = sp[COVARIATES].astype("float64")
    for m in METHODS:
        X[f"method_{m}"] = (sp.payment_method == m).astype("float64")
    if "registered_via" in sp:
        for c in CHANNELS:
            X[f"channel_{c}"] = (sp.registered_via == c).astype("float64")
    return X


@dataclass
class SurvivalModel:
    """A fitted model: linear predictor per spell, and the Breslow baseline cumulative hazard."""

    name: str
    predictor: object
    columns: list[str]  # the inputs that vary in the training spells (a constant one is dropped)
    times: np.ndarray  # event times (months), ascending
    base_hazard: np.ndarray  # H0 at those times

    def risk(self, X: pd.DataFrame) -> np.ndarray:
        """exp(linear predictor): higher = leaves sooner."""
        X = X[self.columns]
        if self.name == "baseline":
            return np.ones(len(X))
        if self.name == "cox":
            return np.exp(self.predictor.predict(X))
        import xgboost as xgb

        return self.predictor.predict(xgb.DMatrix(X), output_margin=False)

    def survival(self, X: pd.DataFrame, months) -> np.ndarray:
        """S(t | x) at ``months`` (rows: spells, columns: times)."""
        H0 = _step(self.times, self.base_hazard, np.asarray(months, dtype=float))
        return np.exp(-np.outer(self.risk(X), H0))


def _step(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """A right-continuous step function (0 before the first time) evaluated at ``at``."""
    idx = np.searchsorted(times, at, side="right") - 1
    return np.where(idx >= 0, values[np.clip(idx, 0, None)], 0.0)


def breslow(duration: np.ndarray, event: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow's baseline cumulative hazard: H0(t) = Σ_{t_i ≤ t} d_i / Σ_{j: T_j ≥ t_i} risk_j."""
    order = np.argsort(duration, kind="mergesort")
    d, e, r = duration[order], event[order], risk[order]
    times, first = np.unique(d, return_index=True)
    at_risk = np.cumsum(r[::-1])[::-1][first]  # Σ risk over T_j ≥ t
    deaths = np.add.reduceat(e, first)
    keep = deaths > 0
    return times[keep], np.cumsum(deaths[keep] / at_risk[keep])


def fit(sp: pd.DataFrame, kind: str = "cox", seed: int = 2017) -> SurvivalModel:
    """Cox proportional hazards (scikit-survival, standardised inputs, small ridge penalty,
    Breslow ties) or gradient-boosted trees with
    XGBoost's Cox objective; both get Breslow's baseline from the training spells. ``baseline``:
    the same curve for every spell (no inputs), what a model must beat."""
    X, T, E = design(sp), sp.duration.to_numpy(float), sp.event.to_numpy(float)
    X = X.loc[:, X.std() > 0]
    if kind == "cox":
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        predictor = make_pipeline(StandardScaler(), CoxPHSurvivalAnalysis(alpha=0.01, ties="breslow"))
        predictor.fit(X, _outcome(sp))
    elif kind == "xgboost":
        import xgboost as xgb

        # survival:cox takes the time as label, negative for a censored spell
        dm = xgb.DMatrix(X, label=np.where(E > 0, T, -T))
        params = {"objective": "survival:cox", "eta": 0.1, "max_depth": 3, "subsample": 0.8, "seed": seed,
                  "nthread": cpu_threads(), "min_child_weight": 20}  # fmt: skip
        predictor = xgb.train(params, dm, num_boost_round=150)
    elif kind == "baseline":  # no inputs: the Nelson–Aalen curve for everyone, the yardstick
        predictor = None
    else:
        raise ValueError(f"unknown survival model {kind!r}: cox, xgboost or baseline")
    model = SurvivalModel(kind, predictor, list(X.columns), np.array([0.0]), np.array([0.0]))
    model.times, model.base_hazard = breslow(T, E, model.risk(X))
    return model


# ---------------------------------------------------------------------------------------------
def concordance(sp: pd.DataFrame, model: SurvivalModel) -> float:
    """Harrell's concordance index (scikit-survival): 0.5 = chance, 1 = perfect order."""
    from sksurv.metrics import concordance_index_censored

    c = concordance_index_censored(
        sp.event.to_numpy().astype(bool), sp.duration.to_numpy(float), model.risk(design(sp))
    )
    return float(c[0])


def integrated_brier(train: pd.DataFrame, test: pd.DataFrame, surv: np.ndarray, months: np.ndarray) -> float:
    """Integrated Brier score (scikit-survival) with inverse-probability-of-censoring weights
    (Graf et al. 1999), the censoring distribution estimated on ``train``. ``surv``: S(t | x) of
    the ``test`` spells at ``months`` (inside the test follow-up). 0 = perfect, 0.25 = a coin."""
    from sksurv.metrics import brier_score, integrated_brier_score

    months = np.asarray(months, dtype=float)
    if len(months) == 1:
        return float(brier_score(_outcome(train), _outcome(test), surv, months)[1][0])
    return float(integrated_brier_score(_outcome(train), _outcome(test), surv, months))


def remaining_months(model: SurvivalModel, sp: pd.DataFrame, horizon: float = 24.0, step: float = 0.25) -> np.ndarray:
    """Each open spell's expected remaining months within ``horizon``, given it has lasted its
    ``duration`` so far: ∫ S(d + u | x) / S(d | x) du over 0 ≤ u ≤ horizon."""
    u = np.arange(0.0, horizon + step / 2, step)
    return np.trapezoid(conditional_survival(model, sp, u), u, axis=1)


def conditional_survival(model: SurvivalModel, sp: pd.DataFrame, u) -> np.ndarray:
    """P(the spell lasts ``u`` more months | it was paid up to its ``duration``): S(d + u) / S(d⁻).
    Just before d: a membership that lapses at its current expiry leaves *at* d (most churn falls
    on an expiry), which the conditional must still count."""
    u = np.asarray(u, dtype=float)
    d = sp.duration.to_numpy(float)
    r = model.risk(design(sp))
    H_now = _step(model.times, model.base_hazard, d - 1e-9)
    H_later = _step(model.times, model.base_hazard, (d[:, None] + u[None, :]).ravel()).reshape(len(d), len(u))
    return np.exp(-r[:, None] * (H_later - H_now[:, None]))


# ---------------------------------------------------------------------------------------------
@dataclass
class TemporalSplit:
    """Spells as the files showed them at ``cutoff`` (to fit on) and the spells open then, with
    their inputs as of the cutoff and what happened after it (to test on): ``remaining`` months
    beyond the expiry paid at the cutoff and ``event`` (churned by the end of the files)."""

    cutoff: pd.Timestamp
    train: pd.DataFrame
    test: pd.DataFrame


def temporal_split(
    transactions: pd.DataFrame, members: pd.DataFrame | None, cutoff, full: pd.DataFrame | None = None
) -> TemporalSplit:
    """``full``: the spells of all ``transactions`` when already built (they are not built twice)."""
    cutoff = pd.Timestamp(cutoff)
    before = transactions[to_datetime(transactions["transaction_date"]) < cutoff]
    train = spells(before, members, data_end=cutoff - pd.Timedelta(days=1))
    full = spells(transactions, members) if full is None else full
    open_then = train[train.event == 0]
    outcome = full[["msno", "start", "duration", "event"]].rename(columns={"duration": "final", "event": "outcome"})
    test = open_then.drop(columns="event").merge(outcome, on=["msno", "start"], how="inner")
    test["remaining"] = (test.final - test.duration).clip(lower=0)
    test = test.drop(columns="final").rename(columns={"outcome": "event"})
    return TemporalSplit(cutoff, train, test)


@dataclass
class Evaluation:
    name: str
    concordance: float
    integrated_brier: float


def evaluate(model: SurvivalModel, split: TemporalSplit, months=(1, 2, 3)) -> Evaluation:
    """How well the model fitted before the cutoff tells what the spells open at the cutoff did
    next: concordance of its risk with the remaining months, and the integrated Brier score of
    its conditional survival over ``months`` after the paid expiry (censoring weights from the
    test spells' own censoring)."""
    from sksurv.metrics import concordance_index_censored

    t = split.test
    months = np.asarray(months, dtype=float)
    outcome = pd.DataFrame({"duration": t.remaining.to_numpy(), "event": t.event.to_numpy()})
    c = concordance_index_censored(
        outcome.event.to_numpy().astype(bool), outcome.duration.to_numpy(), model.risk(design(t))
    )[0]
    ibs = integrated_brier(outcome, outcome, conditional_survival(model, t, months), months)
    return Evaluation(model.name, float(c), ibs)
