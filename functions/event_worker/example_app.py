"""The example app: keeps a mirror of each portal's CRM deals and shows the calls its users start.
Replace with your own handlers.

Each event only says THAT a deal changed. Declaring ``fetch="crm.deal.get"`` lets the worker read the
deal for us — once per deal however many updates arrived, and up to 50 deals per `batch` call — and
hand it over as ``event.object``.
"""

from functools import lru_cache

from b24core.aws.settings import get_settings
from b24core.mirror import DealMirror
from b24core.worker.handlers import Event, HandlerContext, registry


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


@registry.on("ONEXTERNALCALLSTART", feature="telephony")
def register_outgoing_call(event: Event, ctx: HandlerContext) -> None:
    """A user clicked a phone number to call through this app: show the call in Bitrix24.

    The worker runs this only where the telephony feature is not known missing: on a box without the
    telephony module the event is never bound, and it starts working once a re-check finds the module.
    """
    phone = str(event.data.get("PHONE_NUMBER") or "")
    user_id = str(event.data.get("USER_ID") or event.user_id or "")
    if not phone or not user_id:
        return
    params = {"USER_ID": user_id, "PHONE_NUMBER": phone, "TYPE": 1, "CRM_CREATE": 0, "SHOW": 1}
    if event.data.get("CRM_ENTITY_TYPE") and event.data.get("CRM_ENTITY_ID"):
        params["CRM_ENTITY_TYPE"] = str(event.data["CRM_ENTITY_TYPE"])
        params["CRM_ENTITY_ID"] = str(event.data["CRM_ENTITY_ID"])
    ctx.client.call("telephony.externalcall.register", params)
