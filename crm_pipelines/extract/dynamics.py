"""Dynamics 365 tables as extraction sources: windows on ``modifiedon``, counts, deletions by change tracking.

A row's mirror id is its primary-key GUID, ``modified_at`` its ``modifiedon``, and the record the JSON row as
the Web API returned it. Deletions come only through change tracking (the Web API keeps no queryable list
of deleted rows, FACTS §G), so each table keeps a delta link; where it is stored is the caller's choice
(``DeltaLinks``: the state database's cursors in production, a dict in tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from crm_pipelines import catalog
from crm_pipelines.crm.dynamics.client import DeltaLinkExpired, DynamicsClient
from crm_pipelines.crm.dynamics.entities import primary_key
from crm_pipelines.crm.dynamics.values import parse_timestamp
from crm_pipelines.extract.sources import Deletion, with_fields
from crm_pipelines.state.cursors import get_cursor, set_cursor
from crm_pipelines.state.mirror import MirrorRow

_COMMON = ["createdon", "modifiedon", "versionnumber"]
SELECT: dict[str, list[str]] = {
    "contacts": [
        "contactid", "firstname", "lastname", "fullname", "emailaddress1", "telephone1", "mobilephone", "jobtitle",
        "address1_city", "address1_stateorprovince", "address1_country", "_parentcustomerid_value",
        "_ownerid_value", "statecode", "statuscode", *_COMMON,
    ],
    "leads": [
        "leadid", "subject", "firstname", "lastname", "fullname", "companyname", "emailaddress1", "telephone1",
        "jobtitle", "address1_city", "address1_stateorprovince", "address1_country", "leadsourcecode",
        "_parentaccountid_value", "_parentcontactid_value", "_ownerid_value", "statecode", "statuscode", *_COMMON,
    ],
    "accounts": [
        "accountid", "name", "accountnumber", "websiteurl", "telephone1", "emailaddress1", "numberofemployees",
        "revenue", "address1_city", "address1_stateorprovince", "address1_country", "_primarycontactid_value",
        "_parentaccountid_value", "_ownerid_value", "_transactioncurrencyid_value", "statecode", "statuscode",
        *_COMMON,
    ],
    "opportunities": [
        "opportunityid", "name", "estimatedvalue", "actualvalue", "estimatedclosedate", "actualclosedate",
        "closeprobability", "salesstage", "stepname", "opportunityratingcode", "_customerid_value",
        "_parentaccountid_value", "_parentcontactid_value", "_ownerid_value", "_transactioncurrencyid_value",
        "statecode", "statuscode", *_COMMON,
    ],
    "systemusers": [
        "systemuserid", "firstname", "lastname", "fullname", "internalemailaddress", "domainname", "isdisabled",
        "azureactivedirectoryobjectid", *_COMMON,
    ],
}  # fmt: skip


# Two feeds per table, each with its own position: the deletion sweep reads ids only and drops the changed
# rows it passes (the windows read those), so it must not move the position of the feed that reads changes.
SWEEP, CHANGES = "deletions", "changes"


class DeltaLinks(Protocol):
    """Where a table's change-tracking positions are kept between runs."""

    def get(self, obj: str, feed: str) -> str | None: ...

    def set(self, obj: str, feed: str, link: str) -> None: ...


class MemoryDeltaLinks:
    def __init__(self) -> None:
        self.links: dict[tuple[str, str], str] = {}

    def get(self, obj: str, feed: str) -> str | None:
        return self.links.get((obj, feed))

    def set(self, obj: str, feed: str, link: str) -> None:
        self.links[(obj, feed)] = link


def to_row(entity_set: str, record: dict) -> MirrorRow:
    return MirrorRow(str(record[primary_key(entity_set)]), parse_timestamp(record.get("modifiedon")), record)


