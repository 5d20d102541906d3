"""What the scoring dashboard draws: its pickers, charts (PNG bytes for an ipywidgets Image, no
JavaScript) and HTML fragments. The numbers come from :mod:`study.churn.dashboard`; the notebook
only lays these out and wires the buttons."""

from __future__ import annotations

import ipywidgets as W
import pandas as pd

from study import ui
from study.churn import dashboard as dash

BAND_COLOURS = ["#4caf50", "#cddc39", "#ffc107", "#ff7043", "#d32f2f"]


def model_picker() -> W.Dropdown:
    return W.Dropdown(
        options=[(label, key) for key, label in dash.MODEL_NAMES.items()],
        value="champion",
        description="model",
        style={"description_width": "60px"},
        layout=W.Layout(width="520px"),
    )


def month_pickers(ctx: dash.Context) -> tuple[W.Dropdown, W.Dropdown, str]:
    """Year and month of the database's expiry months (the latest preselected), and the sentence
    to show when the database has none."""
    try:
        choices, problem = dash.month_choices(ctx), ""
    except dash.UserError as exc:
        choices, problem = {}, str(exc)
    year = W.Dropdown(options=sorted(choices), description="year", layout=W.Layout(width="160px"))
    month = W.Dropdown(options=choices.get(year.value, []), description="month", layout=W.Layout(width="160px"))
    if choices:
        month.value = choices[year.value][-1]
    year.observe(lambda ch: setattr(month, "options", choices.get(ch["new"], [])), names="value")
    return year, month, problem


def band_chart(table: pd.DataFrame) -> bytes:
    counts = dash.band_counts(table)
    fig, (ax,) = ui.figure()
    ax.bar(counts.index, counts.values, color=BAND_COLOURS)
    ax.set_title("Users per risk band")
    ax.set_ylabel("users")
    return ui.png(fig)


def performance_html(perf: dash.Performance) -> str:
    scores = pd.DataFrame([perf.scores]).round(4)
    return (
        ui.table_html(scores)
        + "<b>Confusion matrix</b>"
        + perf.confusion.to_html(escape=True)
        + ui.message(f"{perf.n:,} users; expected profit at threshold {perf.threshold:.2f}: {perf.profit:,.0f}")
    )


def performance_chart(perf: dash.Performance) -> bytes:
    """ROC, precision-recall, calibration and the risk of churners and stayers, side by side."""
    fig, axes = ui.figure(4, width=3.6, height=3.0)
    axes[0].plot(perf.roc["false positive rate"], perf.roc["true positive rate"])
    axes[0].plot([0, 1], [0, 1], ":")
    axes[0].set_title(f"ROC (AUC {perf.scores['ROC AUC']:.3f})")
    axes[0].set_xlabel("false positive rate")
    axes[1].plot(perf.pr.recall, perf.pr.precision)
    axes[1].set_title("precision-recall")
    axes[1].set_xlabel("recall")
    axes[2].plot(perf.calibration["mean predicted"], perf.calibration["observed churn"], "o-")
    axes[2].plot([0, 1], [0, 1], ":")
    axes[2].set_title("calibration")
    axes[2].set_xlabel("mean predicted risk")
    for label, grp in perf.risk_by_outcome.groupby("outcome"):
        axes[3].hist(grp.risk, bins=20, range=(0, 1), alpha=0.6, label=label)
    axes[3].axvline(perf.threshold, color="k", ls=":")
    axes[3].legend(fontsize=7)
    axes[3].set_title("churners by risk")
    return ui.png(fig)


def history_html(history: pd.DataFrame) -> str:
    return "<b>History (log_model)</b>" + ui.table_html(history.sort_values("evaluated_at", ascending=False), 20)


def history_chart(history: pd.DataFrame) -> bytes:
    fig, axes = ui.figure(2, width=3.8, height=2.6)
    for model, grp in history.groupby("model"):
        axes[0].plot(grp.evaluated_at, grp["ROC AUC"], "o-", label=model)
        axes[1].plot(grp.evaluated_at, grp["log loss"], "o-", label=model)
    axes[0].set_title("ROC AUC over time")
    axes[1].set_title("log loss over time")
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30, labelsize=6)
    return ui.png(fig)


def what_if_html(result: dict) -> str:
    label = result["true label"]
    truth = "" if label is None else " True outcome of this customer: " + ("churned." if label else "stayed.")
    return ui.message(f"Risk {100 * result['risk']:.1f} % — band {result['band']}.") + ui.message(
        result["sentence"] + truth
    )


