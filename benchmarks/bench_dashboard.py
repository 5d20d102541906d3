"""Benchmark: the churn dashboard in a real headless Chromium against a live `study serve`.

Measures, in one run: time to first render without and with a preheated kernel (each a fresh
server), month query → table shown (champion and original-format model), upload of a 10 k-row CSV
→ results shown, the Retention tab's plan and the Monitoring tab's check (click → shown), and the
memory (RSS) of each kernel process. Uses the default models and
database (prepared by `study serve` when missing, at --scale).
Usage: python benchmarks/bench_dashboard.py [--scale default] [--rows 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


# The same measurements before issue 17 (default scale, 3 visits, issue 7's closing note): reasons
# were then computed for every user of a month and every uploaded row before the table was shown.
BEFORE = {
    "render no preheating": 5.8,
    "render preheated kernel": 2.0,
    "month champion": 2.9,
    "month original": 4.9,
    "upload": 9.7,
}
TARGET = {"render preheated kernel": 2.0, "month champion": 1.0, "month original": 1.0, "upload": 4.0}


def versus(key: str, now: float) -> str:
    """``now`` next to the figure before issue 17 and the issue's target, where there is one."""
    parts = [f"before {BEFORE[key]:.1f} s"] if key in BEFORE else []
    parts += [f"target ≤ {TARGET[key]:.0f} s"] if key in TARGET else []
    return f"{now:.2f} s" + (f" ({', '.join(parts)})" if parts else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(scale: str, preheat: bool = False, notebook: str = "churn_scoring.ipynb"):
    port, token = free_port(), "bench-" + os.urandom(8).hex()
    cmd = [str(Path(sys.executable).parent / "study"), "serve", "--scale", scale, "--port", str(port)]
    if preheat:
        cmd.append("--preheat")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "STUDY_TOKEN": token}
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            urllib.request.urlopen(f"{base}/?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    return proc, f"{base}/voila/render/{notebook}?token={token}"


def kernel_rss_mb(proc) -> list[float]:
    import psutil

    out = []
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                out.append(child.memory_info().rss / 1e6)
        except psutil.Error:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="default")
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from study.churn import data, features
    from study.churn.dashboard import MODEL_NAMES, MODEL_NOTES

    chromium = shutil.which("chromium")
    src = data.resolve_source(None, scale=args.scale)
    upload = Path(tempfile.mkdtemp()) / "upload.csv"
    features.write_processed(features.original_recipe(src).head(args.rows), upload)
    print(f"data: {src.describe()}; upload file {args.rows:,} rows, {upload.stat().st_size / 1e6:.1f} MB")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for preheat in (False, True):
            proc, url = start(args.scale, preheat)
            try:
                if preheat:
                    time.sleep(20)  # let the pool execute the notebook ahead of the first visitor
                renders, months, uploads, upload_links, tabs = [], {"champion": [], "original": []}, [], [], {}
                links = {"champion": [], "original": []}
                for i in range(args.repeat):
                    if preheat and i:
                        time.sleep(15)  # the pool executes a fresh kernel to replace the one the last visit took
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    t0 = time.perf_counter()
                    page.goto(url, timeout=300_000)
                    page.wait_for_selector(".study-month-go", timeout=300_000)
                    renders.append(time.perf_counter() - t0)
                    print(f"  rendered in {renders[-1]:.1f} s", flush=True)
                    if not preheat:
                        for model in ("champion", "original"):
                            page.select_option(".study-month-model select", label=MODEL_NAMES[model])
                            t0 = time.perf_counter()
                            page.click(".study-month-go")
                            # the note names the model and comes with its table; the link follows
                            page.wait_for_function(
                                "(words) => document.querySelector('.study-month-note').innerText.includes(words) && "
                                "document.querySelectorAll('.study-month-table tbody tr').length > 0",
                                arg=MODEL_NOTES[model][:40],
                                timeout=300_000,
                            )
                            shown = time.perf_counter() - t0
                            page.wait_for_selector(f'a[download$="_{model}.csv"]', timeout=300_000)
                            months[model].append(shown)
                            links[model].append(time.perf_counter() - t0)
                            print(
                                f"  month table shown ({model}): {shown:.2f} s, download ready {links[model][-1]:.2f} s",
                                flush=True,
                            )
                        page.locator(".lm-TabBar-tab", has_text="Upload a CSV").click()
                        with page.expect_file_chooser() as fc:
                            page.click(".study-upload-file")
                        fc.value.set_files(str(upload))
                        print("  file chosen", flush=True)
                        page.wait_for_function(
                            "() => document.querySelector('.study-upload-file').innerText.includes('(1)')",
                            timeout=300_000,
                        )
                        t0 = time.perf_counter()
                        page.click(".study-upload-go")
                        # results: the first rows with their reasons and the band chart (every request
                        # empties the table first, so no earlier table counts); then the download, whose
                        # reasons for every row are computed after the table is shown
                        page.wait_for_function(
                            "() => document.querySelectorAll('.study-upload-table tbody tr').length > 0",
                            timeout=300_000,
                        )
                        uploads.append(time.perf_counter() - t0)
                        page.wait_for_selector(".study-upload-link a[download]", timeout=300_000)
                        upload_links.append(time.perf_counter() - t0)
                        print(
                            f"  upload: results shown {uploads[-1]:.2f} s, download ready {upload_links[-1]:.2f} s",
                            flush=True,
                        )
                        for tab, prefix, ready in (("Retention", "study-retention", "table tbody tr"),
                                                   ("Monitoring", "study-monitor", "summary table")):  # fmt: skip
                            page.locator(".lm-TabBar-tab", has_text=tab).click()
                            t0 = time.perf_counter()
                            page.click(f".{prefix}-go")
                            page.wait_for_function(
                                f"() => document.querySelector('.{prefix}-{ready}') && "
                                f"!document.querySelector('.{prefix}-status').innerText.match(/…/)",
                                timeout=300_000,
                            )
                            tabs.setdefault(tab, []).append(time.perf_counter() - t0)
                            print(f"  {tab} shown: {tabs[tab][-1]:.2f} s", flush=True)
                    rss = kernel_rss_mb(proc)
                    page.close()
                label = "preheated kernel" if preheat else "no preheating"
                print(f"\n== {label}")
                print(
                    f"time to first render: {', '.join(f'{r:.1f}' for r in renders)} s "
                    f"(median {versus('render ' + label, statistics.median(renders))})"
                )
                for model, ts in months.items():
                    if ts:
                        print(
                            f"month query → table shown ({model}): median {versus('month ' + model, statistics.median(ts))}; "
                            f"download ready: median {statistics.median(links[model]):.2f} s"
                        )
                if uploads:
                    print(
                        f"upload {args.rows:,} rows → results shown: median {versus('upload', statistics.median(uploads))}; "
                        f"download ready: median {statistics.median(upload_links):.2f} s"
                    )
                for tab, ts in tabs.items():
                    print(f"{tab} tab, click → shown (first call builds its caches): "
                          f"{', '.join(f'{t:.2f}' for t in ts)} s")  # fmt: skip
                print(f"kernel processes: {len(rss)}, RSS {', '.join(f'{r:.0f}' for r in rss)} MB")
            finally:
                proc.terminate()
                proc.wait(20)
        browser.close()


if __name__ == "__main__":
    main()
