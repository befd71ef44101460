"""The operator page in a real headless browser (Debian's chromium + chromium-driver, selenium).

One walk-through against a live backend: no page without sign-in, a wrong TOTP refused, sign-in
with password + TOTP, the fleet table shows an enrolled workstation's status report, revoke with
its confirmation page, the workstation's next sync gets 401, the alerts page lists the alerts,
the sync and fleet pages draw their bar charts, the rollouts page lists the rollout with its
report and links to its own page, sign-out. Screenshots are saved for review.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.sync.status_report import STATUS_URL, build_report
from core.sync.wire import API_PREFIX
from tests.backend.conftest import Workstation, base_settings, result_item
from tests.backend.fleet_serve import FleetServer
from tests.backend.test_operator import PAGES, PASSWORD, make_admin, rollout_with_results

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed (apt-get install -y "
    "chromium chromium-driver)",
)
SCREENSHOT_ENV = "DOCTORAI_OPERATOR_SCREENSHOTS"  # a folder to copy the screenshots to, if set


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    srv = FleetServer(base_settings(tmp_path_factory.mktemp("operator-browser"))).start()
    yield srv  # type: ignore[misc]
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    opts.add_argument("--window-size=1400,900")
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _gone(element: Any) -> bool:
    """The element's page was replaced. Chromium reports a replaced node either as a stale
    element or as "Node with given id does not belong to the document" (a plain
    WebDriverException), which selenium's own staleness_of does not catch."""
    from selenium.common.exceptions import WebDriverException

    try:
        element.is_enabled()
    except WebDriverException:  # StaleElementReferenceException is one too
        return True
    return False


