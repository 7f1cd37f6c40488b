"""Diagnosis of a box cut off from Bitrix24's cloud services.

See settings/cloud-and-on-premise/network-access.md.

* **authorization server unreachable from the portal**: the portal refuses our OAuth token with an
  authorization error while the authorization server itself (its ``/rest/app.info``, asked by us)
  accepts the very same token. The box cannot check tokens, so every OAuth REST call and every
  offline event fails there.
* **event queue unreachable**: the delivery probe did not arrive (b24core.delivery.probe); no online
  event — the app's or an outgoing webhook's — can come from this portal. A webhook-connected portal
  cannot be probed (``event.test`` is application-only): when it has an outgoing webhook, the change
  audit (b24core.delivery.audit) compares the changes the portal made with the events that arrived,
  and the route's switch records the finding here (``with_queue``).

The result goes into the capability report (``isolation``), which ``b24app portals show`` and the
install page read; ``advice`` says what the customer's network admin must open and the alternative.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from typing import Any

from b24core.aws.logs import log_event
from b24core.bitrix.errors import AuthError, B24Error
from b24core.bitrix.oauth import AuthServer

NETWORK_DOC = "settings/cloud-and-on-premise/network-access.md"


class AuthReach(StrEnum):
    OK = "ok"
    #: The portal refuses a token the authorization server accepts.
    UNREACHABLE = "authorization_server_unreachable_from_portal"
    #: Both refuse it: the token itself is bad (reinstall), not the network.
    REJECTED = "rejected_by_both"
    UNKNOWN = "unknown"


class QueueReach(StrEnum):
    OK = "ok"
    UNREACHABLE = "event_queue_unreachable"
    UNKNOWN = "unknown"


LABELS = {
    AuthReach.UNREACHABLE: "authorization server unreachable from the portal",
    QueueReach.UNREACHABLE: "event queue unreachable",
}

ADVICE = {
    AuthReach.UNREACHABLE: (
        "The portal cannot reach the authorization server, so it cannot check the app's tokens. "
        "Ask the network admin to allow outgoing HTTPS (443) from the portal's server to "
        f"oauth.bitrix.info ({NETWORK_DOC}). Alternative: connect an incoming webhook "
        "(b24app portals connect-webhook --incoming URL); changes are then polled."
    ),
    QueueReach.UNREACHABLE: (
        "Events from the portal do not reach the app: the portal cannot reach Bitrix24's event queue "
        "servers. Ask the network admin to let the portal exchange HTTPS requests with the event queue "
        "servers (their addresses: https://dl.bitrix24.com/webhook/app-world.json; "
        f"{NETWORK_DOC}). Meanwhile the app pulls offline events (OAuth) or polls "
        "changes (webhook)."
    ),
}


LABELS_RU = {
    AuthReach.UNREACHABLE: "портал не может связаться с сервером авторизации",
    QueueReach.UNREACHABLE: "очередь событий недоступна",
}

ADVICE_RU = {
    AuthReach.UNREACHABLE: (
        "Портал не может обратиться к серверу авторизации и поэтому не может проверить токены "
        "приложения. Попросите сетевого администратора разрешить исходящие HTTPS-соединения (порт 443) "
        f"с сервера портала на oauth.bitrix.info ({NETWORK_DOC}). Другой вариант: подключите входящий "
        "вебхук (b24app portals connect-webhook --incoming URL), тогда изменения будут опрашиваться."
    ),
    QueueReach.UNREACHABLE: (
        "События портала не доходят до приложения: портал не может связаться с серверами очереди "
        "событий Битрикс24. Попросите сетевого администратора разрешить обмен HTTPS-запросами между "
        "порталом и серверами очереди событий (их адреса: https://dl.bitrix24.com/webhook/app-world.json; "
        f"{NETWORK_DOC}). Пока это не сделано, приложение забирает офлайн-события (OAuth) или "
        "опрашивает изменения (вебхук)."
    ),
}


def describe(record: dict[str, Any], language: str) -> tuple[str, list[str]]:
    """A record's summary and advice in the portal's language. The record keeps English texts (its
    summary is also the key that says whether the admin was told); pages and notices word it anew."""
    from b24core.bitrix.i18n import language_of

    findings: list[AuthReach | QueueReach] = []
    if record.get("auth_server") == AuthReach.UNREACHABLE:
        findings.append(AuthReach.UNREACHABLE)
    if record.get("event_queue") == QueueReach.UNREACHABLE:
        findings.append(QueueReach.UNREACHABLE)
    if not findings:
        return str(record.get("summary") or ""), [str(a) for a in record.get("advice") or []]
    labels, advice = (LABELS_RU, ADVICE_RU) if language_of(language) == "ru" else (LABELS, ADVICE)
    return "; ".join(labels[r] for r in findings), [advice[r] for r in findings]


def is_auth_refusal(exc: BaseException) -> bool:
    """An authorization error from the portal (not a transport, limit or server error)."""
    return isinstance(exc, AuthError)


def diagnose_client(client: Any, refusal: BaseException, auth: AuthServer) -> dict[str, Any] | None:
    """For the capability runner: an OAuth client's refusal diagnosed, or ``None`` (nothing to say)."""
    if getattr(client, "webhook", None) is not None or not is_auth_refusal(refusal):
        return None
    reach = diagnose_auth(str(client.portal.access_token), refusal, auth)
    log_event(logging.INFO, "portal isolation diagnosed", "isolation", client.portal.member_id, str(reach))
    return isolation_record(reach)


