"""The data card: what data the study runs on, next to the real figures of FACTS.md.

All figures come from DuckDB queries over the raw CSVs through the loader's typed reader, so the
card costs seconds even on the full-size files, real or simulated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from study.churn import facts, features
from study.churn.data import FILES, RawSource, read_sql


def connect(source: RawSource) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per raw file present (``train_v2``, ``user_logs`` …)."""
    con = features.connect()
    for name, kind in FILES.items():
        path = source.file(name)
        if path.is_file():
            con.execute(f"CREATE VIEW {name.removesuffix('.csv')} AS SELECT * FROM {read_sql(path, kind)}")
    return con


def _has(con, view: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [view]).fetchone()[0])


def joined_churn(con) -> tuple[int, float]:
    """Users and churn rate after the original study's inner joins (FACTS.md section 3, step 4):
    latest-expiry transaction ⋈ members ⋈ March log aggregate ⋈ train_v2."""
    n, rate = con.execute("""
        WITH t AS (SELECT DISTINCT msno FROM transactions_v2),
             l AS (SELECT DISTINCT msno FROM user_logs_v2)
        SELECT count(*), avg(is_churn) FROM train_v2
        JOIN t USING (msno) JOIN members_v3 USING (msno) JOIN l USING (msno)""").fetchone()
    return int(n), float(rate or 0.0)


@dataclass
class DataCard:
    source: RawSource
    files: pd.DataFrame
    churn: pd.DataFrame
    marginals: pd.DataFrame
    logs: pd.DataFrame
    oddities: pd.DataFrame
    meta: dict = field(default_factory=dict)

    TABLES = ("files", "churn", "marginals", "logs", "oddities")

    def numbers(self) -> dict:
        """The card's tables as plain values (table → columns and rows), for comparing a card with an
        expected one to a tolerance rather than as rendered HTML."""
        return {name: json.loads(getattr(self, name).to_json(orient="split", index=False)) for name in self.TABLES}

    def conclusions(self) -> list[str]:
        c = self.churn.set_index("label set")
        m = self.marginals.set_index("figure")
        out = [f"Data: {self.source.describe()}."]
        for k in c.index:
            real = c.loc[k, "real"]
            real_txt = f" (real {real:.2%})" if pd.notna(real) else ""
            out.append(f"Churn in {k}: {c.loc[k, 'churn']:.2%} of {int(c.loc[k, 'users']):,} users{real_txt}.")
        within = (m["ratio to real"].between(0.8, 1.25)).sum()
        out.append(
            f"{within} of {len(m)} key marginals lie within ±25 % of the real figure; the furthest is "
            f"'{m['ratio to real'].sub(1).abs().idxmax()}' (ratio {m['ratio to real'].loc[m['ratio to real'].sub(1).abs().idxmax()]:.2f})."
        )
        lm = self.logs.set_index("column")
        out.append(
            f"Daily listening: median num_100 {lm.loc['num_100', 'q50']:.0f} (real 17), median total_secs "
            f"{lm.loc['total_secs', 'q50']:.0f} s (real 4583)."
        )
        return out


