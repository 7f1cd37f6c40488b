"""Ask the portal, with the very token that wants to change trust, whose token it is.

The authorization server proves WHICH portal and app a token belongs to; it does not say whether its
user is an administrator. Every user who opens the app holds a genuine pair (BX24.getAuth()), so a
token that wants to install, update, connect or heal must also be an administrator's: the platform
lets only administrators install or update an app. One ``batch`` asks ``user.admin`` and ``app.info``
together (api-reference/common/users/user-admin.md, api-reference/common/system/app-info.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from b24core.bitrix.errors import BadResponse
from b24core.bitrix.rest import call_rest


@dataclass(frozen=True)
class Caller:
    """What the portal said about the token's user and the app."""

    admin: bool
    app_version: str
    installed: bool
    #: False when the portal could not be asked and a first install went ahead without its answer.
    confirmed: bool = True


def _section(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):  # PHP's empty associative array
        return {str(i): v for i, v in enumerate(value)}
    return {}


def _version(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return ""
    text = str(value).strip()
    return text if 0 < len(text) <= 32 and text.isascii() and text.replace(".", "").isalnum() else ""


def ask_portal(endpoint: str, token: str, timeout_s: float = 10.0) -> Caller:
    """One batch at the (already verified) endpoint; anything but a literal ``true`` is not an admin."""
    answer = call_rest(
        endpoint,
        "batch",
        {"halt": 0, "cmd": {"admin": "user.admin", "app": "app.info"}},
        token,
        timeout_s,
    )
    section = _section(answer.result)
    results = _section(section.get("result"))
    if "admin" not in results and "admin" not in _section(section.get("result_error")):
        raise BadResponse("batch answer lacks user.admin")
    app = _section(results.get("app"))
    installed = app.get("INSTALLED")
    return Caller(
        admin=results.get("admin") is True,
        app_version=_version(app.get("VERSION")),
        installed=installed is True or installed in ("Y", "true", "1"),
    )
