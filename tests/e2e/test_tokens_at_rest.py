"""Tokens at rest on the whole local stack (issue 10): the table holds no usable token, KMS on the moto
server seals them, ciphertexts are bound to their portal, old plaintext items still work, the CLI never
decrypts."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import botocore.client
import pytest

from b24cli.main import main
from b24core.portals.sealing import SealError, is_sealed
from b24core.portals.store import DynamoPortalStore
from tests.e2e.conftest import wait_for

DAY = 24 * 3600


def _raw(stack: Any, member_id: str, sk: str = "PORTAL") -> dict[str, Any]:
    ddb = stack.services.client("dynamodb")
    return ddb.get_item(
        TableName=stack.resources["AppTable"],
        Key={"pk": {"S": f"PORTAL#{member_id}"}, "sk": {"S": sk}},
        ConsistentRead=True,
    )["Item"]


def _strings(item: dict[str, Any]) -> str:
    return "\n".join(str(v) for value in item.values() for v in value.values())


def _installed(sim: Any, stack: Any, install_url: str) -> Any:
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    stack.wait_idle()
    return portal


def _assert_no_token_in(stack: Any, sim: Any, member_id: str) -> dict[str, Any]:
    raw = _raw(stack, member_id)
    text = _strings(raw)
    leaked = sum(1 for s in sim.issued_secrets() if s and s in text)  # a count: never print a token
    assert leaked == 0, "token value(s) readable in the raw item"
    assert is_sealed(raw["access_token"]["S"]) and is_sealed(raw["refresh_token"]["S"])
    assert raw["application_token"]["S"].startswith("sha256:")
    return raw


def test_no_token_is_readable_in_the_table_after_install_and_refresh_and_the_app_still_works(
    sim, stack, store, install_url, mirror
):
    portal = _installed(sim, stack, install_url)
    first = _assert_no_token_in(stack, sim, portal.member_id)
    stored = store.get(portal.member_id)
    assert stored.refresh_token and not is_sealed(stored.refresh_token)  # the functions' view: usable

    # A keep-alive refresh in TokenRefreshFunction opens the refresh token and seals the new pair.
    store.save(replace(stored, refreshed_at=int(time.time()) - 45 * DAY))
    report = stack.fire_schedule("TokenRefreshFunction", "Sweep")
    assert report["refreshed"] >= 1
    refreshed = store.get(portal.member_id)
    assert refreshed.refresh_token != stored.refresh_token
    second = _assert_no_token_in(stack, sim, portal.member_id)
    assert second["refresh_token"] != first["refresh_token"]

    # Events are still verified (hash) and REST reads still work with the opened tokens.
    deal_id = portal.ui_deal_add({"TITLE": "Sealed"})
    wait_for(
        lambda: (mirror.get(portal.member_id, str(deal_id)) or {}).get("TITLE") == "Sealed",
        what="the deal read with the sealed-at-rest token",
    )


def test_a_ciphertext_copied_to_another_portals_item_does_not_open(sim, stack, store, install_url):
    victim = _installed(sim, stack, install_url)
    thief = _installed(sim, stack, install_url)
    stolen = _raw(stack, victim.member_id)["refresh_token"]["S"]
    stack.services.client("dynamodb").update_item(
        TableName=stack.resources["AppTable"],
        Key={"pk": {"S": f"PORTAL#{thief.member_id}"}, "sk": {"S": "PORTAL"}},
        UpdateExpression="SET refresh_token = :t",
        ExpressionAttributeValues={":t": {"S": stolen}},
    )
    with pytest.raises(SealError):
        store.get(thief.member_id)
    assert store.get(victim.member_id).refresh_token  # the victim's own item still opens


def test_an_item_written_in_plaintext_by_the_previous_version_reads_and_is_sealed_on_save(
    sim, stack, store, install_url
):
    portal = _installed(sim, stack, install_url)
    current = store.get(portal.member_id)
    # The previous version's writer: no codec, plaintext tokens and application_token.
    legacy = DynamoPortalStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint)
    ddb = stack.services.client("dynamodb")
    ddb.update_item(
        TableName=stack.resources["AppTable"],
        Key={"pk": {"S": f"PORTAL#{portal.member_id}"}, "sk": {"S": "PORTAL"}},
        UpdateExpression="SET access_token = :a, refresh_token = :r, application_token = :p",
        ExpressionAttributeValues={
            ":a": {"S": current.access_token},
            ":r": {"S": current.refresh_token},
            ":p": {"S": portal.app.application_token},
        },
    )
    assert _raw(stack, portal.member_id)["refresh_token"]["S"] == current.refresh_token
    read = store.get(portal.member_id)
    assert read.refresh_token == current.refresh_token and read.access_token == current.access_token
    assert legacy.get(portal.member_id).refresh_token == current.refresh_token
    # Events still prove themselves against the plaintext application_token, then the app works on.
    deal_id = portal.ui_deal_add({"TITLE": "Legacy"})
    assert deal_id
    store.save(replace(read, scope=read.scope))  # the next save of any function
    _assert_no_token_in(stack, sim, portal.member_id)
    assert store.get(portal.member_id).refresh_token == current.refresh_token


def test_the_cli_reads_portals_without_any_kms_call(sim, stack, store, install_url, monkeypatch, capsys):
    portal = _installed(sim, stack, install_url)
    monkeypatch.delenv("B24_STACK_NAME", raising=False)
    monkeypatch.delenv("B24_TABLE_NAME", raising=False)
    monkeypatch.setenv("B24_LOCAL_STATE_DIR", str(stack.state_dir))
    calls: list[str] = []
    real = botocore.client.BaseClient._make_api_call

    def spy(self: Any, operation: str, params: Any) -> Any:
        calls.append(f"{self.meta.service_model.service_name}:{operation}")
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    assert main(["portals", "list"]) == 0
    assert main(["portals", "show", portal.member_id]) == 0
    assert main(["tokens", "status", "--json"]) == 0
    out = capsys.readouterr().out
    assert portal.member_id in out
    assert any(c.startswith("dynamodb:") for c in calls)  # the spy saw the CLI's reads
    assert not [c for c in calls if c.startswith("kms:")]
    assert sum(1 for s in sim.issued_secrets() if s and s in out) == 0


def test_the_pair_a_healing_event_brings_is_adopted_and_sealed(sim, stack, store, install_url):
    """EventsFunction hands the offered pair to InstallFunction (it holds no key and writes no portal
    record); the administrator's pair is adopted there and stored sealed."""
    import httpx

    from b24core.bitrix.forms import encode_form
    from b24core.bitrix.oauth import AuthServer
    from b24core.portals.states import TokenState
    from tests.e2e.conftest import CLIENT_ID

    portal = _installed(sim, stack, install_url)
    stored = store.get(portal.member_id)
    AuthServer(sim.oauth_url).refresh(CLIENT_ID, sim._client_secret, stored.refresh_token)  # spent elsewhere
    sim.expire_access_tokens(portal.domain)
    portal.ui_deal_add({"TITLE": "while lost"})
    wait_for(lambda: store.get(portal.member_id).token_state == TokenState.REAUTH_REQUIRED, what="lost")
    fresh = sim.issue_tokens(portal.domain)
    auth = {
        "access_token": fresh["access_token"],
        "refresh_token": fresh["refresh_token"],
        "expires_in": "3600",
        "member_id": portal.member_id,
        "domain": portal.domain,
        "client_endpoint": portal.client_endpoint,
        "application_token": portal.app.application_token,
    }
    form = {"event": "ONOFFLINEEVENT", "data": {"event_name": "ONCRMDEALUPDATE"}, "ts": "1", "auth": auth}
    resp = httpx.post(
        f"{stack.gateway_url}/events",
        content=encode_form(form),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200
    assert store.get(portal.member_id).refresh_token == fresh["refresh_token"]
    _assert_no_token_in(stack, sim, portal.member_id)
