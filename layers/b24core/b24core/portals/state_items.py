"""One versioned JSON state per portal, in an item beside its record (pk=PORTAL#member_id, sk=KIND).

The change audit (sk=AUDIT) keeps such a state, indexed by when it is due. Rounds may
overlap (a slow Lambda, a retried schedule), so a state is saved only over the version it was read at
(pynamodb's VersionAttribute); the loser gets ``StaleWrite`` and its round ends without moving anything.
The state's own shape stays with its owner: it gives ``encode``/``decode`` for the JSON body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from typing import Any, Generic

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.exceptions import PutError

from b24core.aws.dynamo import Gsi1, TableItem, bind_model
from b24core.portals.keys import portal_pk
from b24core.portals.schema import ITEM_SCHEMA, NewerItem
from b24core.portals.versioned import S, StaleWrite


class StateItem(TableItem):
    """The item of every such state (also the delivery state and webhook connections, which list
    themselves in gsi1): the state is one JSON document, read and written whole under ``version``."""

    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    member_id = UnicodeAttribute()
    state = UnicodeAttribute()
    #: The item schema of the release that saved it (b24core.portals.schema); absent = 0.
    schema = NumberAttribute(null=True)
    version = VersionAttribute()
    index = Gsi1()


def save_versioned(item: Any, member_id: str) -> None:
    """``item.save()`` over the version it was read at (``StaleWrite`` otherwise), and never over an
    item a newer release wrote (``NewerItem``): an older release would downgrade it, dropping what it
    does not know. Any model with ``schema`` and ``version`` attributes."""
    model = type(item)
    item.schema = ITEM_SCHEMA
    try:
        item.save(condition=model.schema.does_not_exist() | (model.schema <= ITEM_SCHEMA))
    except PutError as exc:
        if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
            raise
        try:
            stored = model.get(item.pk, item.sk, consistent_read=True, attributes_to_get=["schema"])
            newer = int(stored.schema or 0)
        except model.DoesNotExist:
            newer = 0
        if newer > ITEM_SCHEMA:
            raise NewerItem(member_id, f"schema={newer}") from None
        raise StaleWrite(member_id) from None


@lru_cache(maxsize=8)
def state_model(table_name: str, region: str, host: str | None) -> type[StateItem]:
    return bind_model(StateItem, table_name, region, host)


class DynamoStateStore(Generic[S]):
    def __init__(
        self,
        kind: str,
        encode: Callable[[S], dict[str, Any]],
        decode: Callable[[str, dict[str, Any], int], S],
        table_name: str,
        region: str,
        host: str | None = None,
        index: Callable[[S], tuple[str | None, str | None]] | None = None,
    ) -> None:
        self.kind = kind
        self.encode = encode
        self.decode = decode
        self.index = index
        self.model = state_model(table_name, region, host)

    def get(self, member_id: str) -> S | None:
        try:
            item = self.model.get(portal_pk(member_id), self.kind, consistent_read=True)
        except self.model.DoesNotExist:
            return None
        return self.decode(member_id, json.loads(item.state), int(item.version or 0))

    def save(self, state: S) -> S:
        gsi1pk, gsi1sk = self.index(state) if self.index else (None, None)
        item = self.model(
            portal_pk(state.member_id), self.kind, member_id=state.member_id, gsi1pk=gsi1pk, gsi1sk=gsi1sk
        )
        item.state = json.dumps(self.encode(state), sort_keys=True)
        if state.version:
            item.version = state.version
        save_versioned(item, state.member_id)
        return replace(state, version=int(item.version or 0))

    def due(self, partition: str, now: int, limit: int = 100) -> list[str]:
        """member_ids in an index partition whose sort key (``%012d#member_id``) is due at ``now``."""
        items = self.model.index.query(
            partition, self.model.gsi1sk < f"{now + 1:012d}", limit=limit, page_size=limit
        )
        return [str(i.member_id) for i in items]

    def delete(self, member_id: str) -> None:
        self.model(portal_pk(member_id), self.kind).delete()


__all__ = ["DynamoStateStore", "StateItem", "save_versioned", "state_model"]
