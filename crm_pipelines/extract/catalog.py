"""Which objects each CRM extracts, and the source that reads each."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from crm_pipelines.extract import dynamics, salesforce
from crm_pipelines.extract.hubspot import HubSpotObject, HubSpotReference
from crm_pipelines.extract.sources import ObjectSource

# object -> partitioned by modification time (False: small reference data read whole each run)
EXTRACTED: dict[str, dict[str, bool]] = {
    "hubspot": {"contacts": True, "companies": True, "deals": True, "pipelines": False, "owners": False},
    "salesforce": dict(salesforce.PARTITIONED),
    "dynamics": dict(dynamics.PARTITIONED),
}


def make_source(crm: str, client: Any, obj: str, engine: Engine | None = None) -> ObjectSource:
    """``engine`` keeps change-feed positions (Dataverse delta links) between runs in the state database."""
    if crm == "salesforce":
        return salesforce.make_salesforce_source(client, obj)
    if crm == "dynamics":
        return dynamics.make_dynamics_source(client, obj, dynamics.CursorDeltaLinks(engine) if engine else None)
    if crm == "hubspot":
        return HubSpotObject(client, obj) if EXTRACTED[crm][obj] else HubSpotReference(client, obj)
    raise KeyError(f"no extraction source for {crm}.{obj}")
