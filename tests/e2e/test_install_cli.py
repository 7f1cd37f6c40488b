"""`b24app portals` against the running local stack: the capability report, the filter, the re-check."""

from __future__ import annotations

import json

import pytest

from b24cli.main import main


@pytest.fixture
def cli(stack, monkeypatch, capsys):
    monkeypatch.delenv("B24_STACK_NAME", raising=False)
    monkeypatch.delenv("B24_TABLE_NAME", raising=False)
    monkeypatch.setenv("B24_LOCAL_STATE_DIR", str(stack.state_dir))

    def run(*argv: str) -> tuple[int, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


def test_show_list_missing_and_recheck(sim, stack, store, install_url, cli):
    box = sim.add_portal(profile="box")
    cloud = sim.add_portal(profile="cloud")
    for portal in (box, cloud):
        assert (
            sim.install(portal.domain, install_url, mode="event", scope="crm,im,telephony,user").status_code
            == 200
        )

    code, out = cli("portals", "show", box.member_id)
    assert code == 0
    assert (
        "telephony (optional)" in out
        and "missing: the portal lacks method telephony.externalcall.register" in out
    )
    assert "lacks methods" in out and "telephony.externalcall.register" in out
    assert "portal kind" in out and "box (" in out and "next re-check" in out
    assert "history" in out and "telephony not checked -> missing" in out

    code, out = cli("portals", "list", "--missing", "telephony", "--json")
    listed = {p["member_id"] for p in json.loads(out)}
    assert box.member_id in listed and cloud.member_id not in listed

    box.enable_module("telephony")
    code, out = cli("portals", "recheck", box.member_id)
    assert code == 0 and "telephony:ok" in out
    assert store.get(box.member_id).capabilities["trigger"] == "manual"
    code, out = cli("portals", "list", "--missing", "telephony")
    assert box.member_id not in out

    code, out = cli("portals", "recheck", "no-such-member")
    assert code == 1 and "portal_not_active" in out

    # At fleet size: find by domain, and re-check every active portal with a progress bar.
    code, out = cli("portals", "find", box.domain, "--json")
    assert code == 0 and [(p["member_id"], p["match"]) for p in json.loads(out)] == [(box.member_id, "exact")]
    code, out = cli("portals", "recheck", "--all", "--json")
    summary = json.loads(out[: out.rindex("}") + 1][out.index("{") :])
    assert code == 0 and summary["done"] >= 2 and summary["failed"] == 0 and "recheck [" in out
    for secret in sim.issued_secrets():
        assert secret not in out
