"""What THIS portal has of what the app needs, and the binding of the events it can deliver.

A box lags the cloud and may have whole modules switched off, so a feature is available only when
every method, event and scope it needs is there. The check is one ``batch`` HTTP request to the portal
(the method list, the event list, the granted scopes, app.info, server time, the app's current
bindings and the calling user's profile). Only when the method list itself is unavailable, a second
request asks ``method.get`` for each needed method. What could not be learned is "unknown", never
"missing".

Acting on the answer is a separate step: one more ``batch`` with the ``event.bind`` calls for events
not bound yet (and the admin notifications, see notifications.py) — none at all when nothing is due.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from b24core.bitrix.errors import B24Error
from b24core.capabilities.manifest import LIFECYCLE_EVENTS, Manifest
from b24core.capabilities.notices import Notice, NoticePlanner, notification_feature
from b24core.capabilities.placements import page_url, plan_placements
from b24core.capabilities.report import NOT_FOR_WEBHOOKS, Status, assess, events_not_for_webhooks
from b24core.capabilities.survey import (
    SURVEY,
    WEBHOOK_SURVEY,
    PortalSurvey,
    admin_user,
    clock_skew_s,
    error_code,
    plan_info,
    portal_kind,
    survey_methods,
    survey_portal,
)
from b24core.tokens.outcomes import PortalUnavailable

#: What asking a portal may fail with: a platform or transport error, or tokens no longer usable.
PortalFailure = (B24Error, PortalUnavailable)

if TYPE_CHECKING:
    from b24core.tokens.client import PortalClient


# ---------------------------------------------------------------- binding
def events_to_bind(
    manifest: Manifest, features: dict[str, dict[str, Any]], survey: PortalSurvey, handler_url: str
) -> list[str]:
    """Events of features not known missing, that the portal is not known to lack, not bound yet
    to ``handler_url``; plus the lifecycle events every install needs."""
    wanted = set(LIFECYCLE_EVENTS)
    for feature in manifest.features:
        if features[feature.name]["status"] == Status.MISSING:
            continue
        wanted.update(e for e in feature.events if survey.events is None or e in survey.events)
    already = {e for e, h in (survey.bound or []) if h == handler_url}
    return sorted(wanted - already)


def bound_events(survey: PortalSurvey, handler_url: str) -> set[str]:
    return {e for e, h in (survey.bound or []) if h == handler_url}


def is_already_bound(error: Any) -> bool:
    """``event.bind`` of an existing binding answers ERROR_CORE "Handler already binded"."""
    return isinstance(error, dict) and "already" in str(error.get("error_description", "")).lower()


def isolation_notice(
    previous: dict[str, Any],
    features: dict[str, dict[str, Any]],
    admin: str,
    manifest: Manifest,
    language: str = "",
) -> list[Notice]:
    """Tell the admin once why the app now works through a webhook: the portal cannot reach a cloud
    service (found while OAuth failed, so this is the first moment a message can get through)."""
    from b24core.capabilities.isolation import describe

    isolation = previous.get("isolation") or {}
    summary, advice = str(isolation.get("summary") or ""), isolation.get("advice") or []
    worded, worded_advice = describe(isolation, language)
    channel = notification_feature(manifest)
    if not (admin and advice and channel) or (features.get(channel) or {}).get("status") != Status.AVAILABLE:
        return []
    if (previous.get("notified") or {}).get("isolation") == summary:
        return []
    message = f"[b24app] {worded}. " + " ".join(worded_advice)
    return [Notice(key="isolation", user_id=admin, message=message, tag="", marks={"isolation": summary})]


def check_portal(
    client: PortalClient,
    manifest: Manifest,
    handler_url: str,
    *,
    previous: dict[str, Any] | None = None,
    plan_notices: NoticePlanner | None = None,
    fallback_admin: str = "",
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Ask (one batch; method.get only if the method list is unavailable), decide per feature, then
    bind what is due and send due notices (one more batch); return the report. Raises when the
    portal cannot be asked at all (the caller records that as unknown)."""
    now = clock()
    via_webhook = getattr(client, "webhook", None) is not None
    survey = survey_portal(client, WEBHOOK_SURVEY if via_webhook else SURVEY)
    if survey.methods is None:
        try:
            survey.method_checks = survey_methods(client, manifest.methods())
        except PortalFailure as exc:  # best effort: what it could not learn stays unknown
            survey.errors["method.get"] = type(exc).__name__
    features = assess(manifest, survey)
    if via_webhook:
        events_not_for_webhooks(features)
        handler_url = ""  # event.bind is application-only: events come by outgoing webhook or polling
    previous = previous or {}
    admin = admin_user(survey.profile) or str(previous.get("admin_user_id") or "") or fallback_admin
    kind = portal_kind(client.portal.domain, survey.app_info)
    notices = plan_notices(previous, features, admin, kind["kind"]) if plan_notices else []
    if via_webhook:
        notices += isolation_notice(previous, features, admin, manifest, client.portal.language)
    to_bind = events_to_bind(manifest, features, survey, handler_url) if handler_url else []
    bound = bound_events(survey, handler_url)
    bind_errors: dict[str, str] = {}
    notified = dict(previous.get("notified") or {})
    widgets = (
        plan_placements(manifest, features, survey.placements, survey.bound_placements, page_url(handler_url))
        if handler_url
        else None
    )
    if to_bind or notices or (widgets and widgets.commands):
        commands: dict[str, tuple[str, dict[str, Any]]] = {
            f"bind_{e}": ("event.bind", {"event": e, "handler": handler_url}) for e in to_bind
        }
        if widgets:
            commands.update(widgets.commands)
        for notice in notices:
            params = {"USER_ID": notice.user_id, "MESSAGE": notice.message}
            if notice.tag:  # via a webhook a TAG needs the app's CLIENT_ID too: such notices carry none
                params["TAG"] = notice.tag
            commands[f"notify_{notice.key}"] = ("im.notify.system.add", params)
        try:
            applied = client.batch(commands)
            results, errors = applied["result"], applied["error"]
        except PortalFailure as exc:  # keep what the check learned; the next check binds again
            results, errors = {}, {k: {"error": type(exc).__name__} for k in commands}
        for event in to_bind:
            err = errors.get(f"bind_{event}")
            if f"bind_{event}" in results or is_already_bound(err):
                bound.add(event)
            else:
                bind_errors[event] = error_code(err) if err else "NO_ANSWER"
        for notice in notices:
            if f"notify_{notice.key}" in results:
                notified.update(notice.marks)
        if widgets:
            widgets.settle(results, errors)
    methods_known = survey.methods is not None or survey.method_checks is not None
    report: dict[str, Any] = {
        "checked_at": int(now),
        "kind": kind,
        "plan": plan_info(survey.app_info),
        "portal_time": survey.server_time,
        "clock_skew_s": clock_skew_s(survey.server_time, now),
        "sources": {
            "methods": survey.method_source,
            "events": NOT_FOR_WEBHOOKS
            if via_webhook
            else "events"
            if survey.events is not None
            else "unavailable",
            "scope": "scope" if survey.scopes is not None else "unavailable",
            "complete": methods_known
            and (via_webhook or survey.events is not None)
            and survey.scopes is not None,
            "auth": "webhook" if via_webhook else "oauth",
        },
        "features": features,
        "required_ok": not any(f["required"] and f["status"] == Status.MISSING for f in features.values()),
        "bound": sorted(bound),
        "bind_errors": bind_errors,
        "placements": widgets.summary() if widgets else {},
        "errors": dict(sorted(survey.errors.items())),
        "admin_user_id": admin,
        "notified": notified,
        "events_url": handler_url,
    }
    return report
