"""A record read again unchanged is not a change (issue 11: ``unified`` reads the mirror rows extracted since
its watermark, and every incremental extract re-reads a safety lag of recent records; after a bulk write those
re-reads made each sync run replan tens of thousands of records that had not changed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_pipelines.state import mirror

T1 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T2 = T1 + timedelta(minutes=3)


def _write(engine, rows: list[mirror.MirrorRow]) -> datetime:
    mirror.upsert_rows(engine, "hubspot", "contacts", rows)
    return mirror.last_extracted(engine, "hubspot", "contacts")


def _changed_since(engine, mark: datetime) -> list[str]:
    return sorted(mirror.read_records(engine, "hubspot", "contacts", after=mark)["id"])


def test_a_reread_of_the_same_version_leaves_the_row_and_its_stamp(state_engine) -> None:
    first = [mirror.MirrorRow("1", T1, {"properties": {"email": "a@x.com", "firstname": "Ann"}}),
             mirror.MirrorRow("2", T1, {"properties": {"email": "b@x.com", "firstname": "Bo"}}),
             mirror.MirrorRow("3", None, {"properties": {"email": "c@x.com"}})]  # fmt: skip
    mark = _write(state_engine, first)

    # the safety lag reads all three again, unchanged: nothing is stamped, so unified sees no change
    assert _write(state_engine, first) == mark
    assert _changed_since(state_engine, mark) == []

    # the same modification time with other content (a field the settings now read), a newer version, and a
    # record without a modification time whose content changed: each is rewritten and seen as changed
    mirror.upsert_rows(state_engine, "hubspot", "contacts", [
        mirror.MirrorRow("1", T1, {"properties": {"email": "a@x.com", "firstname": "Ann", "zip": "10115"}}),
        mirror.MirrorRow("2", T2, {"properties": {"email": "b@x.com", "firstname": "Bo"}}),
        mirror.MirrorRow("3", None, {"properties": {"email": "c@y.com"}}),
    ])  # fmt: skip
    assert _changed_since(state_engine, mark) == ["1", "2", "3"]
    stored = mirror.read_records(state_engine, "hubspot", "contacts").set_index("id")
    assert stored.loc["1", "zip"] == "10115" and stored.loc["3", "email"] == "c@y.com"

    # an older version read late (a slow run) never overwrites the newer one
    mark = mirror.last_extracted(state_engine, "hubspot", "contacts")
    late = mirror.MirrorRow("2", T1, {"properties": {"email": "b@x.com", "firstname": "Old"}})
    mirror.upsert_rows(state_engine, "hubspot", "contacts", [late])
    assert _changed_since(state_engine, mark) == []
    assert mirror.read_records(state_engine, "hubspot", "contacts").set_index("id").loc["2", "firstname"] == "Bo"


def test_a_deleted_record_read_live_again_is_restored(state_engine) -> None:
    row = mirror.MirrorRow("7", T1, {"properties": {"email": "d@x.com"}})
    _write(state_engine, [row])
    mirror.mark_deleted(state_engine, "hubspot", "contacts", [("7", T2)])
    mark = mirror.last_extracted(state_engine, "hubspot", "contacts")

    mirror.upsert_rows(state_engine, "hubspot", "contacts", [row])  # the CRM lists it again: restored

    assert _changed_since(state_engine, mark) == ["7"]
    assert mirror.counts(state_engine, "hubspot", "contacts") == {"live": 1, "deleted": 0}
