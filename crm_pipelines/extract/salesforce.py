"""Salesforce objects as extraction sources, partitioned on ``SystemModstamp``.

A window is read with a REST query when it is small (an incremental run, a daily partition) and with a
Bulk API 2.0 query job when it is large (the bulk import, OPS-1): long windows are counted first (one
call) and go to the bulk API above ``BULK_MIN_RECORDS``. Deletions come from getDeleted while the sweep's
start lies within its 15-day reach, otherwise from queryAll ``IsDeleted = true`` (any window length).
Records are mirrored as the API returned them, without ``attributes``; the id is the 18-character Id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from crm_pipelines import catalog
from crm_pipelines.crm.errors import ApiError
from crm_pipelines.crm.salesforce.client import DELETED_DAYS, QUERY_BATCH_MAX, SalesforceClient, modified_at
from crm_pipelines.crm.salesforce.soql import Name, Names, soql
from crm_pipelines.crm.salesforce.values import parse_datetime
from crm_pipelines.extract.sources import Deletion, with_fields
from crm_pipelines.state.mirror import MirrorRow

_AUDIT = ["Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp"]
_ADDRESS = ["Street", "City", "State", "PostalCode", "Country", "StateCode", "CountryCode"]
# What the sync reads (FACTS §12). Fields the org lacks (e.g. …CountryCode while state and country picklists
# are off) are dropped after describe, so the query never names an unknown column.
# fmt: off
FIELDS: dict[str, list[str]] = {
    "Lead": [
        *_AUDIT, "OwnerId", "FirstName", "LastName", "Name", "Salutation", "Company", "Title", "Email", "Phone",
        "MobilePhone", "Website", *_ADDRESS, "LeadSource", "Status", "Industry", "Rating", "NumberOfEmployees",
        "AnnualRevenue", "HasOptedOutOfEmail", "IsConverted", "ConvertedDate", "ConvertedAccountId",
        "ConvertedContactId", "ConvertedOpportunityId", "MasterRecordId", "External_Id__c",
    ],
    "Contact": [
        *_AUDIT, "OwnerId", "AccountId", "FirstName", "LastName", "Name", "Salutation", "Title", "Email", "Phone",
        "MobilePhone", *(f"Mailing{p}" for p in _ADDRESS), "LeadSource", "HasOptedOutOfEmail", "ReportsToId",
        "MasterRecordId", "External_Id__c",
    ],
    "Account": [
        *_AUDIT, "OwnerId", "Name", "Type", "ParentId", "Website", "Phone", "Industry", "NumberOfEmployees",
        "AnnualRevenue", *(f"Billing{p}" for p in _ADDRESS), "Description", "MasterRecordId", "External_Id__c",
    ],
    "Opportunity": [
        *_AUDIT, "OwnerId", "AccountId", "RecordTypeId", "Name", "Description", "StageName", "Amount",
        "Probability", "ExpectedRevenue", "CloseDate", "Type", "NextStep", "LeadSource", "IsClosed", "IsWon",
        "ForecastCategoryName", "ContactId", "CampaignId", "External_Id__c",
    ],
    "OpportunityContactRole": [*_AUDIT, "OpportunityId", "ContactId", "Role", "IsPrimary"],
    "Task": [
        *_AUDIT, "OwnerId", "WhoId", "WhatId", "Subject", "ActivityDate", "Status", "Priority", "IsClosed",
        "Description", "Type", "TaskSubtype",
    ],
    "OpportunityStage": [
        *_AUDIT, "ApiName", "MasterLabel", "IsActive", "IsClosed", "IsWon", "DefaultProbability",
        "ForecastCategory", "ForecastCategoryName", "SortOrder", "Description",
    ],
    "RecordType": [*_AUDIT, "Name", "DeveloperName", "SobjectType", "IsActive", "Description", "BusinessProcessId"],
    "User": [
        *_AUDIT, "Username", "Email", "FirstName", "LastName", "Name", "Alias", "IsActive", "ProfileId",
        "UserRoleId", "TimeZoneSidKey", "UserType",
    ],
}
# fmt: on
# Bulk jobs cost create + poll + pages (at least 3 calls) and take seconds to run: worth it above a few
# REST batches. Only windows longer than a day are counted first, so an incremental run stays one call.
BULK_MIN_RECORDS = 5 * QUERY_BATCH_MAX
COUNT_FIRST_LONGER_THAN = dt.timedelta(days=1)
# The delete log is purged after 15 days; starting a little inside that keeps getDeleted from refusing.
GET_DELETED_REACH = dt.timedelta(days=DELETED_DAYS) - dt.timedelta(hours=1)


def row(record: dict[str, Any]) -> MirrorRow:
    """The record as the API returned it, without ``attributes``; the id is the 18-character Id."""
    body = {k: v for k, v in record.items() if k != "attributes"}
    return MirrorRow(str(body["Id"]), modified_at(body), body)


class SalesforceObject:
    """A Lead, Contact, Account, Opportunity, OpportunityContactRole or Task: windows on SystemModstamp."""

    crm = "salesforce"
    partitioned = True

    def __init__(self, client: SalesforceClient, obj: str, *, now: Any = None, extra: tuple[str, ...] = ()) -> None:
        self.client, self.obj, self.extra = client, obj, extra
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self.bulk_min_records = BULK_MIN_RECORDS
        self.bulk_windows = 0  # how many windows went through the bulk API (run metadata, tests)

    async def fields(self) -> list[str]:
        """The standard fields this org has, and every field the settings name (which must exist)."""
        described = await self.client.describe(self.obj)
        missing = [f for f in self.extra if described.field(f) is None]
        if missing:
            raise ValueError(f"{self.obj} has no field {', '.join(missing)} in this org, but the settings name it "
                             "(sync.salesforce.field_mappings or rollup_targets): create it or fix the name")
        return with_fields([f for f in FIELDS[self.obj] if described.field(f) is not None], self.extra)

    async def read_window(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[list[MirrorRow]]:
        fields = await self.fields()
        bulk = False
        if end - start > COUNT_FIRST_LONGER_THAN:
            bulk = await self.client.count_window(self.obj, start, end) > self.bulk_min_records
        self.bulk_windows += bulk
        async for page in self.client.iter_window(self.obj, fields, start, end, bulk=bulk):
            yield [row(r) for r in page]

    async def count_window(self, start: dt.datetime, end: dt.datetime) -> int | None:
        return await self.client.count_window(self.obj, start, end)

    async def deleted_since(self, since: dt.datetime) -> list[Deletion]:
        now = self._now()
        if since >= now - GET_DELETED_REACH:
            try:
                body = await self.client.get_deleted(self.obj, since, now)
            except ApiError as error:
                # more than 600,000 deletions, or the window slid out of the log's reach: queryAll serves both
                if error.code not in ("EXCEEDED_ID_LIMIT", "INVALID_REPLICATION_DATE"):
                    raise
            else:
                # getDeleted works in whole minutes: keep only what was deleted at or after ``since``
                found = [(d["id"], parse_datetime(d.get("deletedDate"))) for d in body.get("deletedRecords", [])]
                return [Deletion(i, at) for i, at in found if at is None or at >= since]
        return [
            Deletion(str(r["Id"]), modified_at(r))
            async for page in self.client.iter_deleted(self.obj, since)
            for r in page
        ]


class SalesforceReference:
    """OpportunityStage, RecordType, User: small, read whole on every run through REST query.

    OpportunityStage is among the objects Bulk API queries do not serve; all three are a few rows.
    """

    crm = "salesforce"
    partitioned = False

    def __init__(self, client: SalesforceClient, obj: str) -> None:
        self.client, self.obj = client, obj

    async def read_window(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[list[MirrorRow]]:
        described = await self.client.describe(self.obj)
        fields = [f for f in FIELDS[self.obj] if described.field(f) is not None]
        query = soql("SELECT {fields} FROM {obj}", fields=Names(fields), obj=Name(self.obj))
        async for page in self.client.iter_query(query):
            yield [row(r) for r in page]

    async def count_window(self, start: dt.datetime, end: dt.datetime) -> int | None:
        return None

    async def deleted_since(self, since: dt.datetime) -> list[Deletion]:
        return []


def make_salesforce_source(client: SalesforceClient, obj: str,
                           extra: tuple[str, ...] = ()) -> SalesforceObject | SalesforceReference:  # fmt: skip
    entry = catalog.get("salesforce", obj)
    return SalesforceObject(client, obj, extra=extra) if entry.partitioned else SalesforceReference(client, obj)
