"""The churn dashboard end to end in a real headless Chromium (Debian's, driven by Playwright with
``executable_path``) against a live ``study serve`` (Voilà, token authentication, offline
template). The server prepares its own models and database at the quick scale in a temporary
folder. Screenshots of each tab go to reports/screenshots/ (generated, not committed)."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest

from study import paths
from study.churn.dashboard_views import CAMPAIGN

from conftest import CHROMIUM, IN_CI, close_page

SHOTS = paths.REPORTS / "screenshots"
# without the browser these tests skip, except under CI=true where ``browser`` fails them
pytestmark = pytest.mark.skipif(
    not CHROMIUM and not IN_CI, reason="Debian chromium not installed (./run_tests.sh installs it)"
)


@pytest.fixture()
def page(browser, server):
    """A fresh page on the dashboard, rendered; console errors and failed requests collected."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    pg = ctx.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: pg.problems.append(f"request failed: {r.url}"))
    pg.goto(server["url"], timeout=180_000)
    pg.wait_for_selector(".study-month-go", timeout=180_000)
    yield pg
    text = pg.inner_text("body")
    assert "Failed to load model class" not in text and "Traceback" not in text
    assert not pg.problems, pg.problems
    close_page(pg)


def _shot(pg, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"churn_{name}.png"), full_page=True)


def _done(pg, status_class, timeout=120_000):
    """Wait until the tab's status no longer says it is working."""
    pg.wait_for_function(f"() => !document.querySelector('.{status_class}').innerText.match(/…/)", timeout=timeout)


# ---------------------------------------------------------------------------------------------
def test_requests_without_the_token_are_refused(server):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    # the kernel API route that Voilà registers (a made-up kernel id: with the token it would be a 404)
    for path in ("/voila/render/churn_scoring.ipynb", "/", "/api/kernels/00000000-0000-0000-0000-000000000000"):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(server["base"] + path, timeout=10)
        assert err.value.code in ((403,) if path.startswith("/api") else (302, 403)), path
        if err.value.code == 302:
            assert "/login" in err.value.headers["Location"]
    with pytest.raises(urllib.error.HTTPError):
        opener.open(server["base"] + "/voila/render/churn_scoring.ipynb?token=wrong", timeout=10)


def test_by_month_tab_lists_users_with_bands_and_a_download(page):
    page.click(".study-month-go")
    page.wait_for_selector(".study-month-table tbody tr", timeout=120_000)
    _done(page, "study-month-status")
    assert page.locator(".study-month-table tbody tr").count() > 50
    header = page.inner_text(".study-month-table thead")
    for col in ("msno", "expiry date", "risk %", "band", "reason 1"):
        assert col in header
    first_reason = page.locator(".study-month-table tbody tr td:nth-child(5)").first.inner_text()
    assert first_reason.endswith("(raises the risk)"), first_reason  # plain language, not a column name
    assert "_" not in first_reason
    link = page.locator("a[download]")
    assert link.first.get_attribute("href").startswith("data:text/csv")
    _shot(page, "1_by_month")


def _tab(page, title):
    page.locator(".lm-TabBar-tab", has_text=title).click()


def _upload(page, file_class, path):
    """The FileUpload button opens the browser's file chooser (its input is created on click)."""
    with page.expect_file_chooser() as chooser:
        page.click(f".{file_class}")
    chooser.value.set_files(str(path))
    page.wait_for_function(f"() => document.querySelector('.{file_class}').innerText.includes('(1)')")


