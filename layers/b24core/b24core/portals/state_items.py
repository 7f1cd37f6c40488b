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

from pynamodb.attributes import UnicodeAttribute, VersionAttribute
from pynamodb.exceptions import PutError

from b24core.aws.dynamo import Gsi1, TableItem, bind_model
from b24core.portals.keys import portal_pk
from b24core.portals.versioned import S, StaleWrite


class StateItem(TableItem):
    """The item of every such state (also the delivery state and webhook connections, which list
    themselves in gsi1): the state is one JSON document, read and written whole under ``version``."""

    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    member_id = UnicodeAttribute()
    state = UnicodeAttribute()
    version = VersionAttribute()
    index = Gsi1()


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
        try:
            item.save()
        except PutError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                raise StaleWrite(state.member_id) from None
            raise
        return replace(state, version=int(item.version or 0))

    def due(self, partition: str, now: int, limit: int = 100) -> list[str]:
        """member_ids in an index partition whose sort key (``%012d#member_id``) is due at ``now``."""
        items = self.model.index.query(
            partition, self.model.gsi1sk < f"{now + 1:012d}", limit=limit, page_size=limit
        )
        return [str(i.member_id) for i in items]

    def delete(self, member_id: str) -> None:
        self.model(portal_pk(member_id), self.kind).delete()


__all__ = ["DynamoStateStore", "StateItem", "state_model"]