class DynamicsObject:
    """A table read by ``modifiedon`` windows (daily partitions), deletions swept through its delta link."""

    partitioned = True
    crm = "dynamics"

    def __init__(self, client: DynamicsClient, obj: str, delta_links: DeltaLinks | None = None,
                 extra: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.client, self.obj = client, obj
        self.delta_links = delta_links or MemoryDeltaLinks()
        self.select = with_fields(SELECT[self.obj], extra)

    async def read_window(self, start: datetime, end: datetime) -> AsyncIterator[list[MirrorRow]]:
        async for page in self.client.iter_modified(self.obj, start, end, self.select):
            yield [to_row(self.obj, r) for r in page]

    async def count_window(self, start: datetime, end: datetime) -> int | None:
        return await self.client.count_modified(self.obj, start, end)

    async def deleted_since(self, since: datetime) -> list[Deletion]:
        """Rows deleted since the stored delta link (``since`` is implied by the link, which is exact).

        With no link yet (or an expired one), this starts tracking: the initial change-tracking read pages
        through the table's ids only, the cheapest way Dataverse hands out a first delta link, and reports
        nothing; the windowed reads around it have the live rows. The deleted-entity shape carries no time,
        so ``deleted_at`` is the moment the deletion was seen.
        """
        link = self.delta_links.get(self.obj, SWEEP)
        pk = primary_key(self.obj)
        seen = datetime.now(UTC)
        deletions: list[Deletion] = []
        try:
            async for page in self.client.changes(self.obj, [pk], link):
                if link is not None:
                    deletions += [Deletion(i, seen) for i in page.deleted]
                if page.delta_link:
                    self.delta_links.set(self.obj, SWEEP, page.delta_link)
        except DeltaLinkExpired:
            async for page in self.client.changes(self.obj, [pk], None):
                if page.delta_link:
                    self.delta_links.set(self.obj, SWEEP, page.delta_link)
        return deletions

    async def read_changes(self) -> AsyncIterator[list[MirrorRow]]:
        """Incremental read by change tracking: rows new or changed since the stored delta link, then rows
        deleted since (flagged ``deleted``). The next link is stored once the read completes."""
        link = self.delta_links.get(self.obj, CHANGES)
        try:
            pages = [page async for page in self.client.changes(self.obj, self.select, link)]
        except DeltaLinkExpired:
            pages = [page async for page in self.client.changes(self.obj, self.select, None)]
        now = datetime.now(UTC)
        for page in pages:
            rows = [to_row(self.obj, r) for r in page.records]
            rows += [MirrorRow(i, None, {}, deleted=True, deleted_at=now) for i in page.deleted]
            if rows:
                yield rows
            if page.delta_link:
                self.delta_links.set(self.obj, CHANGES, page.delta_link)


class DynamicsReference:
    """System users: a small reference table read whole on every run."""

    partitioned = False
    crm = "dynamics"

    def __init__(self, client: DynamicsClient, obj: str = "systemusers") -> None:
        self.client, self.obj = client, obj

    async def read_window(self, start: datetime, end: datetime) -> AsyncIterator[list[MirrorRow]]:
        async for page in self.client.iter_all(self.obj, SELECT[self.obj]):
            yield [to_row(self.obj, r) for r in page]

    async def count_window(self, start: datetime, end: datetime) -> int | None:
        return await self.client.count(self.obj)

    async def deleted_since(self, since: datetime) -> list[Deletion]:
        return []


def make_dynamics_source(
    client: DynamicsClient, obj: str, delta_links: DeltaLinks | None = None, extra: tuple[str, ...] = ()
) -> DynamicsObject | DynamicsReference:
    entry = catalog.get("dynamics", obj)
    if entry.partitioned:
        return DynamicsObject(client, obj, delta_links, extra)
    return DynamicsReference(client, obj)


class CursorDeltaLinks:
    """Delta links kept in the state database's cursors, so every process and run continues the same feed.

    Stored relative to the Web API's base URL (``contacts?$deltatoken=…``): a cursor never says where the
    connection lives, so a sandbox restarted on another port (or an org moved to a new host) continues the
    same feed. A link stored absolute by an older version is re-based onto today's base URL when read.
    """

    def __init__(self, engine: Engine, connection: str = "dynamics") -> None:
        self.engine, self.connection = engine, connection

    def get(self, obj: str, feed: str) -> str | None:
        link = get_cursor(self.engine, self.connection, obj, f"delta_link:{feed}")
        return None if link is None else relative_link(link)

    def set(self, obj: str, feed: str, link: str) -> None:
        set_cursor(self.engine, self.connection, obj, f"delta_link:{feed}", relative_link(link))


def relative_link(link: str) -> str:
    """``https://org…/api/data/v9.2/contacts?$deltatoken=…`` → ``contacts?$deltatoken=…`` (the client's
    HTTP layer resolves it against its own base URL)."""
    if "://" not in link:
        return link
    path = urlsplit(link)
    marker = path.path.find("/api/data/")
    if marker < 0:
        return link  # not a Web API link: kept as it is
    rest = path.path[marker + len("/api/data/") :].split("/", 1)  # drop the version segment
    relative = rest[1] if len(rest) == 2 else ""
    return f"{relative}?{path.query}" if path.query else relative
