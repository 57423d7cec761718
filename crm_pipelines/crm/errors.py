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
    """429, 5xx, timeouts, dropped connections, malformed bodies: worth retrying. ``maybe_applied``: the
    request may have reached the API and been carried out (its answer was lost, cut or an error after the
    fact), as opposed to one the API cannot have run (no connection, a 429, a 503)."""

    def __init__(self, *args: object, retry_after: float | None = None, maybe_applied: bool = False,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.retry_after, self.maybe_applied = retry_after, maybe_applied


class WriteInDoubt(CrmError):
    """A write that must not be sent twice (a create) whose answer was lost after it may have been carried
    out: it is not sent again; the caller finds out whether it happened (by the record's lookup field) before
    it writes again (DESIGN Invariant 1)."""

    def __init__(self, connection: str, last: TransientError) -> None:
        super().__init__(connection, f"not sent again: the API may have carried it out; {last.args[0]}")
        self.last = last


class IncompleteBody(Exception):
    """A body that arrived whole by HTTP's account but not by the API's (cut short, or missing what every
    answer of that endpoint carries): a transport fault, so the call is retried like a dropped connection."""


class RetriesExhausted(CrmError):
    """A transient failure outlived the call's retries (its time budget, or an attempt cap); ``last`` is the
    final one, and its text is the API's last answer."""

    def __init__(self, connection: str, attempts: int, last: TransientError, seconds: float | None = None) -> None:
        spent = f" in {seconds:.0f} s" if seconds is not None else ""
        super().__init__(connection, f"gave up after {attempts} attempts{spent}; last answer: {last.args[0]}")
        self.attempts, self.last, self.seconds = attempts, last, seconds


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


def describe_error(error: BaseException) -> str:
    """``Type: first line of the message``, or the type alone: never empty, never an IndexError.

    ``httpx.ReadError('')`` and friends have no message at all; a step's failure text must still name what
    went wrong rather than lose the rest of the text to ``str(e).splitlines()[0]``.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
