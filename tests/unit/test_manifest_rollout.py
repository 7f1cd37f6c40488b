"""A changed manifest re-checks and re-binds every installed portal: fingerprints, due-ness, resuming,
the REST budget."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from b24core.capabilities.manifest import Manifest
from b24core.capabilities.rollout import FINGERPRINT, Rollout, needs_recheck
from b24core.capabilities.runner import CapabilityRunner
from b24core.capabilities.store import InMemoryCapabilityStore
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import InMemoryPortalStore
from tests.unit._manifests import MANIFEST, RAW
from tests.unit.test_capabilities import HANDLER, ScriptedPortal
from tests.unit.test_capability_runner import HOUR, WEEK, Clock

#: The next release's manifest: the crm feature also wants contact changes.
NEXT = Manifest.from_dict(
    {**RAW, "features": {**RAW["features"], "crm": {**RAW["features"]["crm"], "events": [
        *RAW["features"]["crm"]["events"], "ONCRMCONTACTADD"]}}}
)  # fmt: skip


def portal(member_id: str, **over: object) -> Portal:
    base = Portal(member_id, f"{member_id}.example", f"https://{member_id}.example/rest/")
    fields: dict[str, object] = {"state": PortalState.ACTIVE, "refresh_token": "r", "user_id": "1", **over}
    return replace(base, **fields)  # type: ignore[arg-type]


def runner_for(manifest: Manifest, portals, caps, client, clock, budget=None) -> CapabilityRunner:
    return CapabilityRunner(
        portals=portals,
        caps=caps,
        manifest=manifest,
        make_client=lambda p, timeout: client,
        recheck_interval_s=WEEK,
        recheck_soon_s=HOUR,
        clock=clock,
        budget=budget,
    )


def test_the_fingerprint_follows_what_the_manifest_asks():
    assert Manifest.from_dict(json.loads(json.dumps(RAW))).fingerprint == MANIFEST.fingerprint
    assert NEXT.fingerprint != MANIFEST.fingerprint
    assert len(MANIFEST.fingerprint) == 16


def test_a_portal_is_due_when_checked_with_another_manifest_and_readable_and_installed():
    checked = portal("m1", capabilities={FINGERPRINT: MANIFEST.fingerprint})
    assert not needs_recheck(checked, MANIFEST.fingerprint)
    assert needs_recheck(checked, NEXT.fingerprint)
    assert needs_recheck(portal("m2"), MANIFEST.fingerprint)  # checked before fingerprints existed
    assert not needs_recheck(replace(checked, state=PortalState.DELETED), NEXT.fingerprint)
    assert not needs_recheck(replace(checked, newer_release="schema=2"), NEXT.fingerprint)


def test_a_manifest_change_rebinds_a_portal_that_already_had_everything():
    portals, caps, clock = InMemoryPortalStore(), InMemoryCapabilityStore(), Clock()
    box = ScriptedPortal("m1.example")
    box.events |= {"ONCRMCONTACTADD"}
    portals.save(portal("m1"))
    runner_for(MANIFEST, portals, caps, box, clock).check("m1", HANDLER, trigger="install")
    assert caps.recheck_due_at("m1") is None  # everything there: never re-checked by the old rules
    assert portals.get("m1").capabilities[FINGERPRINT] == MANIFEST.fingerprint
    assert "ONCRMCONTACTADD" not in {b["event"] for b in box.bound}

    clock.now += 60  # the next release is deployed with NEXT
    result = runner_for(NEXT, portals, caps, box, clock).recheck_due(HANDLER)
    assert result["manifest_marked"] == 1 and result["rechecked"] == 1 and result["manifest_done"]
    assert "ONCRMCONTACTADD" in {b["event"] for b in box.bound}
    stored = portals.get("m1").capabilities
    assert stored[FINGERPRINT] == NEXT.fingerprint and stored["trigger"] == "manifest"
    asked = len(box.requests)
    again = runner_for(NEXT, portals, caps, box, clock).recheck_due(HANDLER)
    assert again["manifest_marked"] == 0 and again["rechecked"] == 0 and len(box.requests) == asked


def test_a_portal_whose_budget_is_spent_is_asked_later_not_now():
    portals, caps, clock = InMemoryPortalStore(), InMemoryCapabilityStore(), Clock()
    box = ScriptedPortal("m1.example")
    portals.save(portal("m1", capabilities={FINGERPRINT: MANIFEST.fingerprint}))
    spent = runner_for(NEXT, portals, caps, box, clock, budget=lambda m, cost: 12.0)
    result = spent.recheck_due(HANDLER)
    assert result["deferred"] == 1 and result["rechecked"] == 0 and box.requests == []
    assert caps.recheck_due_at("m1") == int(clock.now) + 13
    clock.now += 13
    assert (
        runner_for(NEXT, portals, caps, box, clock, budget=lambda m, c: 0.0).recheck_due(HANDLER)["rechecked"]
        == 1
    )


class Crashing:
    """The portal index, failing after some pages (a run stopped by its time or a crash)."""

    def __init__(self, store: InMemoryPortalStore, pages: int) -> None:
        self.store, self.pages, self.read = store, pages, 0

    def listed_page(self, limit=100, start_key=None):
        if self.read >= self.pages:
            raise TimeoutError("the run's time is up")
        self.read += 1
        return self.store.listed_page(limit, start_key)


def test_a_stopped_walk_goes_on_where_it_stopped():
    portals, caps = InMemoryPortalStore(), InMemoryCapabilityStore()
    for i in range(7):
        portals.save(portal(f"m{i}", capabilities={FINGERPRINT: MANIFEST.fingerprint}))
    portals.save(portal("current", capabilities={FINGERPRINT: NEXT.fingerprint}))
    first = Crashing(portals, pages=2)
    with pytest.raises(TimeoutError):
        Rollout(first, caps, NEXT.fingerprint, page_size=3).advance(now=100)
    before = len(caps.due_rechecks(100, limit=100))
    assert before in (5, 6)  # two pages of three, less "current" if it was among them
    second = Crashing(portals, pages=10)
    result = Rollout(second, caps, NEXT.fingerprint, page_size=3).advance(now=100)
    assert result["done"] and second.read == 1  # the third page (the last, partly filled), not the first two
    assert result["marked"] == 7 - before
    assert sorted(caps.due_rechecks(100, limit=100)) == [f"m{i}" for i in range(7)]
    assert caps.rollout()["marked"] == 7
    # a rollback to the old manifest starts a walk of its own
    back = Rollout(Crashing(portals, pages=10), caps, MANIFEST.fingerprint, page_size=3).advance(now=200)
    assert back["done"] and back["marked"] == 1  # only "current" was checked with the other one


def test_a_record_of_a_newer_release_is_neither_asked_nor_bound():
    portals, caps, clock = InMemoryPortalStore(), InMemoryCapabilityStore(), Clock()
    box = ScriptedPortal("m1.example")
    portals._items["m1"] = portal("m1", newer_release="schema=2")
    caps.schedule_recheck("m1", int(clock.now))
    runner = runner_for(NEXT, portals, caps, box, clock)
    assert runner.check("m1", HANDLER, trigger="manual") == {"error": "newer_release", "member_id": "m1"}
    assert runner.recheck_due(HANDLER)["skipped"] == 1
    # Left for the newer release, and out of the way of the other due portals meanwhile.
    assert box.requests == [] and caps.recheck_due_at("m1") == int(clock.now) + HOUR


def test_the_walk_reaches_portals_outside_the_token_index_a_webhook_connected_box_among_them():
    """A box connected by an incoming webhook after its tokens lapsed (REAUTH partition) and one that
    never held a refresh token are in no live-token partition: the walk goes through the directory."""
    from b24core.portals.states import TokenState

    portals, caps = InMemoryPortalStore(), InMemoryCapabilityStore()
    portals.save(portal("oauth", capabilities={FINGERPRINT: MANIFEST.fingerprint}))
    portals.save(portal("lapsed", token_state=TokenState.REAUTH_REQUIRED, refresh_token=""))
    portals.save(portal("tokenless", refresh_token=""))
    portals.save(portal("gone", state=PortalState.DELETED))
    result = Rollout(portals, caps, NEXT.fingerprint, page_size=2).advance(now=100)
    assert result["done"] and result["marked"] == 3
    assert sorted(caps.due_rechecks(100, limit=100)) == ["lapsed", "oauth", "tokenless"]


def test_a_portal_that_cannot_be_asked_leaves_the_schedule_instead_of_failing_every_hour():
    from b24core.tokens.outcomes import ReauthRequired

    portals, caps, clock = InMemoryPortalStore(), InMemoryCapabilityStore(), Clock()
    portals.save(portal("lapsed", refresh_token=""))

    def no_client(p, timeout):
        raise ReauthRequired("m")

    run = runner_for(NEXT, portals, caps, None, clock)
    run.make_client = no_client
    result = run.recheck_due(HANDLER)
    assert (result["skipped"], result["failed"]) == (1, 0)
    assert caps.due_rechecks(int(clock()) + WEEK, limit=10) == []
