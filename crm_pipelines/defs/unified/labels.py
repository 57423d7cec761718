"""What the asset graph shows of the ``unified`` and ``writeback`` groups besides their names (issue 15): the
kinds that say what an asset touches, and the tags that say which CRMs it reads or writes.

A kind is drawn as an icon on the asset: a CRM's kind marks the assets about that CRM, its plan and its writes
(which call its API). The ``unified`` assets read the CRMs' records from the mirror tables, never their APIs, so
the CRMs they read are a tag there (``crm_pipelines/reads``), which the graph can be filtered by."""

from __future__ import annotations

import os

from crm_pipelines.settings import Settings
from crm_pipelines.settings.load import STATE_DB_ENV

CRMS = ("hubspot", "salesforce", "dynamics")
READS_TAG = "crm_pipelines/reads"
WRITES_TAG = "crm_pipelines/writes"


def state_kind(settings: Settings | None) -> set[str]:
    """``postgres`` or ``sqlite``: the state database the asset reads and writes (as the resources bind it:
    ``$CRM_PIPELINES_STATE_DB_URL`` over the settings); empty when unknown."""
    url = os.environ.get(STATE_DB_ENV) or (settings.state_database_url if settings is not None else "")
    if url.startswith("postgresql"):
        return {"postgres"}
    return {"sqlite"} if url.startswith("sqlite") else set()


def enabled_crms(settings: Settings | None) -> list[str]:
    return [crm for crm in CRMS if settings is None or getattr(settings.connections, crm).enabled]


def reads_tags(crms: list[str]) -> dict[str, str]:
    """A tag naming the CRMs whose mirrored records the asset reads (tag values allow no spaces or commas)."""
    return {READS_TAG: "-".join(crms)} if crms else {}
