"""Outgoing-webhook events: proven by the connected webhook's token, never for the app's own events."""

import pytest

from b24core.aws.apigw import HttpError
from b24core.events.auth_cache import AuthCache, PortalAuth
from b24core.events.intake import EventIntake
from b24core.portals.states import PortalState


class Reader:
    def __init__(self, auth):
        self.auth = auth

    def read(self, member_id):
        return self.auth if member_id == self.auth.member_id else None


class Sink:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


def form(event, token, member_id="m1"):
    auth = {"member_id": member_id, "domain": "box.example", "application_token": token}
    return {"event": event, "data": {"FIELDS": {"ID": "7"}}, "ts": "1", "auth": auth}


def intake(app_token="app-1", webhook_token="hook-1"):
    sink = Sink()
    auth = PortalAuth("m1", PortalState.ACTIVE, app_token, webhook_token)
    return EventIntake(AuthCache(Reader(auth)), sink), sink


def test_the_outgoing_webhooks_token_proves_its_events_and_they_carry_no_secret():
    box, sink = intake()
    box.accept(form("ONCRMDEALUPDATE", "hook-1"))
    box.accept(form("ONCRMDEALADD", "app-1"))  # the app's own token still works
    assert [m.event for m in sink.sent] == ["ONCRMDEALUPDATE", "ONCRMDEALADD"]
    assert "hook-1" not in sink.sent[0].to_json()


@pytest.mark.parametrize("event", ["ONAPPUNINSTALL", "ONAPPUPDATE", "ONAPPTEST", "ONOFFLINEEVENT"])
def test_the_webhooks_token_never_proves_the_apps_own_events(event):
    box, _ = intake()
    with pytest.raises(HttpError) as refused:
        box.verify(form(event, "hook-1"))
    assert refused.value.status == 403


def test_forged_and_disconnected_webhook_events_are_refused():
    box, sink = intake()
    with pytest.raises(HttpError):
        box.accept(form("ONCRMDEALUPDATE", "hook-2"))
    bare, _ = intake(webhook_token="")
    with pytest.raises(HttpError):
        bare.accept(form("ONCRMDEALUPDATE", "hook-1"))
    only_hook, hook_sink = intake(app_token="")  # a portal known only through its webhooks
    only_hook.accept(form("ONCRMDEALUPDATE", "hook-1"))
    assert len(hook_sink.sent) == 1 and sink.sent == []
