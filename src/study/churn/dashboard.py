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
from pathlib import Path

import numpy as np
import pandas as pd

from study import paths, spreadsheet
from study.churn import database, evaluation, features, lineage, scoring

MAX_UPLOAD_MB = 50  # the one limit of a CSV upload (the page, the README and the browser guard read it)
MAX_ROWS = 500_000
SHOWN_ROWS = 200  # rows a table shows; their reasons are computed at once, the rest at download
MODEL_NAMES = {
    "champion": "champion: a forecast (point-in-time features, calibrated)",
    "original": "original-format model: not a forecast (sees the renewal)",
}
MODEL_NOTES = {
    "champion": "The champion forecasts from what is known on the first day of the month: the last transaction, "
    "listening and membership before that day.",
    "original": "Not a forecast: the original study's model reads each user's latest transaction, which for most "
    "users is the renewal that decides the label, so it describes who renewed rather than predicting who "
    "will leave; it reads absolute dates and scores March 2017 only. Use the champion to act before the "
    "expiry.",
}


from study.ui import UserError, number  # noqa: E402,F401 - one sentence shown by ui.guard


# ---------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What a dashboard kernel loads once: the database URL and the two saved models."""

    db_url: str
    models: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    models_dir: Path | None = None

    def model(self, name: str):
        if name not in self.models:
            raise UserError(
                f"The {MODEL_NAMES.get(name, name)} is not available: "
                + "; ".join(self.problems or [f"no saved model '{name}'"])
            )
        return self.models[name]


@lru_cache(maxsize=4)
def load_context(db_url: str | None = None, models_dir: str | None = None) -> Context:
    """Load the models once per kernel (checked against their sha256 manifests)."""
    root = Path(models_dir) if models_dir else paths.MODELS
    ctx = Context(database.app_url(db_url), models_dir=root)
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


def score_frame(ctx: Context, frame: pd.DataFrame, model_name: str, reasons_for: int | None = None) -> pd.DataFrame:
    """msno, expiry date, unrounded risk, band and plain-language reasons of each row of a
    point-in-time (champion) or processed (original) frame, riskiest first (:func:`scoring.score`)."""
    return scoring.score(ctx.model(model_name), frame, reasons_for)


def with_reasons(ctx: Context, scored: pd.DataFrame, frame: pd.DataFrame, model_name: str) -> pd.DataFrame:
    """``scored`` with the reasons of every row (computed only for the rows that lack them)."""
    todo = scored.reason_1.eq("") & scored.reason_2.eq("") & scored.reason_3.eq("")
    if not todo.any():
        return scored
    rest = score_frame(ctx, frame.set_index("msno").loc[scored.msno[todo]].reset_index(), model_name)
    out = scored.copy()
    cols = ["reason_1", "reason_2", "reason_3"]
    out.loc[todo, cols] = rest.set_index("msno").loc[scored.msno[todo], cols].to_numpy()
    return out


def display_table(scored: pd.DataFrame) -> pd.DataFrame:
    """What a person reads: risk in % rounded to 0.1 (display only; metrics never read it)."""
    return pd.DataFrame(
        {
            "msno": scored.msno,
            "expiry date": scored.expiry_date,
            "risk %": np.round(100 * scored.risk.to_numpy(dtype=float), 1),
            "band": scored.band,
            "reason 1": scored.reason_1,
            "reason 2": scored.reason_2,
            "reason 3": scored.reason_3,
        }
    )


def month_frame(ctx: Context, year, month, model_name: str) -> pd.DataFrame:
    """The users expiring in year/month as stored (the features the model needs, labels kept)."""
    if year is None or month is None:
        month_choices(ctx)  # an unreadable or empty database says so in its own words
        raise UserError("Pick a year and a month from the lists.")
    try:
        m = database.check_month(f"{int(year):04d}-{int(month):02d}")
    except (TypeError, ValueError):
        raise UserError(
            f"Pick a year and a month from the lists (got {str(year)[:10]!r}/{str(month)[:10]!r})."
        ) from None
    model = ctx.model(model_name)
    recipe, allowed = scoring.recipe_of(model), scoring.scored_months(model)
    if allowed is not None and m not in allowed:
        raise UserError(
            f"The {MODEL_NAMES[model_name]} reads absolute dates and was trained on "
            f"{', '.join(allowed)} expiries: it cannot score {m} (its risks would be meaningless). "
            "The champion scores every month."
        )
    try:
        frame = database.month_frame(m, ctx.db_url, recipe)
    except database.DatabaseError as exc:
        raise UserError(str(exc)) from None
    if frame.empty:
        have = [x for x in database.available_months(ctx.db_url, recipe) if allowed is None or x in allowed]
        raise UserError(
            f"No users expiring in {m} for the {MODEL_NAMES[model_name]}; months available: "
            f"{', '.join(have) or 'none'}."
        )
    return frame


