"""The install page shown in the portal's frame, in the portal's language.

It shows each feature's status; for what is missing, exactly which methods, events or permissions
and what the admin must do (and where, on a box); for a box, the network access it needs. It calls
``BX24.installFinish()`` only when no required feature is known missing — otherwise it explains,
and the installation finishes when the admin has updated the portal and opens the app again.

No secret is ever put in the page. The Content-Security-Policy allows only this page's own inline
script and style (by nonce) and the BX24 library.
"""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from b24core.bitrix.i18n import BOX_MODULES_PATH, BOX_UPDATE_PATH, language_of, texts
from b24core.capabilities.isolation import describe
from b24core.capabilities.report import CapabilityReport, FeatureReport, Status
from b24core.trust.session import UserSession

BX24_LIBRARY = "https://api.bitrix24.com/api/v1/"

_STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#333;"
    "max-width:860px}h1{font-size:22px;font-weight:600}h2{font-size:17px;margin-top:24px}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:8px 10px;"
    "border-bottom:1px solid #e5e8eb;vertical-align:top}.st{font-weight:600;white-space:nowrap}"
    ".available{color:#2e7d32}.missing{color:#c62828}.unknown{color:#8d6e00}"
    ".msg{padding:12px 14px;border-radius:6px;background:#eef6ee}.msg.blocked{background:#fdecea}"
    ".msg.pending{background:#fff8e1}small{color:#666}li{margin:6px 0}code{font-size:90%}"
)


@dataclass(frozen=True)
class InstallOutcome:
    """What the page decided: shown to the admin and used by tests."""

    finish: bool
    state: str  # ok | ok_partial | missing | pending | not_checked


def decide(report: dict[str, Any] | None) -> InstallOutcome:
    features = CapabilityReport.of(report).features
    if not features:
        return InstallOutcome(True, "not_checked")
    statuses = [(f.required, f.status) for f in features.values()]
    if any(req and st == Status.MISSING for req, st in statuses):
        return InstallOutcome(False, "missing")
    if any(st == Status.UNKNOWN for _, st in statuses):
        return InstallOutcome(True, "pending")
    if any(st == Status.MISSING for _, st in statuses):
        return InstallOutcome(True, "ok_partial")
    return InstallOutcome(True, "ok")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _feature_row(f: FeatureReport, t: dict[str, str]) -> str:
    label = {Status.AVAILABLE: t["available"], Status.MISSING: t["missing_status"]}.get(
        f.status, t["unknown"]
    )
    kind = t["required"] if f.required else t["optional"]
    lists = {
        "lacks_methods": f.missing_methods,
        "lacks_events": f.missing_events,
        "lacks_placements": f.missing_placements,
        "lacks_scopes": [s for s in f.missing_scopes if s not in f.scopes_not_on_portal],
        "lacks_portal_scopes": f.scopes_not_on_portal,
    }
    details = [
        f"<li>{_e(t[text].format(names=', '.join(names)))}</li>" for text, names in lists.items() if names
    ]
    if f.status == Status.UNKNOWN and f.unknown:
        details.append(f"<li>{_e(t['unknown_items'].format(names=', '.join(f.unknown)))}</li>")
    description = f"<br><small>{_e(f.description)}</small>" if f.description else ""
    detail = f"<ul class='details'>{''.join(details)}</ul>" if details else ""
    return (
        f"<tr data-feature='{_e(f.name)}' data-status='{_e(f.status)}'>"
        f"<td><b>{_e(f.name)}</b> ({_e(kind)}){description}</td>"
        f"<td><span class='st {_e(f.status)}'>{_e(label)}</span>{detail}</td></tr>"
    )


