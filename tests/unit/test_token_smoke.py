"""The doctor's token smoke test (b24core.tokens.smoke) never tests a token it should not."""

from __future__ import annotations

from b24core.portals.model import Portal
from b24core.tokens.smoke import smoke_test

NOW = 1_800_000_000


def _portal(**kw: object) -> Portal:
    return Portal(
        member_id="m1", domain="a.bitrix24.com", client_endpoint="https://a.bitrix24.com/rest/", **kw
    )  # type: ignore[arg-type]


def test_an_unknown_portal_fails():
    assert smoke_test(None, NOW) == {"outcome": "failed", "reason": "unknown_portal"}


def test_a_portal_without_an_access_token_is_skipped():
    assert smoke_test(_portal(), NOW)["reason"] == "no_access_token"


def test_an_expired_access_token_is_not_sent_and_not_refreshed():
    result = smoke_test(_portal(access_token="t", access_expires_at=NOW - 1), NOW)
    assert result == {"outcome": "skipped", "reason": "access_token_expired", "expired_at": NOW - 1}
    assert "t" not in result.values()
