"""The logic behind every callback of the churn scoring dashboard (the notebook only lays out
widgets and calls these). Every function either returns data or raises :class:`UserError`, whose
text is one sentence a stakeholder can act on; nothing here prints or renders.

Uploads are parsed from bytes in memory (never from the server's disk), validated column by
column, and never unpickled; tables are shown HTML-escaped by the notebook.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from study.churn import database, evaluation, features, scoring

MAX_UPLOAD_MB = 50
MAX_ROWS = 500_000
MODEL_NAMES = {"champion": "champion (point-in-time features, calibrated)",
               "original": "original-format model (the original study's recipe)"}


from study.ui import UserError  # noqa: E402,F401 - one sentence shown by ui.guard

# ---------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What a dashboard kernel loads once: the database URL and the two saved models."""
    db_url: str
    models: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    def model(self, name: str):
        if name not in self.models:
            raise UserError(f"The {MODEL_NAMES.get(name, name)} is not available: "
                            + "; ".join(self.problems or [f"no saved model '{name}'"]))
        return self.models[name]


@lru_cache(maxsize=4)
def load_context(db_url: str | None = None, models_dir: str | None = None) -> Context:
    """Load the models once per kernel (checked against their sha256 manifests)."""
    from pathlib import Path

    ctx = Context(database.app_url(db_url))
    root = Path(models_dir) if models_dir else scoring.MODELS
    for name in ("champion", "original"):
        try:
            ctx.models[name] = scoring.load(root / name)
        except Exception as exc:  # noqa: BLE001 — reported in the page as a sentence
            ctx.problems.append(f"{name}: {str(exc).splitlines()[0]}")
    return ctx


# ---------------------------------------------------------------------------------------------
# Tab 1: by expiry month.
def month_choices(ctx: Context) -> dict[int, list[int]]:
    """year → months present in the database (the pickers offer nothing else)."""
    try:
        months = database.available_months(ctx.db_url)
    except database.DatabaseError as exc:
        raise UserError(str(exc)) from None
    out: dict[int, list[int]] = {}
    for m in months:
        y, mm = (int(v) for v in m.split("-"))
        out.setdefault(y, []).append(mm)
    if not out:
        raise UserError("The database holds no users to score: run `study churn export-db` first.")
    return out


def _results(msno, expiry, risk, reasons: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"msno": np.asarray(msno), "expiry date": pd.DatetimeIndex(pd.to_datetime(np.asarray(expiry))).strftime("%Y-%m-%d"),
                        "risk %": np.round(100 * np.asarray(risk, dtype=float), 1), "band": scoring.bands(risk)})
    out = pd.concat([out, reasons.reset_index(drop=True)], axis=1)
    return out.sort_values("risk %", ascending=False, kind="mergesort").reset_index(drop=True)


def score_frame(ctx: Context, frame: pd.DataFrame, model_name: str) -> pd.DataFrame:
    """Risk, band and top-3 reasons of each row of a point-in-time (champion) or processed
    (original) frame, sorted by risk."""
    model = ctx.model(model_name)
    if model_name == "champion":
        from study.churn import zoo

        x = zoo.pit_matrix(frame.drop(columns=["expiry_date"], errors="ignore"))
        risk = model.predict_proba(x)
        reasons = scoring.reason_codes(scoring.contributions(model, x))
        expiry = frame["expiry_date"] if "expiry_date" in frame else (
            pd.to_datetime(frame.month + "-01") + pd.to_timedelta(frame.days_to_expiry, unit="D"))
    else:
        x = features.original_model_matrix(frame)
        risk = model.predict_proba(x)
        reasons = scoring.reason_codes(scoring.contributions(model, x))
        expiry = frame.membership_expire_date
    return _results(frame.msno, expiry, risk, reasons)


