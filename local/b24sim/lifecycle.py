"""Install, open, update and uninstall drivers: what Bitrix24 sends an app at each step of its life.

* UI install (settings/oauth/simple-way.md): the browser POSTs the installer URL in an iframe. Query:
  DOMAIN, PROTOCOL (0 http / 1 https), LANG, APP_SID; body: AUTH_ID, AUTH_EXPIRES, REFRESH_ID,
  SERVER_ENDPOINT, APPLICATION_TOKEN, APPLICATION_SCOPE, member_id, status, PLACEMENT. The app counts as
  installed only after the page calls ``BX24.installFinish()``; until then no events are sent.
* Install without UI (on-app-install.md): ONAPPINSTALL through the queue, with both tokens; the app is
  installed at once.
* Update (on-app-update.md): ONAPPUPDATE with a NEW application_token; the platform drops the app's event
  bindings, so each version must bind again.
* Uninstall (on-app-uninstall.md): ONAPPUNINSTALL whose ``auth`` has no tokens, only the old
  application_token; all tokens stop working.

The drivers deliver synchronously and return the handler's ``httpx.Response`` (``None`` when the queue
could not deliver it, e.g. the portal's ``queue_blocked``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from b24sim import forms
from b24sim.portal import Installation
from b24sim.tokens import ACCESS_TTL_S, new_secret

if TYPE_CHECKING:
    from b24sim.portal import Portal
    from b24sim.simulator import Simulator

log = logging.getLogger("b24sim.lifecycle")

FRAME_TIMEOUT_S = 10.0


def _scope(portal: Portal, scope: str | Iterable[str] | None) -> tuple[str, ...]:
    if scope is None:
        return tuple(portal.scopes())
    items = scope.split(",") if isinstance(scope, str) else list(scope)
    return tuple(s.strip() for s in items if s.strip())


def _with_query(url: str, query: dict[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}"


def frame_form(
    sim: Simulator,
    portal: Portal,
    url: str,
    *,
    user_id: int,
    placement: str = "DEFAULT",
    placement_options: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The application frame's request: the URL with its query and the form body (fresh tokens)."""
    with sim.lock:
        app = portal.app
        if app is None:
            raise RuntimeError(f"the app is not installed on {portal.domain}")
        access, refresh = sim.tokens.issue_pair(portal.member_id, user_id, app.scope)
        query = {
            "DOMAIN": portal.domain,
            "PROTOCOL": "1" if sim.url.startswith("https:") else "0",
            "LANG": portal.language,
            "APP_SID": secrets.token_hex(16),
        }
        body: dict[str, Any] = {
            "AUTH_ID": access.value,
            "AUTH_EXPIRES": str(ACCESS_TTL_S),
            "REFRESH_ID": refresh.value,
            "SERVER_ENDPOINT": sim.server_endpoint,
            "APPLICATION_TOKEN": app.application_token,
            "APPLICATION_SCOPE": ",".join(portal.granted_scopes(app.scope)),
            "member_id": portal.member_id,
            "status": app.status,
            "PLACEMENT": placement,
        }
        if placement_options is not None:
            body["PLACEMENT_OPTIONS"] = forms.json_dumps(placement_options)
    return _with_query(url, query), body


def frame_post(
    sim: Simulator,
    portal: Portal,
    url: str,
    *,
    user_id: int,
    placement: str = "DEFAULT",
    placement_options: dict[str, Any] | None = None,
) -> httpx.Response:
    """POST the application frame the way the user's browser does when Bitrix24 opens the app."""
    target, body = frame_form(
        sim, portal, url, user_id=user_id, placement=placement, placement_options=placement_options
    )
    response = httpx.post(
        target,
        content=forms.encode(body).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=FRAME_TIMEOUT_S,
    )
    log.info("frame %s on %s -> HTTP %s", placement, portal.domain, response.status_code)
    return response


def install(
    sim: Simulator,
    domain: str,
    handler_url: str,
    mode: str = "ui",
    scope: str | Iterable[str] | None = None,
    *,
    status: str = "F",
    version: int = 1,
    user_id: int = 1,
    finish: bool = True,
) -> httpx.Response | None:
    if mode not in ("ui", "event"):
        raise ValueError("mode must be 'ui' or 'event'")
    portal = sim.portal(domain)
    with sim.lock:
        previous = portal.app
        portal.bindings = []
        portal.offline = []
        app = portal.app = Installation(
            application_token=new_secret(),
            version=version,
            status=status,
            scope=_scope(portal, scope),
            installed=mode == "event",
            installer_id=user_id,
            app_id=previous.app_id if previous else sim.next_app_id(),
            code=sim.app_code,
        )
    if mode == "ui":
        frame = frame_post(sim, portal, handler_url, user_id=user_id)
        if finish and frame.is_success:
            install_finish(sim, domain)
        return frame
    with sim.lock:
        access, refresh = sim.tokens.issue_pair(portal.member_id, user_id, app.scope)
        payload = {
            "event": "ONAPPINSTALL",
            "data": {
                "VERSION": str(version),
                "ACTIVE": "Y",
                "INSTALLED": "Y",
                "LANGUAGE_ID": portal.language,
            },
            "ts": str(int(sim.clock.now())),
            "auth": {
                "domain": portal.domain,
                "scope": ",".join(portal.granted_scopes(app.scope)),
                "access_token": access.value,
                "refresh_token": refresh.value,
                "expires_in": str(ACCESS_TTL_S),
                "server_endpoint": sim.server_endpoint,
                "status": app.status,
                "client_endpoint": portal.client_endpoint,
                "member_id": portal.member_id,
                "application_token": app.application_token,
            },
        }
    _, response = sim.queue.send_now(domain, "ONAPPINSTALL", handler_url, payload)
    return response


