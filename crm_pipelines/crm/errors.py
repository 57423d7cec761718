"""Typed errors of the connectors. They carry the API's own code and message, never credentials."""

from __future__ import annotations


class CrmError(Exception):
    """Base of every connector error; ``connection`` names the configured connection, not a secret."""

    def __init__(self, connection: str, message: str) -> None:
        super().__init__(f"[{connection}] {message}")
        self.connection = connection


class ApiError(CrmError):
    """The API answered with an error that retrying will not fix."""

    def __init__(
        self,
        connection: str,
        *,
        status: int,
        endpoint: str,
        code: str | None,
        message: str,
        correlation_id: str | None = None,
    ) -> None:
        self.status, self.endpoint, self.code, self.api_message = status, endpoint, code, message
        self.correlation_id = correlation_id
        ref = f" (correlation id {correlation_id})" if correlation_id else ""
        super().__init__(connection, f"{endpoint} → HTTP {status} {code or ''}: {message}{ref}".replace("  ", " "))


class AuthenticationError(ApiError):
    """Credentials rejected (401/403 or a refused token request)."""


class NotFoundError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class TransientError(ApiError):
    """429, 5xx, timeouts, dropped connections, malformed bodies: worth retrying."""

    def __init__(self, *args: object, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RetriesExhausted(CrmError):
    """A transient failure outlived every retry; ``last`` is the final one."""

    def __init__(self, connection: str, attempts: int, last: TransientError) -> None:
        super().__init__(connection, f"gave up after {attempts} attempts: {last.args[0]}")
        self.attempts, self.last = attempts, last


class BudgetExhausted(CrmError):
    """The connection's API call limit for any rolling 24 h is spent (OPS-2); the work is deferred."""

    def __init__(self, connection: str, limit: int, retry_at: float) -> None:
        from datetime import UTC, datetime

        when = datetime.fromtimestamp(retry_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        super().__init__(
            connection,
            f"API call limit reached: {limit} calls in the last 24 h are used; the next call fits at {when}. "
            "The remaining work is deferred, not dropped.",
        )
        self.limit, self.retry_at = limit, retry_at
