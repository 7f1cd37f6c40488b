"""The example app: keeps a mirror of each portal's CRM deals. Replace with your own handlers.

Each event only says THAT a deal changed. Declaring ``fetch="crm.deal.get"`` lets the worker read the
deal for us — once per deal however many updates arrived, and up to 50 deals per `batch` call — and
hand it over as ``event.object``.
"""

from functools import lru_cache

from b24core.mirror import DealMirror
from b24core.registry import Event, HandlerContext, registry
from b24core.settings import get_settings


@lru_cache(maxsize=1)
def mirror() -> DealMirror:
    s = get_settings()
    return DealMirror(s.table_name, s.region, s.dynamodb_endpoint)


@registry.on("ONCRMDEALADD", "ONCRMDEALUPDATE", feature="crm", fetch="crm.deal.get")
def mirror_deal(event: Event, ctx: HandlerContext) -> None:
    if event.object is not None and event.object.get("ID") is not None:
        mirror().upsert(event.member_id, event.object)


@registry.on("ONCRMDEALDELETE", feature="crm", fetch="crm.deal.get")
def forget_deal(event: Event, ctx: HandlerContext) -> None:
    if event.object_id is not None:
        mirror().delete(event.member_id, event.object_id)
