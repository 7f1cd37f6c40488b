"""In-process fakes for the delivery tests: a portal's offline queue and bindings, and an SQS that
refuses some sends. They follow the documented behaviour (api-reference/events/event-offline-*.md)
the simulator also plays, without sockets."""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

from b24core.portals.model import Portal
from b24core.portals.states import PortalState

PORTAL = Portal(
    member_id="m1",
    domain="box.example.com",
    client_endpoint="https://box.example.com/rest/",
    state=PortalState.ACTIVE,
    user_id="1",
    language="en",
    capabilities={
        "kind": {"kind": "box"},
        "events_url": "https://app.example.com/events",
        "admin_user_id": "1",
        "features": {
            "crm": {"status": "available", "available": True},
            "notifications": {"status": "available", "available": True},
            "telephony": {"status": "missing", "available": False},
        },
    },
)


class Crash(BaseException):
    """Plays a Lambda dying at a chosen call (not an Exception: nothing in the code may catch it)."""


class Refused(Exception):
    def __init__(self, code: str, description: str = "refused") -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass
class Record:
    id: int
    event: str
    data: dict[str, Any]
    message_id: str
    connector: str
    ts: str = "2026-01-01T10:00:00+00:00"
    process_id: str = ""
    error: bool = False


@dataclass
class FakePortal:
    """A portal's REST surface as far as probes and pulls use it."""

    installed: bool = True
    admin: bool = True
    records: list[Record] = field(default_factory=list)
    bindings: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    fail: dict[str, str] = field(default_factory=dict)  # method -> error code
    crash_on: dict[str, int] = field(default_factory=dict)  # method -> raise Crash at that call number
    raise_on: dict[str, Exception] = field(default_factory=dict)  # method -> raised for the whole request
    notifications: list[dict[str, Any]] = field(default_factory=list)
    tests_sent: list[str] = field(default_factory=list)
    cleared_log: list[list[int]] = field(default_factory=list)
    _next: int = 1
    portal: Portal = PORTAL

    # ---- the portal UI
    def change(self, event: str, object_id: int, connector: str = "") -> None:
        """A change recorded in every offline queue bound for ``event`` (one record per object)."""
        queues = {b["auth_connector"] for b in self.bindings if b["event"] == event and b["offline"]}
        for queue in queues:
            if queue and queue == connector:
                continue
            mid = f"{event}:{object_id}"
            same = [
                r for r in self.records if r.message_id == mid and r.connector == queue and not r.process_id
            ]
            if same:
                continue
            self.records.append(Record(self._next, event, {"FIELDS": {"ID": str(object_id)}}, mid, queue))
            self._next += 1

    # ---- REST
    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append(method)
        if method in self.raise_on:
            raise self.raise_on[method]
        n = self.calls.count(method)
        if self.crash_on.get(method) == n:
            raise Crash(f"crashed at {method} #{n}")
        return self._run(method, dict(params or {}))

    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]], halt: bool = False) -> dict[str, Any]:
        self.calls.append("batch")
        if "batch" in self.raise_on:
            raise self.raise_on["batch"]
        result: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, (method, params) in commands.items():
            n = self.calls.count(method) + 1
            self.calls.append(method)
            if self.crash_on.get(method) == n:
                raise Crash(f"crashed at {method} #{n}")
            if method in self.fail:
                errors[key] = {"error": self.fail[method], "error_description": "refused"}
                continue
            try:
                result[key] = self._run(method, dict(params))
            except Refused as exc:
                errors[key] = {"error": exc.code, "error_description": exc.description}
        return {"result": result, "error": errors}

    def _run(self, method: str, p: dict[str, Any]) -> Any:
        if method == "app.info":
            return {"INSTALLED": self.installed}
        if method == "event.test":
            self.tests_sent.append(str(p.get("probe")))
            return 1
        if method == "event.bind":
            offline = p.get("event_type") == "offline"
            if offline and not self.admin:
                raise Refused("ACCESS_DENIED", "Access denied!")
            for b in self.bindings:
                if (
                    b["event"] == p["event"]
                    and b["offline"] == offline
                    and b.get("handler") == p.get("handler")
                ):
                    raise Refused("ERROR_CORE", "Unable to set event handler: Handler already binded")
            self.bindings.append(
                {
                    "event": p["event"],
                    "offline": offline,
                    "handler": p.get("handler"),
                    "auth_connector": p.get("auth_connector", ""),
                    "options": p.get("options"),
                }
            )
            return True
        if method == "event.unbind":
            offline = p.get("event_type") == "offline"
            before = len(self.bindings)
            self.bindings = [
                b for b in self.bindings if not (b["event"] == p["event"] and b["offline"] == offline)
            ]
            return {"count": before - len(self.bindings)}
        if method == "im.notify.system.add":
            self.notifications.append(dict(p))
            return 1
        if method == "event.offline.get":
            return self._get(p)
        if method == "event.offline.clear":
            ids = {int(i) for i in p.get("id") or []}
            gone = [
                r.id for r in self.records if r.process_id == p["process_id"] and (not ids or r.id in ids)
            ]
            self.cleared_log.append(gone)
            self.records = [r for r in self.records if r.id not in gone]
            return True
        if method == "event.offline.error":
            mids = set(p.get("message_id") or [])
            for r in self.records:
                if r.process_id == p["process_id"] and r.message_id in mids:
                    r.error, r.process_id = True, ""
            return True
        if method == "event.offline.list":
            rows = [r for r in self.records if r.connector == p.get("auth_connector", "")]
            if (p.get("filter") or {}).get("!PROCESS_ID") == "":
                rows = [r for r in rows if r.process_id]
            start = int(p.get("start") or 0)
            return [self._row(r, True) for r in rows[start : start + 50]]
        raise Refused("ERROR_METHOD_NOT_FOUND", f"no method {method}")

    def _get(self, p: dict[str, Any]) -> dict[str, Any]:
        connector = p.get("auth_connector", "")
        rows = [r for r in self.records if r.connector == connector]
        pid = str(p.get("process_id") or "")
        if pid:
            rows = [r for r in rows if r.process_id == pid]
        else:
            rows = [r for r in rows if not r.process_id and r.error == bool(int(p.get("error") or 0))]
        rows = rows[: int(p.get("limit") or 50)]
        if str(p.get("clear", 1)) in ("1", "True"):
            self.records = [r for r in self.records if r not in rows]
            return {"process_id": None, "events": [self._row(r, False) for r in rows]}
        pid = pid or secrets.token_hex(8)
        for r in rows:
            r.process_id = pid
        return {"process_id": pid, "events": [self._row(r, False) for r in rows]}

    @staticmethod
    def _row(r: Record, state: bool) -> dict[str, Any]:
        row = {
            "ID": str(r.id),
            "TIMESTAMP_X": r.ts,
            "EVENT_NAME": r.event,
            "EVENT_DATA": r.data,
            "EVENT_ADDITIONAL": False,
            "MESSAGE_ID": r.message_id,
        }
        if state:
            row["PROCESS_ID"] = r.process_id
            row["ERROR"] = "1" if r.error else "0"
        return row


class FakeSqs:
    """send_message_batch that refuses a share of the entries (and can be down altogether)."""

    def __init__(self, refuse: float = 0.0, seed: int = 5, down: bool = False) -> None:
        self.refuse = refuse
        self.down = down
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible share of refusals, not security
        self.bodies: list[str] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.down:
            raise ConnectionError("SQS is down")
        ok, failed = [], []
        for entry in Entries:
            if self.rng.random() < self.refuse:
                failed.append({"Id": entry["Id"], "Code": "ServiceUnavailable", "SenderFault": False})
            else:
                self.bodies.append(entry["MessageBody"])
                ok.append({"Id": entry["Id"], "MessageId": secrets.token_hex(4)})
        return {"Successful": ok, "Failed": failed}

    def objects(self) -> list[tuple[str, str]]:
        out = []
        for body in self.bodies:
            msg = json.loads(body)
            out.append((msg["event"], msg["data"]["FIELDS"]["ID"]))
        return out
