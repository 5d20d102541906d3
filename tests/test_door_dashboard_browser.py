"""The door demo dashboard end to end in headless Debian Chromium against the live ``study serve``
shared with the churn dashboard tests (token authentication, offline template). Chromium's fake
camera (``--use-fake-device-for-media-stream``) stands in for a webcam; a second context without
camera permission checks the message people see when the browser refuses. Screenshots go to
reports/screenshots/door_*.png."""

from __future__ import annotations

import io
import urllib.error
import urllib.request

import pytest

from conftest import CHROMIUM, IN_CI, close_page, unavailable
from study import paths
from study.doors import data, pipeline

SHOTS = paths.REPORTS / "screenshots"
# without the browser these tests skip, except under CI=true where ``browser`` fails them
pytestmark = pytest.mark.skipif(
    not CHROMIUM and not IN_CI, reason="Debian chromium not installed (./run_tests.sh installs it)"
)


@pytest.fixture(scope="module")
def camera_browser(playwright):
    """A browser with a fake camera whose permission is granted without a prompt."""
    if not CHROMIUM:
        unavailable("Debian chromium not installed (./run_tests.sh installs it)")
    b = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
        ],
    )
    yield b
    b.close()


def _open(browser, server, permissions=()):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1100}, permissions=list(permissions))
    pg = ctx.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: pg.problems.append(f"request failed: {r.url}"))
    pg.goto(f"{server['base']}/voila/render/door_demo.ipynb?token={server['token']}", timeout=180_000)
    pg.wait_for_selector(".study-door-go", timeout=180_000)
    return ctx, pg


def _check_clean(pg):
    text = pg.inner_text("body")
    assert "Traceback" not in text and "Failed to load model class" not in text
    assert "Error displaying widget" not in text
    problems = [p for p in pg.problems if "favicon" not in p]
    assert not problems, problems


@pytest.fixture()
def page(browser, server):
    ctx, pg = _open(browser, server)
    yield pg
    _check_clean(pg)
    close_page(pg)


def _shot(pg, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"door_{name}.png"), full_page=True)


def _upload(pg, button_class, name, payload, mime):
    with pg.expect_file_chooser() as chooser:
        pg.click(f".{button_class}")
    chooser.value.set_files(files=[{"name": name, "mimeType": mime, "buffer": payload}])


def _done(pg, status_class, timeout=180_000):
    """Wait until the status holds a result or an error, not the working message ("Looking…")."""
    pg.wait_for_function(
        f"() => {{ const s = document.querySelector('.{status_class}'); "
        f"return s && s.innerText.trim() && !s.innerText.trim().match(/^(Looking|Analysing).*…$/); }}",
        timeout=timeout,
    )
    return pg.inner_text(f".{status_class}")


def _png(state="open", seed=4):
    buf = io.BytesIO()
    data.render(seed, 3, state, size=(640, 480))[0].save(buf, format="PNG")
    return buf.getvalue()


def _image_width(pg, cls):
    """Width in pixels of the picture an ipywidgets Image shows (its src is a blob URL)."""
    js = f"() => {{ const i = document.querySelector('img.{cls}, .{cls} img'); return i && i.complete ? i.naturalWidth : 0; }}"
    pg.wait_for_function(f"({js})() > 0", timeout=30_000)
    return pg.evaluate(js)


# ---------------------------------------------------------------------------------------------
def test_the_door_dashboard_refuses_requests_without_the_token(server):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for suffix in ("", "?token=wrong"):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(f"{server['base']}/voila/render/door_demo.ipynb{suffix}", timeout=10)
        assert err.value.code in (302, 403)


def test_an_uploaded_image_comes_back_annotated_with_a_state(page):
    _upload(page, "study-door-file", "door.png", _png("open"), "image/png")
    page.click(".study-door-go")
    status = _done(page, "study-door-status")
    assert "door(s) found" in status, status
    table = page.inner_text(".study-door-table")
    assert any(s in table for s in ("closed", "open", "semi", "uncertain")), (status, table)
    assert _image_width(page, "study-door-image") == 640
    _shot(page, "image")


