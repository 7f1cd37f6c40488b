"""Deal storage with the list semantics of ``crm.deal.list`` (filter prefixes, order, select, paging).

Values are kept as strings, as the real API returns them (``"ID": "410"``, ``"OPPORTUNITY": "0.00"``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

PAGE_SIZE = 50

#: Field name -> (type, read-only, title). A minimal crm.deal.fields.
DEAL_FIELDS: dict[str, tuple[str, bool, str]] = {
    "ID": ("integer", True, "ID"),
    "TITLE": ("string", False, "Title"),
    "TYPE_ID": ("crm_status", False, "Type"),
    "CATEGORY_ID": ("crm_category", False, "Sales Funnel"),
    "STAGE_ID": ("crm_status", False, "Deal Stage"),
    "STAGE_SEMANTIC_ID": ("string", True, "Stage Group"),
    "IS_NEW": ("char", True, "New Deal"),
    "PROBABILITY": ("integer", False, "Probability"),
    "CURRENCY_ID": ("crm_currency", False, "Currency"),
    "OPPORTUNITY": ("double", False, "Amount"),
    "TAX_VALUE": ("double", False, "Tax"),
    "COMPANY_ID": ("crm_company", False, "Company"),
    "CONTACT_ID": ("crm_contact", False, "Contact"),
    "BEGINDATE": ("date", False, "Start Date"),
    "CLOSEDATE": ("date", False, "Close Date"),
    "OPENED": ("char", False, "Available to Everyone"),
    "CLOSED": ("char", False, "Closed"),
    "COMMENTS": ("string", False, "Comment"),
    "ASSIGNED_BY_ID": ("user", False, "Responsible"),
    "CREATED_BY_ID": ("user", True, "Created by"),
    "MODIFY_BY_ID": ("user", True, "Modified by"),
    "DATE_CREATE": ("datetime", True, "Created on"),
    "DATE_MODIFY": ("datetime", True, "Modified on"),
    "SOURCE_ID": ("crm_status", False, "Source"),
    "SOURCE_DESCRIPTION": ("string", False, "Source information"),
    "ADDITIONAL_INFO": ("string", False, "Additional information"),
    "ORIGINATOR_ID": ("string", False, "External source"),
    "ORIGIN_ID": ("string", False, "Item ID in data source"),
}

_READ_ONLY = {name for name, (_, ro, _) in DEAL_FIELDS.items() if ro}
_PREFIXES = (">=", "<=", "!@", "=%", "%=", "!=", ">", "<", "@", "%", "=", "!")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def _str(value: Any) -> Any:
    if value is None or isinstance(value, list | dict):
        return value
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def _writable(fields: Mapping[str, Any]) -> dict[str, Any]:
    # "An incorrect field in fields will be ignored": keep known writable fields and custom UF_CRM_* ones.
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = str(key).upper()
        if (name in DEAL_FIELDS and name not in _READ_ONLY) or name.startswith("UF_CRM_"):
            out[name] = _str(value)
    return out


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(actual: Any, expected: Any) -> int:
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    sa, sb = str(actual or ""), str(expected or "")
    return (sa > sb) - (sa < sb)


def _like(actual: Any, pattern: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("%")) + "$"
    return re.match(regex, str(actual or ""), re.IGNORECASE | re.DOTALL) is not None


def _values(expected: Any) -> list[Any]:
    if isinstance(expected, list):
        return expected
    if isinstance(expected, dict):
        return list(expected.values())
    return [expected]


def _condition(key: str, expected: Any) -> Callable[[Mapping[str, Any]], bool]:
    op = next((p for p in _PREFIXES if key.startswith(p)), "")
    field = key[len(op) :].upper()

    def test(deal: Mapping[str, Any]) -> bool:
        actual = deal.get(field)
        if op in ("", "="):
            return any(_compare(actual, v) == 0 for v in _values(expected))
        if op in ("!", "!="):
            return all(_compare(actual, v) != 0 for v in _values(expected))
        if op == "@":
            return any(_compare(actual, v) == 0 for v in _values(expected))
        if op == "!@":
            return all(_compare(actual, v) != 0 for v in _values(expected))
        if op == "%":
            return str(expected).lower() in str(actual or "").lower()
        if op in ("=%", "%="):
            return _like(actual, str(expected))
        cmp = _compare(actual, expected)
        return {">": cmp > 0, ">=": cmp >= 0, "<": cmp < 0, "<=": cmp <= 0}[op]

    return test


class DealStore:
    """Deals of one portal."""

    def __init__(self) -> None:
        self._deals: dict[int, dict[str, Any]] = {}
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._deals)

    def add(self, fields: Mapping[str, Any], user_id: int, now: float) -> int:
        deal_id = self._next_id
        self._next_id += 1
        stamp = iso(now)
        deal: dict[str, Any] = {
            "ID": str(deal_id),
            "TITLE": f"Deal #{deal_id}",
            "TYPE_ID": "SALE",
            "CATEGORY_ID": "0",
            "STAGE_ID": "NEW",
            "STAGE_SEMANTIC_ID": "P",
            "IS_NEW": "Y",
            "PROBABILITY": None,
            "CURRENCY_ID": "USD",
            "OPPORTUNITY": "0.00",
            "TAX_VALUE": "0.00",
            "COMPANY_ID": "0",
            "CONTACT_ID": None,
            "BEGINDATE": stamp,
            "CLOSEDATE": iso(now + 7 * 86400),
            "OPENED": "Y",
            "CLOSED": "N",
            "COMMENTS": None,
            "ASSIGNED_BY_ID": str(user_id),
            "CREATED_BY_ID": str(user_id),
            "MODIFY_BY_ID": str(user_id),
            "DATE_CREATE": stamp,
            "DATE_MODIFY": stamp,
            "SOURCE_ID": None,
            "SOURCE_DESCRIPTION": None,
            "ADDITIONAL_INFO": None,
            "ORIGINATOR_ID": None,
            "ORIGIN_ID": None,
        }
        deal.update(_writable(fields))
        self._deals[deal_id] = deal
        return deal_id

    def get(self, deal_id: int) -> dict[str, Any] | None:
        deal = self._deals.get(deal_id)
        return dict(deal) if deal is not None else None

    def update(self, deal_id: int, fields: Mapping[str, Any], user_id: int, now: float) -> bool:
        deal = self._deals.get(deal_id)
        if deal is None:
            return False
        deal.update(_writable(fields))
        deal["MODIFY_BY_ID"] = str(user_id)
        deal["DATE_MODIFY"] = iso(now)
        deal["IS_NEW"] = "N"
        return True

    def delete(self, deal_id: int) -> bool:
        return self._deals.pop(deal_id, None) is not None

    def query(
        self, filter_: Mapping[str, Any], order: Mapping[str, Any], select: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Filter, sort and project; paging is left to the caller."""
        tests = [_condition(str(k), v) for k, v in filter_.items()]
        rows = [d for d in self._deals.values() if all(t(d) for t in tests)]
        keys = [(str(f).upper(), str(d).upper() == "DESC") for f, d in order.items()] or [("ID", False)]
        for field, desc in reversed(keys):
            rows.sort(key=_sort_key(field), reverse=desc)
        return [_project(d, list(select)) for d in rows]


def _sort_key(field: str) -> Callable[[Mapping[str, Any]], tuple[bool, float, str]]:
    # Numbers compare as numbers, everything else as text; empty values sort last.
    def key(deal: Mapping[str, Any]) -> tuple[bool, float, str]:
        number = _number(deal.get(field))
        return (number is None, number or 0.0, str(deal.get(field) or ""))

    return key


def _project(deal: Mapping[str, Any], select: list[str]) -> dict[str, Any]:
    wanted = [str(s).upper() for s in select] or ["*", "UF_*"]
    out: dict[str, Any] = {"ID": deal["ID"]}
    for key, value in deal.items():
        is_uf = key.startswith("UF_")
        if key in wanted or ("*" in wanted and not is_uf) or ("UF_*" in wanted and is_uf):
            out[key] = value
    return out


def fields_description() -> dict[str, dict[str, Any]]:
    return {
        name: {
            "type": kind,
            "isRequired": False,
            "isReadOnly": read_only,
            "isImmutable": name == "CATEGORY_ID",
            "isMultiple": False,
            "isDynamic": False,
            "title": title,
        }
        for name, (kind, read_only, title) in DEAL_FIELDS.items()
    }
