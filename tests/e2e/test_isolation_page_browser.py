"""The install page of a box that cannot reach the authorization server, in the real browser: it names
the blocked service and what the network admin must open, and offers the webhook alternative."""

from __future__ import annotations

import html

import httpx

from tests.e2e import test_install_page_browser as install_page
from tests.e2e.test_install_page_browser import SCOPES, SHOTS, open_install_frame

browser = install_page.browser  # the same module-scoped Chromium fixture


def test_the_install_page_names_the_blocked_authorization_server(browser, sim, stack, install_url):
    box = sim.add_portal(profile="box", language="en")
    box.auth_server_blocked = True
    assert sim.install(box.domain, install_url, mode="ui", scope=SCOPES, finish=False).status_code == 200
    page, console = open_install_frame(browser, sim, box.domain, install_url)
    try:
        page.wait_for_load_state("load")
        section = page.inner_text("#isolation")
        assert "authorization server unreachable from the portal" in section
        assert "oauth.bitrix.info" in section and "connect-webhook" in section
        assert not [c for c in console if "Content Security Policy" in c], console
        text = page.content()
        assert not [s for s in sim.issued_secrets() if s in text], "a secret reached the page"
        page.screenshot(path=str(SHOTS / "box-auth-server-blocked.png"), full_page=True)
    finally:
        page.close()


def test_the_connect_page_connects_an_incoming_webhook_and_refuses_a_bad_one(
    browser, sim, stack, install_url, store
):
    box = sim.add_portal(profile="box", language="en", queue_blocked=True)
    box.auth_server_blocked = True
    assert sim.install(box.domain, install_url, mode="ui", scope=SCOPES).status_code == 200
    connect_url = install_url.replace("/install", "/connect")
    target, form = sim.frame_form(box.domain, connect_url)  # the app opened inside the portal
    fields = "".join(
        f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(str(v))}'>"
        for k, v in form.items()
    )
    page = browser.context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    try:
        page.set_content(f"<form method='post' action='{html.escape(target)}'>{fields}</form>")
        with page.expect_navigation(wait_until="load"):
            page.evaluate("document.forms[0].submit()")
        assert page.inner_text("#domain") == box.domain

        page.fill("#incoming", box.add_incoming_webhook(["user"]))  # lacks the crm scope
        with page.expect_navigation(wait_until="load"):
            page.click("#submit")
        assert "lacks the scope(s) crm" in page.inner_text(
            "#result"
        ) and "Nothing was stored" in page.inner_text("#result")
        assert store.get(box.member_id).webhook_token == ""

        url = box.add_incoming_webhook(["crm", "im", "user"])
        page.fill("#incoming", url)
        with page.expect_navigation(wait_until="load"):
            page.click("#submit")
        assert "Connected" in page.inner_text("#result") and "change polling" in page.inner_text("#events_by")
        text = page.content()
        assert url.rstrip("/").rsplit("/", 1)[-1] not in text, "the webhook's code reached the page"
        assert not [s for s in sim.issued_secrets() if s in text], "a secret reached the page"
        assert not [c for c in console if "Content Security Policy" in c], console
        page.screenshot(path=str(SHOTS / "connect-webhook.png"), full_page=True)
    finally:
        page.close()
    # A forged form (no valid state) is refused.
    forged = httpx.post(connect_url, data={"state": f"{box.member_id}|9999999999|00", "incoming": url})
    assert forged.status_code == 403
