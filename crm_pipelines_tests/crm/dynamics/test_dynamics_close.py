"""DEAL-4 / issue 13: the connector closes Dataverse opportunities by WinOpportunity / LoseOpportunity.

Real HTTP over loopback against the Dynamics sandbox (HTTPS, its own CA, limits on): one ``$batch`` call for
the lot, one outcome per input in input order, a refused close with the API's code and message, never failing
the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from crm_pipelines.crm.dynamics.odata import one_of
from crm_pipelines.crm.metering import Meter
from crm_pipelines_tests.crm.dynamics.conftest import client
from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import set_faults

ALREADY_CLOSED = "0x80040515"
RECORD_NOT_FOUND = "0x80040217"


async def _new_opportunities(dyn, n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    created = await dyn.create("opportunities", [{"name": f"Close {tag} {i}", "estimatedvalue": 100 + i}
                                                 for i in range(n)])
    assert all(o.ok for o in created), created
    return [o.id for o in created]


async def _rows(dyn, ids: list[str]) -> dict[str, dict]:
    select = ["opportunityid", "statecode", "statuscode", "actualvalue", "actualclosedate"]
    return {r["opportunityid"]: r async for page in dyn.iter_pages("opportunities", select,
                                                                   filter=one_of("opportunityid", ids))
            for r in page}


def test_deal4_close_opportunities_one_outcome_per_input(dynamics_live: RunningSandbox) -> None:
    """DEAL-4 / issue 13: wins and losses in one $batch call; an opportunity already closed the other way, a
    missing one and a malformed id each fail alone with the API's code and text, in input order; a close that
    an earlier call already made is reported done."""
    meter = Meter()
    missing = str(uuid.uuid4())

    async def run():
        async with client(dynamics_live, meter) as dyn:
            win, lose, closed_lost, won_before = await _new_opportunities(dyn, 4)
            setup = await dyn.close_opportunities([(closed_lost, False), (won_before, True)])
            assert [o.ok for o in setup] == [True, True]
            before = meter.count(endpoint="POST /$batch")
            outcomes = await dyn.close_opportunities([
                (win, True),
                (closed_lost, True),  # lost already: cannot be won until reopened
                (missing, False),
                ("not-a-guid", True),
                (lose, False),
                (won_before.upper(), True),  # won already, as asked: done
            ])
            calls = meter.count(endpoint="POST /$batch") - before
            return outcomes, calls, await _rows(dyn, [win, lose, closed_lost, won_before]), (
                win, lose, closed_lost, won_before)

    outcomes, calls, rows, (win, lose, closed_lost, won_before) = asyncio.run(run())
    assert calls == 1
    assert [o.index for o in outcomes] == list(range(6))
    assert [o.ok for o in outcomes] == [True, False, False, False, True, True]
    assert [o.id for o in outcomes] == [win, closed_lost, missing, "not-a-guid", lose, won_before]
    assert (outcomes[1].code, outcomes[1].message) == (ALREADY_CLOSED, "The opportunity is already closed.")
    assert outcomes[2].code == RECORD_NOT_FOUND and missing in (outcomes[2].message or "")
    assert outcomes[3].code == "INVALID_INPUT"
    assert (outcomes[5].code, outcomes[5].message) == (ALREADY_CLOSED, "already closed as won")
    assert outcomes[0].code is None and outcomes[0].created is False
    today = {dt.datetime.now(dt.UTC).date().isoformat(),
             (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).date().isoformat()}
    assert (rows[win]["statecode"], rows[win]["statuscode"], rows[win]["actualvalue"]) == (1, 3, 100)
    assert (rows[lose]["statecode"], rows[lose]["statuscode"]) == (2, 4)
    assert rows[win]["actualclosedate"] in today and rows[lose]["actualclosedate"] in today
    assert (rows[closed_lost]["statecode"], rows[won_before]["statecode"]) == (2, 1)  # the refusal changed nothing


def test_deal4_close_answer_lost_then_resent_is_done(dynamics_live: RunningSandbox) -> None:
    """DEAL-4: the first $batch answer arrives cut short after the sandbox ran it; the batch is sent again, the
    platform now says "already closed", and the read-back shows each was closed as asked: all done."""
    meter = Meter()

    async def run():
        async with client(dynamics_live, meter, backoff_initial_s=0.01, backoff_max_s=0.05) as dyn:
            ids = await _new_opportunities(dyn, 3)
            # seed 1: the first $batch answer is truncated (the request ran), the second one is whole
            set_faults(dynamics_live, rate_malformed=0.5, seed=1, path_prefix="/api/data/v9.2/$batch")
            try:
                outcomes = await dyn.close_opportunities([(ids[0], True), (ids[1], False), (ids[2], True)])
            finally:
                set_faults(dynamics_live)
            return ids, outcomes, await _rows(dyn, ids)

    ids, outcomes, rows = asyncio.run(run())
    assert meter.count(endpoint="POST /$batch") >= 3  # the create, the cut answer, the resend
    assert [o.ok for o in outcomes] == [True, True, True]
    assert [o.code for o in outcomes] == [ALREADY_CLOSED] * 3
    assert [o.message for o in outcomes] == ["already closed as won", "already closed as lost", "already closed as won"]
    assert [rows[i]["statecode"] for i in ids] == [1, 2, 1]
