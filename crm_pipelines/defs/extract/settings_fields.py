"""The fields the settings name, beyond each object's standard list: the extract reads them too.

A custom field mapping (DEAL-1, CONF-6) names a field on both sides, and a cross-CRM rollup (ROLL-2) names
the contact field it is written to, whose current value the plan compares with (ROLL-3). Neither is in the
standard field lists of ``extract/{hubspot,salesforce,dynamics}.py``; without them the mirror would not hold
the values the transform maps and the plan compares, and the mapping would silently sync nothing. The
sources take them as a plain list (``extract/`` does not read the settings).

A field added to the settings reaches records extracted from then on; records read before keep no value
for it until they change or their partitions are extracted again (the README says how).
"""

from __future__ import annotations

from collections import defaultdict

from crm_pipelines import catalog
from crm_pipelines.settings import Settings
from crm_pipelines.settings.model import FieldRule

_ROLLUP_OBJECTS = {"hubspot": ("contacts",), "salesforce": ("Contact", "Lead")}


def settings_fields(settings: Settings) -> dict[tuple[str, str], tuple[str, ...]]:
    """``(crm, object)`` -> the fields the settings name on it, in the order first named."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)

    def add(crm: str, obj: str, field: str) -> None:
        if field not in out[(crm, obj)]:
            out[(crm, obj)].append(field)

    for crm in ("salesforce", "dynamics"):
        if not getattr(settings.connections, crm).enabled:
            continue
        for m in getattr(settings.sync, crm).field_mappings:
            if m.rule == FieldRule.DONT_SYNC:
                continue
            add(crm, m.object, m.other)
            paired = catalog.get(crm, m.object).hubspot_object
            if paired:
                add("hubspot", paired, m.hubspot)
    rollup_objects = {**_ROLLUP_OBJECTS, "dynamics": (f"{settings.sync.dynamics.contact_entity}s",)}
    for crm, objects in rollup_objects.items():
        if crm != "hubspot" and not getattr(settings.connections, crm).enabled:
            continue
        for field in getattr(settings.sync, crm).rollup_targets.fields().values():
            for obj in objects:
                add(crm, obj, field)
    return {key: tuple(fields) for key, fields in out.items()}
