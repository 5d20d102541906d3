"""Benchmark: generation of the KKBOX twin — wall time, rows/s and peak memory per scale.

Each scale runs in a fresh subprocess, so its peak RSS is its own (the child's ``ru_maxrss``).
Usage: python benchmarks/bench_twin.py [--scales default full] [--out DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
def peak_rss_gb():
    # VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across fork + exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
import json, sys
from study.churn.twin import generate
s = generate(sys.argv[1], sys.argv[2], int(sys.argv[3]), progress=False)
print(json.dumps({"rows": s.rows, "churn": s.churn, "seconds": s.seconds,
                  "peak_rss_gb": peak_rss_gb()}))
"""


def run_scale(scale: str, out: Path, seed: int) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), scale, str(seed)], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - t0
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    total_rows = sum(result["rows"].values())
    size = sum(p.stat().st_size for p in out.glob("*.csv"))
    return {
        "scale": scale,
        "wall_s": round(wall, 1),
        "rows": total_rows,
        "rows_per_s": round(total_rows / wall),
        "peak_rss_gb": round(result["peak_rss_gb"], 2),
        "csv_gb": round(size / 1e9, 2),
        "march_log_rows": result["rows"]["user_logs_v2.csv"],
        "labelled_march": result["rows"]["train_v2.csv"],
        "churn": result["churn"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scales", nargs="+", default=["default", "full"])
    ap.add_argument("--seed", type=int, default=2017)
    ap.add_argument("--out", type=Path, default=None, help="keep the files here (default: a temp dir)")
    args = ap.parse_args()
    rows = []
    for scale in args.scales:
        out = (args.out / scale) if args.out else Path(tempfile.mkdtemp(prefix=f"twin-{scale}-"))
        try:
            r = run_scale(scale, out, args.seed)
        finally:
            if args.out is None:
                shutil.rmtree(out, ignore_errors=True)
        rows.append(r)
        print(json.dumps(r), flush=True)
    print("\nscale    wall s   rows         rows/s      peak RSS GB  CSV GB  March log rows  labelled (Mar)")
    for r in rows:
        print(
            f"{r['scale']:<8} {r['wall_s']:>6}   {r['rows']:>11,}  {r['rows_per_s']:>10,}  {r['peak_rss_gb']:>11}"
            f"  {r['csv_gb']:>6}  {r['march_log_rows']:>14,}  {r['labelled_march']:>13,}"
        )


if __name__ == "__main__":
    main()
