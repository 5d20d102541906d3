"""Benchmark: the original recipe on DuckDB vs the pandas reference, on the same raw files, in one run.

Prints wall time, input rows/s and peak RSS of each engine (each in a fresh subprocess, so the
peak is its own), their ratios, and the point-in-time build time.
Usage: python benchmarks/bench_features.py [--scale full] [--raw DIR] [--skip-pandas]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
def peak_rss_gb():
    # VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across fork + exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
import json, sys, time
from study.churn import data, features
src = data.resolve_source(sys.argv[1])
t0 = time.perf_counter()
if sys.argv[2] == "duckdb":
    df = features.original_recipe(src)
elif sys.argv[2] == "pandas":
    df = features.original_recipe_pandas(src)
else:
    df = features.point_in_time(src, months=("2017-01", "2017-02", "2017-03"))
wall = time.perf_counter() - t0
print(json.dumps({"engine": sys.argv[2], "wall_s": wall, "rows_out": len(df),
                  "peak_rss_gb": peak_rss_gb()}))
"""


def input_rows(folder) -> dict:
    import duckdb

    from study.churn.data import read_sql

    con = duckdb.connect()
    out = {}
    for name, kind in [
        ("user_logs_v2.csv", "user_logs"),
        ("transactions_v2.csv", "transactions"),
        ("members_v3.csv", "members"),
        ("train_v2.csv", "train"),
    ]:
        out[name] = con.execute(f"SELECT count(*) FROM {read_sql(folder / name, kind)}").fetchone()[0]
    return out


def main() -> None:
    from study.churn.data import resolve_source

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", default="full")
    ap.add_argument("--seed", type=int, default=2017)
    ap.add_argument("--raw", help="raw folder (default: the twin of --scale, generated if missing)")
    ap.add_argument("--skip-pandas", action="store_true")
    args = ap.parse_args()
    src = resolve_source(args.raw, scale=args.scale, seed=args.seed, progress=True)
    rows = input_rows(src.path)
    total = sum(rows.values())
    print(f"input: {src.describe()}")
    for k, v in rows.items():
        print(f"  {k:<22} {v:>12,} rows")
    results = {}
    for engine in ["duckdb", "pandas", "pit"]:
        if engine == "pandas" and args.skip_pandas:
            continue
        p = subprocess.run([sys.executable, "-c", CHILD, str(src.path), engine], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"{engine}: FAILED\n{p.stderr[-2000:]}")
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r["input_rows_per_s"] = total / r["wall_s"]
        results[engine] = r
        print(json.dumps(r), flush=True)
    print(f"\n{'engine':<8} {'wall s':>8} {'input rows/s':>14} {'peak RSS GB':>12} {'rows out':>10}")
    for e, r in results.items():
        print(
            f"{e:<8} {r['wall_s']:>8.1f} {r['input_rows_per_s']:>14,.0f} {r['peak_rss_gb']:>12.2f} {r['rows_out']:>10,}"
        )
    if "duckdb" in results and "pandas" in results:
        d, p = results["duckdb"], results["pandas"]
        print(
            f"\npandas / DuckDB: time x{p['wall_s'] / d['wall_s']:.1f}, peak memory x{p['peak_rss_gb'] / d['peak_rss_gb']:.1f}"
            f"  (targets: DuckDB <= 30 s and <= 3 GB, >= 10x faster)"
        )


if __name__ == "__main__":
    main()
