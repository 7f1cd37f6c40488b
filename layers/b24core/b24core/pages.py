"""The install page shown in the portal's frame. No secrets in it; a strict CSP that still lets the
BX24 library load. ``BX24.installFinish()`` runs only when every required feature is available."""

from __future__ import annotations

import html
import secrets
from typing import Any

BX24_LIBRARY = "https://api.bitrix24.com/api/v1/"

_TEXT = {
    "en": {
        "title": "Installation",
        "ok": "The app is installed and ready.",
        "missing": "The app cannot finish installing: this portal lacks what a required feature needs.",
        "pending": "The portal's capabilities could not be checked yet; the app will re-check soon.",
        "feature": "Feature",
        "status": "Status",
        "available": "available",
        "unavailable": "unavailable",
        "unknown": "not checked yet",
        "required": "required",
        "optional": "optional",
        "what": "Missing:",
        "update": "Install the Bitrix24 updates (box: Settings → Tools → Updates) or enable the module, "
        "then open the app again.",
    },
    "ru": {
        "title": "Установка",
        "ok": "Приложение установлено и готово к работе.",
        "missing": "Установку нельзя завершить: на портале нет того, что нужно обязательной функции.",
        "pending": "Возможности портала ещё не проверены; приложение проверит их позже.",
        "feature": "Функция",
        "status": "Состояние",
        "available": "доступна",
        "unavailable": "недоступна",
        "unknown": "не проверена",
        "required": "обязательная",
        "optional": "необязательная",
        "what": "Не хватает:",
        "update": "Установите обновления Битрикс24 (коробка: Настройки → Инструменты → Обновления) или "
        "включите модуль, затем откройте приложение снова.",
    },
}


def install_page(report: dict[str, Any] | None, language: str, domain: str) -> tuple[str, str]:
    """Return (html, content-security-policy)."""
    t = _TEXT["ru" if language.lower() in ("ru", "by", "kz", "ua") else "en"]
    nonce = secrets.token_urlsafe(16)
    features = (report or {}).get("features") or {}
    rows = []
    required_ok = bool(features)
    for name, info in sorted(features.items()):
        available = info.get("available")
        if info.get("required") and available is False:
            required_ok = False
        status = t["available"] if available else (t["unknown"] if available is None else t["unavailable"])
        missing = [
            *info.get("missing_methods", []),
            *info.get("missing_events", []),
            *info.get("missing_scopes", []),
        ]
        detail = f"<br><small>{t['what']} {html.escape(', '.join(missing))}</small>" if missing else ""
        kind = t["required"] if info.get("required") else t["optional"]
        rows.append(f"<tr><td>{html.escape(name)} ({kind})</td><td class='s'>{status}{detail}</td></tr>")
    if not features:
        message, finish = t["pending"], True
    elif required_ok:
        message, finish = t["ok"], True
    else:
        message, finish = f"{t['missing']} {t['update']}", False
    script = (
        f"<script nonce='{nonce}'>BX24.init(function(){{BX24.installFinish();}});</script>" if finish else ""
    )
    body = f"""<!doctype html>
<html lang="{"ru" if t is _TEXT["ru"] else "en"}"><head><meta charset="utf-8">
<title>{t["title"]}</title>
<style nonce="{nonce}">body{{font-family:sans-serif;margin:2em}}td{{padding:.3em 1em}}</style>
<script nonce="{nonce}" src="{BX24_LIBRARY}"></script></head>
<body><h1>{t["title"]} — {html.escape(domain)}</h1>
<p id="message">{html.escape(message)}</p>
<table><tr><th>{t["feature"]}</th><th>{t["status"]}</th></tr>{"".join(rows)}</table>
{script}</body></html>"""
    csp = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}' {BX24_LIBRARY}; "
        f"style-src 'nonce-{nonce}'; img-src 'self' data:; connect-src https:; "
        "frame-ancestors https:; base-uri 'none'; form-action 'none'"
    )
    return body, csp