def install_silently(
    sim: Simulator,
    domain: str,
    scope: str | Iterable[str] | None = None,
    *,
    status: str = "F",
    user_id: int = 1,
) -> dict[str, Any]:
    from b24sim.oauth import token_response

    portal = sim.portal(domain)
    with sim.lock:
        previous = portal.app
        app = portal.app = Installation(
            application_token=new_secret(),
            version=1,
            status=status,
            scope=_scope(portal, scope),
            installed=True,
            installer_id=user_id,
            app_id=previous.app_id if previous else sim.next_app_id(),
            code=sim.app_code,
        )
        access, refresh = sim.tokens.issue_pair(portal.member_id, user_id, app.scope)
        return {**token_response(sim, portal, access, refresh), "application_token": app.application_token}


def install_finish(sim: Simulator, domain: str) -> None:
    """What ``BX24.installFinish()`` on the installer page does."""
    portal = sim.portal(domain)
    with sim.lock:
        if portal.app is None:
            raise RuntimeError(f"the app is not installed on {domain}")
        portal.app.installed = True


def _targets(portal: Portal, event: str, handler_url: str | None) -> list[tuple[str, int | None]]:
    if handler_url:
        return [(handler_url, None)]
    return [(b.handler, b.id) for b in portal.bindings if b.event == event and not b.offline]


def _deliver(
    sim: Simulator, portal: Portal, event: str, targets: list[tuple[str, int | None]], payload: dict[str, Any]
) -> httpx.Response | None:
    response: httpx.Response | None = None
    for url, handler_id in targets:
        body = {"event": event, **({"event_handler_id": handler_id} if handler_id else {}), **payload}
        _, response = sim.queue.send_now(portal.domain, event, url, body, handler_id)
    return response


def update_app(
    sim: Simulator, domain: str, handler_url: str | None = None, *, version: int | None = None
) -> httpx.Response | None:
    portal = sim.portal(domain)
    with sim.lock:
        app = portal.app
        if app is None:
            raise RuntimeError(f"the app is not installed on {domain}")
        previous = app.version
        app.version = version if version is not None else previous + 1
        app.application_token = new_secret()
        targets = _targets(portal, "ONAPPUPDATE", handler_url)
        portal.bindings = []  # bindings are removed on update: the new version binds again
        access, refresh = sim.tokens.issue_pair(portal.member_id, app.installer_id, app.scope)
        payload = {
            "data": {
                "VERSION": str(app.version),
                "PREVIOUS_VERSION": str(previous),
                "LANGUAGE_ID": portal.language,
            },
            "ts": str(int(sim.clock.now())),
            "auth": {
                "domain": portal.domain,
                "scope": ",".join(portal.granted_scopes(app.scope)),
                "access_token": access.value,
                "refresh_token": refresh.value,
                "expires_in": str(ACCESS_TTL_S),
                "server_endpoint": sim.server_endpoint,
                "status": app.status,
                "client_endpoint": portal.client_endpoint,
                "member_id": portal.member_id,
                "application_token": app.application_token,
            },
        }
    return _deliver(sim, portal, "ONAPPUPDATE", targets, payload)


def uninstall(
    sim: Simulator, domain: str, handler_url: str | None = None, *, clean: bool = True
) -> httpx.Response | None:
    portal = sim.portal(domain)
    with sim.lock:
        if portal.app is None:
            raise RuntimeError(f"the app is not installed on {domain}")
        targets = _targets(portal, "ONAPPUNINSTALL", handler_url)
        payload = {
            "data": {"LANGUAGE_ID": portal.language, "CLEAN": 1 if clean else 0},
            "ts": str(int(sim.clock.now())),
            "auth": {
                "domain": portal.domain,
                "server_endpoint": sim.server_endpoint,
                "client_endpoint": portal.client_endpoint,
                "member_id": portal.member_id,
                "application_token": portal.app.application_token,
            },
        }
        sim.tokens.revoke_member(portal.member_id)
        portal.bindings = []
        portal.placements = []  # the platform removes an uninstalled app's widgets itself
        portal.offline = []
        portal.app = None
    return _deliver(sim, portal, "ONAPPUNINSTALL", targets, payload)
