"""The mirror's data, in the app's own storage for a portal (b24core AppStorage).

``deal/{id}`` holds the deal as last read; ``deal/{id}/history/{when}`` one entry per version seen,
keyed by the deal's own DATE_MODIFY, so a handler that runs twice for one event writes the same
entry again instead of a second one (the handler is declared idempotent).
"""

from __future__ import annotations

import html
import time
from typing import Any

from b24core import AppStorage

SHOWN = ("TITLE", "STAGE_ID", "OPPORTUNITY", "CURRENCY_ID", "ASSIGNED_BY_ID")


def current_key(deal_id: str) -> str:
    return f"deal/{deal_id}"


def history_prefix(deal_id: str) -> str:
    return f"deal/{deal_id}/history/"


def save(storage: AppStorage, deal: dict[str, Any]) -> None:
    deal_id = str(deal["ID"])
    storage.put(current_key(deal_id), deal)
    when = str(deal.get("DATE_MODIFY") or "")
    entry = {k: deal.get(k) for k in SHOWN if k in deal}
    storage.put(history_prefix(deal_id) + (when or f"t{int(time.time())}"), {"when": when, **entry})


def forget(storage: AppStorage, deal_id: str) -> None:
    storage.delete(current_key(deal_id))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    storage.put(history_prefix(deal_id) + f"~deleted-{stamp}", {"when": stamp, "deleted": True})


def get(storage: AppStorage, deal_id: str) -> dict[str, Any] | None:
    return storage.get(current_key(deal_id))


def history(storage: AppStorage, deal_id: str) -> list[dict[str, Any]]:
    return [value for _, value in storage.items(history_prefix(deal_id))]


def history_table(entries: list[dict[str, Any]]) -> str:
    """The History tab's body: one row per version the mirror saw, oldest first."""
    if not entries:
        return "<p id='empty'>No change of this deal has reached the mirror yet.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("WHEN", *SHOWN))
    rows = []
    for entry in entries:
        if entry.get("deleted"):
            cells = (
                f"<td>{html.escape(str(entry.get('when', '')))}</td><td colspan='{len(SHOWN)}'>deleted</td>"
            )
        else:
            values = (entry.get("when", ""), *(entry.get(c, "") for c in SHOWN))
            cells = "".join(f"<td>{html.escape(str(v if v is not None else ''))}</td>" for v in values)
        rows.append(f"<tr class='version'>{cells}</tr>")
    return f"<table id='history'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
