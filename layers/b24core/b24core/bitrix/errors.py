"""Every platform error code as a type, so callers catch classes and never compare strings.

Codes and HTTP statuses follow _includes/system-errors.md, limits.md and settings/oauth/error-codes.md
of the official REST docs. An unknown code still becomes a typed error: ``ServerError`` for 5xx,
``PaymentRequired`` for 402, ``AuthError`` for 401, plain ``B24Error`` otherwise.
"""

from __future__ import annotations

from typing import Any


class B24Error(Exception):
    """A Bitrix24 portal or authorization server refused a request."""

    code: str = "UNKNOWN"
    #: Worth trying again later (the same request may succeed): limits, server faults, transport.
    retryable: bool = False

    def __init__(self, description: str = "", *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(description or self.code)
        self.description = description
        self.status = status
        if code:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.description}" if self.description else self.code


# ---- authorization (portal side)
class AuthError(B24Error):
    """The portal did not accept the app's credentials."""


class ExpiredToken(AuthError):
    """401 expired_token: the access token's hour is over; refresh at the authorization server."""

    code = "expired_token"


class InvalidToken(AuthError):
    code = "invalid_token"


class NoAuthFound(AuthError):
    """401 NO_AUTH_FOUND: the token is not known to the portal (revoked, reinstalled, wrong portal)."""

    code = "NO_AUTH_FOUND"


class InsufficientScope(B24Error):
    code = "insufficient_scope"


class AccessDenied(B24Error):
    """403 ACCESS_DENIED: REST is available only on commercial plans (or the action is forbidden)."""

    code = "ACCESS_DENIED"


class InvalidCredentials(B24Error):
    """403 INVALID_CREDENTIALS: the token's user lacks the permission the method needs."""

    code = "INVALID_CREDENTIALS"


class UserAccessError(B24Error):
    """403 user_access_error: the admin restricted the app to other users."""

    code = "user_access_error"


class MethodNotFound(B24Error):
    """ERROR_METHOD_NOT_FOUND: the portal lacks the method (a box without the module or update)."""

    code = "ERROR_METHOD_NOT_FOUND"


class WrongAuthType(B24Error):
    code = "WRONG_AUTH_TYPE"


# ---- limits
class LimitError(B24Error):
    """A platform limit: slow down and try again later."""

    retryable = True


class QueryLimitExceeded(LimitError):
    """503 QUERY_LIMIT_EXCEEDED: the portal's leaky bucket is full."""

    code = "QUERY_LIMIT_EXCEEDED"


class OperationTimeLimit(LimitError):
    """429 OPERATION_TIME_LIMIT: the method's accumulated time is over its limit until ``reset_at``.

    The error answer may lack ``time.operating_reset_at``; limits.md says to use the value of the
    last successful answer then, which the REST client fills in when it has one.
    """

    code = "OPERATION_TIME_LIMIT"

    def __init__(
        self,
        description: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        reset_at: float | None = None,
    ) -> None:
        super().__init__(description, status=status, code=code)
        self.reset_at = reset_at


class OverloadLimit(LimitError):
    """503 OVERLOAD_LIMIT: REST blocked by hand for this portal (support must lift it)."""

    code = "OVERLOAD_LIMIT"


# ---- portal state
class PortalDeleted(B24Error):
    """500 PORTAL_DELETED: the portal is gone or its public part is closed."""

    code = "PORTAL_DELETED"


class PaymentError(B24Error):
    """The app's or the portal's subscription does not cover this call."""


class PaymentRequired(PaymentError):
    """PAYMENT_REQUIRED (or HTTP 402): the app's trial or paid period is over; no tokens until paid."""

    code = "PAYMENT_REQUIRED"


class ServerError(B24Error):
    code = "INTERNAL_SERVER_ERROR"
    retryable = True


class BadResponse(B24Error):
    """Not JSON, or JSON of an unexpected shape (proxy error pages, truncated answers)."""

    code = "BAD_RESPONSE"
    retryable = True


class TransportError(B24Error):
    """The request did not complete (timeout, connection refused, TLS)."""

    code = "TRANSPORT_ERROR"
    retryable = True