def what_if_chart(result: dict) -> bytes:
    """Each input's contribution to this customer's log-odds, red when it raises the risk."""
    c = result["contributions"][::-1]
    labels = result["labels"][::-1].str.replace(r" \((raises|lowers) the risk\)", "", regex=True).str[:48]
    fig, (ax,) = ui.figure(width=8.5, height=3.6)
    ax.barh(labels, c.values, color=["#d32f2f" if v > 0 else "#388e3c" for v in c.values])
    ax.set_title("What moves this risk (log-odds): red raises it")
    ax.tick_params(labelsize=7)
    return ui.png(fig)


def _items(mapping: dict) -> str:
    return ui.table_html(pd.DataFrame(list(mapping.items()), columns=["item", "value"]))


def about_html(ctx: dash.Context) -> str:
    """Lineage first (with a red sentence when the models and the database come from different
    data), then the data, the row counts and each model card."""
    info = dash.about(ctx)
    parts = [ui.message(sentence, "error") for sentence in info["mismatches"]]
    parts += [
        "<h4>Lineage: where each model and the database come from</h4>",
        ui.table_html(info["lineage"]),
        "<h4>Data</h4>",
        _items(info["data"]),
    ]
    if len(info["counts"]):
        parts.append(ui.table_html(info["counts"]))
    for name, card in info["models"].items():
        flat = {
            k: (v if isinstance(v, (str, int, float)) else str(v)[:300]) for k, v in card.items() if k != "features"
        }
        parts += [f"<h4>Model card: {name}</h4>", _items(flat)]
    if info["problems"]:
        parts.append(ui.message("; ".join(info["problems"]), "error"))
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# What the tabs' callbacks do with their widgets.
PERF_SOURCES = ["a month from the database", "a labelled CSV"]
MONEY = {"offer_cost": 50.0, "save_rate": 0.3, "revenue": 1788.0}  # the retention offer's defaults (as notebook 30)
UPLOAD_HELP = (
    "<div class='study-note'>The original study's 33-column processed format (is_churn optional), UTF-8, "
    f"up to {dash.MAX_UPLOAD_MB} MB and {dash.MAX_ROWS:,} rows; scored with the original-format model "
    "(not a forecast: it sees the renewal).</div>"
)
WHAT_IF_NOTE = (
    "<div class='study-note'>Correlational, not causal: the model's association for customers like this one, not "
    "the effect of changing a value. Values are limited to what the model saw in training.</div>"
)


def show_scored(ctx: dash.Context, frame: pd.DataFrame, model_name: str, filename: str, panel: ui.Panel) -> None:
    """The first rows with their reasons and the band chart at once, then the download with every
    user's reasons (the slow part, said while it runs)."""
    scored = dash.score_frame(ctx, frame, model_name, dash.SHOWN_ROWS)
    panel.table.value = ui.table_html(dash.display_table(scored), dash.SHOWN_ROWS)
    ui.show_png(panel.chart, band_chart(scored))
    panel.status.value = ui.message(f"Preparing the download: reasons for {len(scored):,} users…")
    panel.link.value = dash.download_link(
        dash.display_table(dash.with_reasons(ctx, scored, frame, model_name)), filename
    )


def month_filename(year, month, model_name: str) -> str:
    return f"churn_risk_{year}-{int(month):02d}_{model_name}.csv"


def money_inputs() -> dict[str, W.FloatText]:
    return {name: W.FloatText(value=value, description=name.replace("_", " ")) for name, value in MONEY.items()}


def evaluate(ctx: dash.Context, source: str, year, month, model_name: str, upload, threshold: float, money: dict):
    """The performance of a database month (the chosen model) or of a labelled upload (the
    original-format model), with the model and the source the history records."""
    money = {name: w.value for name, w in money.items()}
    if source == PERF_SOURCES[0]:
        perf = dash.evaluate_month(ctx, year, month, model_name, threshold, **money)
        return perf, model_name, f"month {year}-{int(month):02d}"
    f = ui.uploaded(upload, "Choose a labelled CSV file first (or evaluate a month from the database).")
    perf = dash.evaluate_upload(ctx, f["name"], f["content"], threshold, size=f["size"], **money)
    return perf, "original", f"upload {f['name']}"


