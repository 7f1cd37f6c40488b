"""Round-robin assignment of new leads.

The portal's administrator picks the users of the rotation on the app's own page; every new lead is
then assigned to the next of them. The settings and the rotation's position live in the app's own
storage for the portal. The handler writes to the portal (``crm.lead.update``) and advances a
position, so it is not idempotent: it keeps the bundle's once-per-event guard.
"""

from __future__ import annotations

import html
from typing import Any

from b24core import B24App, Context, Event, Page

app = B24App(manifest="b24app.manifest.json")

SETTINGS = "settings"
POSITION = "position"
MAX_USERS = 50
# The Save button posts the ticked users to the app's own API with the page's user session.
SAVE_SCRIPT = (
    "document.getElementById('save').addEventListener('click',function(){"
    "var s=document.querySelector(\"meta[name='b24-session']\").content;"
    "var picked=document.querySelectorAll(\"input[name='user']:checked\");"
    "var u=[].map.call(picked,function(i){return i.value;});"
    "fetch('app/action',{method:'POST',"
    "headers:{'Content-Type':'application/json',Authorization:'Bearer '+s},"
    "body:JSON.stringify({action:'save_rotation',data:{users:u}})})"
    ".then(function(r){return r.json();}).then(function(j){"
    "document.getElementById('saved').textContent="
    "j.users?('saved: '+j.users.join(', ')):(j.message||'not saved');});});"
)


def rotation(ctx: Context) -> list[str]:
    return list((ctx.storage.get(SETTINGS) or {}).get("users") or [])


@app.event("ONCRMLEADADD", read="crm.lead.get")
def assign_new_lead(event: Event, ctx: Context) -> None:
    users = rotation(ctx)
    lead = event.object or {}
    if not users or lead.get("ID") is None:
        return
    position = int((ctx.storage.get(POSITION) or {}).get("next") or 0) % len(users)
    ctx.client.call("crm.lead.update", {"id": lead["ID"], "fields": {"ASSIGNED_BY_ID": users[position]}})
    ctx.storage.put(POSITION, {"next": (position + 1) % len(users), "last_lead": str(lead["ID"])})


@app.action("save_rotation", admin_only=True)
def save_rotation(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    users = data.get("users")
    if not isinstance(users, list) or len(users) > MAX_USERS:
        raise ValueError(f"users: a list of at most {MAX_USERS} user IDs")
    picked = [str(u) for u in users]
    if not all(u.isdigit() for u in picked):
        raise ValueError("users: user IDs are digits")
    ctx.storage.put(
        SETTINGS, {"users": list(dict.fromkeys(picked)), "by": ctx.user.user_id if ctx.user else ""}
    )
    ctx.storage.put(POSITION, {"next": 0})
    return {"users": rotation(ctx)}


def _users(ctx: Context) -> list[dict[str, Any]]:
    found = ctx.client.call("user.get", {"ACTIVE": True})
    return [u for u in found if isinstance(u, dict)] if isinstance(found, list) else []


def _name(user: dict[str, Any]) -> str:
    return " ".join(str(user.get(k) or "") for k in ("NAME", "LAST_NAME")).strip() or f"user {user.get('ID')}"


@app.page("DEFAULT")
def options(ctx: Context) -> Page:
    """The admin picks the rotation; everyone else sees it."""
    chosen = set(rotation(ctx))
    admin = bool(ctx.user and ctx.user.admin)
    rows = []
    for user in _users(ctx):
        uid = html.escape(str(user.get("ID") or ""))
        box = f"<input type='checkbox' name='user' value='{uid}'{' checked' if uid in chosen else ''}"
        box += "" if admin else " disabled"
        rows.append(f"<li><label>{box}> {html.escape(_name(user))}</label></li>")
    save = "<button id='save' type='button'>Save</button><p id='saved'></p>" if admin else ""
    note = "" if admin else "<p>Only the portal's administrator changes the rotation.</p>"
    body = f"<h1>Lead rotation</h1>{note}<ul id='users'>{''.join(rows)}</ul>{save}"
    return Page(title="Lead rotation", body=body, script=SAVE_SCRIPT if admin else "")
