"""The example app's data: a mirror of each portal's CRM deals (pk=PORTAL#member_id, sk=DEAL#id)."""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from b24core.aws.dynamo import bind_model
from b24core.portals.store import portal_pk


class _DealItem(Model):
    class Meta:
        table_name = "unset"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    deal_id = UnicodeAttribute()
    fields = UnicodeAttribute()
    updated_at = NumberAttribute(default=0)


@lru_cache(maxsize=8)
def _deal_model(table_name: str, region: str, host: str | None) -> type[_DealItem]:
    return bind_model(_DealItem, table_name, region, host)


class DealMirror:
    def __init__(self, table_name: str, region: str, host: str | None = None) -> None:
        self._model = _deal_model(table_name, region, host)

    def upsert(self, member_id: str, deal: dict[str, Any]) -> None:
        deal_id = str(deal["ID"])
        self._model(
            portal_pk(member_id),
            f"DEAL#{deal_id}",
            deal_id=deal_id,
            fields=json.dumps(deal, sort_keys=True, ensure_ascii=False),
            updated_at=int(time.time()),
        ).save()

    def delete(self, member_id: str, deal_id: str) -> None:
        self._model(portal_pk(member_id), f"DEAL#{deal_id}").delete()

    def get(self, member_id: str, deal_id: str) -> dict[str, Any] | None:
        try:
            item = self._model.get(portal_pk(member_id), f"DEAL#{deal_id}", consistent_read=True)
        except self._model.DoesNotExist:
            return None
        value: dict[str, Any] = json.loads(item.fields)
        return value
