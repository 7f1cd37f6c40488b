import pytest

from b24core.portals.model import Portal
from b24core.portals.states import IllegalTransition, PortalState, TokenState


def test_lifecycle_new_active_blocked_deleted_and_reinstall():
    p = Portal(member_id="m", domain="d", client_endpoint="https://d/rest/")
    p = p.with_state(PortalState.ACTIVE).with_state(PortalState.BLOCKED).with_state(PortalState.ACTIVE)
    p = p.with_state(PortalState.DELETED)
    assert p.with_state(PortalState.ACTIVE).state == PortalState.ACTIVE


def test_illegal_transitions_raise():
    p = Portal(member_id="m", domain="d", client_endpoint="https://d/rest/")
    with pytest.raises(IllegalTransition):
        p.with_state(PortalState.BLOCKED)
    lost = p.with_token_state(TokenState.REAUTH_REQUIRED)
    with pytest.raises(IllegalTransition):
        lost.with_token_state(TokenState.REFRESH_FAILING)


def test_public_view_never_contains_token_values():
    p = Portal(
        member_id="m",
        domain="d",
        client_endpoint="https://d/rest/",
        access_token="AT-1",
        refresh_token="RT-1",
        application_token="APP-1",
    )
    text = repr(p.public_view()) + repr(p)
    for secret in ("AT-1", "RT-1", "APP-1"):
        assert secret not in text
