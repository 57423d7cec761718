"""Which objects each CRM extracts (the catalog's), and the source that reads each."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from crm_pipelines import catalog
from crm_pipelines.extract import dynamics, salesforce
from crm_pipelines.extract.hubspot import HubSpotObject, HubSpotReference
from crm_pipelines.extract.sources import ObjectSource

# crm -> object -> partitioned by modification time (False: small reference data read whole each run)
EXTRACTED: dict[str, dict[str, bool]] = {
    crm: {o.name: o.partitioned for o in catalog.objects(crm, extracted=True)} for crm in catalog.CRMS
}


def make_source(crm: str, client: Any, obj: str, engine: Engine | None = None,
                extra: tuple[str, ...] = ()) -> ObjectSource:  # fmt: skip
    """``engine`` keeps change-feed positions (Dataverse delta links) between runs in the state database;
    ``extra``: fields the settings name on the object besides its standard ones (custom mappings, rollup
    targets), read too."""
    entry = catalog.get(crm, obj)
    if not entry.extracted:
        raise KeyError(f"{crm}.{obj} is read alongside other objects, not on its own")
    if crm == "salesforce":
        return salesforce.make_salesforce_source(client, obj, extra)
    if crm == "dynamics":
        return dynamics.make_dynamics_source(client, obj, dynamics.CursorDeltaLinks(engine) if engine else None,
                                             extra)  # fmt: skip
    return HubSpotObject(client, obj, extra) if entry.partitioned else HubSpotReference(client, obj)
