"""The example's deal-card tab in headless Chromium, opened by an ordinary user inside a simulated
portal frame: bound at install, served with a user session, showing the deal's mirrored history.
A box without the placement is told so like a missing method, and the rest of the app works."""

from __future__ import annotations

from tests.e2e import test_install_page_browser as install_page
from tests.e2e.conftest import wait_for
from tests.e2e.test_install_page_browser import SHOTS, open_frame

browser = install_page.browser  # the same module-scoped Chromium fixture
TAB = "CRM_DEAL_DETAIL_TAB"


def test_the_deal_tab_shows_an_ordinary_user_the_deals_mirrored_history(
    browser, sim, stack, store, mirror, install_url
):
    portal = sim.add_portal(profile="cloud", language="en")
    portal.add_user(7, "Olga", admin=False)
    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    handler = sim.placement_handler(portal.domain, TAB)
    assert handler == f"{stack.gateway_url}/app"  # bound at install, to the pages' route
    deal_id = portal.ui_deal_add({"TITLE": "Kitchen <b>refit</b>", "STAGE_ID": "NEW"})
    wait_for(lambda: len(mirror.history(portal.member_id, str(deal_id))) == 1, what="the first version")
    portal.ui_deal_update(deal_id, {"STAGE_ID": "WON"})
    wait_for(lambda: len(mirror.history(portal.member_id, str(deal_id))) == 2, what="the second version")
    records_before = store.get(portal.member_id)

    target, form = sim.frame_form(
        portal.domain, handler, user_id=7, placement=TAB, placement_options={"ID": str(deal_id)}
    )
    page, console = open_frame(browser, target, form)
    try:
        main = page.query_selector("main#app")
        assert main.get_attribute("data-role") == "user" and main.get_attribute("data-user-id") == "7"
        assert main.get_attribute("data-placement") == TAB
        rows = page.query_selector_all("#history tr.version")
        assert len(rows) == 2 and "WON" in rows[1].inner_text() and "NEW" in rows[0].inner_text()
        assert "Kitchen <b>refit</b>" in rows[0].inner_text()  # shown as text, never as markup
        assert page.query_selector("#history b") is None
        assert not [c for c in console if "Content Security Policy" in c], console
        text = page.content()
        assert not [s for s in sim.issued_secrets() if s in text], "a secret reached the page"
        page.screenshot(path=str(SHOTS / "deal-tab-user.png"), full_page=True)
    finally:
        page.close()
    # an ordinary user opening a page changes nothing the app trusts
    after = store.get(portal.member_id)
    assert after.version == records_before.version and after.user_id == records_before.user_id


def test_a_box_without_the_placement_is_told_and_the_rest_of_the_app_works(
    sim, stack, store, mirror, install_url
):
    box = sim.add_portal(profile="box")
    box.remove_placement(TAB)
    assert sim.install(box.domain, install_url, mode="event").status_code == 200
    features = store.get(box.member_id).capabilities["features"]
    assert features["deal_tab"]["status"] == "missing"
    assert features["deal_tab"]["missing_placements"] == [TAB]
    assert features["crm"]["status"] == "available"
    assert sim.placement_handler(box.domain, TAB) is None
    deal_id = box.ui_deal_add({"TITLE": "Still mirrored"})
    wait_for(lambda: mirror.get(box.member_id, str(deal_id)) is not None, what="the box's deal mirrored")
    # the tab, asked for anyway, says the portal lacks it instead of failing
    target, form = sim.frame_form(
        box.domain, f"{stack.gateway_url}/app", placement=TAB, placement_options={"ID": "1"}
    )
    import httpx

    answer = httpx.post(target, data=form)
    assert answer.status_code == 409 and answer.json()["error"] == "feature_missing"
