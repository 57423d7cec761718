"""Closing Dataverse opportunities as won or lost (DEAL-4): by the ``WinOpportunity`` / ``LoseOpportunity`` actions.

Dataverse refuses a write of ``statecode`` Won or Lost on an opportunity (``CannotUseOpportunitySetStateMessage``,
0x80100005); the state is reached only through the two unbound actions, each ``POST`` with ``Status`` and an
``OpportunityClose`` activity naming the opportunity (``opportunityid@odata.bind``), answered 204. Status ``-1``
lets the platform pick the state's default status reason (Won, or Canceled for a loss), so an org whose admin
renamed or added status reasons needs nothing configured here.

The calls travel like the writes of :mod:`writes`: through ``$batch``, one change set each, with
``Prefer: odata.continue-on-error``, so a thousand closes cost one call and a refused one fails alone.
An opportunity already closed is refused with ``OpportunityIsAlreadyClosed`` (0x80040515); when it is closed
the way this call wanted (an earlier attempt of this same close went through, its answer lost), the close is
reported done, which one read of those opportunities' ``statecode`` tells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crm_pipelines.crm.dynamics.batch import BATCH_MAX, BatchAnswer, BatchRequest
from crm_pipelines.crm.dynamics.odata import guid, one_of
from crm_pipelines.crm.outcomes import WriteOutcome

if TYPE_CHECKING:
    from crm_pipelines.crm.dynamics.client import DynamicsClient

ALREADY_CLOSED = "0x80040515"  # OpportunityIsAlreadyClosed, Dataverse's web service error codes
DEFAULT_STATUS = -1  # the platform sets the state's default status reason (WinOpportunityRequest.Status)
WON, LOST = 1, 2  # opportunity statecode (FACTS §I)
READ_CHUNK = 100  # ids per In() filter of the read-back, as the client's look-ups (the URL stays short)
SUBJECT = {True: "Won (closed by crm_pipelines)", False: "Lost (closed by crm_pipelines)"}


async def close_opportunities(client: DynamicsClient, closes: Sequence[tuple[str, bool]]) -> list[WriteOutcome]:
    """Win (``True``) or lose (``False``) each opportunity id; one outcome per input, in input order."""
    outcomes: dict[int, WriteOutcome] = {}
    prepared: list[tuple[int, str, bool, BatchRequest]] = []
    for index, (opportunity_id, won) in enumerate(closes):
        try:
            record_id = guid(opportunity_id)
        except (ValueError, TypeError) as error:  # a bad id fails alone, before any call
            outcomes[index] = WriteOutcome(index, False, str(opportunity_id), code="INVALID_INPUT", message=str(error))
            continue
        prepared.append((index, record_id, bool(won), _request(client.api_url, record_id, bool(won))))
    refused_closed: list[tuple[int, str, bool, BatchAnswer]] = []
    pending = prepared
    while pending:
        chunk, pending = pending[:BATCH_MAX], pending[BATCH_MAX:]
        answers = await client.send_batch([request for *_, request in chunk])
        # one change set per request, so the n-th answer belongs to the n-th request; Content-ID agrees
        by_id = {a.content_id: a for a in answers if a.content_id}
        unanswered = []
        for n, item in enumerate(chunk, start=1):
            index, record_id, won, _ = item
            answer = by_id.get(str(n)) or (answers[n - 1] if n <= len(answers) and not by_id else None)
            if answer is None:  # the batch stopped early (continue-on-error not honoured): send again
                unanswered.append(item)
            elif answer.status < 400:
                outcomes[index] = WriteOutcome(index, True, record_id, created=False)
            elif _error(answer)[0] == ALREADY_CLOSED:
                refused_closed.append((index, record_id, won, answer))
            else:
                code, message = _error(answer)
                outcomes[index] = WriteOutcome(index, False, record_id, code=code, message=message)
        if unanswered and len(unanswered) == len(chunk):
            raise RuntimeError("the $batch answer held no outcome for any of its requests")
        pending = unanswered + pending
    if refused_closed:
        states = await _states(client, [record_id for _, record_id, _, _ in refused_closed])
        for index, record_id, won, answer in refused_closed:
            code, message = _error(answer)
            if states.get(record_id) == (WON if won else LOST):
                outcomes[index] = WriteOutcome(index, True, record_id, created=False, code=code,
                                               message=f"already closed as {'won' if won else 'lost'}")
            else:
                outcomes[index] = WriteOutcome(index, False, record_id, code=code, message=message)
    return [outcomes[i] for i in sorted(outcomes)]


def _request(api_url: str, record_id: str, won: bool) -> BatchRequest:
    action = "WinOpportunity" if won else "LoseOpportunity"
    body = {
        "Status": DEFAULT_STATUS,
        "OpportunityClose": {"subject": SUBJECT[won], "opportunityid@odata.bind": f"/opportunities({record_id})"},
    }
    return BatchRequest("POST", f"{api_url}/{action}", body)


def _error(answer: BatchAnswer) -> tuple[str | None, str]:
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    if not isinstance(error, dict):
        return None, f"HTTP {answer.status}"
    return error.get("code"), str(error.get("message") or f"HTTP {answer.status}")


async def _states(client: DynamicsClient, ids: Sequence[str]) -> dict[str, Any]:
    """``statecode`` of the given opportunities."""
    out: dict[str, Any] = {}
    for start in range(0, len(ids), READ_CHUNK):
        chunk = one_of("opportunityid", ids[start : start + READ_CHUNK])
        async for rows in client.iter_pages("opportunities", ["opportunityid", "statecode"], filter=chunk):
            out.update({str(r["opportunityid"]).lower(): r.get("statecode") for r in rows})
    return out
