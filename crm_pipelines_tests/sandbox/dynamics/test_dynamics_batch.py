"""$batch on the wire: multipart/mixed, change-set atomicity, Content-ID references, limits (FACTS §F)."""

from __future__ import annotations

import json
import uuid

from crm_pipelines_tests.sandbox.conftest import RunningSandbox
from crm_pipelines_tests.sandbox.dynamics.conftest import api

CRLF = "\r\n"


def part(method: str, url: str, body: dict | None = None, content_id: int | None = None,
         headers: dict[str, str] | None = None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"{method} {url} HTTP/1.1"]
    if body is not None:
        lines.append("Content-Type: application/json; type=entry")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines += ["", json.dumps(body) if body is not None else ""]
    return CRLF.join(lines) + CRLF


def multipart(boundary: str, parts: list[str]) -> str:
    return "".join(f"--{boundary}{CRLF}{p}" for p in parts) + f"--{boundary}--{CRLF}"


def changeset(parts: list[str]) -> str:
    inner = f"changeset_{uuid.uuid4().hex}"
    return f"Content-Type: multipart/mixed; boundary={inner}{CRLF}{CRLF}{multipart(inner, parts)}"


def send(client, parts: list[str], **headers: str):
    boundary = f"batch_{uuid.uuid4().hex}"
    return client.post("$batch", content=multipart(boundary, parts).encode(),
                       headers={"Content-Type": f'multipart/mixed; boundary="{boundary}"', **headers})


def responses(r) -> list[tuple[int, str]]:
    """(status, body) of every HTTP response inside the multipart answer, change sets flattened."""
    text = r.text.replace("\r\n", "\n")
    out = []
    for chunk in text.split("HTTP/1.1 ")[1:]:
        status = int(chunk[:3])
        body = chunk.split("\n\n", 1)[1].split("\n--", 1)[0].strip() if "\n\n" in chunk else ""
        out.append((status, body))
    return out


def count(client, name: str) -> int:
    return len(client.get("accounts", params={"$filter": f"name eq '{name}'"}).json()["value"])


def test_failing_request_rolls_back_its_changeset_only(dynamics: RunningSandbox) -> None:
    """Issue 4 "Done when": one failing request rolls back its change set only."""
    tag = uuid.uuid4().hex[:8]
    api_root = f"{dynamics.base_url}/api/data/v9.2/"
    with api(dynamics) as client:
        r = send(client, [
            changeset([part("POST", api_root + "accounts", {"name": f"kept {tag}"}, 1)]),
            changeset([
                part("POST", api_root + "accounts", {"name": f"rolled back {tag}"}, 2),
                part("POST", api_root + "accounts", {"name": f"bad {tag}", "nosuchcolumn": 1}, 3),
            ]),
            part("GET", api_root + "accounts?$top=1"),
        ], Prefer="odata.continue-on-error")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
        answers = responses(r)
        assert [s for s, _ in answers] == [204, 400, 200]
        assert json.loads(answers[1][1])["error"]["code"] == "0x80060888"
        assert count(client, f"kept {tag}") == 1
        assert count(client, f"rolled back {tag}") == 0
        assert count(client, f"bad {tag}") == 0


def test_batch_stops_at_first_failure_without_continue_on_error(dynamics: RunningSandbox) -> None:
    tag = uuid.uuid4().hex[:8]
    with api(dynamics) as client:
        r = send(client, [
            part("POST", "/api/data/v9.2/accounts", {"name": f"first {tag}"}),
            part("PATCH", "/api/data/v9.2/accounts(00000000-0000-0000-0000-0000000000bb)", {"name": "x"},
                 headers={"If-Match": "*"}),
            part("POST", "/api/data/v9.2/accounts", {"name": f"never {tag}"}),
        ])
        assert [s for s, _ in responses(r)] == [204, 404]
        assert count(client, f"first {tag}") == 1 and count(client, f"never {tag}") == 0


def test_content_id_references_and_metadata_inside_a_batch(dynamics: RunningSandbox) -> None:
    """A change set may use `$1` for the entity created as Content-ID 1; metadata reads work in a batch too."""
    tag = uuid.uuid4().hex[:8]
    with api(dynamics) as client:
        r = send(client, [
            changeset([
                part("POST", "accounts", {"name": f"Ref {tag}"}, 1),
                part("POST", "contacts", {"lastname": f"Ref{tag}", "parentcustomerid_account@odata.bind": "$1"}, 2),
                part("PATCH", "$1", {"telephone1": "+49 30 1234"}, 3),
            ]),
            part("GET", "EntityDefinitions(LogicalName='contact')?$select=LogicalName,ChangeTrackingEnabled"),
        ])
        answers = responses(r)
        assert [s for s, _ in answers] == [204, 204, 204, 200]
        assert json.loads(answers[3][1])["ChangeTrackingEnabled"] is True
        assert "Content-ID: 2" in r.text
        account = client.get("accounts", params={"$filter": f"name eq 'Ref {tag}'"}).json()["value"][0]
        assert account["telephone1"] == "+49 30 1234"
        contact = client.get("contacts", params={"$filter": f"lastname eq 'Ref{tag}'"}).json()["value"][0]
        assert contact["_parentcustomerid_value"] == account["accountid"]


def test_batch_limit_and_malformed_batches(dynamics: RunningSandbox) -> None:
    """FACTS §F: at most 1,000 requests per batch."""
    with api(dynamics) as client:
        too_many = send(client, [part("GET", "WhoAmI")] * 1001)
        assert too_many.status_code == 400 and "1000" in too_many.json()["error"]["message"]
        ok = send(client, [part("GET", "WhoAmI")] * 3)
        assert [s for s, _ in responses(ok)] == [200, 200, 200]
        not_multipart = client.post("$batch", json={"requests": []})
        assert not_multipart.status_code == 400 and not_multipart.json()["error"]["code"].startswith("0x")
