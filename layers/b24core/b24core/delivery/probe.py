"""The delivery probe: does Bitrix24's cloud event queue reach the app from this portal?

A probe binds ONAPPTEST to the app's /events and calls ``event.test`` with a nonce (one ``batch``
request; api-reference/events/test-handler.md: the call's parameters come back in data[QUERY]).
The queue then POSTs ONAPPTEST; intake verifies its application_token and reports the arrival.
A probe not answered within ``probe_timeout_s`` is judged missed by the next scheduled check: the
portal's delivery is marked blocked, it switches to pull mode, and its admin is told which servers
the network must let through — the queue servers' published list (network-access.md), fetched at
most once per ``app_world_ttl_s`` and cached. A later probe that arrives switches it back.

Nothing here waits: sending, arrival and the verdict are three separate steps, each a state change.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from logging import INFO, WARNING
from typing import Any

from b24core.aws.logs import log_event
from b24core.aws.settings import DeliveryPolicy
from b24core.delivery.modes import ProbeOutcome, Trigger
from b24core.delivery.store import DeliveryState, DeliveryStore, mutate
from b24core.events.signals import PROBE_EVENT, PROBE_PARAM

NETWORK_DOC_URL = "https://apidocs.bitrix24.com/settings/cloud-and-on-premise/network-access.html"
_MAX_NODES = 256


def interval_for(kind: str, policy: DeliveryPolicy) -> int:
    """Boxes (whose firewalls change) are probed hourly by default, cloud portals daily."""
    return policy.probe_interval_cloud_s if kind == "cloud" else policy.probe_interval_box_s


def _error_code(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("error") or "ERROR")
    code = getattr(error, "code", None)
    return str(code) if code else type(error).__name__


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().upper() in ("Y", "1", "TRUE")


def _already_bound(error: Any) -> bool:
    return isinstance(error, dict) and "already" in str(error.get("error_description", "")).lower()


# ---------------------------------------------------------------- the probe's three steps
@dataclass
class Prober:
    store: DeliveryStore
    policy: DeliveryPolicy
    clock: Callable[[], float] = time.time

    def send(
        self,
        client: Any,
        member_id: str,
        events_url: str,
        kind: str = "",
        install_finished: bool | None = None,
    ) -> DeliveryState:
        """Bind ONAPPTEST and call event.test with a fresh nonce, in one batch request.

        Bitrix24 sends no events before BX24.installFinish(), so a probe sent earlier proves nothing:
        ``install_finished`` False (the capability check just learned it) defers the probe without a
        request; None asks app.info in the same batch and defers if the install is not finished.
        """
        now = int(self.clock())
        nonce = secrets.token_hex(8)
        commands: dict[str, tuple[str, dict[str, Any]]] = {
            "bind": ("event.bind", {"event": PROBE_EVENT, "handler": events_url}),
        }
        if install_finished is None:
            commands["info"] = ("app.info", {})
        commands["test"] = ("event.test", {PROBE_PARAM: nonce})
        problem = ""
        retry_s = self.policy.probe_retry_s
        if not events_url:
            problem = "no_events_url"
        elif install_finished is False:
            problem = "install_not_finished"
            retry_s = self.policy.probe_soon_s
        else:
            try:
                answer = client.batch(commands)
                results, errors = answer["result"], answer["error"]
            except Exception as exc:  # the portal did not answer: try again later, judge nothing
                problem = f"request_failed:{_error_code(exc)}"
            else:
                bind_error = errors.get("bind")
                info = results.get("info")
                if "bind" not in results and not _already_bound(bind_error):
                    problem = f"bind_failed:{_error_code(bind_error)}"
                elif "test" not in results:
                    problem = f"test_failed:{_error_code(errors.get('test'))}"
                elif isinstance(info, dict) and "INSTALLED" in info and not _truthy(info["INSTALLED"]):
                    # Bitrix24 sends no events before BX24.installFinish(): this probe proves nothing.
                    problem = "install_not_finished"
                    retry_s = self.policy.probe_soon_s

        def sent(s: DeliveryState) -> DeliveryState:
            base = replace(s, kind=kind or s.kind, events_url=events_url or s.events_url, active=True)
            if problem:
                deferred = problem == "install_not_finished"
                return replace(
                    base,
                    probe_outcome=ProbeOutcome.DEFERRED if deferred else ProbeOutcome.FAILED,
                    probe_reason=problem,
                    probe_due_at=0,
                    next_probe_at=now + retry_s,
                )
            return replace(
                base,
                probe_id=nonce,
                probe_sent_at=now,
                probe_due_at=now + round(self.policy.probe_timeout_s),
                probe_outcome=ProbeOutcome.PENDING,
                probe_reason="",
            )

        state = mutate(self.store, member_id, sent)
        log_event(
            INFO,
            "delivery probe sent" if not problem else "delivery probe not sent",
            "probe",
            member_id,
            "pending" if not problem else "failed",
            reason=problem or None,
        )
        return state

    def arrived(self, member_id: str, probe_id: str) -> tuple[DeliveryState, bool]:
        """ONAPPTEST came through the queue: delivery works now. Returns (state, mode changed)."""
        now = int(self.clock())
        before: list[DeliveryState] = []

        def seen(s: DeliveryState) -> DeliveryState:
            before[:] = [s]
            matched = bool(probe_id) and probe_id == s.probe_id
            updated = replace(
                s,
                last_arrived_at=now,
                last_confirmed_at=now,
                probe_outcome=ProbeOutcome.ARRIVED,
                probe_reason="" if matched else "an earlier or unknown probe arrived",
                probe_due_at=0,
                misses=0,
                blocked_since=0,
                notified_at=0,
                notice_reason="",
                next_probe_at=now + interval_for(s.kind, self.policy),
            )
            evidence = {"detector": "delivery probe", "sent_at": s.probe_sent_at, "arrived_at": now}
            return updated.on(Trigger.PROBE_ARRIVED, now, "a delivery probe arrived", evidence)

        state = mutate(self.store, member_id, seen)
        changed = bool(before) and before[0].mode != state.mode
        log_event(
            INFO,
            "delivery probe arrived",
            "probe",
            member_id,
            "arrived",
            mode=str(state.mode),
            switched=changed,
        )
        return state, changed

    def judge(self, member_id: str) -> tuple[DeliveryState, bool]:
        """A pending probe past its deadline is missed: delivery blocked, pull mode. Returns (state,
        whether it was judged missed just now)."""
        now = int(self.clock())
        judged: list[bool] = [False]

        def verdict(s: DeliveryState) -> DeliveryState | None:
            judged[0] = False
            if s.probe_outcome != ProbeOutcome.PENDING or now < s.probe_due_at:
                return None
            judged[0] = True
            updated = replace(
                s,
                probe_outcome=ProbeOutcome.MISSED,
                probe_reason=f"ONAPPTEST did not arrive within {int(self.policy.probe_timeout_s)} s",
                probe_due_at=0,
                misses=s.misses + 1,
                blocked_since=s.blocked_since or now,
                next_probe_at=now + interval_for(s.kind, self.policy),
            )
            evidence = {
                "detector": "delivery probe",
                "sent_at": s.probe_sent_at,
                "timeout_s": int(self.policy.probe_timeout_s),
            }
            return updated.on(Trigger.PROBE_MISSED, now, "the delivery probe did not arrive", evidence)

        state = mutate(self.store, member_id, verdict)
        if judged[0]:
            log_event(
                WARNING,
                "delivery blocked",
                "probe",
                member_id,
                "missed",
                reason="probe_missed",
                mode=str(state.mode),
            )
        return state, judged[0]


# ---------------------------------------------------------------- the queue servers' published list
@dataclass(frozen=True)
class AppWorld:
    """The event queue servers' addresses as published (``nodes``), or nothing when unreachable."""

    nodes: tuple[str, ...]
    url: str
    fetched_at: float  # 0 = never fetched successfully

    @property
    def known(self) -> bool:
        return bool(self.nodes)


