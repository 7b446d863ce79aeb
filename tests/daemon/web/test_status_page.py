"""The status page in a real headless browser (Debian's Chromium, driven by Playwright).

The real daemon (a subprocess, listener on port 0) runs against the emulator on two folders;
good images, a damaged file and one too big for ``max_input_bytes`` are dropped. The test then
looks at the page as a person would: the folder names and counts, a before/after picture that
decodes, the quarantined files with their reasons in plain words; it fixes the cause of one
(a reload with a higher limit), clicks its Requeue button and sees it leave the quarantine and
come back done, on a page that refreshed itself. A form on another site posting to the daemon
is refused, and so is a POST without the page's token.
"""

from __future__ import annotations

import io
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from bgcut_watchd.daemon.status import read_status
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_truncated_jpeg, make_valid_jpeg
from tests.support import (
    DaemonProcess,
    drop_images,
    files_under,
    wait_for,
    wait_for_log,
    write_config,
)

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api")


def _chromium() -> str | None:
    """Debian's chromium, else the browser ``playwright install chromium`` downloaded (the
    README's test command does that where the distribution has no chromium package, as on
    Ubuntu, whose chromium is a snap)."""
    found = shutil.which("chromium")
    if found is not None:
        return found
    with sync_api.sync_playwright() as playwright:
        bundled = playwright.chromium.executable_path
    return bundled if bundled and Path(bundled).is_file() else None


CHROMIUM = _chromium()
if CHROMIUM is None:
    pytest.skip("no chromium: apt-get install chromium (Debian), or .venv/bin/python -m "
                "playwright install --with-deps chromium", allow_module_level=True)
SMALL_LIMIT, BIG_LIMIT = 10_000, 50_000_000


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def configure(root: Path, base_url: str, limit: int) -> Path:
    return write_config(root, base_url, folders=("studio", "shop"),
                        http={"listen": "127.0.0.1:0"}, daemon={"max_input_bytes": limit})


def row_text(page: Any, folder: str) -> list[str]:
    cells = page.locator(f'#folders tr[data-folder="{folder}"] > *')
    return [text.strip() for text in cells.all_inner_texts()]


def test_an_operator_sees_the_state_and_requeues_with_a_click(
        tmp_path: Path, emulator: FakeApiServer, browser: Any) -> None:
    config = configure(tmp_path, emulator.base_url, SMALL_LIMIT)
    studio, shop = tmp_path / "studio", tmp_path / "shop"
    with DaemonProcess(config) as daemon:
        wait_for(lambda: (read_status(tmp_path / "state") or {}).get("http"), 20,
                 what="the listener's address in status.json")
        url = read_status(tmp_path / "state")["http"]  # type: ignore[index]
        drop_images(studio / "inbox", 3)
        drop_images(shop / "inbox", 1, prefix="shop")
        make_truncated_jpeg(studio / "inbox")
        make_valid_jpeg(studio / "inbox", "big photo.jpg", (900, 700))
        wait_for(lambda: len(files_under(studio / "archive")) == 3
                 and len(files_under(shop / "archive")) == 1
                 and len(files_under(studio / "quarantine")) == 4, 30,
                 what="3 + 1 archived, 2 quarantined")

        page = browser.new_page()
        page.goto(url)
        assert page.title().startswith("bgcut-watchd on ")
        wait_for(lambda: row_text(page, "studio")[3:5] == ["3", "2"], 15,
                 what="studio's figures on the page")
        studio_row, shop_row = row_text(page, "studio"), row_text(page, "shop")
        assert studio_row[:5] + studio_row[6:] == ["studio", "0", "0", "3", "2", "watching"]
        assert shop_row[:5] + shop_row[6:] == ["shop", "0", "0", "1", "0", "watching"]
        # credits today / this month, as the spend model counted them: what the emulator
        # charged, shared by the folders' jobs (same images, same variants: 3 to 1)
        studio_credits = [float(c) for c in studio_row[5].split(" / ")]
        shop_credits = [float(c) for c in shop_row[5].split(" / ")]
        charged = float(emulator.usage()["credits_charged"])
        assert studio_credits[0] + shop_credits[0] == pytest.approx(charged, abs=0.011)
        assert studio_credits[0] == pytest.approx(3 * shop_credits[0], abs=0.011)
        assert shop_credits[0] > 0
        assert studio_credits[1] >= studio_credits[0] and shop_credits[1] >= shop_credits[0]
        assert page.locator("#api").inner_text().strip().endswith("Running.")

        after = page.locator("#jobs tr.done img[alt^='after']").first
        wait_for(lambda: after.evaluate("i => i.complete && i.naturalWidth > 0"), 10,
                 what="an after picture shown")
        answer = page.request.get(url.rstrip("/") + after.get_attribute("src"))
        with Image.open(io.BytesIO(answer.body())) as picture:
            picture.load()
            assert picture.format == "WEBP" and max(picture.size) <= 160
        before = page.locator("#jobs tr.done img[alt^='before']").first
        assert before.evaluate("i => i.complete && i.naturalWidth > 0")

        quarantine = page.locator("#quarantine")
        damaged = quarantine.locator("li", has_text="truncated.jpg")
        assert "not a readable image" in damaged.inner_text()
        big = quarantine.locator("li", has_text="big photo.jpg")
        assert "bigger than allowed" in big.inner_text()

        # the operator fixes the cause (a higher limit, reloaded), then clicks Requeue
        configure(tmp_path, emulator.base_url, BIG_LIMIT)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for_log(daemon, "configuration reloaded", timeout_s=20)
        page.evaluate("window.notReloaded = true")
        big.get_by_role("button", name="Requeue").click()
        page.wait_for_url(lambda address: address.endswith("/?done=requeued&n=1"))
        assert "1 file(s) moved back into their inbox" in page.inner_text("main")
        assert quarantine.locator("li", has_text="big photo.jpg").count() == 0
        assert quarantine.locator("li", has_text="truncated.jpg").count() == 1
        wait_for(lambda: (studio / "archive" / "big photo.jpg").exists(), 30,
                 what="the requeued file processed")
        page.evaluate("window.notReloaded = true")  # a marker a full reload would erase
        wait_for(lambda: page.locator("#jobs tr.done", has_text="big photo.jpg").count() == 1,
                 20, what="the page refreshing itself with the new job")
        assert page.evaluate("window.notReloaded === true")
        assert row_text(page, "studio")[3:5] == ["4", "1"]

        token = page.locator("#quarantine input[name=csrf]").first.get_attribute("value")
        cross_site_post_is_refused(browser, url, token, studio)
        assert requests.post(url + "requeue", data={"folder": "studio", "all": "1"},
                             headers={"Origin": url.rstrip("/")}, timeout=10).status_code == 403
        assert (studio / "quarantine" / "truncated.jpg").exists()
        assert "refused a requeue from 127.0.0.1" in daemon.log_text()
        assert "requeue of one file in folder studio asked by 127.0.0.1" in daemon.log_text()
        reads_without_javascript(browser, url)
        daemon.terminate()


