"""Retention economics on scored users: the revenue at risk of an expiry month, and the campaign
planner — whom a limited budget should reach, what it should offer them, what it should return.

A contacted user with churn risk p is kept with probability ``save_rate`` if they would have left,
worth ``value`` when kept; each contact costs ``cost``. Expected profit of a contact:
p · save_rate · value − cost (:func:`study.churn.evaluation.contact_gain`, the one profit formula).
The optimum under a budget contacts the users of highest expected profit, as long as it is
positive, at most ⌊budget / cost⌋ of them (every contact costs the same, so top-K is exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from study.churn.evaluation import contact_gain
from study.ui import number

ACTIONS = Path(__file__).with_name("actions.csv")
OPS = {"=": np.equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}
Z90 = 1.6449  # two-sided 90 % normal interval


def revenue_at_risk(scored: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Per risk band: users, expected churners (Σ risk) and revenue at risk (Σ risk × the price
    of the user's plan, ``plan_list_price``), with a total row."""
    from study.churn.scoring import BAND_LABELS

    price = frame.set_index("msno")["plan_list_price"].reindex(scored.msno).to_numpy(dtype=float)
    t = pd.DataFrame({"band": scored.band.to_numpy(), "risk": scored.risk.to_numpy(float), "price": price})
    t["at_risk"] = t.risk * t.price
    g = t.groupby("band").agg(users=("risk", "size"), expected_churners=("risk", "sum"),
                              revenue_at_risk=("at_risk", "sum"))  # fmt: skip
    g = g.reindex(BAND_LABELS, fill_value=0)
    g.loc["all"] = g.sum()
    g["users"] = g.users.astype(int)
    return g.reset_index().rename(columns={"index": "band"})


@dataclass
class Plan:
    contacts: pd.DataFrame  # msno, risk, expected_profit, action, why (riskiest-profit first)
    considered: int
    affordable: int  # ⌊budget / cost⌋
    expected_saves: float
    expected_return: float  # Σ expected profit of the contacts
    interval: tuple[float, float]  # 90 % interval of the return (saves as independent Bernoulli draws)
    cost: float

    def sentence(self) -> str:
        n = len(self.contacts)
        if n == 0:
            return (f"No contact pays: at this cost, save rate and value no user's expected profit is positive "
                    f"({self.considered:,} users considered).")  # fmt: skip
        limit = "the budget" if n == self.affordable else "positive expected profit"
        lo, hi = self.interval
        return (
            f"Contact {n:,} of {self.considered:,} users (limited by {limit}; cost {self.cost * n:,.0f}): "
            f"{self.expected_saves:,.1f} users expected to stay, expected return {self.expected_return:,.0f} "
            f"(90 % interval {lo:,.0f} to {hi:,.0f})."
        )


def check_campaign(budget, cost, save_rate, value) -> tuple[float, float, float, float]:
    """The planner's inputs as a stakeholder types them: a sentence for anything impossible."""
    return (
        number("budget", budget, 0),
        number("cost per contact", cost, 0, above=True),
        number("save rate", save_rate, 0, 1),
        number("value per saved user", value, 0),
    )


def plan(scored: pd.DataFrame, frame: pd.DataFrame, budget, cost, save_rate, value, model_name: str) -> Plan:
    """The profit-optimal contact list of ``scored`` users (risk per user) under ``budget``."""
    budget, cost, save_rate, value = check_campaign(budget, cost, save_rate, value)
    p = scored.risk.to_numpy(dtype=float)
    gain = contact_gain(p, save_rate, value, cost)
    order = np.argsort(-gain, kind="mergesort")
    affordable = int(budget // cost)
    chosen = order[(gain[order] > 0)][:affordable]
    q = p[chosen] * save_rate  # probability each contact is saved
    contacts = scored.iloc[chosen][["msno", "risk"]].reset_index(drop=True)
    contacts["expected_profit"] = gain[chosen]
    rows = frame.set_index("msno").loc[contacts.msno]
    acts = suggest(rows, model_name)
    contacts["action"], contacts["why"] = acts.action.to_numpy(), acts.why.to_numpy()
    for c in ("reason_1", "reason_2", "reason_3"):
        if c in scored:
            contacts[c] = scored.iloc[chosen][c].to_numpy()
    expected = float(gain[chosen].sum())
    sd = float(value * np.sqrt((q * (1 - q)).sum()))
    return Plan(
        contacts, len(scored), affordable, float(q.sum()), expected, (expected - Z90 * sd, expected + Z90 * sd), cost
    )


@lru_cache(maxsize=1)
def rules() -> pd.DataFrame:
    """The suggested-action rules (``actions.csv``), by priority."""
    t = pd.read_csv(ACTIONS, comment="#", dtype={"input": str, "op": str}, keep_default_na=False)
    return t.sort_values("priority").reset_index(drop=True)


def suggest(rows: pd.DataFrame, model_name: str) -> pd.DataFrame:
    """The first rule that holds for each row (``action``, ``why``), the model's inputs resolved
    through the what-if names (the same name reads ``last_is_cancel`` or ``is_cancel``)."""
    from study.churn.dashboard import WHAT_IF_INPUTS

    k = 0 if model_name == "champion" else 1
    action = np.full(len(rows), "", dtype=object)
    why = np.full(len(rows), "", dtype=object)
    for r in rules().itertuples():
        todo = action == ""
        if not todo.any():
            break
        if r.input == "":
            holds = np.ones(len(rows), dtype=bool)
        else:
            if r.input not in WHAT_IF_INPUTS or r.op not in OPS:
                raise ValueError(f"actions.csv rule {r.priority}: unknown input {r.input!r} or operator {r.op!r}")
            col = WHAT_IF_INPUTS[r.input][k]
            holds = OPS[r.op](rows[col].to_numpy(dtype=float), float(r.value))
        hit = todo & holds
        action[hit], why[hit] = r.action, r.why
    return pd.DataFrame({"action": action, "why": why}, index=rows.index)
