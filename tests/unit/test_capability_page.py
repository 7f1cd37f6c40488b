"""The install page: what the admin reads, whether it finishes the install, and what it never holds."""

from __future__ import annotations

import re

from b24core.entry.pages import BX24_LIBRARY, decide, install_page
from b24core.portals.model import Portal
from b24core.worker.handlers import Context, Event, Registry


def feature(status, required=False, **missing):
    return {
        "status": status,
        "available": {"available": True, "missing": False}.get(status),
        "required": required,
        "missing_methods": missing.get("methods", []),
        "missing_events": missing.get("events", []),
        "missing_scopes": missing.get("scopes", []),
        "unknown": missing.get("unknown", []),
        "module": missing.get("module", ""),
        "module_missing": missing.get("module_missing", False),
        "description": "",
    }


BOX_WITHOUT_CRM_LIST = {
    "kind": {"kind": "box", "told_by": "x"},
    "features": {
        "crm": feature("missing", True, methods=["crm.deal.list"], module="crm"),
        "telephony": feature(
            "missing",
            methods=["telephony.externalcall.register"],
            events=["ONEXTERNALCALLSTART"],
            module="voximplant",
            module_missing=True,
        ),
        "notifications": feature("available"),
    },
}


def test_a_box_missing_a_required_method_gets_no_install_finish_and_a_page_naming_what_to_update():
    page, csp = install_page(
        BOX_WITHOUT_CRM_LIST,
        "en",
        "crm.acme.local",
        portal_url="https://crm.acme.local",
        events_url="https://app/events",
    )
    assert "installFinish" not in page and "data-install-finish='no'" in page
    assert "crm.deal.list" in page and "ONEXTERNALCALLSTART" in page
    assert "https://crm.acme.local/bitrix/admin/update_system.php" in page
    assert "“voximplant”" in page and "“crm”" not in page  # the module to switch on; crm needs updates
    assert "oauth.bitrix.info" in page and "app-world.json" in page and "https://app/events" in page
    assert "open the app again" in page
    assert decide(BOX_WITHOUT_CRM_LIST).finish is False


def test_a_complete_cloud_install_finishes_and_shows_no_box_advice():
    report = {
        "kind": {"kind": "cloud"},
        "features": {"crm": feature("available", True), "telephony": feature("available")},
    }
    page, _ = install_page(report, "en", "acme.bitrix24.com")
    assert "BX24.installFinish()" in page and "id='todo'" not in page and "id='network'" not in page
    assert decide(report).state == "ok"


def test_an_optional_feature_missing_still_finishes_and_says_what_to_do():
    report = {
        "kind": {"kind": "cloud"},
        "features": {
            "crm": feature("available", True),
            "telephony": feature("missing", module="voximplant", methods=["telephony.externalcall.register"]),
        },
    }
    page, _ = install_page(report, "en", "acme.bitrix24.com")
    assert "BX24.installFinish()" in page and "id='todo'" in page
    assert decide(report).state == "ok_partial"


def test_unknown_required_feature_finishes_and_promises_a_recheck():
    report = {"features": {"crm": feature("unknown", True, unknown=["ONCRMDEALADD"])}}
    page, _ = install_page(report, "en", "acme.bitrix24.com")
    assert decide(report).state == "pending" and "BX24.installFinish()" in page
    assert "ONCRMDEALADD" in page and "within the hour" in page


def test_the_page_speaks_the_portal_language():
    page, _ = install_page(BOX_WITHOUT_CRM_LIST, "ru", "crm.acme.local")
    assert "<html lang='ru'" in page and "Установите обновления Битрикс24" in page
    page, _ = install_page(BOX_WITHOUT_CRM_LIST, "de", "crm.acme.local")
    assert "<html lang='en'" in page


def test_the_csp_allows_only_this_pages_nonce_and_the_bx24_library_and_the_page_escapes_input():
    report = {"features": {"crm": feature("missing", True, methods=["<script>alert(1)</script>"])}}
    page, csp = install_page(report, "en", "<b>evil</b>", portal_url="http://127.0.0.1:8080")
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f"script-src 'nonce-{nonce}' {BX24_LIBRARY};" in csp
    assert "default-src 'none'" in csp and "frame-ancestors http://127.0.0.1:8080" in csp
    assert "unsafe-inline" not in csp
    assert "<script>alert" not in page and "<b>evil" not in page
    assert all(f"nonce='{nonce}'" in tag for tag in re.findall(r"<script[^>]*>", page))


def test_the_registry_runs_a_handler_only_where_its_feature_is_not_known_missing():
    reg, ran = Registry(), []
    reg.on("ONEXTERNALCALLSTART", feature="telephony")(lambda e, c: ran.append(e.member_id))
    event = Event("ONEXTERNALCALLSTART", "m1", "d")
    for status, expected in (("missing", 0), ("unknown", 1), ("available", 1)):
        portal = Portal(
            "m1", "d", "https://d/rest/", capabilities={"features": {"telephony": {"status": status}}}
        )
        assert reg.dispatch(event, Context(portal=portal, client=None)) == expected
    assert Context(Portal("m1", "d", "e"), None).has_feature("telephony") is True  # not checked yet


def test_a_cut_off_portal_reads_what_to_open_in_its_own_language():
    from b24core.capabilities.isolation import AuthReach, QueueReach, describe, isolation_record

    record = isolation_record(AuthReach.UNREACHABLE, QueueReach.UNREACHABLE)
    report = {**BOX_WITHOUT_CRM_LIST, "isolation": record}
    page, _ = install_page(report, "ru", "crm.acme.local")
    section = page[page.index("<section id='isolation'>") :]
    assert "портал не может связаться с сервером авторизации; очередь событий недоступна" in section
    assert "oauth.bitrix.info" in section and "app-world.json" in section
    page, _ = install_page(report, "en", "crm.acme.local")
    assert "authorization server unreachable from the portal; event queue unreachable" in page
    # An unknown finding keeps what the record says.
    assert describe({"summary": "s", "advice": ["a"]}, "ru") == ("s", ["a"])