def _parse_nodes(payload: Any) -> tuple[str, ...]:
    nodes = payload.get("nodes") if isinstance(payload, dict) else None
    if not isinstance(nodes, list):
        raise ValueError("no nodes list")
    out: list[str] = []
    for node in nodes[:_MAX_NODES]:
        try:
            out.append(str(ipaddress.ip_address(str(node).strip())))
        except ValueError:
            continue  # only addresses are passed on to a person
    if not out:
        raise ValueError("no addresses in nodes")
    return tuple(out)


def _http_get_json(url: str, timeout_s: float) -> Any:
    import httpx

    response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
    response.raise_for_status()
    return response.json()


@dataclass(eq=False)  # a service, compared by identity
class AppWorldCache:
    """Fetches the list at most once per ``ttl_s`` in this process (a failed fetch waits a minute),
    and keeps the last good list when a later fetch fails."""

    url: str
    ttl_s: float
    fetch: Callable[[str, float], Any] = _http_get_json
    clock: Callable[[], float] = time.monotonic
    timeout_s: float = 3.0

    def __post_init__(self) -> None:
        self._cache: tuple[float, AppWorld] | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self) -> AppWorld:
        with self._lock:
            now = self.clock()
            if self._cache is not None and now < self._cache[0]:
                return self._cache[1]
            self.fetches += 1
            try:
                nodes = _parse_nodes(self.fetch(self.url, self.timeout_s))
            except Exception as exc:  # unreachable, not JSON, wrong shape: keep what we had
                log_event(WARNING, "queue server list not fetched", "app_world", error=exc, outcome="failed")
                last = self._cache[1] if self._cache else AppWorld((), self.url, 0.0)
                self._cache = (now + min(60.0, self.ttl_s), last)
                return last
            value = AppWorld(nodes, self.url, time.time())
            self._cache = (now + self.ttl_s, value)
            return value


