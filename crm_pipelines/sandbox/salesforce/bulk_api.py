"""Bulk API 2.0 query jobs: create, poll, CSV results paged by ``Sforce-Locator`` / ``maxRecords``.

A full import of a million records costs a handful of calls: one job, a few polls, and result pages of up to
``maxRecords`` rows each. The query is compiled when the job is created (the data is local), but the job
reports ``UploadComplete``, then ``InProgress``, and only after ``bulk_query_seconds`` ``JobComplete``, as a
real org's jobs take time (FACTS §17), so clients' polling is exercised. ``sandbox serve`` defaults to
``DEFAULT_BULK_QUERY_SECONDS``; tests, benches and the demo start sandboxes with 0 (``launch.py``, the
tests' ``start_sandbox``), where a job is complete at its first poll as before. The results are read from
the compiled query with the same keyset paging as ``query``, so memory stays flat however big the result.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import time
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from crm_pipelines.sandbox.salesforce import errors
from crm_pipelines.sandbox.salesforce.context import DATA, Call, Context, routes
from crm_pipelines.sandbox.salesforce.errors import SalesforceError
from crm_pipelines.sandbox.salesforce.ids import make_id
from crm_pipelines.sandbox.salesforce.query import Cursor, csv_value
from crm_pipelines.sandbox.salesforce.values import now

DEFAULT_MAX_RECORDS = 50_000
DEFAULT_BULK_QUERY_SECONDS = 3.0  # `sandbox serve`: a few seconds, like a small job on a real org
FETCH = 10_000  # rows per SQLite round trip while writing a page


@dataclass
class Job:
    info: dict[str, Any]
    cursor: Cursor | None
    started: float = 0.0  # time.monotonic() at creation
    seconds: float = 0.0  # how long this job runs

    def state(self) -> str:
        """UploadComplete for the first third of the run time, InProgress until it is over, then JobComplete."""
        if self.info["state"] != "UploadComplete":
            return self.info["state"]  # Aborted
        elapsed = time.monotonic() - self.started
        if elapsed >= self.seconds:
            return "JobComplete"
        return "UploadComplete" if elapsed < self.seconds / 3 else "InProgress"


def _locator(offset: int) -> str:
    return base64.b32encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str) -> int:
    try:
        return int(base64.b32decode(locator + "=" * (-len(locator) % 8)).decode())
    except (ValueError, UnicodeDecodeError):
        raise SalesforceError(400, "INVALIDLOCATOR", f"Locator {locator} is invalid") from None


class BulkQueryApi:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.jobs: dict[str, Job] = {}
        self._seq = itertools.count(1)

    def routes(self) -> list[BaseRoute]:
        base = DATA + "/jobs/query"
        return routes(self.ctx, [
            ("POST", base, self.create),
            ("GET", base, self.list_jobs),
            ("GET", base + "/{job_id}", self.status),
            ("PATCH", base + "/{job_id}", self.abort),
            ("DELETE", base + "/{job_id}", self.delete),
            ("GET", base + "/{job_id}/results", self.results),
        ])

    def _job(self, call: Call) -> Job:
        job = self.jobs.get(call.params["job_id"])
        if job is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    async def create(self, call: Call) -> dict[str, Any]:
        body = await call.json()
        if not isinstance(body, dict):
            raise errors.json_parser_error("expected a JSON object")
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise SalesforceError(400, "API_ERROR", f"Invalid operation: {operation}. Use query or queryAll.")
        if body.get("contentType", "CSV") != "CSV":
            raise SalesforceError(400, "API_ERROR", "Only CSV is supported as the result content type")
        cursor = self.ctx.engine.prepare(str(body.get("query", "")), include_deleted=operation == "queryAll")
        if cursor.compiled.count or cursor.compiled.offset:
            raise SalesforceError(400, "API_ERROR", "COUNT() and OFFSET are not supported by Bulk API 2.0 queries")
        if any(c.field.compound for c in cursor.compiled.columns):
            # compound fields cannot be exported (FACTS §16); select their components instead
            raise SalesforceError(400, "API_ERROR", "FeatureNotEnabled : Compound data not supported in Bulk Query")
        job_id = make_id("750", next(self._seq))
        stamp = now()
        info = {
            "id": job_id, "operation": operation, "object": cursor.compiled.sobject.name,
            "createdById": call.user_id, "createdDate": stamp, "systemModstamp": stamp, "state": "UploadComplete",
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(call.version),
            "lineEnding": "LF", "columnDelimiter": "COMMA",
        }
        self.jobs[job_id] = Job(info, cursor, time.monotonic(), self.ctx.bulk_query_seconds)
        return info

    def _status(self, job: Job) -> dict[str, Any]:
        info = dict(job.info)
        info["state"] = job.state()
        done = info["state"] == "JobComplete"
        info.update(jobType="V2Query", numberRecordsProcessed=job.cursor.total if job.cursor and done else 0,
                    retries=0, totalProcessingTime=int(job.seconds * 1000) if done else 0)
        return info

    async def status(self, call: Call) -> dict[str, Any]:
        return self._status(self._job(call))

    async def list_jobs(self, call: Call) -> dict[str, Any]:
        return {"done": True, "records": [self._status(j) for j in self.jobs.values()], "nextRecordsUrl": None}

    async def abort(self, call: Call) -> dict[str, Any]:
        job = self._job(call)
        body = await call.json()
        if not isinstance(body, dict) or body.get("state") != "Aborted":
            raise SalesforceError(400, "INVALIDJOBSTATE", "Only the Aborted state can be set on a query job")
        job.info["state"] = "Aborted"
        job.cursor = None
        return self._status(job)

    async def delete(self, call: Call) -> Response:
        self._job(call)
        del self.jobs[call.params["job_id"]]
        return Response(status_code=204)

    async def results(self, call: Call) -> Response:
        job = self._job(call)
        if job.cursor is None:
            raise SalesforceError(400, "INVALIDJOBSTATE", f"Job {job.info['id']} was aborted")
        if job.state() != "JobComplete":  # results exist only once the job is complete (wording unverified)
            raise SalesforceError(400, "INVALIDJOBSTATE", f"Job {job.info['id']} is not complete: {job.state()}")
        q = call.request.query_params
        offset = _offset(q["locator"]) if q.get("locator") else 0
        raw_max = q.get("maxRecords", "")
        max_records = int(raw_max) if raw_max.isdigit() and int(raw_max) > 0 else DEFAULT_MAX_RECORDS
        cursor = job.cursor
        columns = cursor.compiled.columns
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.header for c in columns])
        served, end = offset, min(cursor.total, offset + max_records)
        while served < end:
            rows = self.ctx.engine.fetch(cursor, served, min(FETCH, end - served))
            if not rows:
                break
            writer.writerows([csv_value(c, r[c.index]) for c in columns] for r in rows)
            served += len(rows)
        headers = {
            "Sforce-Locator": _locator(served) if served < cursor.total else "null",
            "Sforce-NumberOfRecords": str(served - offset),
        }
        return Response(out.getvalue().encode(), media_type="text/csv", headers=headers)
