"""Benchmark: the door demo dashboard in headless Chromium against a live `study serve`.

Measures upload → annotated result shown, for a 640×480 image (median of --repeat) and for a
10-second 640×480 video at 25 fps, plus the first render of the page and the kernel's memory.
Baseline in the same run: the same image and video through `study.doors.demo` in this process
(no browser, no websocket), so the ratio is the cost of the page round trip.
Uses data/models/doors (prepared by `study serve` when missing, at --scale).
Usage: python benchmarks/bench_door_dashboard.py [--scale quick] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dashboard import kernel_rss_mb, start  # noqa: E402


def wait_status(pg, cls, timeout=600_000):
    pg.wait_for_function(
        f"() => {{ const s = document.querySelector('.{cls}'); "
        f"return s && s.innerText.trim() && !s.innerText.match(/…/); }}",
        timeout=timeout,
        polling=50,
    )
    return pg.inner_text(f".{cls}")


def upload_and_wait(pg, prefix, name, mime, payload):
    """Choose the file, press the tab's button, wait for the result: (seconds, status text)."""
    with pg.expect_file_chooser() as fc:
        pg.click(f".{prefix}-file")
    fc.value.set_files(files=[{"name": name, "mimeType": mime, "buffer": payload}])
    t0 = time.perf_counter()
    pg.click(f".{prefix}-go")
    # the previous result is still shown: first see the working message ("Looking for doors…"), then its end
    pg.wait_for_function(
        f"() => (document.querySelector('.{prefix}-status') || {{}}).innerText.match(/…/)", timeout=60_000, polling=20
    )
    status = wait_status(pg, f"{prefix}-status")
    return time.perf_counter() - t0, status


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="quick")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from study.doors import data, demo, pipeline

    image = io.BytesIO()
    data.render(31, 1, "open", size=(640, 480))[0].save(image, format="PNG")
    image = image.getvalue()
    frames = [
        data.render(77, k // 25, ("closed", "semi", "open")[(k // 75) % 3], size=(640, 480))[0] for k in range(250)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        video = pipeline.write_video(frames, Path(tmp) / "clip.mp4", fps=25).read_bytes()
    print(f"image: 640×480 PNG {len(image) / 1e3:.0f} kB; video: 10 s 640×480 @25 fps H.264 {len(video) / 1e6:.2f} MB")

    # baseline: the same calls without browser or websocket
    pipe = demo.load_pipeline()
    demo.analyse_image(image, "b.png", pipe=pipe)
    base_img = statistics.median([demo.analyse_image(image, "b.png", pipe=pipe).seconds for _ in range(args.repeat)])
    base_vid = demo.analyse_video(video, "b.mp4", pipe=pipe).seconds

    proc, url = start(args.scale, notebook="door_demo.ipynb")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            pg = browser.new_page(viewport={"width": 1400, "height": 1100})
            t0 = time.perf_counter()
            pg.goto(url, timeout=600_000)
            pg.wait_for_selector(".study-door-go", timeout=600_000)
            first = time.perf_counter() - t0
            img_times = []
            for _ in range(args.repeat):
                seconds, status = upload_and_wait(pg, "study-door", "door.png", "image/png", image)
                img_times.append(seconds)
            pg.click(".lm-TabBar-tab:has-text('Video')")
            vid, vstatus = upload_and_wait(pg, "study-video", "clip.mp4", "video/mp4", video)
            rss = kernel_rss_mb(proc)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(20)
    img = statistics.median(img_times)
    print(f"first render of the page: {first:.1f} s")
    print(
        f"image upload → annotated result: median {img:.2f} s of {args.repeat} (in-process baseline {base_img:.2f} s, "
        f"ratio {img / base_img:.1f}×); page said: {status}"
    )
    print(
        f"10 s video upload → clip, timeline and table: {vid:.1f} s (in-process baseline {base_vid:.1f} s, ratio "
        f"{vid / base_vid:.2f}×); page said: {vstatus}"
    )
    print(f"kernel RSS: {', '.join(f'{r:.0f} MB' for r in rss)}")


if __name__ == "__main__":
    main()