def month_frame(ctx: Context, year, month, model_name: str) -> pd.DataFrame:
    """The users expiring in year/month as stored (the features the model needs, labels kept)."""
    try:
        m = database.check_month(f"{int(year):04d}-{int(month):02d}")
    except (TypeError, ValueError):
        raise UserError(f"Pick a year and a month from the lists (got {str(year)[:10]!r}/{str(month)[:10]!r}).") from None
    recipe = "pit" if model_name == "champion" else "original"
    frame = database.month_frame(m, ctx.db_url, recipe)
    if frame.empty:
        have = database.available_months(ctx.db_url, recipe)
        raise UserError(f"No users expiring in {m} for the {MODEL_NAMES[model_name]}; months available: "
                        f"{', '.join(have) or 'none'}.")
    return frame


def score_month(ctx: Context, year, month, model_name: str) -> pd.DataFrame:
    return score_frame(ctx, month_frame(ctx, year, month, model_name), model_name)


def band_counts(table: pd.DataFrame) -> pd.Series:
    """Users per risk band, every band present (zero when empty), in band order."""
    return table.band.value_counts().reindex(scoring.BAND_LABELS, fill_value=0).rename("users")


def csv_data_uri(df: pd.DataFrame) -> str:
    """A data: URI of the CSV (Voilà blocks FileLink; a link with this href downloads it)."""
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(df.to_csv(index=False).encode("utf-8")).decode("ascii")


