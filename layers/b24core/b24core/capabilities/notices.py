"""Telling the portal's admin what the app can and cannot do there — once per change, never more.

Sent only where the app's notification feature (the one using ``im.notify.system.add``) is
available. One message lists every feature newly found missing; one lists every feature that came
back. The report remembers what each feature was last reported as (``notified``), so a re-check
that finds the same portal sends nothing, and a message that could not be sent is tried again by
the next check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from logging import INFO
from typing import Any

from b24core.aws.logs import log_event
from b24core.bitrix.i18n import texts
from b24core.capabilities.manifest import Manifest
from b24core.capabilities.report import Status

NOTIFY_METHOD = "im.notify.system.add"
TAG = "b24app.capabilities"


def log_notice(member_id: str, reason: str, **fields: Any) -> None:
    """The one line every notice to an admin leaves: sent, or skipped and why."""
    outcome = "sent" if not reason else "skipped"
    message = "admin notified" if not reason else "admin not notified"
    log_event(INFO, message, "notify", member_id, outcome, reason=reason or None, **fields)


def notification_feature(manifest: Manifest) -> str | None:
    return next((f.name for f in manifest.features if NOTIFY_METHOD in f.methods), None)


def _missing_items(info: dict[str, Any]) -> list[str]:
    return [
        *info.get("missing_methods", []),
        *info.get("missing_events", []),
        *info.get("missing_placements", []),
        *info.get("missing_scopes", []),
    ]


def plan_notices(
    previous: dict[str, Any],
    features: dict[str, dict[str, Any]],
    admin_user_id: str,
    kind: str,
    *,
    manifest: Manifest,
    language: str,
) -> list[Notice]:
    channel = notification_feature(manifest)
    if not admin_user_id or channel is None:
        return []
    if (features.get(channel) or {}).get("status") != Status.AVAILABLE:
        return []
    notified: dict[str, str] = dict(previous.get("notified") or {})
    t = texts(language)
    newly_missing = sorted(
        name
        for name, info in features.items()
        if info.get("status") == Status.MISSING and notified.get(name) != Status.MISSING
    )
    back = sorted(
        name
        for name, info in features.items()
        if info.get("status") == Status.AVAILABLE and notified.get(name) == Status.MISSING
    )
    notices: list[Notice] = []
    if newly_missing:
        items = "; ".join(
            f"{name} ({', '.join(_missing_items(features[name])) or '?'})" for name in newly_missing
        )
        todo = t["notify_todo_box"] if kind == "box" else t["notify_todo_cloud"]
        notices.append(
            Notice(
                key="missing",
                user_id=admin_user_id,
                message=t["notify_missing"].format(app=manifest.title or "app", items=items, todo=todo),
                tag=f"{TAG}.missing",
                marks={name: str(Status.MISSING) for name in newly_missing},
            )
        )
    if back:
        notices.append(
            Notice(
                key="available",
                user_id=admin_user_id,
                message=t["notify_available"].format(names=", ".join(back)),
                tag=f"{TAG}.available",
                marks={name: str(Status.AVAILABLE) for name in back},
            )
        )
    return notices


# ---------------------------------------------------------------- the whole check (no storage)
@dataclass(frozen=True)
class Notice:
    """A message to the portal's admin; ``marks`` are the feature states it reports."""

    key: str
    user_id: str
    message: str
    tag: str
    marks: dict[str, str]


#: (previous report, features now, admin user id, portal kind) -> notices to send
NoticePlanner = Callable[[dict[str, Any], dict[str, dict[str, Any]], str, str], list[Notice]]