def score_month(ctx: Context, year, month, model_name: str, reasons_for: int | None = SHOWN_ROWS) -> pd.DataFrame:
    """The month's users scored, riskiest first; reasons for the ``reasons_for`` riskiest."""
    return score_frame(ctx, month_frame(ctx, year, month, model_name), model_name, reasons_for)


def band_counts(table: pd.DataFrame) -> pd.Series:
    """Users per risk band, every band present (zero when empty), in band order."""
    return table.band.value_counts().reindex(scoring.BAND_LABELS, fill_value=0).rename("users")


def csv_data_uri(df: pd.DataFrame) -> str:
    """A data: URI of the spreadsheet-safe CSV (Voilà blocks FileLink; a link with this href
    downloads it): formula-like cells neutralised, UTF-8 with a byte-order mark."""
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(spreadsheet.csv_bytes(df)).decode("ascii")


def download_link(df: pd.DataFrame, filename: str) -> str:
    """A download button (an <a download> styled as a button) for the CSV of ``df``."""
    import html

    return (
        f'<a class="study-download" download="{html.escape(filename)}" href="{csv_data_uri(df)}">'
        f"⬇ Download all {len(df):,} rows (CSV)</a>"
    )


# ---------------------------------------------------------------------------------------------
# Tab 2: upload a processed CSV.
def parse_upload(
    name: str, content, require_label: bool = False, max_mb: float = MAX_UPLOAD_MB, size: int | None = None
) -> pd.DataFrame:
    """Bytes of an uploaded file → the validated 33-column frame, or a UserError saying what is wrong.
    ``size``: the size the browser reported (a file over the limit arrives without its content)."""
    raw = bytes(content or b"")
    label = f"“{str(name)[:80]}”"
    if size and size > max_mb * 1e6:
        raise UserError(f"{label} is {size / 1e6:.0f} MB; the limit is {max_mb:.0f} MB (split the file).")
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
        raise UserError(f"{label}: {_type_problem(text) or _short(exc)}.") from None
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


def _type_problem(text: str) -> str | None:
    """The first cell whose type is wrong, as a sentence naming its column and line."""
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except Exception:  # noqa: BLE001 — the caller's message stands
        return None
    whole = {
        c
        for c in features.PROCESSED_COLUMNS
        if features.DATA_DICTIONARY_ORIGINAL.get(c, ("", "", ""))[2] in ("int", "category") and c not in ("gender",)
    }
    whole |= {"is_churn"}
    numeric = {
        c for c in features.PROCESSED_COLUMNS if features.DATA_DICTIONARY_ORIGINAL.get(c, ("", "", ""))[2] == "float"
    }
    for col in raw.columns:
        if col not in whole | numeric:
            continue
        cells = raw[col].str.strip()
        values = pd.to_numeric(cells, errors="coerce")
        bad = values.isna() | (~np.isfinite(values.fillna(0)))
        if col in whole:
            bad |= values.notna() & (values.fillna(0) % 1 != 0)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            got = cells.iloc[i]
            what = (
                "must be 0 or 1"
                if col == "is_churn"
                else "must be a whole number"
                if col in whole
                else "must be a number"
            )
            shown = "an empty cell" if got == "" else repr(got[:30])
            return f"{col} {what}; got {shown} on line {i + 2}"
    return None


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


def check_money(threshold, offer_cost=50.0, save_rate=0.3, revenue=1788.0) -> None:
    """The decision inputs as a stakeholder types them: a sentence for anything impossible."""
    number("threshold", threshold, 0, 1)
    number("offer cost", offer_cost, 0)
    number("save rate", save_rate, 0, 1)
    number("revenue per saved customer", revenue, 0)