def test_upload_tab_scores_the_real_sample(page, shared_kkbox):
    _tab(page, "Upload a CSV")
    _upload(page, "study-upload-file", shared_kkbox / "processed_sample.csv")
    page.click(".study-upload-go")
    page.wait_for_selector(".study-upload-table tbody tr", timeout=180_000)
    _done(page, "study-upload-status")
    assert page.locator(".study-upload-table tbody tr").count() == 200  # first 200 shown, all downloadable
    assert "of 6,0" in page.inner_text(".study-upload-table")
    _shot(page, "2_upload")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "is empty"),
        ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(200)), "not a CSV file"),
        ("columns.csv", b"msno,city\nabc,1\n", "missing column"),
        ("latin1.csv", "msno,gender\né,1\n".encode("latin-1"), "not UTF-8"),
    ],
)
def test_upload_tab_explains_each_bad_file(page, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    _tab(page, "Upload a CSV")
    _upload(page, "study-upload-file", path)
    page.click(".study-upload-go")
    page.wait_for_selector(".study-upload-status .study-msg-error", timeout=60_000)
    assert re.search(message, page.inner_text(".study-upload-status"))
    assert page.locator(".study-upload-table tbody tr").count() == 0


def test_performance_tab_shows_metrics_and_appends_history(page):
    _tab(page, "Performance")
    page.click(".study-perf-go")
    page.wait_for_selector(".study-perf-metrics table", timeout=120_000)
    _done(page, "study-perf-status")
    metrics = page.inner_text(".study-perf-metrics")
    for name in ("ROC AUC", "log loss", "F1", "MCC", "recall", "precision", "predicted churn"):
        assert name in metrics
    rows_before = page.locator(".study-perf-history tbody tr").count()
    page.click(".study-perf-go")
    page.wait_for_function(
        f"() => document.querySelectorAll('.study-perf-history tbody tr').length > {rows_before}", timeout=120_000
    )
    _done(page, "study-perf-status")
    _shot(page, "3_performance")


def test_what_if_tab_gives_a_risk(page):
    _tab(page, "What-if")
    page.click(".study-whatif-random")
    page.wait_for_selector(".study-whatif-result .study-msg-ok", timeout=120_000)
    _done(page, "study-whatif-status")
    text = page.inner_text(".study-whatif-result")
    assert re.search(r"Risk \d+(\.\d)? %", text) and "not the effect" in text
    assert "(raises the risk)" in text  # reasons in words
    _shot(page, "4_what_if")
    # an impossible customer is refused in words, with no risk left beside the refusal
    assert "Allowed (what the model saw in training)" in page.inner_text(".study-whatif-ranges")
    age = page.locator(".study-whatif-input-age input")
    age.fill("-5")
    age.press("Enter")
    page.click(".study-whatif-go")
    page.wait_for_selector(".study-whatif-status .study-msg-error", timeout=60_000)
    assert re.search(r"age: -5 is outside what the model saw; allowed \d+–\d+", page.inner_text(".study-whatif-status"))
    assert page.inner_text(".study-whatif-result").strip() == ""


def test_retention_tab_plans_a_campaign_and_explains_a_bad_budget(page):
    _tab(page, "Retention")
    page.click(".study-retention-go")
    page.wait_for_selector(".study-retention-table tbody tr", timeout=180_000)
    _done(page, "study-retention-status")
    assert "Revenue at risk, users expiring in 2017-03" in page.inner_text(".study-retention-revenue")
    assert re.search(r"Contact [\d,]+ of [\d,]+ users .* expected return", page.inner_text(".study-retention-plan"))
    header = page.inner_text(".study-retention-table thead")
    for col in ("msno", "risk", "expected_profit", "action", "reason_1"):
        assert col in header
    assert page.locator(".study-retention-link a[download]").get_attribute("href").startswith("data:text/csv")
    assert page.locator(".study-retention-curves").is_visible()  # the survival curves
    _shot(page, "6_retention")
    for field, value, says in (("budget", "-5", "The budget must be"), ("cost", "0", "The cost per contact must be")):
        box = page.locator(f".study-retention-{field} input")
        box.fill(value)
        box.press("Enter")
        page.click(".study-retention-go")
        # (waits for this request's sentence: the previous one may still be on screen for a moment)
        page.wait_for_function(
            "(s) => document.querySelector('.study-retention-status .study-msg-error')?.innerText.includes(s)",
            arg=says,
            timeout=60_000,
        )
        assert page.locator(".study-retention-table tbody tr").count() == 0  # nothing left from before
        box.fill(str(CAMPAIGN[field]))
        box.press("Enter")


def test_monitoring_tab_shows_drift_quality_performance_and_history(page):
    _tab(page, "Monitoring")
    page.click(".study-monitor-go")
    page.wait_for_selector(".study-monitor-summary table", timeout=180_000)
    _done(page, "study-monitor-status")
    summary = page.inner_text(".study-monitor-summary")
    for text in ("2017-01", "2017-03", "score PSI", "max input PSI", "ROC AUC", "labels"):
        assert text in summary
    assert "psi" in page.inner_text(".study-monitor-inputs thead") and "ks" in page.inner_text(".study-monitor-inputs")
    assert "duplicate users" in page.inner_text(".study-monitor-quality")
    assert page.locator(".study-monitor-history tbody tr").count() >= 3
    assert page.locator(".study-monitor-chart").is_visible()
    _shot(page, "7_monitoring")


def test_about_tab_shows_the_cards(page):
    _tab(page, "About")
    page.wait_for_selector(".study-about table")
    text = page.inner_text(".study-about")
    assert "Model card: champion" in text and "Model card: original" in text
    _shot(page, "5_about")


def test_about_tab_shows_lineage_and_says_when_models_and_database_differ(browser, server):
    """The models and database the server prepared come from the same data (said as such); a
    database recording other raw data (its hash replaced, as if exported from another data set)
    gets a plain sentence naming the model and both sources, not a silent table."""
    from sqlalchemy import update

    from study.churn import database

    url = f"sqlite:///{(server['root'] / 'application.sqlite').as_posix()}"
    original = database.read_meta(url)["source_sha256"]

    def about_text():
        ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
        pg = ctx.new_page()
        pg.goto(server["url"], timeout=180_000)
        pg.wait_for_selector(".study-month-go", timeout=180_000)
        _tab(pg, "About")
        pg.wait_for_selector(".study-about table")
        text = pg.inner_text(".study-about")
        close_page(pg)
        return text

    text = about_text()
    assert "Lineage" in text and original[:16] in text and "was trained on other data" not in text
    assert re.search(r"champion\s.*\syes", text) and "none: trained by `study serve`" in text
    with database.engine(url).begin() as conn:
        conn.execute(update(database.meta).where(database.meta.c.key == "source_sha256").values(value="f" * 64))
    try:
        text = about_text()
    finally:
        with database.engine(url).begin() as conn:
            conn.execute(update(database.meta).where(database.meta.c.key == "source_sha256").values(value=original))
    assert text.count("was trained on other data than the database holds") == 2 and "ffffffffffff…" in text
    assert "Traceback" not in text


def test_a_failed_month_request_leaves_no_earlier_result_on_screen(page):
    """March with the original-format model, then January (which it cannot score): the sentence
    alone remains, not March's table and download link."""
    page.select_option(".study-month-model select", label="original-format model: not a forecast (sees the renewal)")
    page.select_option(".study-month-month select", label="3")
    page.click(".study-month-go")
    page.wait_for_selector("a.study-download", timeout=120_000)
    assert "not a forecast" in page.inner_text(".study-month-note").lower()
    page.select_option(".study-month-month select", label="1")
    page.click(".study-month-go")
    page.wait_for_selector(".study-month-status .study-msg-error", timeout=60_000)
    assert "it cannot score 2017-01" in page.inner_text(".study-month-status")
    assert page.locator("a.study-download").count() == 0
    assert page.locator(".study-month-table tbody tr").count() == 0


def test_closing_the_page_releases_its_kernel(browser, server):
    """Voilà's shutdown beacon is accepted (voila-dashboards/voila#1458): the kernel of a closed page
    is gone within seconds instead of idling for the cull timeout."""
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.goto(server["url"], timeout=180_000)
    pg.wait_for_selector(".study-month-go", timeout=180_000)
    kid = re.search(r'"kernelId": *"([0-9a-f-]+)"', pg.content()).group(1)
    kernel = f"{server['base']}/api/kernels/{kid}?token={server['token']}"
    assert urllib.request.urlopen(kernel, timeout=10).status == 200
    pg.close(run_before_unload=True)
    ctx.close()
    for _ in range(60):
        try:
            urllib.request.urlopen(kernel, timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
            break
        time.sleep(0.5)
    else:
        pytest.fail("the closed page's kernel is still running after 30 s")


def test_a_file_over_the_limit_is_refused_without_dropping_the_connection(page, tmp_path):
    """A 51 MB CSV is not sent over the websocket (the page keeps it back); the tab names the limit
    and the dashboard still answers afterwards."""
    big = tmp_path / "big.csv"
    with open(big, "wb") as f:
        f.write(b"msno,city\n" + b"x" * 51_000_000)
    _tab(page, "Upload a CSV")
    _upload(page, "study-upload-file", big)
    page.click(".study-upload-go")
    page.wait_for_selector(".study-upload-status .study-msg-error", timeout=60_000)
    assert "“big.csv” is 51 MB; the limit is 50 MB" in page.inner_text(".study-upload-status")
    _tab(page, "By expiry month")
    page.click(".study-month-go")
    page.wait_for_selector(".study-month-table tbody tr", timeout=120_000)  # the kernel is still connected
