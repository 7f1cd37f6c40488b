"""A token state change, told once: a log line and a metric (no secrets)."""

from __future__ import annotations

from b24core.aws import metrics
from b24core.aws.logs import logger
from b24core.portals.model import Portal
from b24core.portals.states import TokenState


def announce_token_state(before: Portal, after: Portal) -> None:
    """Log and count a token state change (no secrets); every path that changes the state calls it."""
    if before.token_state == after.token_state:
        return
    metrics.emit("TokenStateEntered", state=str(after.token_state))
    level = logger.info if after.token_state == TokenState.ACTIVE else logger.warning
    level(
        "token state changed",
        extra={
            "action": "token_state",
            "outcome": str(after.token_state),
            "from_state": str(before.token_state),
            "reason": after.token_state_reason,
            "member_id": after.member_id,
            "domain": after.domain,
        },
    )