def performance(
    y, p, threshold: float = 0.5, offer_cost: float = 50.0, save_rate: float = 0.3, revenue: float = 1788.0
) -> Performance:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        raise UserError("There are no labelled users to evaluate.")
    if len(np.unique(y)) < 2:
        raise UserError("The labels hold a single class: performance needs churners and non-churners.")
    check_money(threshold, offer_cost, save_rate, revenue)
    s = evaluation.scores(y, p, threshold)
    cm = pd.DataFrame(
        confusion_matrix(y, p >= threshold, labels=[0, 1]),
        index=["stayed", "churned"],
        columns=["predicted stay", "predicted churn"],
    )
    fpr, tpr, _ = roc_curve(y, p)
    prec, rec, _ = precision_recall_curve(y, p)
    frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
    pred = p >= threshold
    outcome = np.where(y == 1, np.where(pred, "true positive", "false negative"), "")
    rbo = pd.DataFrame({"risk": p, "outcome": outcome})
    rbo = rbo[rbo.outcome != ""].reset_index(drop=True)
    profit = float(evaluation.contact_gain(y[pred], save_rate, revenue, offer_cost).sum())
    return Performance(
        s,
        cm,
        pd.DataFrame({"false positive rate": fpr, "true positive rate": tpr}),
        pd.DataFrame({"recall": rec, "precision": prec}),
        pd.DataFrame({"mean predicted": mean, "observed churn": frac}),
        rbo,
        profit,
        threshold,
        len(y),
    )


def evaluate_month(ctx: Context, year, month, model_name: str, threshold: float, **money) -> Performance:
    check_money(threshold, **money)
    frame = month_frame(ctx, year, month, model_name)
    _, y, p = scoring.labelled_metrics(score_frame(ctx, frame, model_name, reasons_for=0), frame, threshold)
    return performance(y, p, threshold, **money)


def evaluate_upload(
    ctx: Context, name: str, content, threshold: float, size: int | None = None, **money
) -> Performance:
    check_money(threshold, **money)
    frame = parse_upload(name, content, require_label=True, size=size)
    _, y, p = scoring.labelled_metrics(score_frame(ctx, frame, "original", reasons_for=0), frame, threshold)
    return performance(y, p, threshold, **money)


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


WHAT_IF_CHOICES = ("payment method", "auto-renew", "cancelled", "city", "registration channel")


def describe_domain(domain: dict) -> str:
    """The allowed values of the numeric what-if inputs, as one line for the page."""
    parts = [f"{name} {d['min']:g}–{d['max']:g}" for name, d in domain.items() if "max" in d]
    return (
        "Allowed (what the model saw in training): "
        + "; ".join(parts)
        + ("; age may also be -1 (unknown)." if "age" in domain else ".")
    )


def _column(ctx: Context, name: str, model_name: str) -> str:
    """The column behind a what-if input in the recipe the model reads (its card says which)."""
    return WHAT_IF_INPUTS[name][0 if scoring.recipe_of(ctx.models[model_name]) == "pit" else 1]


def input_domain(ctx: Context, model_name: str) -> dict:
    """input → {"values": [...]} (a choice) or {"min", "max"} (a number, listening in hours): what
    the model saw in training (its card), else what the database holds for its recipe."""
    model = ctx.model(model_name)
    domain = model.card.get("input domain")
    if not domain:
        recipe = scoring.recipe_of(model)
        frames = [database.month_frame(m, ctx.db_url, recipe) for m in database.available_months(ctx.db_url, recipe)]
        domain = scoring.input_domain(pd.concat(frames, ignore_index=True)) if frames else {}
    out = {}
    for name in WHAT_IF_INPUTS:
        d = domain.get(_column(ctx, name, model_name))
        if d is None:
            continue
        if name.startswith("listening") and "max" in d:
            d = {"min": round(d["min"] / 3600, 1), "max": round(d["max"] / 3600, 1)}
        out[name] = d
    return out


def random_customer(ctx: Context, model_name: str, seed: int | None = None) -> pd.Series:
    """One stored user (the latest month available for the model), drawn at random."""
    model = ctx.model(model_name)
    recipe, allowed = scoring.recipe_of(model), scoring.scored_months(model)
    try:
        months = [m for m in database.available_months(ctx.db_url, recipe) if allowed is None or m in allowed]
    except database.DatabaseError as exc:
        raise UserError(str(exc)) from None
    if not months:
        raise UserError("The database holds no users: run `study churn export-db` first.")
    frame = database.month_frame(months[-1], ctx.db_url, recipe)
    return frame.iloc[int(np.random.default_rng(seed).integers(len(frame)))]


def inputs_of(ctx: Context, row: pd.Series, model_name: str) -> dict:
    """The what-if inputs of a stored customer (listening in hours)."""
    out = {}
    for name in WHAT_IF_INPUTS:
        v = row[_column(ctx, name, model_name)]
        out[name] = round(float(v) / 3600, 1) if name.startswith("listening") else int(v)
    return out