def test_operator_walk_through_in_chromium(
    live: FleetServer, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    d = browser
    base = live.url
    rollout_id = rollout_with_results(live, tmp_path)
    ws = Workstation(live, "radiology-ws-17")
    report = build_report(4, {"chest-xr": "2.0", "brain-lesion-seg-mri": "1.0.0"}, None, "1.9.3")
    r = ws.http.post(
        STATUS_URL.removeprefix(API_PREFIX),
        content=report.model_dump_json(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 204, r.text
    totp = make_admin(live, "it-operator")

    # no page without sign-in
    for page in PAGES:
        d.get(base + page)
        assert d.current_url == f"{base}/operator/sign-in", page
        assert d.find_elements(By.CSS_SELECTOR, "table") == []

    def submit(code: str) -> None:
        d.get(f"{base}/operator/sign-in")
        d.find_element(By.ID, "name").send_keys("it-operator")
        d.find_element(By.ID, "password").send_keys(PASSWORD)
        d.find_element(By.ID, "code").send_keys(code)
        button = d.find_element(By.ID, "sign-in")
        button.click()
        # the answer is a new page (the sign-in page again, or a redirect): wait until the old
        # one is gone, since the sign-in's database work runs off the event loop and takes time
        WebDriverWait(d, 20).until(lambda _d: _gone(button))

    # a wrong TOTP is refused
    submit(next(c for c in ("111111", "222222") if c != totp.now()))
    assert "Sign-in failed" in d.find_element(By.ID, "error").text
    d.get(f"{base}/operator/fleet")
    assert d.current_url == f"{base}/operator/sign-in"

    # password + TOTP: the fleet table with the workstation's report
    submit(totp.now())
    assert d.current_url.startswith(f"{base}/operator/fleet")
    row = d.find_element(By.CSS_SELECTOR, f'tr[data-device="{ws.device_id}"]')
    text = row.text
    for expected in ("radiology-ws-17", "1.9.3", report.os, "chest-xr 2.0", "4", "active"):
        assert expected in text, (expected, text)
    versions = d.find_element(By.CSS_SELECTOR, "svg.bar-chart.app-versions")
    bar = versions.find_element(By.CSS_SELECTOR, 'g.bar[data-label="1.9.3"]')
    assert bar.get_attribute("data-count") == "1"
    assert bar.find_element(By.TAG_NAME, "rect").size["width"] > 10
    shot = tmp_path / "operator-fleet.png"
    assert d.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copy(shot, os.environ[SCREENSHOT_ENV])

    # sync health: the workstation that never sent a batch is highlighted as stale
    d.get(f"{base}/operator/sync")
    sync_row = d.find_element(By.CSS_SELECTOR, f'tr[data-device="{ws.device_id}"]')
    assert "stale" in (sync_row.get_attribute("class") or "")
    assert "never" in sync_row.find_element(By.CSS_SELECTOR, ".sync-age").text
    # ... and counted in the chart's "never" bar, drawn in the warning colour
    chart = d.find_element(By.CSS_SELECTOR, "svg.bar-chart.sync-ages")
    drawn = chart.find_elements(By.CSS_SELECTOR, "g.bar")
    assert [g.get_attribute("data-label") for g in drawn][-1] == "never"
    never = drawn[-1]
    assert "warn" in (never.get_attribute("class") or "")
    assert int(never.get_attribute("data-count") or 0) >= 1
    assert never.find_element(By.TAG_NAME, "rect").size["width"] > 0
    assert chart.size["width"] > 300
    queue = d.find_element(By.CSS_SELECTOR, "svg.bar-chart.queue-lengths g.bar")
    assert queue.get_attribute("data-label") == "0"
    shot = tmp_path / "operator-sync.png"
    assert d.save_screenshot(str(shot))
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copy(shot, os.environ[SCREENSHOT_ENV])

    # revoke through the button and its confirmation page
    d.get(f"{base}/operator/fleet")

    def click_and_wait(element: Any) -> None:
        """Click, then wait for the next page (Selenium returns before it has loaded)."""
        element.click()
        WebDriverWait(d, 20).until(lambda _d: _gone(element))

    click_and_wait(d.find_element(By.CSS_SELECTOR, f'tr[data-device="{ws.device_id}"] a.revoke'))
    assert "Revoke a workstation?" in d.find_element(By.TAG_NAME, "h1").text
    d.find_element(By.ID, "reason").send_keys("reported stolen")
    click_and_wait(d.find_element(By.ID, "confirm-revoke"))
    assert ws.device_id in d.find_element(By.ID, "notice").text
    row = d.find_element(By.CSS_SELECTOR, f'tr[data-device="{ws.device_id}"]')
    assert "revoked" in row.text
    assert row.find_elements(By.CSS_SELECTOR, "a.revoke") == []

    # the workstation's next sync, with its unexpired token: 401
    r = ws.post("/results:batch", {"items": [result_item()]})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "device_revoked"
    ws.close()

    # alerts: the failed sign-in and the revoke (with who and why)
    d.get(f"{base}/operator/alerts")
    table = d.find_element(By.ID, "alerts").text
    assert "admin_sign_in_failed" in table
    assert "device_revoked" in table
    assert "reported stolen" in table
    assert "it-operator" in table

    # rollouts: the report's numbers and an inline SVG plot per rollout
    d.get(f"{base}/operator/rollouts")
    section = d.find_element(By.ID, f"rollout-{rollout_id}")
    assert "chest-xr" in section.text
    assert "baseline" in section.text
    assert "candidate" in section.text
    svg = section.find_element(By.CSS_SELECTOR, "svg.rollout-plot")
    assert len(svg.find_elements(By.CSS_SELECTOR, "circle.rate")) == 2
    # an interval per arm that has one (an arm whose devices all decided alike may have none)
    assert 1 <= len(svg.find_elements(By.CSS_SELECTOR, "line.ci")) <= 2
    assert len(svg.find_elements(By.CSS_SELECTOR, "rect.latency")) == 2
    assert svg.size["width"] > 300
    shot = tmp_path / "operator-rollouts.png"
    assert d.save_screenshot(str(shot))
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copy(shot, os.environ[SCREENSHOT_ENV])
    # the rollout's own page, through the list's link
    click_and_wait(d.find_element(By.CSS_SELECTOR, f'tr[data-rollout="{rollout_id}"] a.detail'))
    assert d.current_url == f"{base}/operator/rollouts/{rollout_id}"
    detail = d.find_element(By.ID, f"rollout-{rollout_id}")
    assert "candidate vs baseline" in detail.text
    plot = detail.find_element(By.CSS_SELECTOR, "svg.rollout-plot")
    assert len(plot.find_elements(By.CSS_SELECTOR, "circle.rate")) == 2

    # sign out: pages need a session again
    click_and_wait(d.find_element(By.CSS_SELECTOR, "form.sign-out button"))
    d.get(f"{base}/operator/fleet")
    assert d.current_url == f"{base}/operator/sign-in"
    # the CSP blocked nothing the page needs (the 401 of the wrong sign-in is a network entry)
    logs: list[dict[str, object]] = d.get_log("browser")  # type: ignore[no-untyped-call]
    errors = [e for e in logs if e.get("source") != "network"]
    assert errors == [], errors
