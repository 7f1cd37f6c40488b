"""The queue message: a Bitrix24 event with every token removed.

Only what handlers need travels through SQS; the auth block (access/refresh/application tokens) never
does, so a queue, a DLQ or a redrive can never leak credentials.

Versioning (docs/upgrading.md): during a canary deployment, and after a rollback, old and new code read
the same queue. A new *optional* field keeps ``v`` (readers ignore fields they do not know, and carry them
along when they send an event back); anything an older reader would misread bumps ``v``. A reader reads
every version up to its own (``READABLE_VERSIONS``); a newer one raises ``UnknownVersion`` so the worker
fails it and SQS redrives it to the DLQ after maxReceiveCount - never deleted, so a newer worker (or a
redrive after the roll forward) still handles it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MESSAGE_VERSION = 1
#: Every version this code can read (older formats stay readable for as long as they may be queued).
READABLE_VERSIONS = frozenset({1})
_KNOWN_FIELDS = frozenset(
    {"v", "event", "member_id", "domain", "data", "ts", "event_handler_id", "user_id", "source"}
    | {"received_at", "held", "attempt", "failing_since"}
)


class UnknownVersion(ValueError):
    """A message written by a newer (or unknown) release: not for this code, but not garbage either."""

    def __init__(self, version: object) -> None:
        super().__init__("queued event of an unknown message version")
        self.version = version


_AUTH_KEEP = ("domain", "member_id", "client_endpoint", "user_id", "status")


@dataclass(frozen=True)
class QueuedEvent:
    event: str
    member_id: str
    domain: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: str = ""
    event_handler_id: str = ""
    user_id: str = ""
    source: str = "online"
    received_at: int = 0
    #: How many times the worker held this event back to pack its read with later ones (bounded).
    held: int = 0
    #: Fields a newer release of the same version added: kept as they are when the event is sent back.
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    #: Delayed retries of a failing portal's event so far, and since when it fails (worker/retry.py).
    #: Optional: a message without them is a first attempt.
    attempt: int = 0
    failing_since: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {
                **self.extra,
                "v": MESSAGE_VERSION,
                "event": self.event,
                "member_id": self.member_id,
                "domain": self.domain,
                "data": self.data,
                "ts": self.ts,
                "event_handler_id": self.event_handler_id,
                "user_id": self.user_id,
                "source": self.source,
                "received_at": self.received_at,
                **({"held": self.held} if self.held else {}),
                **({"attempt": self.attempt} if self.attempt else {}),
                **({"failing_since": self.failing_since} if self.failing_since else {}),
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, body: str) -> QueuedEvent:
        raw = json.loads(body)
        if not isinstance(raw, dict) or "v" not in raw:
            raise ValueError("not a queued Bitrix24 event")
        version = raw["v"]
        if not isinstance(version, int) or isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise UnknownVersion(version)
        return cls(
            event=str(raw["event"]).upper(),
            member_id=str(raw["member_id"]),
            domain=str(raw.get("domain") or ""),
            data=_as_dict(raw.get("data")),
            ts=str(raw.get("ts") or ""),
            event_handler_id=str(raw.get("event_handler_id") or ""),
            user_id=str(raw.get("user_id") or ""),
            source=str(raw.get("source") or "online"),
            received_at=int(raw.get("received_at") or 0),
            held=int(raw.get("held") or 0),
            extra={k: v for k, v in raw.items() if k not in _KNOWN_FIELDS},
            attempt=int(raw.get("attempt") or 0),
            failing_since=int(raw.get("failing_since") or 0),
        )


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def strip_tokens(form: dict[str, Any], received_at: int) -> QueuedEvent:
    auth = _as_dict(form.get("auth"))
    data = _as_dict(form.get("data"))
    return QueuedEvent(
        event=str(form.get("event") or "").upper(),
        member_id=str(auth.get("member_id") or ""),
        domain=str(auth.get("domain") or ""),
        data=data,
        ts=str(form.get("ts") or ""),
        event_handler_id=str(form.get("event_handler_id") or ""),
        user_id=str(auth.get("user_id") or ""),
        received_at=received_at,
    )
