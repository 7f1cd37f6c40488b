"""The example app: keeps a mirror of each portal's CRM deals (and contacts), shows a deal's mirrored
history in a tab of the deal card, and registers the calls users start from the CRM.

Each deal event only says THAT a deal changed. ``read="crm.deal.get"`` lets the worker read the deal
for us — once per deal however many updates arrived, up to 50 deals per `batch` call — and hand it
over as ``event.object``.
"""

from __future__ import annotations

import argparse
import json

from b24core import B24App, Context, Event, Page
from deal_mirror import mirror

app = B24App(manifest="b24app.manifest.json")


@app.event("ONCRMDEALADD", "ONCRMDEALUPDATE", read="crm.deal.get", idempotent=True)
def mirror_deal(event: Event, ctx: Context) -> None:
    if event.object is not None and event.object.get("ID") is not None:
        mirror.save(ctx.storage, event.object)


@app.event("ONCRMDEALDELETE", read="crm.deal.get")
def forget_deal(event: Event, ctx: Context) -> None:
    if event.object_id is not None:
        mirror.forget(ctx.storage, event.object_id)


@app.event("ONCRMCONTACTADD", "ONCRMCONTACTUPDATE", read="crm.contact.get", idempotent=True)
def mirror_contact(event: Event, ctx: Context) -> None:
    if event.object is not None and event.object.get("ID") is not None:
        mirror.save(ctx.storage, event.object, kind="contact")


@app.event("ONCRMCONTACTDELETE")
def forget_contact(event: Event, ctx: Context) -> None:
    if event.object_id is not None:
        mirror.forget(ctx.storage, event.object_id, kind="contact")


@app.event("ONEXTERNALCALLSTART")
def register_outgoing_call(event: Event, ctx: Context) -> None:
    """A user clicked a phone number to call through this app: show the call in Bitrix24.

    It runs only where the telephony feature is not known missing: on a box without the telephony
    module the event is never bound, and it starts working once a re-check finds the module. Not
    idempotent (a second run would register a second call), so it keeps the once-per-event guard.
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


@app.page("CRM_DEAL_DETAIL_TAB")
def deal_history(ctx: Context) -> Page:
    """The deal card's tab: every version of this deal the mirror saw (any user of the portal)."""
    deal_id = str((ctx.user.options if ctx.user else {}).get("ID") or "")
    if not deal_id.isdigit():
        return Page(title="Mirror history", body="<p id='empty'>Open this tab from a deal card.</p>")
    body = f"<h1>Deal {deal_id}</h1>" + mirror.history_table(mirror.history(ctx.storage, deal_id))
    return Page(title=f"Deal {deal_id}: mirror history", body=body)


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mirror_command", required=True)
    show = sub.add_parser("show", help="one mirrored deal")
    show.add_argument("member_id")
    show.add_argument("deal_id")
    show.add_argument("--json", action="store_true")


@app.command("mirror", help="the example app's deal mirror", configure=_show_arguments)
def mirror_command(args: argparse.Namespace) -> int:
    """``b24app mirror show MEMBER_ID DEAL_ID [--json]`` (operators' scripts use it)."""
    deal = mirror.get(args.storage(args.member_id), args.deal_id)
    if deal is None:
        print(f"deal {args.deal_id} is not in the mirror of {args.member_id}")
        return 1
    if args.json:
        print(json.dumps(deal, indent=2, ensure_ascii=False))
        return 0
    width = max(len(k) for k in deal)
    for key, value in sorted(deal.items()):
        print(f"{key:{width}}  {value}")
    return 0
