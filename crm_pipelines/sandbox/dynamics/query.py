"""Reading tables: collections with paging, single records, ``$expand``, and change tracking (FACTS §C, §G).

Pages are keyset pages: the skiptoken's paging cookie holds the last row's ``$orderby`` values and primary
key, so page 200 of a million rows costs what page 1 costs. Change tracking reads the organization-wide
``versionnumber``: a delta token is ``<version>!<MM/dd/yyyy HH:mm:ss>``; following it returns rows
written after that version, then tombstones of rows deleted after it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from crm_pipelines.sandbox.dynamics import errors
from crm_pipelines.sandbox.dynamics.catalog import BY_LOGICAL, CHANGE_TRACKING_DAYS, COUNT_MAX, PAGE_MAX, Table
from crm_pipelines.sandbox.dynamics.messages import ApiRequest, ApiResponse
from crm_pipelines.sandbox.dynamics.odata import (
    FilterCompiler,
    Prefer,
    make_skiptoken,
    parse_expand,
    parse_orderby,
    parse_prefer,
    parse_select,
    read_skiptoken,
)
from crm_pipelines.sandbox.dynamics.render import JsonRows, Renderer, target_of
from crm_pipelines.sandbox.dynamics.store import DynamicsStore

TOTAL_COUNT = "Microsoft.Dynamics.CRM.totalrecordcount"
TOTAL_COUNT_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
_SUPPORTED = {"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$skiptoken", "$deltatoken"}


class Reader:
    def __init__(self, store: DynamicsStore, api_url: str) -> None:
        self.store = store
        self.api_url = api_url  # e.g. https://127.0.0.1:8472/api/data/v9.2

    def context(self, table: Table, select: list[str] | None, suffix: str = "") -> str:
        cols = f"({','.join(select)})" if select else ""
        return f"{self.api_url}/$metadata#{table.entity_set}{cols}{suffix}"

    # -- one record -------------------------------------------------------------------------------------
    def retrieve(self, table: Table, record_id: str, req: ApiRequest) -> ApiResponse:
        row = self.store.get(table, record_id)
        if row is None:
            raise errors.not_found(table.logical_name, record_id)
        select = parse_select(table, req.query.get("$select"))
        prefer = parse_prefer(req.header("prefer"))
        etag_wanted = req.header("if-none-match")
        if etag_wanted and etag_wanted == f'W/"{row["versionnumber"]}"':
            return ApiResponse(304, None)  # conditional retrieval: unchanged since the client's copy
        renderer = Renderer(self.store, table, select, prefer)
        body = {"@odata.context": self.context(table, select, "/$entity"),
                **self.render(renderer, [row], req.query.get("$expand"))[0]}
        return ApiResponse(200, body, {"ETag": body["@odata.etag"]})

    def render(self, renderer: Renderer, rows: list[dict[str, Any]], expand: str | None) -> list[dict[str, Any]]:
        table, prefer = renderer.table, renderer.prefer
        out = renderer.rows(rows)
        for item in parse_expand(expand):
            nav = table.nav(item.name)
            if nav is None:
                raise errors.no_property(item.name, table.logical_name)
            target = BY_LOGICAL[nav.target]
            attr = table.by_name[nav.attribute]
            sub_select = parse_select(target, item.options.get("$select"))
            targets = [target_of(attr, r) for r in rows]
            ids = sorted({r[attr.column] for r, t in zip(rows, targets, strict=True) if t == nav.target})
            related = self.store.get_many(target, ids)
            sub = Renderer(self.store, target, sub_select, prefer)
            for raw, rendered, t in zip(rows, out, targets, strict=True):
                hit = related.get(raw.get(attr.column) or "") if t == nav.target else None
                rendered[item.name] = sub.rows([hit])[0] if hit else None
        return out

    # -- collections -----------------------------------------------------------------------------------
    def list(self, table: Table, req: ApiRequest) -> ApiResponse:
        q = req.query
        if "$skip" in q:
            raise errors.bad_request("The query parameter $skip is not supported.", errors.PROPERTY_NOT_FOUND)
        if "sql" in q or "fetchXml" in q:  # the SDK's query.sql / fetchxml (FACTS §A10) are not emulated
            raise errors.bad_request("The sandbox does not run Dataverse SQL or FetchXML queries; use $filter.")
        unknown = [k for k in q if k.startswith("$") and k not in _SUPPORTED]
        if unknown:
            raise errors.bad_request(f"The query parameter {unknown[0]} is not supported.", errors.PROPERTY_NOT_FOUND)
        prefer = parse_prefer(req.header("prefer"))
        select = parse_select(table, q.get("$select"))
        page, state = read_skiptoken(q["$skiptoken"]) if "$skiptoken" in q else (1, {})
        # Later pages of a tracked read carry the snapshot version in their cookie, not the Prefer header.
        tracking = prefer.track_changes or "$deltatoken" in q or "s" in state
        if tracking:
            for option in ("$filter", "$orderby", "$expand", "$top"):
                if option in q:
                    raise errors.bad_request(
                        f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.'
                    )
        if "$deltatoken" in q:
            return self.delta(table, req, select, prefer)
        page_size = min(prefer.maxpagesize or PAGE_MAX, PAGE_MAX)
        top = _int_option(q, "$top")
        order = [*parse_orderby(table, q.get("$orderby")), (table.primary_id, False)]
        where, params = ["1=1"], []
        if q.get("$filter"):
            sql, ps = FilterCompiler(table).compile(q["$filter"])
            where.append(sql)
            params += ps
        page_where, page_params = list(where), list(params)
        if "$skiptoken" in q:
            sql, ps = _keyset(order, state.get("k", []))
            page_where.append(sql)
            page_params += ps
        limit = min(top, PAGE_MAX) if top is not None else page_size
        renderer = Renderer(self.store, table, select, prefer)
        values, last, more = self._page(renderer, " AND ".join(page_where), page_params, order, limit,
                                        q.get("$expand"))
        more = more and top is None
        body: dict[str, Any] = {"@odata.context": self.context(table, select)}
        headers: dict[str, str] = {}
        if prefer.maxpagesize:
            headers["Preference-Applied"] = f"odata.maxpagesize={page_size}"
        if q.get("$count", "").lower() == "true":
            total = self._count(table, where, params)
            body["@odata.count"] = min(total, COUNT_MAX)
            if prefer.wants(TOTAL_COUNT):
                body[f"@{TOTAL_COUNT}"] = total if total <= COUNT_MAX else -1
            if prefer.wants(TOTAL_COUNT_EXCEEDED):
                body[f"@{TOTAL_COUNT_EXCEEDED}"] = total > COUNT_MAX
        snapshot = state.get("s") if state else None
        if tracking and snapshot is None:
            snapshot = self.store.current_version()
        body["value"] = _value(values)
        if more:
            next_state: dict[str, Any] = {"k": last}
            if tracking:
                next_state["s"] = snapshot
            token = make_skiptoken(page + 1, next_state, tracking)
            body["@odata.nextLink"] = self._link(table, req, {"$skiptoken": token})
        elif tracking:
            headers["Preference-Applied"] = "odata.track-changes"
            body["@odata.deltaLink"] = self._link(table, req, {"$deltatoken": delta_token(snapshot or 0)})
        return ApiResponse(200, body, headers)

    def _page(self, renderer: Renderer, where: str, params: list[Any], order: list[tuple[str, bool]], limit: int,
              expand: str | None) -> tuple[list[dict[str, Any]] | JsonRows, list[Any] | None, bool]:
        """Up to ``limit`` rendered rows in ``order``, the last one's ``order`` values (the next page's keyset
        cursor) and whether more rows follow.

        Plain rows (no annotations, no ``$expand``: what a sync asks for) are rendered by SQLite as JSON,
        reading only the selected columns; a 5,000-row page then costs a few Python objects per row instead
        of one per stored value plus a dict per row rendered attribute by attribute.
        """
        table = renderer.table
        order_sql = ", ".join(f"{c} {'DESC' if d else 'ASC'}" for c, d in order)
        if renderer.plain and not expand:
            keys = [c for c, _ in order]  # the keyset columns, after the row's JSON
            pk, source = table.primary_id, table.entity_set
            if keys == [pk]:  # a walk of the primary key, which is the table's own order
                sql = f"SELECT {renderer.json_sql()}, {pk} FROM {source} WHERE {where} ORDER BY {order_sql} LIMIT ?"
            else:
                # Pick the page's keys first (from an index when one covers the filter and order, as for
                # modifiedon windows and change tracking), then read those rows in key order, which is
                # cache-friendly: fetching rows in index order jumps around the table and costs ~1.5x. It also
                # keeps rows outside the page from being rendered when the order needs a sort.
                sql = (f"SELECT {renderer.json_sql()}, {', '.join(keys)} FROM {source} WHERE {pk} IN "
                       f"(SELECT {pk} FROM {source} WHERE {where} ORDER BY {order_sql} LIMIT ?) ORDER BY {order_sql}")
            rows = self.store.db.execute(sql, (*params, limit + 1)).fetchall()
            more = len(rows) > limit
            del rows[limit:]
            last = list(rows[-1][1:]) if rows else None
            return JsonRows([r[0] for r in rows]), last, more
        stored = self._select(table, where, params, order_sql, limit + 1)
        more = len(stored) > limit
        del stored[limit:]
        last = [stored[-1][c] for c, _ in order] if stored else None
        return self.render(renderer, stored, expand), last, more

    def _select(self, table: Table, where: str, params: list[Any], order_sql: str,
                limit: int) -> list[dict[str, Any]]:
        cols = self.store.columns(table)
        cur = self.store.db.execute(
            f"SELECT {', '.join(cols)} FROM {table.entity_set} WHERE {where} ORDER BY {order_sql} LIMIT ?",
            (*params, limit),
        )
        return [dict(zip(cols, r, strict=True)) for r in cur]

    def _count(self, table: Table, where: list[str], params: list[Any]) -> int:
        # One past the cap is enough to say "more than 5,000" (FACTS §C), and stays fast on a million rows.
        sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM {table.entity_set} WHERE {' AND '.join(where)} LIMIT ?)"
        return self.store.db.execute(sql, (*params, COUNT_MAX + 1)).fetchone()[0]

    def _link(self, table: Table, req: ApiRequest, extra: dict[str, str]) -> str:
        """An absolute link repeating the caller's options (the SDK GETs nextLink verbatim, FACTS §A8)."""
        kept = {k: v for k, v in req.query.items() if k not in ("$skiptoken", "$deltatoken")}
        query = urlencode({**kept, **extra}, quote_via=quote, safe="$,()'")
        return f"{self.api_url}/{table.entity_set}?{query}"

    # -- change tracking -------------------------------------------------------------------------------
    def delta(self, table: Table, req: ApiRequest, select: list[str] | None, prefer: Prefer) -> ApiResponse:
        since = read_delta_token(req.query["$deltatoken"])
        page_size = min(prefer.maxpagesize or PAGE_MAX, PAGE_MAX)
        page, state = (read_skiptoken(req.query["$skiptoken"]) if "$skiptoken" in req.query
                       else (1, {"s": self.store.current_version(), "p": 0, "k": since}))
        snapshot, phase, after = state["s"], state["p"], state["k"]
        rows: list[dict[str, Any]] | JsonRows = []
        if phase == 0:
            renderer = Renderer(self.store, table, select, prefer)
            rows, last, more = self._page(renderer, "versionnumber > ? AND versionnumber <= ?", [after, snapshot],
                                          [("versionnumber", False)], page_size, None)
            if more:
                assert last is not None
                return self._delta_page(table, req, select, _value(rows), page, snapshot, 0, last[0])
            phase, after = 1, since
        left = page_size - len(rows)
        gone = self.store.db.execute(
            "SELECT id, versionnumber FROM tombstones WHERE entity_set = ? AND versionnumber > ? "
            "AND versionnumber <= ? ORDER BY versionnumber LIMIT ?",
            (table.entity_set, after, snapshot, left + 1),
        ).fetchall()
        deleted_context = f"{self.api_url}/$metadata#{table.entity_set}/$deletedEntity"
        deleted = [{"@odata.context": deleted_context, "id": rid, "reason": "deleted"} for rid, _ in gone[:left]]
        values = _value(rows, deleted)
        if len(gone) > left:
            return self._delta_page(table, req, select, values, page, snapshot, 1, gone[left - 1][1])
        body = {"@odata.context": self.context(table, select, "/$delta"), "value": values,
                "@odata.deltaLink": self._link(table, req, {"$deltatoken": delta_token(snapshot)})}
        return ApiResponse(200, body, {"Preference-Applied": "odata.track-changes"})

    def _delta_page(self, table: Table, req: ApiRequest, select: list[str] | None,
                    values: list[dict[str, Any]] | orjson.Fragment, page: int, snapshot: int, phase: int,
                    last: int) -> ApiResponse:
        token = make_skiptoken(page + 1, {"s": snapshot, "p": phase, "k": last}, True)
        body = {"@odata.context": self.context(table, select, "/$delta"), "value": values,
                "@odata.nextLink": self._link(table, req, {"$deltatoken": req.query["$deltatoken"],
                                                           "$skiptoken": token})}
        return ApiResponse(200, body, {"Preference-Applied": "odata.track-changes"})


