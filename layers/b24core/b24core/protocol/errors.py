"""Every platform error code as a type, so callers catch classes and never compare strings.

Codes and HTTP statuses follow _includes/system-errors.md, limits.md and settings/oauth/error-codes.md
of the official REST docs.
"""

from __future__ import annotations

from typing import Any


class B24Error(Exception):
    """A Bitrix24 portal or authorization server refused a request."""

    code: str = "UNKNOWN"
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
    code = "expired_token"


class InvalidToken(AuthError):
    code = "invalid_token"


class NoAuthFound(AuthError):
    code = "NO_AUTH_FOUND"


class InsufficientScope(B24Error):
    code = "insufficient_scope"


class AccessDenied(B24Error):
    code = "ACCESS_DENIED"


class UserAccessError(B24Error):
    code = "user_access_error"


class MethodNotFound(B24Error):
    code = "ERROR_METHOD_NOT_FOUND"


class WrongAuthType(B24Error):
    code = "WRONG_AUTH_TYPE"


# ---- limits
class QueryLimitExceeded(B24Error):
    code = "QUERY_LIMIT_EXCEEDED"
    retryable = True


class OperationTimeLimit(B24Error):
    code = "OPERATION_TIME_LIMIT"
    retryable = True

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


class OverloadLimit(B24Error):
    code = "OVERLOAD_LIMIT"
    retryable = True


# ---- portal state
class PortalDeleted(B24Error):
    code = "PORTAL_DELETED"


class PaymentRequired(B24Error):
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


# ---- authorization server
class InvalidGrant(B24Error):
    """The refresh token is dead: the portal's admin must re-authorize."""

    code = "invalid_grant"


class InvalidClient(B24Error):
    code = "invalid_client"


class InvalidRequest(B24Error):
    code = "invalid_request"


class InvalidScope(B24Error):
    code = "invalid_scope"


class ApplicationNotInstalled(B24Error):
    code = "NOT_INSTALLED"


_BY_CODE: dict[str, type[B24Error]] = {
    cls.code: cls
    for cls in (
        ExpiredToken,
        InvalidToken,
        NoAuthFound,
        InsufficientScope,
        AccessDenied,
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
    )
}
_BY_CODE.update(
    {
        "ERROR_OAUTH": AuthError,
        "INVALID_CREDENTIALS": AuthError,
        "authorization_error": AuthError,
        "ERROR_CORE": ServerError,
        "ERROR_UNEXPECTED_ANSWER": ServerError,
        "INTERNAL_SERVER_ERROR": ServerError,
        "ERROR_BATCH_LENGTH_EXCEEDED": InvalidRequest,
        "ERROR_BATCH_METHOD_NOT_ALLOWED": InvalidRequest,
        "ERROR_ARGUMENT": InvalidRequest,
        "INVALID_REQUEST": InvalidRequest,
        "ERROR_MANIFEST_IS_NOT_AVAILABLE": MethodNotFound,
        "ACCESS_DENIED": AccessDenied,
        "PAYMENT_REQUIRED": PaymentRequired,
        "invalid_scope": InvalidScope,
        "INSUFFICIENT_SCOPE": InsufficientScope,
    }
)


def error_from_payload(payload: dict[str, Any], status: int | None = None) -> B24Error:
    """Build the typed error for a ``{"error": CODE, "error_description": ...}`` answer."""
    code = str(payload.get("error") or "UNKNOWN")
    description = str(payload.get("error_description") or "")
    cls = _BY_CODE.get(code) or _BY_CODE.get(code.upper()) or _BY_CODE.get(code.lower())
    if cls is OperationTimeLimit:
        reset_at = None
        time_info = payload.get("time")
        if isinstance(time_info, dict) and time_info.get("operating_reset_at") is not None:
            try:
                reset_at = float(time_info["operating_reset_at"])
            except (TypeError, ValueError):
                reset_at = None
        return OperationTimeLimit(description, status=status, code=code, reset_at=reset_at)
    if cls is None:
        if status is not None and status >= 500:
            return ServerError(description, status=status, code=code)
        return B24Error(description, status=status, code=code)
    return cls(description, status=status, code=code)
