"""Pipelines, owners, properties, and the older endpoints existing HubSpot tools still call.

Older ones: properties v2, deal pipelines v1 and OAuth token introspection, plus the OAuth token endpoint
(refresh-token grant) so a client's token refresh can be exercised.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_pipelines.sandbox.hubspot import errors
from crm_pipelines.sandbox.hubspot.api import Context, endpoint, flag, json_body, resolve
from crm_pipelines.sandbox.hubspot.catalog import OAUTH_ACCESS_TOKEN_TTL_S, PropertyDef
from crm_pipelines.sandbox.hubspot.values import iso_ms, parse_timestamp_ms

PORTAL_ID = 48_151_623
OAUTH_APP = "oauth-app"
PRIVATE_APP = "private-app"
SCOPES = [
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.owners.read",
    "crm.schemas.contacts.read",
    "crm.schemas.companies.read",
    "crm.schemas.deals.read",
    "crm.schemas.contacts.write",
    "oauth",
]
PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool"}
FIELD_TYPES = {
    "textarea",
    "text",
    "date",
    "file",
    "number",
    "select",
    "radio",
    "checkbox",
    "booleancheckbox",
    "calculation_equation",
}


def _epoch_ms(iso: str) -> int:
    return parse_timestamp_ms(iso) or 0


def _pipeline_not_found(pipeline_id: str) -> errors.HubSpotError:
    return errors.HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find pipeline {pipeline_id}")


class MetaApi:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.portal = ctx.portal
        self.store = ctx.portal.store

    def routes(self) -> list[Route]:
        e = lambda h, **kw: endpoint(self.ctx, h, **kw)  # noqa: E731
        pipes = "/crm/v3/pipelines/{object_type}"
        props = "/crm/v3/properties/{object_type}"
        return [
            Route(pipes, e(self.list_pipelines), methods=["GET"]),
            Route(pipes, e(self.create_pipeline), methods=["POST"]),
            Route(pipes + "/{pipeline_id}", e(self.get_pipeline), methods=["GET"]),
            Route(pipes + "/{pipeline_id}/stages", e(self.list_stages), methods=["GET"]),
            Route(pipes + "/{pipeline_id}/stages", e(self.create_stage), methods=["POST"]),
            Route(pipes + "/{pipeline_id}/stages/{stage_id}", e(self.get_stage), methods=["GET"]),
            Route("/crm/v3/owners", e(self.list_owners), methods=["GET"]),
            Route("/crm/v3/owners/", e(self.list_owners), methods=["GET"]),
            Route("/crm/v3/owners/{owner_id}", e(self.get_owner), methods=["GET"]),
            Route(props, e(self.list_properties), methods=["GET"]),
            Route(props, e(self.create_property), methods=["POST"]),
            Route(props + "/{name}", e(self.get_property), methods=["GET"]),
            Route(props + "/{name}", e(self.archive_property), methods=["DELETE"]),
            Route("/properties/v2/{object_type}/properties", e(self.list_properties_v2), methods=["GET"]),
            Route("/crm-pipelines/v1/pipelines/{object_type}", e(self.list_pipelines_v1), methods=["GET"]),
            # the documented path and the one HubSpot's SDK (12.x) calls
            *(
                Route(base, e(handler), methods=["GET"])
                for prefix in ("/crm/v3/schemas", "/crm-object-schemas/v3/schemas")
                for base, handler in ((prefix, self.list_schemas), (prefix + "/{object_type}", self.get_schema))
            ),
            Route("/oauth/v1/access-tokens/{token}", e(self.introspect, auth=False), methods=["GET"]),
            Route("/oauth/v1/token", e(self.token, auth=False), methods=["POST"]),
        ]

    # -- pipelines ----------------------------------------------------------------------------------
    def _pipelines(self, request: Request) -> list[dict]:
        o = resolve(request)
        if o.name != "deals":
            return []
        return self.store.pipelines("deals")

    def _pipeline(self, request: Request) -> dict:
        pid = request.path_params["pipeline_id"]
        for p in self._pipelines(request):
            if p["id"] == pid:
                return p
        raise _pipeline_not_found(pid)

    async def list_pipelines(self, request: Request) -> Response:
        return errors.json_response({"results": self._pipelines(request)})

    async def get_pipeline(self, request: Request) -> Response:
        return errors.json_response(self._pipeline(request))

    async def list_stages(self, request: Request) -> Response:
        return errors.json_response({"results": self._pipeline(request)["stages"]})

    async def get_stage(self, request: Request) -> Response:
        sid = request.path_params["stage_id"]
        for stage in self._pipeline(request)["stages"]:
            if stage["id"] == sid:
                return errors.json_response(stage)
        raise errors.HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find stage {sid}")

    @staticmethod
    def _stage(spec: dict[str, Any], stamp: str, index: int) -> dict[str, Any]:
        metadata = {k: str(v) for k, v in (spec.get("metadata") or {}).items()}
        if "probability" not in metadata:
            raise errors.validation("Deal stages require metadata.probability (0.0 to 1.0)")
        metadata.setdefault("isClosed", "true" if float(metadata["probability"]) in (0.0, 1.0) else "false")
        return {
            "id": str(spec.get("id") or 1_000_000_000 + secrets.randbelow(1_000_000_000)),
            "label": spec["label"],
            "displayOrder": int(spec.get("displayOrder", index)),
            "metadata": metadata,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
        }

    async def create_pipeline(self, request: Request) -> Response:
        if resolve(request).name != "deals":
            raise errors.validation("The sandbox serves deal pipelines only")
        body = await json_body(request)
        if not body.get("label") or not body.get("stages"):
            raise errors.validation("A pipeline needs a label and at least one stage")
        existing = self.store.pipelines("deals")
        if any(p["label"] == body["label"] for p in existing):
            raise errors.HubSpotError(
                409, "OBJECT_ALREADY_EXISTS", f"A pipeline labelled {body['label']} already exists"
            )
        stamp = iso_ms(int(time.time() * 1000))
        pipeline = {
            "id": str(80_000_000 + len(existing) + secrets.randbelow(1_000_000)),
            "label": body["label"],
            "displayOrder": int(body.get("displayOrder", len(existing))),
            "stages": [self._stage(s, stamp, i) for i, s in enumerate(body["stages"])],
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }
        self.store.put_pipeline("deals", pipeline)
        return errors.json_response(pipeline, 201)

    async def create_stage(self, request: Request) -> Response:
        pipeline = self._pipeline(request)
        stamp = iso_ms(int(time.time() * 1000))
        stage = self._stage(await json_body(request), stamp, len(pipeline["stages"]))
        pipeline["stages"].append(stage)
        pipeline["updatedAt"] = stamp
        self.store.put_pipeline("deals", pipeline)
        return errors.json_response(stage, 201)

    async def list_pipelines_v1(self, request: Request) -> Response:
        results = []
        for p in self._pipelines(request):
            results.append(
                {
                    "pipelineId": p["id"],
                    "objectType": "DEAL",
                    "objectTypeId": "0-3",
                    "label": p["label"],
                    "displayOrder": p["displayOrder"],
                    "active": not p["archived"],
                    "default": p["id"] == "default",
                    # Legacy APIs stamp in epoch ms; Airbyte's HubSpot source reads both keys of v1 pipelines.
                    "createdAt": _epoch_ms(p["createdAt"]),
                    "updatedAt": _epoch_ms(p["updatedAt"]),
                    "stages": [
                        {
                            "stageId": s["id"],
                            "label": s["label"],
                            "displayOrder": s["displayOrder"],
                            "metadata": s["metadata"],
                            "active": not s["archived"],
                            "createdAt": _epoch_ms(s["createdAt"]),
                            "updatedAt": _epoch_ms(s["updatedAt"]),
                        }
                        for s in p["stages"]
                    ],
                }
            )
        return errors.json_response({"results": results})

    # -- custom object schemas: a portal without custom objects ------------------------------------
    async def list_schemas(self, request: Request) -> Response:
        return errors.json_response({"results": []})

    async def get_schema(self, request: Request) -> Response:
        raise errors.HubSpotError(
            404, "OBJECT_NOT_FOUND", f"Unable to find object schema {request.path_params['object_type']}"
        )

    # -- owners -------------------------------------------------------------------------------------
    @staticmethod
    def _owner(row: tuple) -> dict[str, Any]:
        oid, email, first, last, user_id, created, updated, archived = row
        return {
            "id": str(oid),
            "email": email,
            "firstName": first,
            "lastName": last,
            "type": "PERSON",
            "userId": user_id,
            "userIdIncludingInactive": user_id,
            "createdAt": iso_ms(created),
            "updatedAt": iso_ms(updated),
            "archived": bool(archived),
            "teams": [],
        }

    async def list_owners(self, request: Request) -> Response:
        rows = self.store.owners(archived=flag(request, "archived"))
        email = request.query_params.get("email")
        if email:
            rows = [r for r in rows if r[1].lower() == email.strip().lower()]
        limit = min(int(request.query_params.get("limit", 100)), 500)
        after = int(request.query_params.get("after") or 0)
        rows = [r for r in rows if r[0] > after]
        body: dict[str, Any] = {"results": [self._owner(r) for r in rows[:limit]]}
        if len(rows) > limit:
            body["paging"] = {"next": {"after": str(rows[limit - 1][0])}}
        return errors.json_response(body)

    async def get_owner(self, request: Request) -> Response:
        key = request.path_params["owner_id"]
        by_user = request.query_params.get("idProperty") == "userId"
        for row in self.store.owners(archived=flag(request, "archived")):
            if str(row[4] if by_user else row[0]) == key:
                return errors.json_response(self._owner(row))
        raise errors.not_found(key)

    # -- properties ---------------------------------------------------------------------------------
    def _property(self, object_type: str, p: PropertyDef, archived_at: str | None = None) -> dict[str, Any]:
        options = self.portal.option_list(p)
        body = {
            "name": p.name,
            "label": p.label,
            "type": p.type,
            "fieldType": p.field_type,
            "description": p.description,
            "groupName": p.group_name,
            "options": [
                {"label": label, "value": value, "displayOrder": i, "hidden": False}
                for i, (value, label) in enumerate(options)
            ],
            "displayOrder": -1,
            "calculated": p.calculated,
            "externalOptions": bool(p.extra),
            "hasUniqueValue": p.unique,
            "hidden": False,
            "hubspotDefined": p.hubspot_defined,
            "formField": not p.read_only,
            "archived": archived_at is not None,
            "modificationMetadata": {
                "archivable": not p.hubspot_defined,
                "readOnlyDefinition": p.hubspot_defined,
                "readOnlyValue": p.read_only,
            },
            "createdAt": "2019-08-06T02:43:14.491Z",
            "updatedAt": "2019-08-06T02:43:14.491Z",
        }
        if archived_at is not None:
            body["archivedAt"] = archived_at
        return body

    async def list_properties(self, request: Request) -> Response:
        """``archived=true`` lists only the recycle bin, as HubSpot's own parameter does."""
        o = resolve(request)
        if flag(request, "archived"):
            archived = self.portal.archived_properties(o.name).values()
            return errors.json_response({"results": [self._property(o.name, p, at) for p, at in archived]})
        return errors.json_response(
            {"results": [self._property(o.name, p) for p in self.portal.properties(o.name).values()]}
        )

    async def get_property(self, request: Request) -> Response:
        o = resolve(request)
        name = request.path_params["name"]
        if flag(request, "archived"):
            found = self.portal.archived_properties(o.name).get(name)
            if found is not None:
                return errors.json_response(self._property(o.name, *found))
        p = self.portal.properties(o.name).get(name)
        if p is None:
            raise errors.HubSpotError(404, "OBJECT_NOT_FOUND", f"property {name} does not exist")
        return errors.json_response(self._property(o.name, p))

    async def archive_property(self, request: Request) -> Response:
        self.portal.archive_property(resolve(request).name, request.path_params["name"])
        return Response(status_code=204)

    async def create_property(self, request: Request) -> Response:
        o = resolve(request)
        body = await json_body(request)
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise errors.validation(f"Missing required fields: {', '.join(missing)}")
        if body["type"] not in PROPERTY_TYPES or body["fieldType"] not in FIELD_TYPES:
            raise errors.validation(f"Invalid type/fieldType combination {body['type']}/{body['fieldType']}")
        # a name in the recycle bin stays taken (unverified; restoring it is a UI action the sandbox lacks)
        if body["name"] in self.portal.properties(o.name) or body["name"] in self.portal.archived_properties(o.name):
            raise errors.HubSpotError(409, "OBJECT_ALREADY_EXISTS", f"Property named '{body['name']}' already exists.")
        definition = {
            k: body[k]
            for k in ("name", "label", "type", "fieldType", "groupName", "description", "options", "hasUniqueValue")
            if k in body
        }
        self.store.put_custom_property(o.name, body["name"], definition)
        return errors.json_response(self._property(o.name, self.portal.properties(o.name)[body["name"]]), 201)

    async def list_properties_v2(self, request: Request) -> Response:
        o = resolve(request)
        out = []
        for p in self.portal.properties(o.name).values():
            v3 = self._property(o.name, p)
            out.append(
                {
                    "name": p.name,
                    "label": p.label,
                    "description": p.description,
                    "groupName": p.group_name,
                    "type": p.type,
                    "fieldType": p.field_type,
                    "options": v3["options"],
                    "readOnlyValue": p.read_only,
                    "readOnlyDefinition": p.hubspot_defined,
                    "hidden": False,
                    "calculated": p.calculated,
                    "externalOptions": v3["externalOptions"],
                    "deleted": False,
                    "hubspotDefined": p.hubspot_defined,
                    "formField": v3["formField"],
                    "displayOrder": -1,
                    "hasUniqueValue": p.unique,
                    "mutableDefinitionNotDeletable": p.hubspot_defined,
                    "createdAt": 0,
                    "updatedAt": 0,
                }
            )
        return errors.json_response(out)

    # -- OAuth --------------------------------------------------------------------------------------
    async def introspect(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = self.store.token(token)
        if found is None or found[0] == "oauth_refresh":
            raise errors.HubSpotError(404, "OBJECT_NOT_FOUND", "Token not found")
        kind, _app, scopes, expires_ms = found
        now = int(time.time() * 1000)
        if expires_ms is not None and expires_ms <= now:
            raise errors.expired((now - expires_ms) // 1000, iso_ms(expires_ms))
        return errors.json_response(
            {
                "token": token,
                "user": "sandbox-admin@example.com",
                "hub_domain": "sandbox.hubspot.local",
                "scopes": scopes,
                "hub_id": PORTAL_ID,
                "app_id": 1_234_567 if kind == "oauth_access" else None,
                "expires_in": None if expires_ms is None else (expires_ms - now) // 1000,
                "user_id": 7_654_321,
                "token_type": "access",
            }
        )

    async def token(self, request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "refresh_token":
            return self._oauth_error("UNSUPPORTED_GRANT_TYPE", "grant_type must be refresh_token")
        client = self.store.get_meta("oauth_client") or {}
        if form.get("client_id") != client.get("client_id") or form.get("client_secret") != client.get("client_secret"):
            return self._oauth_error("BAD_CLIENT_ID", "missing or invalid client id or secret")
        refresh = str(form.get("refresh_token") or "")
        found = self.store.token(refresh)
        if found is None or found[0] != "oauth_refresh":
            return self._oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        access = new_token("oauth")
        self.store.put_token(
            access, "oauth_access", OAUTH_APP, SCOPES, int(time.time() * 1000) + OAUTH_ACCESS_TOKEN_TTL_S * 1000
        )
        return errors.json_response(
            {
                "token_type": "bearer",
                "refresh_token": refresh,
                "access_token": access,
                "expires_in": OAUTH_ACCESS_TOKEN_TTL_S,
            }
        )

    @staticmethod
    def _oauth_error(status: str, message: str) -> Response:
        return errors.json_response(
            {"status": status, "message": message, "correlationId": errors.correlation_id()}, 400
        )


def new_token(kind: str) -> str:
    """Random per data directory: the sandbox's credentials are its own, never a real portal's."""
    if kind == "private":
        return f"pat-sandbox-{secrets.token_hex(16)}"
    return f"sandbox-{kind}-{secrets.token_urlsafe(24)}"