def show_performance(ctx: dash.Context, evaluated: tuple, panel: ui.Panel) -> None:
    """Scores, confusion matrix and curves; the evaluation logged to ``log_model`` and its history."""
    perf, model_name, source = evaluated
    panel.metrics.value = performance_html(perf)
    ui.show_png(panel.charts, performance_chart(perf))
    history = dash.log_performance(ctx, perf, model_name, source)
    panel.history.value = history_html(history)
    ui.show_png(panel.history_chart, history_chart(history))


def what_if_inputs() -> dict[str, W.Widget]:
    """One input per what-if variable: a list where the variable is a category, a number otherwise."""
    inputs = {
        name: (W.Dropdown if name in dash.WHAT_IF_CHOICES else W.FloatText)(
            description=name, style={"description_width": "200px"}, layout=W.Layout(width="340px")
        )
        for name in dash.WHAT_IF_INPUTS
    }
    for name, w in inputs.items():
        w.add_class("study-whatif-input-" + name.split()[0])
    return inputs


def what_if_grid(inputs: dict) -> W.GridBox:
    return W.GridBox(list(inputs.values()), layout=W.Layout(grid_template_columns="repeat(2, 360px)"))


class WhatIf:
    """The customer drawn for the what-if tab and the inputs showing (and changing) its values."""

    def __init__(self, ctx: dash.Context, inputs: dict):
        self.ctx, self.inputs = ctx, inputs
        self.base, self.model_name = None, None

    def draw(self, model_name: str) -> str:
        """A random customer of the model's data into the inputs; the ranges the model saw, as HTML."""
        self.base = self.model_name = None
        domain = dash.input_domain(self.ctx, model_name)
        base = dash.random_customer(self.ctx, model_name)
        for name, value in dash.inputs_of(self.ctx, base, model_name).items():
            if name in dash.WHAT_IF_CHOICES:
                self.inputs[name].options = sorted(set(domain.get(name, {}).get("values", [])) | {value})
            self.inputs[name].value = value
        self.base, self.model_name = base, model_name
        return ui.message(dash.describe_domain(domain), "note")

    def result(self, model_name: str) -> dict:
        if self.model_name != model_name:
            raise dash.UserError("Draw a customer for this model first (button “Random customer”).")
        return dash.what_if(self.ctx, self.base, {n: w.value for n, w in self.inputs.items()}, model_name)


def show_risk(customer: WhatIf, model_name: str, panel: ui.Panel) -> None:
    """The drawn customer's risk with the inputs as they are now, and what moves it."""
    r = customer.result(model_name)
    panel.result.value = what_if_html(r)
    ui.show_png(panel.chart, what_if_chart(r))


# ---------------------------------------------------------------------------------------------
# Retention and Monitoring tabs.
CAMPAIGN = {"budget": 10_000.0, "cost": 50.0, "save_rate": 0.3, "value": 1788.0}  # value: as notebook 30's revenue
CAMPAIGN_LABELS = {"budget": "budget", "cost": "cost/contact", "save_rate": "save rate", "value": "value/saved"}
RETENTION_NOTE = (
    "<div class='study-note'>Expected profit of contacting a user = risk × save rate × value per saved user − cost "
    "per contact; the plan contacts the users of highest expected profit while it is positive and the budget "
    "lasts. The interval treats each save as an independent chance. Suggested actions come from a rules table "
    "(<code>actions.csv</code>).</div>"
)


def campaign_inputs() -> dict[str, W.FloatText]:
    return {
        name: W.FloatText(value=value, description=CAMPAIGN_LABELS[name], layout=W.Layout(width="210px"))
        for name, value in CAMPAIGN.items()
    }


def survival_chart(curves: dict[str, pd.DataFrame]) -> bytes:
    """Kaplan–Meier small multiples: the largest segments of each dimension."""
    fig, axes = ui.figure(len(curves), width=3.4, height=2.8)
    for ax, (name, km) in zip(axes, curves.items()):
        for seg, part in km.groupby("segment", sort=False):
            ax.step(part.month, part.survival, where="post", label=f"{seg} ({int(part.n.iloc[0]):,})")
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("months")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("still a member")
    return ui.png(fig)