# ---------------------------------------------------------------------------------------------
# Tab 2: upload a processed CSV.
def parse_upload(name: str, content, require_label: bool = False, max_mb: float = MAX_UPLOAD_MB) -> pd.DataFrame:
    """Bytes of an uploaded file → the validated 33-column frame, or a UserError saying what is wrong."""
    raw = bytes(content or b"")
    label = f"“{str(name)[:80]}”"
    if not raw.strip():
        raise UserError(f"{label} is empty.")
    if len(raw) > max_mb * 1e6:
        raise UserError(f"{label} is {len(raw) / 1e6:.0f} MB; the limit is {max_mb:.0f} MB (split the file).")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise UserError(f"{label} is UTF-16 text; save it as UTF-8 CSV.")
        raise UserError(f"{label} is not a CSV file (binary content).")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{label} is not UTF-8 text (byte {exc.start} cannot be read); save it as UTF-8 CSV.") from None
    first = text.split("\n", 1)[0].strip().lstrip("\ufeff")
    if "," not in first:
        raise UserError(f"{label} is not a comma-separated file with a header line.")
    header = [h.strip() for h in first.split(",")]
    expected = [c for c in features.PROCESSED_COLUMNS if c != "is_churn"]
    missing = [c for c in expected if c not in header]
    if require_label and "is_churn" not in header:
        missing.append("is_churn")
    extra = [h for h in header if h not in features.PROCESSED_COLUMNS]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s): {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")
        if extra:
            parts.append(f"unexpected column(s): {', '.join(e[:30] for e in extra[:8])}")
        raise UserError(f"{label} is not in the 33-column processed format: {'; '.join(parts)}.")
    if len(header) != len(set(header)):
        raise UserError(f"{label} repeats a column name in its header.")
    n_rows = text.count("\n")
    if n_rows > MAX_ROWS + 1:
        raise UserError(f"{label} has {n_rows:,} rows; the limit is {MAX_ROWS:,}.")
    try:
        df = features.read_processed(io.StringIO(text), require_label=require_label, validate=False)
    except ValueError as exc:
        raise UserError(f"{label} has a value of the wrong type: {_short(exc)}.") from None
    except Exception as exc:  # noqa: BLE001 — parser errors (ragged rows...) as a sentence
        raise UserError(f"{label} cannot be read as CSV: {_short(exc)}.") from None
    if df.empty:
        raise UserError(f"{label} has a header but no rows.")
    dup = df.msno[df.msno.duplicated()]
    if len(dup):
        raise UserError(f"{label} lists {dup.nunique()} user(s) more than once, e.g. {dup.iloc[0][:20]!r}.")
    try:
        features._processed_schema("is_churn" in df.columns).validate(df, lazy=True)
    except Exception as exc:  # pandera SchemaErrors → which column, which check, an example
        raise UserError(f"{label} has out-of-range or invalid values: {_schema_summary(exc)}.") from None
    return df


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _schema_summary(exc: Exception) -> str:
    fc = getattr(exc, "failure_cases", None)
    if fc is None or not len(fc):
        return _short(exc)
    parts = []
    for (col, check), grp in fc.groupby(["column", "check"], dropna=False, sort=False):
        example = grp.failure_case.iloc[0]
        parts.append(f"column {col}: {len(grp)} value(s) fail “{check}”, e.g. {str(example)[:30]!r}")
        if len(parts) == 3:
            break
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Tab 3: performance.
@dataclass
class Performance:
    scores: dict
    confusion: pd.DataFrame
    roc: pd.DataFrame
    pr: pd.DataFrame
    calibration: pd.DataFrame
    risk_by_outcome: pd.DataFrame  # risk of true positives and false negatives
    profit: float
    threshold: float
    n: int


def performance(y, p, threshold: float = 0.5, offer_cost: float = 50.0, save_rate: float = 0.3,
                revenue: float = 1788.0) -> Performance:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        raise UserError("There are no labelled users to evaluate.")
    if len(np.unique(y)) < 2:
        raise UserError("The labels hold a single class: performance needs churners and non-churners.")
    if not 0 <= threshold <= 1:
        raise UserError("The threshold must be between 0 and 1.")
    s = evaluation.scores(y, p, threshold)
    cm = pd.DataFrame(confusion_matrix(y, p >= threshold, labels=[0, 1]),
                      index=["stayed", "churned"], columns=["predicted stay", "predicted churn"])
    fpr, tpr, _ = roc_curve(y, p)
    prec, rec, _ = precision_recall_curve(y, p)
    frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
    pred = p >= threshold
    outcome = np.where(y == 1, np.where(pred, "true positive", "false negative"), "")
    rbo = pd.DataFrame({"risk": p, "outcome": outcome})
    rbo = rbo[rbo.outcome != ""].reset_index(drop=True)
    profit = float(((y == 1) & pred).sum() * save_rate * revenue - pred.sum() * offer_cost)
    return Performance(s, cm, pd.DataFrame({"false positive rate": fpr, "true positive rate": tpr}),
                       pd.DataFrame({"recall": rec, "precision": prec}),
                       pd.DataFrame({"mean predicted": mean, "observed churn": frac}), rbo, profit, threshold, len(y))


def evaluate_month(ctx: Context, year, month, model_name: str, threshold: float, **money) -> Performance:
    frame = month_frame(ctx, year, month, model_name)
    scored = score_frame(ctx, frame, model_name)
    y = frame.set_index("msno").loc[scored.msno, "is_churn"].to_numpy()
    return performance(y, scored["risk %"].to_numpy() / 100, threshold, **money)


def evaluate_upload(ctx: Context, name: str, content, threshold: float, **money) -> Performance:
    frame = parse_upload(name, content, require_label=True)
    scored = score_frame(ctx, frame, "original")
    y = frame.set_index("msno").loc[scored.msno, "is_churn"].to_numpy()
    return performance(y, scored["risk %"].to_numpy() / 100, threshold, **money)


def log_performance(ctx: Context, perf: Performance, model_name: str, source: str) -> pd.DataFrame:
    """Append the run to ``log_model`` and return the whole history."""
    database.log_evaluation(perf.scores, model_name, source, perf.n, perf.threshold, url=ctx.db_url)
    return database.metric_history(ctx.db_url)


# ---------------------------------------------------------------------------------------------
# Tab 4: what-if.
# input → (column in the point-in-time set, column in the processed format)
WHAT_IF_INPUTS = {
    "plan days": ("payment_plan_days", "payment_plan_days"),
    "list price": ("plan_list_price", "plan_list_price"),
    "amount paid": ("actual_amount_paid", "actual_amount_paid"),
    "payment method": ("payment_method_id", "payment_method_id"),
    "auto-renew": ("is_auto_renew", "is_auto_renew"),
    "cancelled": ("last_is_cancel", "is_cancel"),
    "city": ("city", "city"),
    "registration channel": ("registered_via", "registered_via"),
    "age": ("bd", "bd"),
    "listening hours (last 30 days)": ("secs_30", "total_secsSum"),
}


def random_customer(ctx: Context, model_name: str, seed: int | None = None) -> pd.Series:
    """One stored user (the latest month available for the model), drawn at random."""
    recipe = "pit" if model_name == "champion" else "original"
    months = database.available_months(ctx.db_url, recipe)
    if not months:
        raise UserError("The database holds no users: run `study churn export-db` first.")
    frame = database.month_frame(months[-1], ctx.db_url, recipe)
    return frame.iloc[int(np.random.default_rng(seed).integers(len(frame)))]


def inputs_of(row: pd.Series, model_name: str) -> dict:
    """The what-if inputs of a stored customer (listening in hours)."""
    k = 0 if model_name == "champion" else 1
    out = {}
    for name, cols in WHAT_IF_INPUTS.items():
        v = row[cols[k]]
        out[name] = round(float(v) / 3600, 1) if name.startswith("listening") else int(v)
    return out


def what_if(ctx: Context, base: pd.Series, inputs: dict, model_name: str) -> dict:
    """Risk of ``base`` with ``inputs`` applied: probability, band, a sentence and the SHAP
    contributions (log-odds). Correlational: the model's association, not the effect of a change."""
    k = 0 if model_name == "champion" else 1
    row = base.copy()
    for name, value in inputs.items():
        if name not in WHAT_IF_INPUTS:
            raise UserError(f"Unknown input {name!r}.")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{name}: {value!r} is not a number.") from None
        if not np.isfinite(v) or (v < 0 and name != "age"):
            raise UserError(f"{name}: {value!r} must be a non-negative number.")
        col = WHAT_IF_INPUTS[name][k]
        row[col] = v * 3600 if name.startswith("listening") else int(round(v))
    # derived columns follow their inputs, as the recipes compute them
    row["price_per_day"] = row["plan_list_price"] / row["payment_plan_days"] if row["payment_plan_days"] else 0.0
    row["bd"] = row["bd"] if 10 < row["bd"] < 70 else -1
    if k == 0:
        row["discount"] = row["plan_list_price"] - row["actual_amount_paid"]
    else:
        row["total_secsMean"] = row["total_secsSum"] / max(int(row["count"]), 1)
    frame = pd.DataFrame([row])
    for c in frame.columns:  # back to the stored dtypes
        if c in base.index and not isinstance(base[c], str):
            frame[c] = pd.to_numeric(frame[c])
    model = ctx.model(model_name)
    if k == 0:
        from study.churn import zoo

        x = zoo.pit_matrix(frame.drop(columns=["expiry_date"], errors="ignore"))
    else:
        x = features.original_model_matrix(frame)
    p = float(model.predict_proba(x)[0])
    contrib = scoring.contributions(model, x).iloc[0].sort_values(key=np.abs, ascending=False)
    band = str(scoring.bands([p])[0])
    up = [c for c, v in contrib.items() if v > 0][:2]
    down = [c for c, v in contrib.items() if v < 0][:1]
    sentence = (f"Estimated churn risk {100 * p:.0f} % (band {band}). "
                + (f"Pushing it up most: {', '.join(up)}. " if up else "")
                + (f"Pulling it down most: {down[0]}. " if down else "")
                + "This is what the model associates with such customers, not the effect a change would cause.")
    truth = base.get("is_churn")
    return {"risk": p, "band": band, "sentence": sentence, "contributions": contrib.head(12),
            "true label": None if truth is None or pd.isna(truth) else int(truth)}


# ---------------------------------------------------------------------------------------------
# Tab 5: about.
def about(ctx: Context) -> dict:
    """The data card (what the database holds) and the model cards."""
    try:
        meta = database.read_meta(ctx.db_url)
        counts = database.row_counts(ctx.db_url)
    except Exception as exc:  # noqa: BLE001
        meta, counts = {"problem": _short(exc)}, pd.DataFrame()
    cards = {name: m.card for name, m in ctx.models.items()}
    return {"data": meta, "counts": counts, "models": cards, "problems": list(ctx.problems)}
