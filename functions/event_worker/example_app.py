"""The example app: keeps a mirror of each portal's CRM deals. Replace with your own handlers.

Each event only says THAT a deal changed, so the handler reads the deal and stores what it read.
"""

from functools import lru_cache

from b24core.mirror import DealMirror
from b24core.registry import Event, HandlerContext, registry
from b24core.settings import get_settings


@lru_cache(maxsize=1)
def mirror() -> DealMirror:
    s = get_settings()
    return DealMirror(s.table_name, s.region, s.dynamodb_endpoint)


@registry.on("ONCRMDEALADD", "ONCRMDEALUPDATE", feature="crm")
def mirror_deal(event: Event, ctx: HandlerContext) -> None:
    if event.object_id is None:
        return
    deal = ctx.client.call("crm.deal.get", {"id": event.object_id})
    if isinstance(deal, dict) and deal.get("ID") is not None:
        mirror().upsert(event.member_id, deal)


@registry.on("ONCRMDEALDELETE", feature="crm")
def forget_deal(event: Event, ctx: HandlerContext) -> None:
    if event.object_id is not None:
        mirror().delete(event.member_id, event.object_id)