def show_retention(r, panel: ui.Panel) -> None:
    """Revenue at risk, the plan's sentence, its first contacts and the whole list as CSV."""
    panel.revenue.value = f"<b>Revenue at risk, users expiring in {r.month}</b>" + ui.table_html(
        r.revenue, float_format="{:,.1f}"
    )
    panel.plan.value = ui.message(r.plan.sentence())
    shown = r.download()
    panel.table.value = ui.table_html(shown, dash.SHOWN_ROWS)
    panel.link.value = dash.download_link(shown, f"campaign_{r.month}_{r.model}.csv") if len(shown) else ""


MONITOR_NOTE = (
    "<div class='study-note'>Each month against the reference month (the earliest stored month the model scores, "
    "the closest to its training data). PSI on the reference's frozen bins: under 0.1 stable, 0.1–0.25 watch "
    "(warn), 0.25 and above act (alert); KS: the largest gap between the two distributions. Labels arrive 30 days "
    "after a month's last expiry.</div>"
)


def monitoring_chart(mon) -> bytes:
    """The worst input PSI and the score's PSI per month with the warn/alert lines, and ROC AUC."""
    s = mon.summary()
    fig, axes = ui.figure(2, width=4.2, height=2.8)
    axes[0].plot(s.month, s["max input PSI"], "o-", label="worst input")
    axes[0].plot(s.month, s["score PSI"], "s-", label="score")
    for level, colour in ((0.1, "#ffc107"), (0.25, "#d32f2f")):
        axes[0].axhline(level, color=colour, ls=":")
    axes[0].set_title(f"drift against {mon.reference} (PSI)")
    axes[0].legend(fontsize=7)
    axes[1].plot(s.month, s["ROC AUC"], "o-")
    axes[1].set_ylim(0.5, 1)
    axes[1].set_title("ROC AUC where labels are stored")
    return ui.png(fig)


def show_monitoring(mon, history: pd.DataFrame, panel: ui.Panel) -> None:
    latest = mon.summary().month.iloc[-1]
    panel.summary.value = "<b>By month</b>" + ui.table_html(mon.summary())
    panel.inputs.value = f"<b>Inputs in {latest}, most drifted first</b>" + ui.table_html(mon.inputs(latest), 15)
    quality = mon.rows[(mon.rows.kind == "quality") & (mon.rows.month == latest)]
    panel.quality.value = f"<b>Data quality in {latest}</b>" + ui.table_html(
        quality[["name", "value", "status"]].rename(columns={"name": "check", "value": "failing share"})
    )
    panel.history.value = "<b>History (log_monitoring)</b>" + ui.table_html(history, 30)
    ui.show_png(panel.chart, monitoring_chart(mon))


def retention_tab(ctx: dash.Context) -> W.VBox:
    """The Retention tab, wired: month and model, the campaign's inputs, the plan, the curves."""
    from study.churn import dashboard_retention as retain

    (year, month, _), model = month_pickers(ctx), model_picker()
    money, (go, spin) = campaign_inputs(), ui.action("Plan the campaign")
    panel = ui.Panel("study-retention", "revenue", "plan", "table", "link", curves="1100px")
    ui.tag("study-retention", go=go, **money)

    def on_click(_):
        with panel.guard("Planning…", spin):
            inputs = {k: w.value for k, w in money.items()}
            show_retention(retain.plan_campaign(ctx, year.value, month.value, model.value, **inputs), panel)
            ui.show_png(panel.curves, survival_chart(retain.survival_curves(ctx)[1]))

    go.on_click(on_click)
    return W.VBox([W.HTML(RETENTION_NOTE), W.HBox([year, month, model]), W.HBox(list(money.values())),
                   W.HBox([go, spin]), panel.status, panel.revenue, panel.plan, panel.link, panel.table,
                   panel.curves])  # fmt: skip


def monitoring_tab(ctx: dash.Context) -> W.VBox:
    """The Monitoring tab, wired: a model → every month's drift, quality, performance, history."""
    from study.churn import dashboard_retention as retain

    model, (go, spin) = model_picker(), ui.action("Check the model")
    panel = ui.Panel("study-monitor", "summary", "inputs", "quality", "history", chart="900px")
    ui.tag("study-monitor", go=go)

    def on_click(_):
        with panel.guard("Comparing every month with the reference…", spin):
            checked = retain.monitor(ctx, model.value)
            show_monitoring(checked, retain.monitoring_history(ctx, model.value), panel)

    go.on_click(on_click)
    return W.VBox([W.HTML(MONITOR_NOTE), W.HBox([model, go, spin]), panel.status, panel.summary, panel.chart,
                   panel.inputs, panel.quality, panel.history])  # fmt: skip