def _value(rows: list[dict[str, Any]] | JsonRows,
           more: list[dict[str, Any]] | None = None) -> list[dict[str, Any]] | orjson.Fragment:
    """A body's ``value``: the page's rows, then ``more`` (a delta's deleted entities)."""
    if isinstance(rows, JsonRows):
        return rows.fragment(more or ())
    return [*rows, *(more or ())]


def _keyset(order: list[tuple[str, bool]], values: list[Any]) -> tuple[str, list[Any]]:
    """Rows strictly after ``values`` in ``order``; NULLs sort first ascending, last descending (as SQL Server)."""
    if len(values) != len(order):
        raise errors.bad_request("The $skiptoken does not belong to this query.")
    ors, params = [], []
    for i, ((col, desc), value) in enumerate(zip(order, values, strict=True)):
        parts = []
        for (prev, _), pv in zip(order[:i], values[:i], strict=True):
            parts.append(f"{prev} IS ?")
            params.append(pv)
        if value is None:
            if desc:
                continue  # nothing sorts after NULL descending except equal NULLs, handled at the next level
            parts.append(f"{col} IS NOT NULL")
        elif desc:
            parts.append(f"({col} < ? OR {col} IS NULL)")
            params.append(value)
        else:
            parts.append(f"{col} > ?")
            params.append(value)
        ors.append("(" + " AND ".join(parts) + ")")
    return "(" + (" OR ".join(ors) or "0") + ")", params


def _int_option(q: dict[str, str], name: str) -> int | None:
    if name not in q:
        return None
    try:
        value = int(q[name])
    except ValueError:
        raise errors.bad_request(f"Invalid value '{q[name]}' for {name}.") from None
    if value < 0:
        raise errors.bad_request(f"Invalid value '{q[name]}' for {name}.")
    return value


def delta_token(version: int, now: dt.datetime | None = None) -> str:
    when = (now or dt.datetime.now(dt.UTC)).strftime("%m/%d/%Y %H:%M:%S")
    return f"{version}!{when}"


def read_delta_token(token: str) -> int:
    version, _, when = token.partition("!")
    try:
        issued = dt.datetime.strptime(when, "%m/%d/%Y %H:%M:%S").replace(tzinfo=dt.UTC)
        number = int(version)
    except ValueError:
        raise errors.bad_request(f"The delta token '{token}' is not valid.") from None
    if dt.datetime.now(dt.UTC) - issued > dt.timedelta(days=CHANGE_TRACKING_DAYS):
        raise errors.bad_request(
            f"The delta token has expired: changes are kept {CHANGE_TRACKING_DAYS} days. "
            "Synchronize again without a delta token."
        )
    return number