def _todo(features: dict[str, FeatureReport], kind: str, portal_url: str, t: dict[str, str]) -> list[str]:
    """What the admin must do: updates for what is missing from modules the portal has, the module
    for a feature whose whole module is absent, permissions for scopes the portal has but did not
    grant."""
    missing = [f for f in features.values() if f.status == Status.MISSING]
    if not missing:
        return []
    items: list[str] = []
    lacks_code = any(f.lacks_code for f in missing)
    modules = sorted({f.module for f in missing if f.module and f.module_missing})
    if kind == "box":
        if lacks_code:
            items.append(t["todo_box_update"].format(url=f"{portal_url}{BOX_UPDATE_PATH}"))
        items.extend(
            t["todo_box_module"].format(module=m, url=f"{portal_url}{BOX_MODULES_PATH}") for m in modules
        )
    elif lacks_code:
        # The cloud has every update: what is missing is a tool switched off or not in the plan.
        lacking = {f.module or "?" for f in missing if f.lacks_code}
        items.extend(t["todo_cloud_module"].format(module=m) for m in sorted(lacking))
    not_granted = sorted({s for f in missing for s in f.missing_scopes if s not in f.scopes_not_on_portal})
    if not_granted:
        items.append(t["todo_scopes"].format(names=", ".join(not_granted)))
    return items


def install_page(
    report: dict[str, Any] | None,
    language: str,
    domain: str,
    *,
    portal_url: str = "",
    events_url: str = "",
) -> tuple[str, str]:
    """Return (html, content-security-policy)."""
    lang = language_of(language)
    t = texts(lang)
    nonce = secrets.token_urlsafe(16)
    seen = CapabilityReport.of(report)
    features = seen.features
    outcome = decide(report)
    kind = seen.kind
    portal_url = portal_url.rstrip("/") or f"https://{domain}"
    rows = "".join(
        _feature_row(f, t) for f in sorted(features.values(), key=lambda f: (not f.required, f.name))
    )
    message = t[outcome.state]
    css = {"missing": "msg blocked", "pending": "msg pending", "not_checked": "msg pending"}.get(
        outcome.state, "msg"
    )
    parts = [f"<p id='message' class='{css}' data-state='{_e(outcome.state)}'>{_e(message)}</p>"]
    if rows:
        parts.append(
            f"<table id='features'><tr><th>{_e(t['feature'])}</th><th>{_e(t['status'])}</th></tr>"
            f"{rows}</table>"
        )
    todo = _todo(features, kind, portal_url, t)
    if todo:
        items = "".join(f"<li>{_e(i)}</li>" for i in todo)
        parts.append(f"<section id='todo'><h2>{_e(t['todo_title'])}</h2><ol>{items}</ol></section>")
    if not outcome.finish:
        parts.append(f"<p id='again'>{_e(t['finish_again'])}</p>")
    if kind == "box":
        network = [
            t["network_oauth"],
            t["network_queue"].format(events_url=events_url or "—"),
            t["network_rest"],
        ]
        items = "".join(f"<li>{_e(i)}</li>" for i in network)
        parts.append(f"<section id='network'><h2>{_e(t['network_title'])}</h2><ul>{items}</ul></section>")
    isolation = seen.isolation
    if isolation is not None and isolation.get("advice"):
        # A cloud service the portal cannot reach, and what to do (docs/isolated-boxes.md)
        summary, advice = describe(isolation, lang)
        items = "".join(f"<li>{_e(a)}</li>" for a in advice)
        parts.append(f"<section id='isolation'><h2>{_e(summary)}</h2><ul>{items}</ul></section>")
    kind_label = {"box": t["kind_box"], "cloud": t["kind_cloud"]}.get(kind, "")
    subtitle = f"<p><small>{_e(domain)}{' · ' + _e(kind_label) if kind_label else ''}</small></p>"
    script = (
        f"<script nonce='{nonce}'>BX24.init(function(){{BX24.installFinish();}});</script>"
        if outcome.finish
        else ""
    )
    body = (
        "<!doctype html>\n"
        f"<html lang='{lang}' data-install-finish='{'yes' if outcome.finish else 'no'}'><head>"
        "<meta charset='utf-8'><meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{_e(t['title'])}</title><style nonce='{nonce}'>{_STYLE}</style>"
        f"<script nonce='{nonce}' src='{BX24_LIBRARY}'></script></head>"
        f"<body><h1>{_e(t['title'])}</h1>{subtitle}{''.join(parts)}{script}</body></html>"
    )
    return body, content_security_policy(nonce, portal_url)


