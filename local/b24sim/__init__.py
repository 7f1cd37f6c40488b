"""Bitrix24 simulator: authorization server, cloud and on-premise portals, and the event queue.

Used by the end-to-end tests and the local dev stack. Start with::

    with Simulator("app.client.id", "secret") as sim:
        portal = sim.add_portal("acme.bitrix24.com")
        sim.install(portal.domain, "http://127.0.0.1:3000/install", mode="event")
"""

from __future__ import annotations

from b24sim.clock import Clock
from b24sim.portal import Binding, Installation, Portal
from b24sim.queue import Delivery
from b24sim.rest import CallRecord
from b24sim.simulator import Simulator

__all__ = ["Binding", "CallRecord", "Clock", "Delivery", "Installation", "Portal", "Simulator"]