def test_a_gallery_example_is_analysed(page):
    page.select_option(".study-door-gallery select", index=1)
    page.click(".study-door-show")
    status = _done(page, "study-door-status")
    assert "door(s) found" in status, status
    assert _image_width(page, "study-door-image") > 100


@pytest.mark.parametrize(
    "name, payload, mime, expected",
    [
        ("notes.png", b"this is a text file, not a picture", "image/png", "not an image"),
        ("cut.png", _png()[:300], "image/png", "truncated or corrupt"),
    ],
)
def test_a_bad_image_gets_its_sentence(page, name, payload, mime, expected):
    _upload(page, "study-door-file", name, payload, mime)
    page.click(".study-door-go")
    status = _done(page, "study-door-status")
    assert expected in status, status
    assert "Traceback" not in status


def test_a_video_gives_a_clip_a_timeline_and_fps(page, tmp_path):
    frames = [data.render(8, i, "open" if i < 10 else "closed")[0] for i in range(20)]
    clip = pipeline.write_video(frames, tmp_path / "walk.mp4", fps=10).read_bytes()
    page.click(".lm-TabBar-tab:has-text('Video')")
    _upload(page, "study-video-file", "walk.mp4", clip, "video/mp4")
    page.click(".study-video-go")
    status = _done(page, "study-video-status")
    assert "frames analysed" in status and "frames per second" in status, status
    assert page.is_visible(".study-video-clip video")
    assert _image_width(page, "study-video-timeline") > 200
    _shot(page, "video")
    # a bad video after a good one: the good one's clip, timeline and table leave the page
    _upload(page, "study-video-file", "broken.mp4", b"\x00\x00\x00\x18ftypmp42 but nothing else", "video/mp4")
    page.click(".study-video-go")
    page.wait_for_selector(".study-video-status .study-msg-error", timeout=60_000)
    assert page.locator(".study-video-clip video").count() == 0
    assert not page.is_visible("img.study-video-timeline, .study-video-timeline img")
    assert page.locator(".study-video-table tbody tr").count() == 0


def test_a_file_that_is_not_a_video_gets_its_sentence(page):
    page.click(".lm-TabBar-tab:has-text('Video')")
    _upload(page, "study-video-file", "holiday.mp4", b"\x00\x00\x00\x18ftypmp42 but nothing else", "video/mp4")
    page.click(".study-video-go")
    status = _done(page, "study-video-status")
    assert "video" in status and (
        "not a video" in status or "no frames" in status or "could not be decoded" in status
    ), status


def test_the_camera_snapshot_is_analysed(camera_browser, server):
    ctx, pg = _open(camera_browser, server, permissions=["camera"])
    pg.click(".lm-TabBar-tab:has-text('Camera')")
    pg.click(".study-camera-start")
    pg.wait_for_function(
        "() => { const v = document.querySelector('.study-camera-video'); return v && v.videoWidth > 0; }",
        timeout=30_000,
    )
    pg.click(".study-camera-snap")
    status = _done(pg, "study-camera-status")
    assert "door(s) found" in status, status  # the fake camera shows a test pattern: usually 0 doors
    assert _image_width(pg, "study-camera-image") > 100
    _shot(pg, "camera")
    _check_clean(pg)
    close_page(pg)


def test_a_refused_camera_gets_a_sentence(browser, server):
    ctx, pg = _open(browser, server)  # no camera permission, no fake device
    pg.click(".lm-TabBar-tab:has-text('Camera')")
    pg.click(".study-camera-start")
    status = _done(pg, "study-camera-status", timeout=30_000)
    assert "camera" in status.lower() and ("not available" in status or "no access" in status), status
    close_page(pg)