def check_inputs(ctx: Context, inputs: dict, model_name: str, own: dict | None = None) -> dict:
    """The what-if inputs as numbers inside what the model saw, or a sentence naming the allowed
    range or choices (age: unknown, or the ages seen in training). ``own``: the drawn customer's
    own inputs, accepted as they are (a stored customer may hold a value training never saw)."""
    domain = input_domain(ctx, model_name)
    own = own or {}
    out = {}
    for name, value in inputs.items():
        if name not in WHAT_IF_INPUTS:
            raise UserError(f"Unknown input {str(name)[:40]!r}.")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{name}: {str(value)[:20]!r} is not a number.") from None
        if not np.isfinite(v):
            raise UserError(f"{name}: {value!r} is not a number.")
        d = {} if name in own and v == own[name] else domain.get(name, {})
        if "values" in d:
            if v not in d["values"]:
                shown = ", ".join(str(x) for x in d["values"][:25]) + (" …" if len(d["values"]) > 25 else "")
                raise UserError(f"{name}: {value:g} is not one the model knows; choose one of {shown}.")
        elif "max" in d:
            lo, hi = d["min"], d["max"]
            if name == "age" and v == -1:
                pass  # unknown age, as the recipes write it
            elif not lo <= v <= hi:
                unit = " hours" if name.startswith("listening") else (" days" if name == "plan days" else "")
                extra = " (or -1: unknown)" if name == "age" else ""
                raise UserError(f"{name}: {v:g} is outside what the model saw; allowed {lo:g}–{hi:g}{unit}{extra}.")
        elif v < 0 and name != "age":
            raise UserError(f"{name}: {value!r} must be a non-negative number.")
        out[name] = v
    return out


def what_if(ctx: Context, base: pd.Series, inputs: dict, model_name: str) -> dict:
    """Risk of ``base`` with ``inputs`` applied: probability, band, a sentence and the SHAP
    contributions (log-odds). Correlational: the model's association, not the effect of a change."""
    model = ctx.model(model_name)
    pit = scoring.recipe_of(model) == "pit"
    row = base.copy()
    for name, v in check_inputs(ctx, inputs, model_name, own=inputs_of(ctx, base, model_name)).items():
        row[_column(ctx, name, model_name)] = v * 3600 if name.startswith("listening") else int(round(v))
    # derived columns follow their inputs, as the recipes compute them
    row["price_per_day"] = row["plan_list_price"] / row["payment_plan_days"] if row["payment_plan_days"] else 0.0
    row["bd"] = row["bd"] if 10 < row["bd"] < 70 else -1
    if pit:
        row["discount"] = row["plan_list_price"] - row["actual_amount_paid"]
    else:
        row["total_secsMean"] = row["total_secsSum"] / max(int(row["count"]), 1)
    frame = pd.DataFrame([row])
    for c in frame.columns:  # back to the stored dtypes
        if c in base.index and not isinstance(base[c], str):
            frame[c] = pd.to_numeric(frame[c])
    x = scoring.model_inputs(model, frame)
    p = float(model.predict_proba(x)[0])
    contrib = scoring.contributions(model, x).iloc[0].sort_values(key=np.abs, ascending=False)
    band = str(scoring.bands([p])[0])
    from study.churn.reasons import describe

    up = [describe(c, x.iloc[0][c], v, capital=False) for c, v in contrib.items() if v > 0][:2]
    down = [describe(c, x.iloc[0][c], v, capital=False) for c, v in contrib.items() if v < 0][:1]
    sentence = (
        f"Estimated churn risk {100 * p:.0f} % (band {band}). "
        + (f"Pushing it up most: {'; '.join(up)}. " if up else "")
        + (f"Pulling it down most: {down[0]}. " if down else "")
        + "This is what the model associates with such customers, not the effect a change would cause."
    )
    labels = pd.Series([describe(c, x.iloc[0][c], v) for c, v in contrib.items()], index=contrib.index)
    truth = base.get("is_churn")
    return {
        "risk": p,
        "band": band,
        "sentence": sentence,
        "contributions": contrib.head(12),
        "labels": labels.head(12),
        "true label": None if truth is None or pd.isna(truth) else int(truth),
    }


# ---------------------------------------------------------------------------------------------
# Tab 5: about.
def about(ctx: Context) -> dict:
    """The data card (what the database holds), the model cards, and their lineage: for each model
    the data it was trained on, its hash and its report, and a sentence when that is not the data
    in the database."""
    try:
        meta = database.read_meta(ctx.db_url)
        counts = database.row_counts(ctx.db_url)
    except Exception as exc:  # noqa: BLE001
        meta, counts = {"problem": _short(exc)}, pd.DataFrame()
    cards = {name: m.card for name, m in ctx.models.items()}
    return {
        "data": meta,
        "counts": counts,
        "models": cards,
        "problems": list(ctx.problems),
        "lineage": lineage.table(meta, cards),
        "mismatches": lineage.mismatches(meta, cards),
    }