def app_page(session_token: str, session: UserSession, portal_url: str = "") -> tuple[str, str]:
    """The app's own page for an ordinary user: a signed session (b24core.trust.session), no token.

    Its script proves the session to the app's API (``GET /session``); pages an author adds build on
    the same session."""
    nonce = secrets.token_urlsafe(16)
    lang = language_of(session.language)
    role = "admin" if session.admin else "user"
    script = (
        f"<script nonce='{nonce}'>"
        "(function(){var s=document.querySelector(\"meta[name='b24-session']\").content;"
        "fetch('session',{headers:{Authorization:'Bearer '+s}}).then(function(r){return r.json();})"
        ".then(function(j){var e=document.getElementById('who');e.textContent=j.user_id?"
        "('user '+j.user_id+(j.admin?' (administrator)':'')):'session refused';"
        "e.setAttribute('data-verified',j.user_id?'yes':'no');});})();</script>"
    )
    body = (
        "<!doctype html>\n"
        f"<html lang='{lang}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<meta name='b24-session' content='{_e(session_token)}'>"
        f"<title>{_e(session.domain)}</title><style nonce='{nonce}'>{_STYLE}</style>"
        f"<script nonce='{nonce}' src='{BX24_LIBRARY}'></script></head>"
        f"<body><main id='app' data-member-id='{_e(session.member_id)}' data-user-id='{_e(session.user_id)}'"
        f" data-role='{role}' data-placement='{_e(session.placement)}'>"
        f"<h1>{_e(session.domain)}</h1><p id='who' data-verified='pending'></p></main>{script}</body></html>"
    )
    return body, content_security_policy(nonce, portal_url, api="'self'")


def content_security_policy(nonce: str, portal_url: str = "", api: str = "") -> str:
    origin = ""
    if portal_url:
        split = urlsplit(portal_url)
        if split.scheme in ("http", "https") and split.netloc:
            origin = f"{split.scheme}://{split.netloc}"
    # The page lives in the portal's frame: only that portal may frame it.
    ancestors = origin or "https:"
    return (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}' {BX24_LIBRARY}; "
        f"style-src 'nonce-{nonce}'; img-src 'self' data:; "
        f"connect-src {' '.join(x for x in (api, origin or 'https:') if x)}; "
        f"frame-ancestors {ancestors}; base-uri 'none'; form-action 'none'"
    )


def author_page(
    title: str, body: str, script: str, session_token: str, session: UserSession, portal_url: str = ""
) -> tuple[str, str]:
    """A page the app's author wrote (``@app.page``), in the document every page of the app shares:
    the BX24 library, the signed user session (never a token), the portal's language, and a CSP
    that runs only scripts carrying this response's nonce, so markup an author forgot to escape
    cannot run a script."""
    nonce = secrets.token_urlsafe(16)
    lang = language_of(session.language)
    fit = "if(window.BX24&&BX24.ready){BX24.ready(function(){BX24.fitWindow&&BX24.fitWindow();});}"
    tail = f"<script nonce='{nonce}'>(function(){{{fit}{script}}})();</script>"
    document = (
        "<!doctype html>\n"
        f"<html lang='{lang}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<meta name='b24-session' content='{_e(session_token)}'>"
        f"<title>{_e(title)}</title><style nonce='{nonce}'>{_STYLE}</style>"
        f"<script nonce='{nonce}' src='{BX24_LIBRARY}'></script></head>"
        f"<body><main id='app' data-member-id='{_e(session.member_id)}' data-user-id='{_e(session.user_id)}'"
        f" data-role='{'admin' if session.admin else 'user'}' data-placement='{_e(session.placement)}'>"
        f"{body}</main>{tail}</body></html>"
    )
    return document, content_security_policy(nonce, portal_url, api="'self'")
