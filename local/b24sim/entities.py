"""The kinds of objects a portal keeps, from one table of specs: CRM deals, leads, contacts and
companies, and tasks — each with its fields, defaults, methods and events as the REST docs give them.

CRM methods (``crm.<entity>.add/get/list/update/delete/fields``, api-reference/crm/...) take ``fields``,
``id``, ``filter``/``order``/``select``/``start`` and answer flat rows with upper-case keys; their
events carry ``FIELDS.ID``. Task methods (``tasks.task.*``, api-reference/tasks/...) take ``taskId``
and answer rows with camelCase keys wrapped as ``{"task": ...}`` / ``{"tasks": [...]}``; their events
carry ``FIELDS_BEFORE``/``FIELDS_AFTER`` (a deleted task's FIELDS_AFTER is the string "undefined").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


#: name -> (type, read-only, title)
Fields = dict[str, tuple[str, bool, str]]

_COMMON: Fields = {
    "ID": ("integer", True, "ID"),
    "ASSIGNED_BY_ID": ("user", False, "Responsible"),
    "CREATED_BY_ID": ("user", True, "Created by"),
    "MODIFY_BY_ID": ("user", True, "Modified by"),
    "DATE_CREATE": ("datetime", True, "Created on"),
    "DATE_MODIFY": ("datetime", True, "Modified on"),
    "OPENED": ("char", False, "Available to Everyone"),
    "COMMENTS": ("string", False, "Comment"),
    "SOURCE_ID": ("crm_status", False, "Source"),
}


@dataclass(frozen=True)
class EntitySpec:
    kind: str  # "crm.deal", "tasks.task": the method prefix
    module: str
    scope: str
    add: str
    update: str
    delete: str
    fields: Fields
    defaults: Callable[[int, int, str], dict[str, Any]]  # (id, user, now) -> the new object's values
    #: The field that records the last change, and who made it.
    modified: str = "DATE_MODIFY"
    modified_by: str = "MODIFY_BY_ID"
    #: Tasks: rows answered with camelCase keys, wrapped in {"task": ...} / {"tasks": [...]}.
    camel: bool = False
    wrap_one: str = ""
    wrap_many: str = ""
    id_param: str = "id"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        names = [f"{self.kind}.{m}" for m in ("add", "get", "list", "update", "delete")]
        return names if self.camel else [*names, f"{self.kind}.fields"]

    @property
    def events(self) -> list[str]:
        return [self.add, self.update, self.delete]

    def event_data(self, event: str, object_id: int) -> dict[str, Any]:
        ref = {"ID": object_id if self.camel else str(object_id)}
        if not self.camel:
            return {"FIELDS": ref}
        if event == self.delete:
            return {"FIELDS_BEFORE": ref, "FIELDS_AFTER": "undefined", "IS_ACCESSIBLE_AFTER": "N"}
        if event == self.add:
            return {"FIELDS_BEFORE": "undefined", "FIELDS_AFTER": ref, "IS_ACCESSIBLE_BEFORE": "N"}
        return {
            "FIELDS_BEFORE": ref,
            "FIELDS_AFTER": ref,
            "IS_ACCESSIBLE_BEFORE": "Y",
            "IS_ACCESSIBLE_AFTER": "Y",
        }


def camel(name: str) -> str:
    """TASK field names as tasks.task.* answers them: RESPONSIBLE_ID -> responsibleId."""
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _crm(kind: str, title_field: str, extra: Fields, values: Callable[[int], dict[str, Any]]) -> EntitySpec:
    entity = kind.rsplit(".", 1)[1].upper()

    def defaults(object_id: int, user: int, now: str) -> dict[str, Any]:
        base: dict[str, Any] = {name: None for name in (*_COMMON, *extra)}
        base.update(
            {
                "ID": str(object_id),
                "ASSIGNED_BY_ID": str(user),
                "CREATED_BY_ID": str(user),
                "MODIFY_BY_ID": str(user),
                "DATE_CREATE": now,
                "DATE_MODIFY": now,
                "OPENED": "Y",
            }
        )
        base.update(values(object_id))
        return base

    return EntitySpec(
        kind=kind,
        module="crm",
        scope="crm",
        add=f"ONCRM{entity}ADD",
        update=f"ONCRM{entity}UPDATE",
        delete=f"ONCRM{entity}DELETE",
        fields={**_COMMON, title_field: ("string", False, "Title"), **extra},
        defaults=defaults,
    )


def _deal_values(i: int) -> dict[str, Any]:
    return {
        "TITLE": f"Deal #{i}",
        "TYPE_ID": "SALE",
        "CATEGORY_ID": "0",
        "STAGE_ID": "NEW",
        "STAGE_SEMANTIC_ID": "P",
        "IS_NEW": "Y",
        "CURRENCY_ID": "USD",
        "OPPORTUNITY": "0.00",
        "TAX_VALUE": "0.00",
        "COMPANY_ID": "0",
        "CLOSED": "N",
    }


def _task_defaults(object_id: int, user: int, now: str) -> dict[str, Any]:
    return {
        "ID": str(object_id),
        "TITLE": f"Task #{object_id}",
        "DESCRIPTION": "",
        "STATUS": "2",
        "PRIORITY": "1",
        "RESPONSIBLE_ID": str(user),
        "CREATED_BY": str(user),
        "CHANGED_BY": str(user),
        "CREATED_DATE": now,
        "CHANGED_DATE": now,
        "DEADLINE": None,
        "GROUP_ID": "0",
    }


SPECS: dict[str, EntitySpec] = {
    spec.kind: spec
    for spec in (
        _crm(
            "crm.deal",
            "TITLE",
            {
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
                "CLOSED": ("char", False, "Closed"),
                "SOURCE_DESCRIPTION": ("string", False, "Source information"),
                "ADDITIONAL_INFO": ("string", False, "Additional information"),
                "ORIGINATOR_ID": ("string", False, "External source"),
                "ORIGIN_ID": ("string", False, "Item ID in data source"),
            },
            _deal_values,
        ),
        _crm(
            "crm.lead",
            "TITLE",
            {
                "NAME": ("string", False, "First name"),
                "LAST_NAME": ("string", False, "Last name"),
                "STATUS_ID": ("crm_status", False, "Stage"),
                "OPPORTUNITY": ("double", False, "Amount"),
                "CURRENCY_ID": ("crm_currency", False, "Currency"),
                "COMPANY_TITLE": ("string", False, "Company name"),
            },
            lambda i: {
                "TITLE": f"Lead #{i}",
                "STATUS_ID": "NEW",
                "CURRENCY_ID": "USD",
                "OPPORTUNITY": "0.00",
            },
        ),
        _crm(
            "crm.contact",
            "NAME",
            {
                "LAST_NAME": ("string", False, "Last name"),
                "SECOND_NAME": ("string", False, "Second name"),
                "TYPE_ID": ("crm_status", False, "Contact type"),
                "POST": ("string", False, "Position"),
                "COMPANY_ID": ("crm_company", False, "Company"),
            },
            lambda i: {"NAME": f"Contact #{i}", "TYPE_ID": "CLIENT", "COMPANY_ID": "0"},
        ),
        _crm(
            "crm.company",
            "TITLE",
            {
                "COMPANY_TYPE": ("crm_status", False, "Company type"),
                "INDUSTRY": ("crm_status", False, "Industry"),
                "REVENUE": ("double", False, "Annual revenue"),
                "CURRENCY_ID": ("crm_currency", False, "Currency"),
            },
            lambda i: {"TITLE": f"Company #{i}", "COMPANY_TYPE": "CUSTOMER", "CURRENCY_ID": "USD"},
        ),
        EntitySpec(
            kind="tasks.task",
            module="tasks",
            scope="task",
            add="ONTASKADD",
            update="ONTASKUPDATE",
            delete="ONTASKDELETE",
            fields={
                "ID": ("integer", True, "ID"),
                "TITLE": ("string", False, "Name"),
                "DESCRIPTION": ("string", False, "Description"),
                "STATUS": ("enum", False, "Status"),
                "PRIORITY": ("enum", False, "Priority"),
                "RESPONSIBLE_ID": ("integer", False, "Assignee"),
                "CREATED_BY": ("integer", False, "Creator"),
                "CHANGED_BY": ("integer", True, "Modified by"),
                "CREATED_DATE": ("datetime", True, "Created on"),
                "CHANGED_DATE": ("datetime", True, "Modified on"),
                "DEADLINE": ("datetime", False, "Deadline"),
                "GROUP_ID": ("integer", False, "Project"),
            },
            defaults=_task_defaults,
            modified="CHANGED_DATE",
            modified_by="CHANGED_BY",
            camel=True,
            wrap_one="task",
            wrap_many="tasks",
            id_param="taskId",
        ),
    )
}


def spec_for_method(name: str) -> tuple[EntitySpec, str] | None:
    kind, _, action = name.rpartition(".")
    spec = SPECS.get(kind)
    return (spec, action) if spec else None


__all__ = ["SPECS", "EntitySpec", "camel", "iso", "spec_for_method"]