_cache: dict[tuple[str, float], AppWorldCache] = {}


def app_world(policy: DeliveryPolicy) -> AppWorld:
    """The process-wide cache for the configured list (B24_APP_WORLD_URL)."""
    key = (policy.app_world_url, policy.app_world_ttl_s)
    if key not in _cache:
        _cache[key] = AppWorldCache(policy.app_world_url, policy.app_world_ttl_s)
    return _cache[key].get()


# ---------------------------------------------------------------- telling the admin
TEXTS = {
    "en": {
        "blocked": "Events from this Bitrix24 do not reach the app “{app}”: events sent on {when} "
        "did not arrive. Nothing is lost — the app now collects the changes itself every minute "
        "(offline events) — but they arrive later than they should.\n"
        "To restore instant delivery, ask your network administrator to let this Bitrix24 exchange "
        "requests with the Bitrix24 event queue servers (allow connections to them and incoming "
        "requests from them). {nodes}\nThe list changes; it is published at {url} (check it every "
        "5–10 minutes). Network requirements: {doc}",
        "nodes": "Their current addresses: {nodes}.",
        "no_nodes": "Their current addresses could not be fetched just now.",
        "back": "Events from this Bitrix24 reach the app “{app}” again: it no longer collects the "
        "changes itself.",
    },
    "ru": {
        "blocked": "События этого Битрикс24 не доходят до приложения «{app}»: события, "
        "отправленные {when}, не пришли. Ничего не потеряно — приложение теперь само забирает "
        "изменения каждую минуту (офлайн-события), — но они приходят с задержкой.\n"
        "Чтобы вернуть мгновенную доставку, попросите администратора сети разрешить обмен запросами "
        "между этим Битрикс24 и серверами очереди событий Битрикс24 (исходящие соединения к ним и "
        "входящие запросы от них). {nodes}\nСписок меняется; он публикуется по адресу {url} "
        "(проверяйте его раз в 5–10 минут). Требования к сети: {doc}",
        "nodes": "Их текущие адреса: {nodes}.",
        "no_nodes": "Текущие адреса сейчас получить не удалось.",
        "back": "События этого Битрикс24 снова доходят до приложения «{app}»: оно больше не забирает "
        "изменения само.",
    },
}
NOTIFY_TAG = "b24app.delivery.blocked"


def blocked_message(state: DeliveryState, world: AppWorld, app_title: str, language: str) -> str:
    from b24core.bitrix.i18n import language_of

    t = TEXTS[language_of(language)]
    when = datetime.fromtimestamp(state.probe_sent_at or state.blocked_since, UTC).strftime(
        "%Y-%m-%d %H:%M UTC"
    )
    nodes = t["nodes"].format(nodes=", ".join(world.nodes)) if world.known else t["no_nodes"]
    return t["blocked"].format(
        app=app_title or "app", when=when, nodes=nodes, url=world.url, doc=NETWORK_DOC_URL
    )


def back_message(app_title: str, language: str) -> str:
    from b24core.bitrix.i18n import language_of

    return TEXTS[language_of(language)]["back"].format(app=app_title or "app")


def advice(world: AppWorld) -> dict[str, Any]:
    """What an operator sees for a blocked portal (``b24app portals show``)."""
    return {
        "what": "let the portal exchange requests with the Bitrix24 event queue servers",
        "queue_servers": list(world.nodes),
        "list_url": world.url,
        "list_fetched": world.known,
        "doc": NETWORK_DOC_URL,
    }
