"""Only a portal's administrator changes what the app trusts (issue: trust boundaries).

Every user who opens the app holds a genuine token pair and the portal's real application_token, so
each test here plays an ordinary user who tries to use them: replaying the install frame, forging
ONAPPUPDATE and ONAPPUNINSTALL, connecting a webhook — and checks that nothing stored changed, that
the genuine application_token still works and the forged one is refused."""

from __future__ import annotations

import html
import re

import httpx

from b24core.portals.states import PortalState
from tests.e2e import test_install_page_browser as install_page
from tests.e2e.conftest import wait_for
from tests.e2e.test_install_page_browser import SHOTS

browser = install_page.browser  # the same module-scoped Chromium fixture
FORGED = "attacker-chosen-application-token"
USER = 7  # an ordinary user of the portal


def _installed(sim, stack, store, install_url):
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    stack.wait_idle()
    portal.add_user(USER, "Ordinary", admin=False)
    return portal, store.get(portal.member_id)


def _trust(p):
    """Everything that decides what the app trusts for a portal."""
    return (
        p.state,
        p.application_token,
        p.access_token,
        p.refresh_token,
        p.user_id,
        p.user_admin,
        p.app_version,
    )


def _event(stack, **fields):
    return httpx.post(f"{stack.gateway_url}/events", data=fields, timeout=30)


def test_an_ordinary_user_cannot_replace_the_portals_tokens_or_application_token(
    sim, stack, store, mirror, install_url
):
    portal, before = _installed(sim, stack, store, install_url)
    assert before.user_admin and before.user_id == "1"

    # 1. The install frame replayed with the user's own genuine pair and a token of their choice.
    target, form = sim.frame_form(portal.domain, install_url, user_id=USER)
    replay = httpx.post(target, data={**form, "APPLICATION_TOKEN": FORGED}, timeout=30)
    assert replay.status_code == 403 and "application_token_mismatch" in replay.text

    # 2. A forged ONAPPUPDATE carrying the user's genuine tokens and the forged application_token.
    pair = sim.issue_tokens(portal.domain, user_id=USER)
    update = _event(
        stack,
        event="ONAPPUPDATE",
        **{
            "data[VERSION]": "9",
            "auth[access_token]": pair["access_token"],
            "auth[refresh_token]": pair["refresh_token"],
            "auth[expires_in]": "3600",
            "auth[member_id]": portal.member_id,
            "auth[domain]": portal.domain,
            "auth[client_endpoint]": portal.client_endpoint,
            "auth[application_token]": FORGED,
        },
    )
    assert update.status_code == 403, update.text

    # 3. The connect page, opened by the user, with a webhook the user created.
    connect_url = install_url.replace("/install", "/connect")
    target, form = sim.frame_form(portal.domain, connect_url, user_id=USER)
    opened = httpx.post(target, data=form, timeout=30)
    state = html.unescape(re.search(r"name='state' value='([^']+)'", opened.text).group(1))
    hook = portal.add_incoming_webhook(["crm", "im", "user"], user_id=USER)
    connected = httpx.post(connect_url, data={"state": state, "incoming": hook}, timeout=30)
    assert connected.status_code == 403
    assert "not an administrator" in connected.text and "Nothing was stored" in connected.text

    after = store.get(portal.member_id)
    assert _trust(after) == _trust(before)  # the stored pair is still the administrator's
    # The forged application_token is refused; the genuine one still carries the portal's events.
    forged = _event(
        stack,
        event="ONCRMDEALUPDATE",
        **{
            "data[FIELDS][ID]": "1",
            "auth[member_id]": portal.member_id,
            "auth[domain]": portal.domain,
            "auth[application_token]": FORGED,
        },
    )
    assert forged.status_code == 403
    deal_id = portal.ui_deal_add({"TITLE": "after the attempts"})
    wait_for(lambda: mirror.get(portal.member_id, str(deal_id)) is not None, what="the deal mirrored")


def test_a_forged_uninstall_deletes_nothing_and_a_real_one_still_cleans(
    sim, stack, store, mirror, install_url
):
    portal, before = _installed(sim, stack, store, install_url)
    deal_id = portal.ui_deal_add({"TITLE": "kept"})
    wait_for(lambda: mirror.get(portal.member_id, str(deal_id)) is not None, what="the deal mirrored")

    # Any user's browser knows the genuine application_token (it is in every frame POST).
    forged = _event(
        stack,
        event="ONAPPUNINSTALL",
        **{
            "data[CLEAN]": "1",
            "auth[member_id]": portal.member_id,
            "auth[domain]": portal.domain,
            "auth[client_endpoint]": portal.client_endpoint,
            "auth[application_token]": portal.app.application_token,  # the genuine one, not its hash
        },
    )
    assert forged.status_code == 403 and "still_installed" in forged.text
    assert _trust(store.get(portal.member_id)) == _trust(before)
    assert mirror.get(portal.member_id, str(deal_id)) is not None

    # The real uninstall, delivered by the portal's queue to the bound handler, confirmed at the source.
    sim.uninstall(portal.domain, clean=True)
    gone = wait_for(
        lambda: (p := store.get(portal.member_id)).state == PortalState.DELETED and p, what="uninstalled"
    )
    assert gone.refresh_token == "" and gone.application_token == ""
    assert mirror.get(portal.member_id, str(deal_id)) is None  # CLEAN=1 deleted the app's data


def test_an_ordinary_user_gets_a_session_for_pages_and_it_changes_no_trust(
    browser, sim, stack, store, install_url
):
    portal, before = _installed(sim, stack, store, install_url)
    target, form = sim.frame_form(portal.domain, install_url, user_id=USER)
    form = {**form, "PLACEMENT": "CRM_DEAL_DETAIL_TAB", "PLACEMENT_OPTIONS": '{"ID":"5"}'}
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
        page.wait_for_selector("#who[data-verified='yes']")
        assert page.inner_text("#who") == f"user {USER}"
        assert page.get_attribute("#app", "data-role") == "user"
        assert page.get_attribute("#app", "data-placement") == "CRM_DEAL_DETAIL_TAB"
        text = page.content()
        assert not [s for s in sim.issued_secrets() if s in text], "a token reached the user's page"
        assert not [c for c in console if "Content Security Policy" in c], console
        page.screenshot(path=str(SHOTS / "user-session-page.png"), full_page=True)
        session = page.get_attribute("meta[name='b24-session']", "content")
    finally:
        page.close()

    who = httpx.get(
        f"{stack.gateway_url}/session", headers={"Authorization": f"Bearer {session}"}, timeout=30
    )
    assert who.status_code == 200
    assert who.json() | {"expires_at": 0} == {
        "member_id": portal.member_id,
        "domain": portal.domain,
        "user_id": str(USER),
        "admin": False,
        "placement": "CRM_DEAL_DETAIL_TAB",
        "placement_options": '{"ID":"5"}',
        "expires_at": 0,
    }
    tampered = session[:-2] + ("AA" if not session.endswith("AA") else "BB")
    bad = httpx.get(
        f"{stack.gateway_url}/session", headers={"Authorization": f"Bearer {tampered}"}, timeout=30
    )
    assert bad.status_code == 401
    # The session is no token: offered as one it is refused at the authorization server.
    replay = httpx.post(target, data={**form, "AUTH_ID": session}, timeout=30)
    assert replay.status_code == 401
    assert _trust(store.get(portal.member_id)) == _trust(before)
