"""The ``unified`` asset checks over the stored tables, counted by the database: an incremental run reads
none of the whole tables (at a million people the rows behind these checks are about 200,000), only the
counts per group and a sample. ``transform/checks.py`` states the same checks over frames; a test keeps the
two equal."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.state import unified
from crm_pipelines.state.sql import side_by_side
from crm_pipelines.transform import checks
from crm_pipelines.transform.checks import CheckOutcome

UNMAPPED = ("unmapped_stage", "unmapped_pipeline")


def _cols(name: str, *cols: str) -> list[sa.Column]:
    return [unified.column(name, c) for c in cols]


def duplicate_emails(conn, n: int = checks.SAMPLE) -> CheckOutcome:
    name = "contact_findings"
    crm, email, key, reason = _cols(name, "crm", "email", "id", "reason")
    counts, sample = unified.tally(conn, name, None, [crm, reason], _cols(name, *unified.BY_NAME[name].names),
                                   [crm, email, key], n)
    return checks.outcome("duplicate_emails", counts, sample)


def contacts_without_valid_email(conn, n: int = checks.SAMPLE) -> CheckOutcome:
    name = "contact_members"
    crm, key, email, valid = _cols(name, "crm", "id", "email", "email_valid")
    problem = sa.case((email.is_(None), "missing"), else_="invalid").label("problem")
    counts, sample = unified.tally(conn, name, valid == sa.false(), [crm, problem],
                                   [*_cols(name, "crm", "type", "id", "email", "identity_id", "role"), problem],
                                   [crm, key], n)
    return checks.outcome("contacts_without_valid_email", counts, sample)


def unmapped_stages(conn, n: int = checks.SAMPLE) -> CheckOutcome:
    name = "deal_stages"
    crm, status, pipeline, stage = _cols(name, "crm", "status", "pipeline", "stage")
    bad = status.in_(UNMAPPED)
    counts, _ = unified.tally(conn, name, bad, [crm, status], [], [], 0)
    per_stage, _ = unified.tally(conn, name, bad, [crm, pipeline, stage], [], [], 0)
    sample = pd.DataFrame([(*k, v) for k, v in sorted(per_stage.items(), key=lambda kv: tuple(map(str, kv[0])))][:n],
                          columns=["crm", "pipeline", "stage", "deals"])
    return checks.outcome("unmapped_stages", counts, sample)


def failed_normalization(conn, n: int = checks.SAMPLE) -> CheckOutcome:
    name = "field_findings"
    crm, obj, key, field = _cols(name, "crm", "object", "id", "field")
    counts, sample = unified.tally(conn, name, None, [crm, field], _cols(name, *unified.BY_NAME[name].names),
                                   [crm, obj, key, field], n)
    return checks.outcome("failed_normalization", counts, sample)


CHECKS = (duplicate_emails, contacts_without_valid_email, unmapped_stages, failed_normalization)


def stored_checks(engine: Engine) -> dict[str, CheckOutcome]:
    """Every check's outcome. On PostgreSQL the checks run side by side, each on a connection of its own: they are
    the last work of every sync run's ``unified`` step, and each is mostly the server's time (0.05-0.1 s a check
    at a million people, on independent tables)."""
    found = side_by_side(engine, lambda conn, check: check(conn), CHECKS)
    return dict(zip((c.__name__ for c in CHECKS), found, strict=True))
