"""Runs after the other e2e tests: no token, refresh token, application token or client_secret that
the simulator ever issued appears in any log line the stack wrote during the whole run.

The stack runs with Powertools' event logging on (tests/e2e/conftest.py), so every install frame and
every event — bodies full of tokens — went through the logger: the checks below fail as soon as the
redaction is switched off, not only when some code starts printing a token."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any


def _records(logs: list[Path]) -> list[dict[str, Any]]:
    out = []
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def _decoded(body: str) -> str:
    try:
        return base64.b64decode(body, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return body


def test_no_issued_secret_appears_in_any_log(sim, stack):
    logs = sorted(p for p in stack.logs_dir.rglob("*.log"))
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert '"action":"dispatch"' in text, "the logs must cover real traffic for this check to mean anything"
    secrets = sim.issued_secrets()
    assert len(secrets) > 10
    leaked = sorted({s for s in secrets if s in text})
    assert leaked == [], f"{len(leaked)} secret values found in {', '.join(p.name for p in logs)}"


def test_logged_requests_carrying_tokens_are_masked(sim, stack):
    logs = sorted(
        p for p in stack.logs_dir.rglob("*.log") if p.name in ("InstallFunction.log", "EventsFunction.log")
    )
    requests = [
        r["message"]
        for r in _records(logs)
        if isinstance(r.get("message"), dict) and "requestContext" in r["message"]
    ]
    assert len(requests) > 10, "event logging must have logged the requests for this check to mean anything"
    with_body = [m for m in requests if m.get("body")]
    assert with_body, "requests with a body (install frames, events) were logged"
    assert {m["body"] for m in with_body} == {"***"}, "a logged request body must be masked"
    # Whatever is left of a logged request (query, headers, decoded body) carries no issued secret.
    secrets = sim.issued_secrets()
    shown = "\n".join(json.dumps(m) + _decoded(str(m.get("body") or "")) for m in requests)
    assert sorted(s for s in secrets if s in shown) == []
