"""Benchmark: the two feature recipes on DuckDB and on Spark local[2], at growing scales.

For each scale (the twin of that scale, generated if missing) and each engine, a fresh subprocess
builds the original recipe and the point-in-time set (January to March); the benchmark prints wall
time, log rows/s and the peak memory of the whole process tree (Spark's JVM included), fits how
the time grows with the log rows read (time = a · rows^b, least squares on log-log) and from that
estimates the KKBOX v1 size (392 M log rows) on this machine.
Usage: python benchmarks/bench_spark.py [--scales quick default full] [--recipes original pit]
       [--engines duckdb spark] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time

import numpy as np
import psutil

V1_LOG_ROWS = 392_106_543  # user_logs.csv of the real release (FACTS.md)
CHILD = """
import json, sys, time
from study.churn import data, features
src = data.resolve_source(sys.argv[1])
engine, recipe = sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if recipe == "original":
    df = features.original_recipe(src, engine=engine)
else:
    df = features.point_in_time(src, months=("2017-01", "2017-02", "2017-03"), engine=engine)
print(json.dumps({"wall_s": time.perf_counter() - t0, "rows_out": len(df)}))
"""


def log_rows(folder) -> dict:
    import duckdb

    from study.churn.data import read_sql

    con = duckdb.connect()
    return {
        name: con.execute(f"SELECT count(*) FROM {read_sql(folder / name, 'user_logs')}").fetchone()[0]
        for name in ("user_logs.csv", "user_logs_v2.csv")
    }


def run_child(path: str, engine: str, recipe: str) -> dict:
    """The child's wall time and the peak RSS of its process tree (sampled every 0.2 s)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, path, engine, recipe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = [0]

    def sample():
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} {recipe} failed:\n{err[-2000:]}")
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_gb"] = peak[0] / 1e9
    return r


def fit_growth(rows, seconds) -> tuple[float, float]:
    """(a, b) of seconds = a · rows^b."""
    b, log_a = np.polyfit(np.log(rows), np.log(seconds), 1)
    return float(np.exp(log_a)), float(b)


def main() -> None:
    from study.churn.data import resolve_source

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scales", nargs="+", default=["quick", "default", "full"])
    ap.add_argument("--engines", nargs="+", default=["duckdb", "spark"])
    ap.add_argument("--recipes", nargs="+", default=["original", "pit"], choices=["original", "pit"])
    ap.add_argument("--seed", type=int, default=2017)
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args()
    results = []
    for scale in args.scales:
        src = resolve_source(None, scale=scale, seed=args.seed, progress=True)
        logs = log_rows(src.path)
        read = {"original": logs["user_logs_v2.csv"], "pit": logs["user_logs.csv"] + logs["user_logs_v2.csv"]}
        for recipe in args.recipes:
            for engine in args.engines:
                try:
                    r = run_child(str(src.path), engine, recipe)
                    r["log_rows_per_s"] = read[recipe] / r["wall_s"]
                except RuntimeError as exc:  # reported in the table, the other runs go on
                    r = {"wall_s": None, "log_rows_per_s": None, "peak_gb": None, "error": str(exc)[-600:]}
                r.update(scale=scale, engine=engine, recipe=recipe, log_rows=read[recipe])
                results.append(r)
                print(json.dumps(r), flush=True)
                if args.json:  # kept as it goes: a long run stopped halfway still leaves its figures
                    with open(args.json, "w") as f:
                        json.dump(results, f, indent=1)
    print(
        f"\n{'scale':<8} {'recipe':<9} {'engine':<7} {'log rows':>12} {'wall s':>8} {'log rows/s':>12} {'peak GB':>8}"
    )
    for r in results:
        if r["wall_s"] is None:
            print(f"{r['scale']:<8} {r['recipe']:<9} {r['engine']:<7} {r['log_rows']:>12,}   failed")
            continue
        print(
            f"{r['scale']:<8} {r['recipe']:<9} {r['engine']:<7} {r['log_rows']:>12,} {r['wall_s']:>8.1f} "
            f"{r['log_rows_per_s']:>12,.0f} {r['peak_gb']:>8.2f}"
        )
    print(f"\nGrowth (time = a · log rows^b) and the estimate at the v1 size ({V1_LOG_ROWS:,} log rows):")
    for recipe in args.recipes:
        for engine in args.engines:
            pts = [r for r in results if r["recipe"] == recipe and r["engine"] == engine and r["wall_s"]]
            if len(pts) < 2:
                continue
            a, b = fit_growth([p["log_rows"] for p in pts], [p["wall_s"] for p in pts])
            # beyond the largest measured scale, growth at least linear: a fixed start-up cost
            # (Spark's JVM, task scheduling) flattens the fitted exponent at small scales
            largest = max(pts, key=lambda p: p["log_rows"])
            linear = largest["wall_s"] * V1_LOG_ROWS / largest["log_rows"]
            estimate = max(a * V1_LOG_ROWS**b, linear)
            print(
                f"  {recipe:<9} {engine:<7} b = {b:.2f}; v1 estimate {estimate / 60:,.1f} min "
                f"(fit {a * V1_LOG_ROWS**b / 60:,.1f}, linear from the largest scale {linear / 60:,.1f})"
            )


if __name__ == "__main__":
    main()