def cross_site_post_is_refused(browser: Any, url: str, token: str, studio: Path) -> None:
    """Another site's page whose form posts to the daemon, with a valid token even."""
    evil = browser.new_page()
    form = (f"<form method=post action='{url}requeue'><input name=csrf value='{token}'>"
            "<input name=folder value=studio><input name=all value=1>"
            "<button>win a prize</button></form>")
    evil.route("http://evil.test/**", lambda route: route.fulfill(
        body=form, content_type="text/html"))
    evil.goto("http://evil.test/")
    with evil.expect_response(f"{url}requeue") as answer:
        evil.click("button")
    assert answer.value.status == 403
    assert "refused" in evil.inner_text("body")
    assert (studio / "quarantine" / "truncated.jpg").exists()


def reads_without_javascript(browser: Any, url: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(url)
    assert row_text(page, "studio")[0] == "studio"
    assert page.locator("#quarantine li", has_text="truncated.jpg").count() == 1
    context.close()


def test_an_operator_ends_a_credits_pause_with_resume_now(
        tmp_path: Path, emulator: FakeApiServer, browser: Any) -> None:
    """A 402 pauses API work (its own probe 10 minutes away); the operator buys credits and
    clicks Resume now: the page says so, the pause ends and the waiting file is processed."""
    config = write_config(tmp_path, emulator.base_url, http={"listen": "127.0.0.1:0"},
                          retry={"credits_pause_s": 600})
    studio = tmp_path / "studio"
    emulator.update(credits_exhausted=True)
    with DaemonProcess(config) as daemon:
        wait_for(lambda: (read_status(tmp_path / "state") or {}).get("http"), 20,
                 what="the listener's address in status.json")
        url = read_status(tmp_path / "state")["http"]  # type: ignore[index]
        drop_images(studio / "inbox", 1)
        page = browser.new_page()
        page.goto(url)
        api = page.locator("#api")
        wait_for(lambda: "Paused:" in api.inner_text(), 20, what="the pause on the page")
        assert "credits" in api.inner_text()
        emulator.update(credits_exhausted=False)  # the operator bought credits
        api.get_by_role("button", name="Resume now").click()
        page.wait_for_url(lambda address: address.endswith("/?done=resumed"))
        assert "API work resumed." in page.inner_text("main")
        wait_for(lambda: len(files_under(studio / "archive")) == 1, 30,
                 what="the waiting file processed")
        wait_for(lambda: api.inner_text().strip().endswith("Running."), 15,
                 what="the page refreshing itself to Running.")
        assert "resume of API work asked by 127.0.0.1" in daemon.log_text()
        daemon.terminate()
