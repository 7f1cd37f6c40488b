"""The mirror's data, in the app's own storage for a portal (b24core AppStorage).

``deal/{id}`` holds the deal as last read (``contact/{id}`` a contact); ``deal/{id}/history/{when}``
one entry per version seen, keyed by the object's own DATE_MODIFY, so a handler that runs twice for
one event writes the same entry again instead of a second one (the handler is declared idempotent).
"""

from __future__ import annotations

import html
import time
from typing import Any

from b24core import AppStorage

SHOWN = ("TITLE", "STAGE_ID", "OPPORTUNITY", "CURRENCY_ID", "ASSIGNED_BY_ID")


def current_key(deal_id: str, kind: str = "deal") -> str:
    return f"{kind}/{deal_id}"


def history_prefix(deal_id: str, kind: str = "deal") -> str:
    return f"{kind}/{deal_id}/history/"


def save(storage: AppStorage, deal: dict[str, Any], kind: str = "deal") -> None:
    deal_id = str(deal["ID"])
    storage.put(current_key(deal_id, kind), deal)
    when = str(deal.get("DATE_MODIFY") or "")
    entry = {k: deal.get(k) for k in (*SHOWN, "NAME", "LAST_NAME") if k in deal}
    storage.put(history_prefix(deal_id, kind) + (when or f"t{int(time.time())}"), {"when": when, **entry})


def forget(storage: AppStorage, deal_id: str, kind: str = "deal") -> None:
    storage.delete(current_key(deal_id, kind))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    storage.put(history_prefix(deal_id, kind) + f"~deleted-{stamp}", {"when": stamp, "deleted": True})


def get(storage: AppStorage, deal_id: str, kind: str = "deal") -> dict[str, Any] | None:
    return storage.get(current_key(deal_id, kind))


def history(storage: AppStorage, deal_id: str, kind: str = "deal") -> list[dict[str, Any]]:
    return [value for _, value in storage.items(history_prefix(deal_id, kind))]


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
