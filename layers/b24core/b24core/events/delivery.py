"""Delivery signals (placeholder until the delivery-probe work lands): ONAPPTEST and ONOFFLINEEVENT."""

from __future__ import annotations

from typing import Any

from b24core.logs import logger


def on_delivery_event(name: str, member_id: str, form: dict[str, Any]) -> dict[str, Any]:
    logger.info("delivery signal", extra={"action": "delivery", "event": name, "member_id": member_id})
    return {"status": "noted", "event": name}
