"""`b24app doctor` against the running local stack: all ok on a healthy stack with an installed portal
(its stored tokens pass one app.info call, no refresh), and a failed check with a fix line when the
client secret is gone, the authorization server does not answer or events wait in the DLQ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from b24cli.main import main
from b24core.delivery.modes import ProbeOutcome
from b24core.delivery.store import DynamoDeliveryStore
from tests.e2e.conftest import free_port, wait_for


@pytest.fixture
def doctor(stack, monkeypatch, capsys):
    monkeypatch.delenv("B24_STACK_NAME", raising=False)
    monkeypatch.delenv("B24_TABLE_NAME", raising=False)
    monkeypatch.setenv("B24_LOCAL_STATE_DIR", str(stack.state_dir))
    capsys.readouterr()

    def run(*argv: str) -> tuple[int, str]:
        code = main(["doctor", *argv])
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


def _checks(out: str) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in json.loads(out)["checks"]}


def _no_secrets(sim, out: str) -> None:
    for secret in [*sim.issued_secrets(), sim._client_secret]:
        assert secret not in out


def test_a_healthy_stack_with_an_installed_portal_passes_every_check(sim, stack, store, install_url, doctor):
    portal = sim.add_portal(profile="cloud")
    # The install's answer is not what this test is about: on a loaded machine the first (cold) install
    # may outlast the simulated queue's 5 s, and the install still completes. Wait for its outcome.
    sim.install(portal.domain, install_url, mode="event")
    wait_for(lambda: store.get(portal.member_id) is not None, timeout=60, what="the install stored")
    delivery = DynamoDeliveryStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint)
    wait_for(
        lambda: (s := delivery.get(portal.member_id)) is not None and s.probe_outcome == ProbeOutcome.ARRIVED,
        timeout=60,
        what="the install's probe arriving",
    )
    before = store.get(portal.member_id)

    code, out = doctor("--portal", portal.member_id, "--json")
    checks = _checks(out)
    assert code == 0, out
    assert {c["status"] for c in checks.values()} == {"ok"}, out
    assert {
        "client secret",
        "table",
        "table key",
        "token key",
        "events queue",
        "events DLQ",
        "schedules",
        "auth server",
        "portal tokens",
        "delivery",
        "token smoke test",
    } <= set(checks)
    assert "app.info answered" in checks["token smoke test"]["detail"]
    assert "online" in checks["delivery"]["detail"]
    # The smoke test refreshed nothing: the stored pair is the one the install stored.
    after = store.get(portal.member_id)
    assert (after.access_token, after.refresh_token, after.refreshed_at) == (
        before.access_token,
        before.refresh_token,
        before.refreshed_at,
    )
    _no_secrets(sim, out)

    code, out = doctor("--portal", portal.member_id)
    assert code == 0 and "all checks passed" in out and "FAIL" not in out


def test_a_missing_client_secret_fails_with_the_command_that_fixes_it(sim, stack, doctor):
    ssm = stack.client("ssm")
    name = stack.resolver.parameter_value("B24ClientSecretParameter")
    ssm.delete_parameter(Name=name)
    try:
        code, out = doctor()
    finally:
        ssm.put_parameter(Name=name, Value=sim._client_secret, Type="SecureString", Overwrite=True)
    assert code == 1
    assert "FAIL  client secret" in out and "ParameterNotFound" in out
    assert f"fix: aws ssm put-parameter --name {name} --type SecureString" in out
    assert "1 check(s) failed" in out
    _no_secrets(sim, out)
    assert doctor()[0] == 0  # put back: healthy again


def test_an_unreachable_auth_server_and_a_dead_letter_fail_with_fixes(
    sim, stack, doctor, monkeypatch, tmp_path
):
    # The same stack, as a copy of its stack.json that names an authorization server nobody serves.
    info = json.loads((Path(stack.state_dir) / "stack.json").read_text())
    info["parameters"]["B24OAuthUrl"] = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "stack.json").write_text(json.dumps(info))
    monkeypatch.setenv("B24_LOCAL_STATE_DIR", str(tmp_path))
    sqs = stack.client("sqs")
    dlq = stack.resources["EventsDLQ"]
    sqs.send_message(QueueUrl=dlq, MessageBody="{}")
    try:
        code, out = doctor("--json")
    finally:
        sqs.purge_queue(QueueUrl=dlq)
    checks = _checks(out)
    assert code == 1 and json.loads(out)["ok"] is False
    assert checks["auth server"]["status"] == "fail" and "did not answer" in checks["auth server"]["detail"]
    assert "B24OAuthUrl" in checks["auth server"]["fix"]
    assert checks["events DLQ"]["status"] == "fail" and "b24app events redrive" in checks["events DLQ"]["fix"]
    assert checks["client secret"]["status"] == "ok"  # one broken part does not fail the others
