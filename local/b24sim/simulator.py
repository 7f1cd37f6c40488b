"""The ``Simulator``: one local HTTP server playing the authorization server, portals and event queue."""

from __future__ import annotations

import hmac
import itertools
import logging
import threading
from collections.abc import Iterable
from typing import Any

import httpx

from b24sim import events, lifecycle
from b24sim.clock import Clock
from b24sim.oauth import AuthServer, token_response
from b24sim.portal import Portal
from b24sim.queue import Delivery, EventQueue
from b24sim.rest import CallRecord, RestApi
from b24sim.tokens import TokenStore

log = logging.getLogger("b24sim")


class Simulator:
    """A faithful-enough Bitrix24 for end-to-end tests and the local stack.

    Roles, all on one ``127.0.0.1`` port:

    * authorization server at the root (``/oauth/token/``, ``/rest/app.info``): ``sim.oauth_url``;
    * portals at ``/p/{domain}/rest/{method}`` (``portal.client_endpoint``);
    * the cloud event queue (background POSTs to handlers, recorded in ``sim.deliveries``);
    * a control API under ``/_sim/`` for poking the simulator with curl.

    The app is the one identified by ``client_id``/``client_secret``. Use as a context manager or call
    ``start()``/``stop()``.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        public_host: str | None = None,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.host = host
        self.port = port
        #: Host name put into every URL the simulator hands out (endpoints, install frames), when the
        #: app reaches it by another name than ``host`` (e.g. ``host.docker.internal``).
        self.public_host = public_host
        self.app_code = f"sim.{client_id}"
        self.clock = Clock()
        #: Guards all simulator state; held only for short, non-blocking sections.
        self.lock = threading.RLock()
        #: Speeds up rate-limit draining (2.0 = buckets drain twice as fast as the plan says).
        self.time_scale = 1.0
        self.portals: dict[str, Portal] = {}
        self.tokens = TokenStore(self.clock)
        self.oauth = AuthServer(self)
        self.rest = RestApi(self)
        self.queue = EventQueue(self.clock.now, self._queue_blocked)
        self.calls: list[CallRecord] = []
        #: The event queue servers' published list (GET /webhook/app-world.json, like dl.bitrix24.com);
        #: ``app_world_down`` answers 503 instead; ``app_world_requests`` counts the fetches.
        self.app_world_nodes: list[str] = ["3.217.33.54", "52.29.163.104"]
        self.app_world_down = False
        self.app_world_requests = 0
        #: Old domain -> new domain of renamed portals: the old address answers 302 (change-domen.md).
        self.redirects: dict[str, str] = {}
        self._app_ids = itertools.count(1)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._portal_hosts: list[tuple[Any, threading.Thread]] = []

    # -- addresses -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return f"http://{self.auth_host}"

    @property
    def oauth_url(self) -> str:
        """The authorization server's base URL (what the bundle calls B24_OAUTH_URL)."""
        return self.url

    @property
    def auth_host(self) -> str:
        """Host of the authorization server: the ``domain`` field of token responses."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return f"{self.public_host or self.host}:{self._server.server_address[1]}"

    @property
    def app_world_url(self) -> str:
        """Where the simulator publishes the queue servers' list (the bundle's B24_APP_WORLD_URL)."""
        return f"{self.url}/webhook/app-world.json"

    @property
    def server_endpoint(self) -> str:
        return f"{self.url}/rest/"

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Simulator:
        from b24sim.server import make_server

        if self._server is not None:
            return self
        self._server = make_server(self, self.host, self.port)
        self.queue.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="b24sim-http", daemon=True
        )
        self._thread.start()
        log.info("simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for host, thread in self._portal_hosts:
            host.shutdown()
            host.server_close()
            thread.join(timeout=5)
        self._portal_hosts.clear()
        self.queue.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- portals ---------------------------------------------------------------------------------------
    def add_portal(
        self,
        domain: str | None = None,
        profile: str = "cloud",
        member_id: str | None = None,
        rate: tuple[float, float] = (50, 2),
        language: str = "en",
        queue_blocked: bool = False,
    ) -> Portal:
        """Add a portal. Without ``domain`` it gets an address of its own (``127.0.0.1:PORT``), as a
        real portal has, so the install frame's DOMAIN/PROTOCOL give the true client endpoint."""
        if domain is None:
            return self._add_hosted_portal(profile, member_id, rate, language, queue_blocked)
        with self.lock:
            if domain in self.portals:
                raise ValueError(f"portal {domain} already exists")
            portal = Portal(self, domain, profile, member_id, rate, language, queue_blocked)
            self.portals[domain] = portal
            return portal

    def _add_hosted_portal(
        self,
        profile: str,
        member_id: str | None,
        rate: tuple[float, float],
        language: str,
        queue_blocked: bool,
    ) -> Portal:
        from b24sim.server import make_portal_host

        server = make_portal_host(self, self.host)
        domain = f"{self.public_host or self.host}:{server.server_address[1]}"
        server.portal_domain = domain
        portal = self.add_portal(domain, profile, member_id, rate, language, queue_blocked)
        portal.own_url = f"http://{domain}"
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"b24sim-{domain}", daemon=True
        )
        thread.start()
        self._portal_hosts.append((server, thread))
        return portal

    def portal(self, domain: str) -> Portal:
        try:
            return self.portals[domain]
        except KeyError:
            raise KeyError(f"no portal {domain}") from None

    def portal_by_member(self, member_id: str) -> Portal | None:
        return next((p for p in self.portals.values() if p.member_id == member_id), None)

    def rename_portal(self, old: str, new: str, redirect: bool = True) -> Portal:
        """The portal's address changes; member_id and tokens stay (change-domen.md). With
        ``redirect`` the old address answers ``302 Location: <new address>`` as Bitrix24 does."""
        with self.lock:
            portal = self.portals.pop(old)
            portal.domain = new
            self.portals[new] = portal
            if redirect:
                self.redirects[old] = new
                for source, target in list(self.redirects.items()):
                    if target == old:
                        self.redirects[source] = new
            return portal

    def install_silently(
        self, domain: str, scope: str | Iterable[str] | None = None, *, status: str = "F", user_id: int = 1
    ) -> dict[str, Any]:
        """Install the app without calling any handler; returns the token JSON plus the
        ``application_token`` (seeding many portals for benchmarks)."""
        return lifecycle.install_silently(self, domain, scope, status=status, user_id=user_id)

    def next_app_id(self) -> int:
        return next(self._app_ids)

    def issued_secrets(self) -> set[str]:
        """Every token, refresh token, code and application token issued so far, and the client_secret."""
        from b24sim.tokens import ISSUED

        return {*ISSUED, self._client_secret}

    def check_client(self, client_id: str, client_secret: str) -> bool:
        same_id = hmac.compare_digest(client_id.encode(), self.client_id.encode())
        return same_id and hmac.compare_digest(client_secret.encode(), self._client_secret.encode())

    # -- app lifecycle ---------------------------------------------------------------------------------
    def install(
        self,
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
        """Install the app: ``mode="ui"`` POSTs the installer frame, ``"event"`` sends ONAPPINSTALL.

        ``scope=None`` asks for every scope the portal has. With ``finish=False`` a UI install stays
        unfinished (``INSTALLED: false``, events suppressed) until ``install_finish``.
        """
        return lifecycle.install(
            self,
            domain,
            handler_url,
            mode,
            scope,
            status=status,
            version=version,
            user_id=user_id,
            finish=finish,
        )

    def install_finish(self, domain: str) -> None:
        lifecycle.install_finish(self, domain)

    def open_app(
        self,
        domain: str,
        url: str,
        *,
        placement: str = "DEFAULT",
        placement_options: dict[str, Any] | None = None,
        user_id: int = 1,
    ) -> httpx.Response:
        """A user opens the app (or a widget): the frame POST with fresh tokens."""
        return lifecycle.frame_post(
            self,
            self.portal(domain),
            url,
            user_id=user_id,
            placement=placement,
            placement_options=placement_options,
        )

    def frame_form(
        self,
        domain: str,
        url: str,
        *,
        user_id: int = 1,
        placement: str = "DEFAULT",
        placement_options: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """What the portal's frame would POST to ``url`` (for a real browser to submit): the app's own
        page, or a placement it bound (``placement_options`` as the placement passes them)."""
        return lifecycle.frame_form(
            self,
            self.portal(domain),
            url,
            user_id=user_id,
            placement=placement,
            placement_options=placement_options,
        )

    def placement_handler(self, domain: str, code: str) -> str | None:
        """Where the portal would open the app's widget in ``code`` (None: not bound)."""
        portal = self.portal(domain)
        with self.lock:
            return next((b["handler"] for b in portal.placements if b["placement"] == code), None)

    def update_app(
        self, domain: str, handler_url: str | None = None, *, version: int | None = None
    ) -> httpx.Response | None:
        """New app version: ONAPPUPDATE (new application_token) to ``handler_url`` or the bound handlers."""
        return lifecycle.update_app(self, domain, handler_url, version=version)

    def uninstall(
        self, domain: str, handler_url: str | None = None, clean: bool = True
    ) -> httpx.Response | None:
        """ONAPPUNINSTALL (auth without tokens), then bindings removed and every token revoked."""
        return lifecycle.uninstall(self, domain, handler_url, clean=clean)

    # -- tokens ----------------------------------------------------------------------------------------
    def issue_tokens(self, domain: str, user_id: int = 1) -> dict[str, Any]:
        """A fresh token pair for a user of an installed portal, shaped like the token endpoint's JSON."""
        portal = self.portal(domain)
        with self.lock:
            if portal.app is None:
                raise RuntimeError(f"the app is not installed on {domain}")
            access, refresh = self.tokens.issue_pair(portal.member_id, user_id, portal.app.scope)
            return token_response(self, portal, access, refresh)

    def authorization_code(self, domain: str, user_id: int = 1) -> str:
        """A one-time ``code`` (30 s) as the full OAuth protocol's redirect would carry."""
        portal = self.portal(domain)
        return self.tokens.issue_code(portal.member_id, user_id).value

    def expire_access_tokens(self, domain: str | None = None) -> int:
        member_id = self.portal(domain).member_id if domain else None
        return self.tokens.expire_access(member_id)

    # -- events ----------------------------------------------------------------------------------------
    def fire_event(
        self, portal: Portal, event: str, data: Any, *, user_id: int | None, connector: str = ""
    ) -> None:
        with self.lock:
            events.fire(self, portal, event, data, user_id=user_id, connector=connector)

    def _queue_blocked(self, domain: str) -> bool:
        portal = self.portals.get(domain)
        return bool(portal and portal.queue_blocked)

    @property
    def deliveries(self) -> list[Delivery]:
        return self.queue.deliveries

    def deliveries_for(self, domain: str, event: str | None = None) -> list[Delivery]:
        return [
            d
            for d in self.queue.deliveries
            if d.portal == domain and (event is None or d.event == event.upper())
        ]

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until the queue has nothing pending; ``False`` if it did not drain in time."""
        return self.queue.wait_idle(timeout)

    # -- call log --------------------------------------------------------------------------------------
    def calls_for(self, domain: str) -> list[CallRecord]:
        with self.lock:
            return [c for c in self.calls if c.domain == domain]