def build(source: RawSource) -> DataCard:
    con = connect(source)
    try:
        rows = []
        for name in FILES:
            view = name.removesuffix(".csv")
            if not _has(con, view):
                continue
            n, users = con.execute(f"SELECT count(*), count(DISTINCT msno) FROM {view}").fetchone()
            rows.append(
                {
                    "file": name,
                    "rows": n,
                    "unique msno": users,
                    "MB": round(source.file(name).stat().st_size / 1e6, 1),
                    "real rows": facts.REAL_ROWS.get(name),
                }
            )
        files = pd.DataFrame(rows)
        files["rows / real"] = (files["rows"] / files["real rows"]).round(4)

        churn_rows = []
        for view, label in [("train", "train.csv (February expiries)"), ("train_v2", "train_v2.csv (March expiries)")]:
            if _has(con, view):
                n, rate = con.execute(f"SELECT count(*), avg(is_churn) FROM {view}").fetchone()
                churn_rows.append({"label set": label, "users": n, "churn": rate, "real": facts.REAL_CHURN[label]})
        if all(_has(con, v) for v in ["train_v2", "transactions_v2", "members_v3", "user_logs_v2"]):
            n, rate = joined_churn(con)
            label = "after the original study's inner joins"
            churn_rows.append({"label set": label, "users": n, "churn": rate, "real": facts.REAL_CHURN[label]})
        churn = pd.DataFrame(churn_rows)

        tx = con.execute("""SELECT avg((payment_method_id = 41)::INT), avg((payment_plan_days = 30)::INT),
            avg((plan_list_price = 149)::INT), avg((plan_list_price = 99)::INT), avg(is_auto_renew), avg(is_cancel)
            FROM transactions_v2""").fetchone()
        mem = con.execute("""SELECT avg((gender IS NULL)::INT), avg((bd = 0)::INT), avg((city = 1)::INT)
            FROM members_v3""").fetchone()
        days = con.execute("SELECT count(*) / count(DISTINCT msno) FROM user_logs_v2").fetchone()[0]
        miss = con.execute("""SELECT avg((m.msno IS NULL)::INT), avg((l.msno IS NULL)::INT) FROM train_v2 t
            LEFT JOIN members_v3 m USING (msno)
            LEFT JOIN (SELECT DISTINCT msno FROM user_logs_v2) l USING (msno)""").fetchone()
        ours = list(tx) + list(mem) + [days] + list(miss)
        marginals = pd.DataFrame(
            {"figure": list(facts.REAL_MARGINALS), "data": ours, "real": list(facts.REAL_MARGINALS.values())}
        )
        marginals["ratio to real"] = (marginals["data"] / marginals["real"]).round(3)

        log_rows = []
        for col, (mean, sd, q25, q50, q75, mx) in facts.REAL_LOG_MARGINALS.items():
            r = con.execute(f"""SELECT avg({col}), stddev({col}), quantile_cont({col}, 0.25), median({col}),
                quantile_cont({col}, 0.75), max({col}) FROM user_logs_v2""").fetchone()
            log_rows.append(
                {
                    "column": col,
                    "mean": r[0],
                    "sd": r[1],
                    "q25": r[2],
                    "q50": r[3],
                    "q75": r[4],
                    "max": r[5],
                    "real mean": mean,
                    "real sd": sd,
                    "real q50": q50,
                    "real max": mx,
                }
            )
        logs = pd.DataFrame(log_rows)

        odd = []
        tx_views = [v for v in ("transactions", "transactions_v2") if _has(con, v)]
        union = " UNION ALL ".join(f"SELECT * FROM {v}" for v in tx_views)
        n_tx = con.execute(f"SELECT count(*) FROM ({union})").fetchone()[0]
        before, epoch = con.execute(f"""SELECT count_if(membership_expire_date < transaction_date),
            count_if(membership_expire_date = 19700101) FROM ({union})""").fetchone()
        real_tx = facts.REAL_ROWS["transactions.csv"] + facts.REAL_ROWS["transactions_v2.csv"]
        odd.append(
            (
                "transactions expiring before their date (v1 + v2)",
                before,
                before / n_tx,
                facts.REAL_ODDITIES["transactions expiring before their date (v1 + v2)"] / real_tx,
            )
        )
        odd.append(
            (
                "transactions expiring on 1970-01-01",
                epoch,
                epoch / n_tx,
                facts.REAL_ODDITIES["transactions expiring on 1970-01-01"] / real_tx,
            )
        )
        dups = sum(
            con.execute(f"SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM {v})) FROM {v}").fetchone()[0]
            for v in tx_views
        )
        odd.append(("exact duplicate rows within a transactions file", dups, dups / n_tx, None))
        if _has(con, "user_logs"):
            neg, n_logs = con.execute("SELECT count_if(total_secs < 0), count(*) FROM user_logs").fetchone()
            odd.append(
                (
                    "negative total_secs in user_logs.csv",
                    neg,
                    neg / max(n_logs, 1),
                    facts.REAL_ODDITIES["negative total_secs in user_logs.csv"] / facts.REAL_ROWS["user_logs.csv"],
                )
            )
        bd_out = con.execute("SELECT count_if(bd < 0 OR bd > 100), count(*) FROM members_v3").fetchone()
        odd.append(("members with bd < 0 or > 100", bd_out[0], bd_out[0] / bd_out[1], None))
        oddities = pd.DataFrame(odd, columns=["oddity", "count", "rate", "real rate"])
    finally:
        con.close()
    meta = {}
    meta_file = source.file("twin.json")
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
    return DataCard(source, files, churn, marginals, logs, oddities, meta)


def distributions(source: RawSource) -> dict[str, pd.DataFrame]:
    """Small frames for the card's plots: shares of plan days, payment methods, registration
    channels, and a log-binned histogram of daily total_secs."""
    con = connect(source)
    try:
        out = {}
        for col in ["payment_plan_days", "payment_method_id"]:
            out[col] = con.execute(f"""SELECT {col} AS value, count(*) / sum(count(*)) OVER () AS share
                FROM transactions_v2 GROUP BY 1 ORDER BY share DESC LIMIT 12""").df()
        out["registered_via"] = con.execute("""SELECT registered_via AS value, count(*) AS users, avg(is_churn) AS churn
            FROM train_v2 JOIN members_v3 USING (msno) GROUP BY 1 ORDER BY users DESC""").df()
        out["total_secs"] = con.execute("""SELECT round(log10(greatest(total_secs, 1)), 1) AS log10_secs,
            count(*) AS rows FROM user_logs_v2 GROUP BY 1 ORDER BY 1""").df()
    finally:
        con.close()
    return out