class PortalMoved(B24Error):
    """The portal answered with a redirect: its address changed (change-domen.md).

    The client does not follow it blindly (the request carries a token): it asks the authorization
    server where the portal lives now and only then calls the new address.
    """

    code = "PORTAL_MOVED"

    def __init__(self, description: str = "", *, status: int | None = None, location: str = "") -> None:
        super().__init__(description, status=status)
        self.location = location


# ---- authorization server
class InvalidGrant(B24Error):
    """The refresh token is dead: the portal's admin must re-authorize."""

    code = "invalid_grant"


class InvalidClient(B24Error):
    """client_id / client_secret refused (a rotated secret, or the app is not installed there)."""

    code = "invalid_client"


class InvalidRequest(B24Error):
    code = "invalid_request"


class InvalidScope(B24Error):
    code = "invalid_scope"


class ApplicationNotInstalled(B24Error):
    code = "NOT_INSTALLED"


# ---- batch
class BatchLengthExceeded(InvalidRequest):
    code = "ERROR_BATCH_LENGTH_EXCEEDED"


class BatchMethodNotAllowed(InvalidRequest):
    code = "ERROR_BATCH_METHOD_NOT_ALLOWED"


_BY_CODE: dict[str, type[B24Error]] = {
    cls.code: cls
    for cls in (
        ExpiredToken,
        InvalidToken,
        NoAuthFound,
        InsufficientScope,
        AccessDenied,
        InvalidCredentials,
        UserAccessError,
        MethodNotFound,
        WrongAuthType,
        QueryLimitExceeded,
        OperationTimeLimit,
        OverloadLimit,
        PortalDeleted,
        PaymentRequired,
        ServerError,
        InvalidGrant,
        InvalidClient,
        InvalidRequest,
        InvalidScope,
        BatchLengthExceeded,
        BatchMethodNotAllowed,
    )
}
_BY_CODE.update(
    {
        "ERROR_OAUTH": AuthError,
        "authorization_error": AuthError,
        "ERROR_CORE": ServerError,
        "ERROR_UNEXPECTED_ANSWER": ServerError,
        "ERROR_ARGUMENT": InvalidRequest,
        "ERROR_MANIFEST_IS_NOT_AVAILABLE": MethodNotFound,
        "INSUFFICIENT_SCOPE": InsufficientScope,
    }
)
_BY_UPPER = {code.upper(): cls for code, cls in _BY_CODE.items()}


def error_class(code: str) -> type[B24Error] | None:
    """The typed class for a platform code (exact match first, then case-insensitive)."""
    return _BY_CODE.get(code) or _BY_UPPER.get(code.upper())


def _reset_at(payload: dict[str, Any]) -> float | None:
    time_info = payload.get("time")
    if isinstance(time_info, dict) and time_info.get("operating_reset_at") is not None:
        from b24core.bitrix.values import as_epoch

        return as_epoch(time_info["operating_reset_at"])
    return None


def error_from_payload(payload: dict[str, Any], status: int | None = None) -> B24Error:
    """Build the typed error for a ``{"error": CODE, "error_description": ...}`` answer."""
    code = str(payload.get("error") or "UNKNOWN")
    description = str(payload.get("error_description") or "")
    cls = error_class(code)
    if cls is OperationTimeLimit:
        return OperationTimeLimit(description, status=status, code=code, reset_at=_reset_at(payload))
    if cls is None:
        if status == 402:
            return PaymentRequired(description, status=status, code=code)
        if status is not None and status >= 500:
            return ServerError(description, status=status, code=code)
        if status == 401:
            return AuthError(description, status=status, code=code)
        return B24Error(description, status=status, code=code)
    return cls(description, status=status, code=code)


def error_from_status(status: int, what: str) -> B24Error:
    """An error for an HTTP failure without a platform error body."""
    if status == 402:
        return PaymentRequired(f"{what}: HTTP 402", status=status)
    if status == 429:
        return OperationTimeLimit(f"{what}: HTTP 429", status=status)
    if status >= 500:
        return ServerError(f"{what}: HTTP {status}", status=status, code=f"HTTP_{status}")
    if status == 401:
        return AuthError(f"{what}: HTTP 401", status=status, code="HTTP_401")
    return B24Error(f"{what}: HTTP {status}", status=status, code=f"HTTP_{status}")
