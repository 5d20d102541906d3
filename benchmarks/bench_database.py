"""Benchmark: database export throughput and month-query latency, against the original study's way.

In one run, on the same data:
* export of the application and analytic databases (bulk executemany in one transaction) into
  SQLite and, when STUDY_TEST_MARIADB_URL (or --mariadb URL) is set, MariaDB: rows/s of the write
  transaction, and the baseline of the original study (one INSERT and one COMMIT per row) on the
  first --baseline-rows log rows, with the ratio;
* on the first --bulk-rows log rows, from a DataFrame: SQLAlchemy's executemany of per-row dicts
  (the export's way until 2026-12-02) against the rows handed to the driver ready (the export's
  way now, ``export._bulk_insert``), with the ratio;
* the month query → frame latency (median of 7) for every month, on each engine.
Usage: python benchmarks/bench_database.py [--scale default|full] [--baseline-rows 20000] [--bulk-rows 300000]
       [--mariadb URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def peak_rss_gb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def per_row_commits(url: str, rows: list[dict]) -> float:
    """The original study's loop: one INSERT and one COMMIT per row (bound parameters, to be fair)."""
    from sqlalchemy import insert

    from study.churn import database as db

    eng = db.engine(url)
    db.app_meta.create_all(eng)
    t0 = time.perf_counter()
    for r in rows:
        with eng.begin() as conn:
            conn.execute(insert(db.logs), [r])
    wall = time.perf_counter() - t0
    with eng.begin() as conn:
        conn.execute(db.logs.delete())
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="default")
    ap.add_argument("--seed", type=int, default=2017)
    ap.add_argument("--baseline-rows", type=int, default=20000)
    ap.add_argument("--bulk-rows", type=int, default=300000)
    ap.add_argument("--mariadb", default=os.environ.get("STUDY_TEST_MARIADB_URL"))
    ap.add_argument("--sqlite-only", action="store_true", help="skip MariaDB (e.g. at full scale)")
    args = ap.parse_args()
    import pandas as pd
    from sqlalchemy import insert, select

    from study.churn import data, database as db
    from study.churn.db import export

    src = data.resolve_source(None, scale=args.scale, seed=args.seed)
    print(f"data: {src.describe()}")
    t0 = time.perf_counter()
    users = db.test_users(src)
    print(f"test users: {len(users):,} ({time.perf_counter() - t0:.1f} s to split)")
    tmp = tempfile.mkdtemp(prefix="bench-db-")
    engines = {"SQLite": f"sqlite:///{tmp}/application.sqlite"}
    if args.mariadb and not args.sqlite_only:
        engines["MariaDB"] = args.mariadb
    results = []
    for name, url in engines.items():
        an = db.analytic_url(app=url)
        if name != "SQLite":
            db.app_meta.drop_all(db.engine(url))
            db.an_meta.drop_all(db.engine(an))
        t0 = time.perf_counter()
        counts = db.export_application(src, url, users=users)
        total = time.perf_counter() - t0
        write = db.WRITE_SECONDS[url]
        n = sum(counts.values())
        t0 = time.perf_counter()
        an_counts = db.export_analytic(src, an, fraction=0.01)
        an_total, an_write = time.perf_counter() - t0, db.WRITE_SECONDS[an]
        an_n = sum(an_counts.values())
        # baseline on the same log rows
        with db.engine(url).connect() as conn:
            res = conn.execute(select(db.logs).order_by(db.logs.c.id).limit(args.baseline_rows))
            sample = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
        sample["id"] += 10**12  # no clash with the exported rows
        with db.engine(url).connect() as conn:
            res = conn.execute(select(db.logs).order_by(db.logs.c.id).limit(args.bulk_rows))
            many = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
        many["id"] += 10**12  # (read now: the baseline below empties the table)
        recs = db._records(sample)
        base_wall = per_row_commits(url, recs)
        t0 = time.perf_counter()
        with db.engine(url).begin() as conn:
            conn.execute(insert(db.logs), recs)
        bulk_wall = time.perf_counter() - t0
        with db.engine(url).begin() as conn:
            conn.execute(db.logs.delete().where(db.logs.c.id >= 10**12))
        ways = {
            "SQLAlchemy executemany of dicts": lambda conn: conn.execute(insert(db.logs), db._records(many)),
            "rows handed to the driver": lambda conn: export._bulk_insert(conn, db.logs, many),
        }
        bulk_ways = {}
        for way, write_rows in ways.items():
            t0 = time.perf_counter()
            with db.engine(url).begin() as conn:
                write_rows(conn)
            bulk_ways[way] = time.perf_counter() - t0
            with db.engine(url).begin() as conn:
                conn.execute(db.logs.delete().where(db.logs.c.id >= 10**12))
        lat = []
        for recipe in ("pit", "original"):
            for m in db.available_months(url, recipe):
                row = [recipe, m]
                for from_rows in (False, True):  # the cached Arrow parts, then the per-user rows (baseline)
                    times = []
                    for _ in range(7):
                        t0 = time.perf_counter()
                        f = db.month_frame(m, url, recipe, from_rows=from_rows)
                        times.append(time.perf_counter() - t0)
                    row.append(1000 * statistics.median(times))
                lat.append((*row, len(f)))
        results.append(name)
        print(f"\n== {name}")
        print(
            f"application export: {n:,} rows; write transaction {write:.1f} s → {n / write:,.0f} rows/s "
            f"(whole export incl. reading the raw files and computing the cached features: {total:.1f} s)"
        )
        print(
            f"analytic export (1 % sample): {an_n:,} rows; write {an_write:.1f} s → {an_n / an_write:,.0f} rows/s "
            f"(whole: {an_total:.1f} s)"
        )
        print(
            f"baseline, one commit per row ({len(recs):,} log rows): {base_wall:.2f} s → {len(recs) / base_wall:,.0f} rows/s; "
            f"bulk in one transaction: {bulk_wall:.2f} s → {len(recs) / bulk_wall:,.0f} rows/s; "
            f"ratio {base_wall / bulk_wall:.1f}x"
        )
        (old_way, old_s), (new_way, new_s) = bulk_ways.items()
        print(
            f"bulk from a DataFrame ({len(many):,} log rows): {old_way} {old_s:.2f} s → {len(many) / old_s:,.0f} rows/s; "
            f"{new_way} {new_s:.2f} s → {len(many) / new_s:,.0f} rows/s; ratio {old_s / new_s:.1f}x"
        )
        for recipe, m, cached, rows_ms, n_users in lat:
            print(
                f"month query {recipe:<8} {m}: {n_users:>7,} users: {cached:7.1f} ms from the cached frame, "
                f"{rows_ms:7.1f} ms from the per-user rows ({rows_ms / cached:.1f}x) (medians of 7)"
            )
    print(f"\npeak RSS of this process: {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
