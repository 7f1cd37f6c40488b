"""Object storage with the list semantics of ``crm.*.list`` / ``tasks.task.list`` (filter prefixes, order,
select, paging), one store per kind of object (b24sim.entities gives each kind's fields and defaults).

Values are kept as strings, as the real API returns them (``"ID": "410"``, ``"OPPORTUNITY": "0.00"``).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from b24sim.entities import EntitySpec, iso

PAGE_SIZE = 50

_PREFIXES = (">=", "<=", "!@", "=%", "%=", "!=", ">", "<", "@", "%", "=", "!")


def _str(value: Any) -> Any:
    if value is None or isinstance(value, list | dict):
        return value
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def _writable(fields: Mapping[str, Any], known: Mapping[str, tuple[str, bool, str]]) -> dict[str, Any]:
    # "An incorrect field in fields will be ignored": keep known writable fields and custom UF_* ones.
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = str(key).upper()
        if (name in known and not known[name][1]) or name.startswith("UF_"):
            out[name] = _str(value)
    return out


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _moment(value: Any) -> float | None:
    text = str(value or "")
    if len(text) < 19 or text[10:11] != "T":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _compare(actual: Any, expected: Any) -> int:
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    a, b = _moment(actual), _moment(expected)  # dates compare as moments, whatever their offsets
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
    moment = _moment(expected) if op in (">", ">=", "<", "<=") else None
    if moment is not None:  # a date range: the value is read once, each row's date parsed once

        def dated(deal: Mapping[str, Any]) -> bool:
            actual = _moment(deal.get(field))
            if actual is None:
                return False
            cmp = (actual > moment) - (actual < moment)
            return {">": cmp > 0, ">=": cmp >= 0, "<": cmp < 0, "<=": cmp <= 0}[op]

        return dated

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


class EntityStore:
    """Objects of one kind on one portal."""

    def __init__(self, spec: EntitySpec) -> None:
        self.spec = spec
        self._items: dict[int, dict[str, Any]] = {}
        self._ids: list[int] = []  # sorted: ID ranges are found by bisection, as a database index would
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._items)

    def add(self, fields: Mapping[str, Any], user_id: int, now: float) -> int:
        object_id = self._next_id
        self._next_id += 1
        item = self.spec.defaults(object_id, user_id, iso(now))
        item.update(_writable(fields, self.spec.fields))
        self._items[object_id] = item
        self._ids.append(object_id)
        return object_id

    def get(self, object_id: int) -> dict[str, Any] | None:
        item = self._items.get(object_id)
        return dict(item) if item is not None else None

    def update(self, object_id: int, fields: Mapping[str, Any], user_id: int, now: float) -> bool:
        item = self._items.get(object_id)
        if item is None:
            return False
        item.update(_writable(fields, self.spec.fields))
        item[self.spec.modified_by] = str(user_id)
        item[self.spec.modified] = iso(now)
        if "IS_NEW" in item:
            item["IS_NEW"] = "N"
        return True

    def delete(self, object_id: int) -> bool:
        if self._items.pop(object_id, None) is None:
            return False
        self._ids.pop(bisect.bisect_left(self._ids, object_id))
        return True

    def touch(self, object_id: int, modified: str) -> bool:
        """Set an object's modification time as it is (a test's late commit: a transaction that began
        at ``modified`` and became visible only now)."""
        item = self._items.get(object_id)
        if item is None:
            return False
        item[self.spec.modified] = modified
        return True

    def _candidates(self, filter_: Mapping[str, Any]) -> tuple[Iterable[dict[str, Any]], dict[str, Any]]:
        """Objects an ID range in the filter allows (by bisection), and the rest of the filter."""
        low, high = 0, len(self._ids)
        rest: dict[str, Any] = {}
        for key, value in filter_.items():
            op = next((p for p in (">=", "<=", ">", "<") if str(key).startswith(p)), "")
            bound = _number(value)
            if op and str(key)[len(op) :].upper() == "ID" and bound is not None:
                if op in (">", ">="):
                    side = bisect.bisect_right if op == ">" else bisect.bisect_left
                    low = max(low, side(self._ids, bound))
                else:
                    side = bisect.bisect_right if op == "<=" else bisect.bisect_left
                    high = min(high, side(self._ids, bound))
            else:
                rest[str(key)] = value
        return (self._items[i] for i in self._ids[low:high]), rest

    def query(
        self, filter_: Mapping[str, Any], order: Mapping[str, Any], select: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Filter, sort and project; paging is left to the caller."""
        candidates, rest = self._candidates(filter_)
        tests = [_condition(str(k), v) for k, v in rest.items()]
        rows = [d for d in candidates if all(t(d) for t in tests)]
        keys = [(str(f).upper(), str(d).upper() == "DESC") for f, d in order.items()] or [("ID", False)]
        for field, desc in reversed(keys):
            rows.sort(key=_sort_key(field), reverse=desc)
        wanted = [str(s).upper() for s in select] or ["*", "UF_*"]
        return [_project(d, wanted) for d in rows]


def _sort_key(field: str) -> Callable[[Mapping[str, Any]], tuple[bool, float, str]]:
    # Numbers compare as numbers, everything else as text; empty values sort last.
    def key(deal: Mapping[str, Any]) -> tuple[bool, float, str]:
        number = _number(deal.get(field))
        return (number is None, number or 0.0, str(deal.get(field) or ""))

    return key


def _project(deal: Mapping[str, Any], wanted: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"ID": deal["ID"]}
    for key, value in deal.items():
        is_uf = key.startswith("UF_")
        if key in wanted or ("*" in wanted and not is_uf) or ("UF_*" in wanted and is_uf):
            out[key] = value
    return out


def fields_description(spec: EntitySpec) -> dict[str, dict[str, Any]]:
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
        for name, (kind, read_only, title) in spec.fields.items()
    }
