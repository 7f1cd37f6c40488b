"""The install page in a real browser: headless Debian Chromium (installed by `make browser`, which
`make test` runs) submits the portal's install frame to the running stack, like the portal's iframe
does, with the BX24 library served by a local stub (there is no internet here).

Asserts what the admin sees and whether ``BX24.installFinish()`` was called, and saves screenshots
under test-output/browser/.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from b24core.entry.pages import BX24_LIBRARY

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
SCOPES = "crm,im,telephony,user,placement"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Stands in for https://api.bitrix24.com/api/v1/: records init and installFinish, nothing else.
BX24_STUB = """
window.__bx24 = {loaded: true, init: 0, installFinish: 0};
window.BX24 = {
  init: function (callback) { window.__bx24.init += 1; setTimeout(callback, 0); },
  installFinish: function () { window.__bx24.installFinish += 1; }
};
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run `make browser` (part of `make test`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1000, "height": 900},
        )
        requested: list[str] = []

        def route(route: Any) -> None:
            url = route.request.url
            requested.append(url)
            if url.startswith(BX24_LIBRARY):
                route.fulfill(status=200, content_type="application/javascript", body=BX24_STUB)
            elif re.match(r"^(https?://127\.0\.0\.1[:/]|about:|data:)", url):
                route.continue_()
            else:
                route.abort()  # nothing leaves this machine

        context.route("**/*", route)
        SHOTS.mkdir(parents=True, exist_ok=True)
        yield SimpleNamespace(context=context, requested=requested)
        context.close()


def open_install_frame(browser: Any, sim: Any, domain: str, install_url: str) -> tuple[Any, list[str]]:
    """What the portal does: an iframe POSTs the install form to the installer URL."""
    page, console = open_frame(browser, *sim.frame_form(domain, install_url))
    page.wait_for_function("window.__bx24 && window.__bx24.loaded === true")
    return page, console


def open_frame(browser: Any, target: str, form: dict[str, Any]) -> tuple[Any, list[str]]:
    """A portal's frame POSTing ``form`` to ``target`` (the app's page, a placement, the installer)."""
    fields = "".join(
        f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(str(v))}'>"
        for k, v in form.items()
    )
    page = browser.context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.set_content(f"<form method='post' action='{html.escape(target)}'>{fields}</form>")
    with page.expect_navigation(wait_until="load"):
        page.evaluate("document.forms[0].submit()")
    return page, console


def bx24(page: Any) -> dict[str, Any]:
    return dict(json.loads(page.evaluate("JSON.stringify(window.__bx24)")))


def test_a_complete_cloud_install_shows_every_feature_and_calls_install_finish(
    browser, sim, stack, install_url
):
    portal = sim.add_portal(profile="cloud", language="en")
    first = sim.install(portal.domain, install_url, mode="ui", scope=SCOPES, finish=False)
    assert first.status_code == 200 and portal.app.installed is False
    page, console = open_install_frame(browser, sim, portal.domain, install_url)
    try:
        page.wait_for_function("window.__bx24.installFinish > 0")
        assert bx24(page)["installFinish"] == 1
        assert "ready" in page.inner_text("#message")
        rows = {
            r.get_attribute("data-feature"): r.get_attribute("data-status")
            for r in page.query_selector_all("tr[data-feature]")
        }
        assert rows == {
            "crm": "available",
            "contacts": "available",
            "deal_tab": "available",
            "telephony": "available",
            "notifications": "available",
        }
        assert page.query_selector("#todo") is None and page.query_selector("#network") is None
        assert not [c for c in console if "Content Security Policy" in c], console
        text = page.content()
        assert not [s for s in sim.issued_secrets() if s in text], "a secret reached the page"
        page.screenshot(path=str(SHOTS / "cloud-complete.png"), full_page=True)
    finally:
        page.close()
    sim.install_finish(portal.domain)  # what the real BX24.installFinish() tells the portal
    assert portal.app.installed is True


def test_a_box_missing_a_required_module_explains_and_does_not_finish(browser, sim, stack, install_url):
    box = sim.add_portal(profile="box", language="ru")
    box.disable_module("crm")  # the required feature's module is switched off on this box
    first = sim.install(box.domain, install_url, mode="ui", scope=SCOPES, finish=False)
    assert first.status_code == 200
    page, console = open_install_frame(browser, sim, box.domain, install_url)
    try:
        page.wait_for_load_state("load")
        state = bx24(page)
        assert state["loaded"] is True  # the library did load ...
        assert state["installFinish"] == 0 and state["init"] == 0  # ... and the page did not finish
        assert page.evaluate("document.documentElement.dataset.installFinish") == "no"
        message = page.inner_text("#message")
        assert "Установку пока нельзя завершить" in message
        crm_row = page.inner_text("tr[data-feature='crm']")
        assert "недоступна" in crm_row and "crm.deal.get" in crm_row and "ONCRMDEALADD" in crm_row
        todo = page.inner_text("#todo")
        assert "Установите обновления Битрикс24" in todo and "update_system.php" in todo and "«crm»" in todo
        network = page.inner_text("#network")
        assert "oauth.bitrix.info" in network and "app-world.json" in network
        assert "откройте приложение снова" in page.inner_text("#again")
        assert page.is_visible("#todo") and page.is_visible("#network")
        assert not [c for c in console if "Content Security Policy" in c], console
        page.screenshot(path=str(SHOTS / "box-missing-required-module.png"), full_page=True)
    finally:
        page.close()
    assert box.app is not None and box.app.installed is False


def test_the_browser_never_left_this_machine(browser):
    requested = browser.requested
    outside = [u for u in requested if not re.match(r"^(https?://127\.0\.0\.1[:/]|about:|data:)", u)]
    assert outside and all(u.startswith(BX24_LIBRARY) for u in outside), outside