def diagnose_auth(access_token: str, refusal: BaseException, auth: AuthServer) -> AuthReach:
    """The portal refused ``access_token`` (``refusal``): ask the authorization server who is right."""
    if not is_auth_refusal(refusal):
        return AuthReach.UNKNOWN
    try:
        auth.app_info(access_token)
    except AuthError:
        return AuthReach.REJECTED
    except B24Error:
        return AuthReach.UNKNOWN
    return AuthReach.UNREACHABLE


def isolation_record(auth: AuthReach, queue: QueueReach = QueueReach.UNKNOWN) -> dict[str, Any]:
    """What the capability report keeps (no secrets): the findings, labels and the advice."""
    findings = [r for r in (auth, queue) if r in LABELS]
    return {
        "auth_server": str(auth),
        "event_queue": str(queue),
        "checked_at": int(time.time()),
        "summary": "; ".join(LABELS[r] for r in findings) or "no blocked cloud service found",
        "advice": [ADVICE[r] for r in findings],
    }


#: For a webhook-connected portal without an outgoing webhook: nothing can show whether the queue works.
QUEUE_NOT_CHECKED = "not checked: events come by polling; set an outgoing webhook to check"


def with_queue(record: dict[str, Any] | None, queue: QueueReach, *, by: str, at: int) -> dict[str, Any]:
    """``record`` with a new event-queue finding (the authorization-server finding and its time kept)."""
    rec = dict(record or {})
    raw = rec.get("auth_server")
    auth = AuthReach(raw) if raw in tuple(AuthReach) else AuthReach.UNKNOWN
    out = isolation_record(auth, queue)
    out["checked_at"] = int(rec.get("checked_at") or at)
    out["event_queue_by"] = by
    out["event_queue_at"] = int(at)
    return out


def summary_line(capabilities: dict[str, Any], delivery_blocked: bool | None = None) -> str:
    """One line for ``b24app portals show``."""
    rec = capabilities.get("isolation") if isinstance(capabilities.get("isolation"), dict) else {}
    parts: list[str] = []
    if rec and rec.get("auth_server") == AuthReach.UNREACHABLE:
        parts.append(LABELS[AuthReach.UNREACHABLE])
    if (rec and rec.get("event_queue") == QueueReach.UNREACHABLE) or delivery_blocked:
        parts.append(LABELS[QueueReach.UNREACHABLE])
    return "; ".join(parts) or "-"


__all__ = [
    "ADVICE",
    "LABELS",
    "QUEUE_NOT_CHECKED",
    "AuthReach",
    "QueueReach",
    "describe",
    "diagnose_auth",
    "diagnose_client",
    "is_auth_refusal",
    "isolation_record",
    "summary_line",
    "with_queue",
]
