"""Runs after the other e2e tests: no token, refresh token, application token or client_secret that
the simulator ever issued appears in any log line the stack wrote during the whole run."""

from __future__ import annotations


def test_no_issued_secret_appears_in_any_log(sim, stack):
    logs = sorted(p for p in stack.logs_dir.rglob("*.log"))
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert '"action":"dispatch"' in text, "the logs must cover real traffic for this check to mean anything"
    secrets = sim.issued_secrets()
    assert len(secrets) > 10
    leaked = sorted({s for s in secrets if s in text})
    assert leaked == [], f"{len(leaked)} secret values found in {', '.join(p.name for p in logs)}"
