"""The mirror tables as the transform layer's input frames (``crm_pipelines.transform.frames.Mirrors``)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from sqlalchemy.engine import Engine

from crm_pipelines import catalog
from crm_pipelines.settings import Settings
from crm_pipelines.state import mirror
from crm_pipelines.state.schema import MIRROR_TABLES
from crm_pipelines.transform.fields import DEFAULT_FIELDS, FieldMap
from crm_pipelines.transform.frames import Mirrors
from crm_pipelines.transform.pipeline import TransformSettings
from crm_pipelines.transform.stages import PipelineMapping, StageSettings


def _hubspot_stages(pipelines: pd.DataFrame) -> pd.DataFrame:
    """HubSpot pipelines are mirrored one row per pipeline; the transform wants one row per stage."""
    rows = []
    for record in pipelines[~pipelines["deleted"]].to_dict("records") if len(pipelines) else []:
        pipeline_id = str(record["id"]).split(":", 1)[-1]  # mirrored as "<object type>:<pipeline id>"
        for stage in record.get("stages") or []:
            meta = stage.get("metadata") or {}
            rows.append(
                {
                    "id": f"{pipeline_id}:{stage.get('id')}",
                    "modified_at": record["modified_at"],
                    "deleted": False,
                    "pipeline_id": pipeline_id,
                    "pipeline_label": record.get("label"),
                    "stage_id": stage.get("id"),
                    "stage_label": stage.get("label"),
                    "display_order": stage.get("displayOrder"),
                    "probability": meta.get("probability"),
                    "is_closed": _is_true(meta.get("isClosed")),
                    "is_won": _is_won(meta),
                }
            )
    return pd.DataFrame(rows)


def _is_true(value: object) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1")


def _is_won(meta: dict) -> bool:
    """A closed stage with probability 1, however the API spells them ("1", "1.0", 1, 1.0; true, "true")."""
    closed = _is_true(meta.get("isClosed"))
    try:
        probability = float(meta.get("probability"))
    except (TypeError, ValueError):
        return False
    return closed and probability == 1.0


def load_mirrors(engine: Engine, columns: Mapping[tuple[str, str], tuple[str, ...] | None] | None = None) -> Mirrors:
    """Every mirror table as a frame; ``columns`` (``transform.columns.mirror_columns``): per object, only the
    fields the transform reads (None, or an object not named: every field)."""
    columns = dict(columns or {})
    frames = {(crm, obj): mirror.read_records(engine, crm, obj, columns=columns.get((crm, obj)))
              for crm, obj in MIRROR_TABLES}  # fmt: skip
    frames[("hubspot", "pipelines")] = _hubspot_stages(frames[("hubspot", "pipelines")])
    return Mirrors(frames, {key: columns.get(key) for key in frames} if columns else None)


def transform_settings(settings: Settings) -> TransformSettings:
    """The YAML settings mapped onto what the transform needs (rule IDs as in SPEC.md)."""
    sf, dy = settings.sync.salesforce, settings.sync.dynamics
    mappings = tuple(
        PipelineMapping(m.other_pipeline, m.hubspot_pipeline, dict(m.stages), crm=crm)
        for crm, pipelines in (("salesforce", sf.deals.pipelines), ("dynamics", dy.deals.pipelines))
        for m in pipelines
    )
    custom: dict[tuple[str, str], tuple[FieldMap, ...]] = {}

    for crm, mappings_of in (("salesforce", sf.field_mappings), ("dynamics", dy.field_mappings)):
        for m in mappings_of:
            if m.rule == "dont_sync":
                continue
            key = (crm, m.object)
            custom[key] = (*custom.get(key, ()), FieldMap(m.hubspot, m.other, m.type, dict(m.value_map)))
            # and HubSpot's side of the pair: a property outside HubSpot's default map is read and compared too
            hub = ("hubspot", catalog.get(crm, m.object).hubspot_object or "")
            if hub[1] and all(f.hubspot != m.hubspot for f in (*DEFAULT_FIELDS.get(hub, ()), *custom.get(hub, ()))):
                custom[hub] = (*custom.get(hub, ()), FieldMap(m.hubspot, m.hubspot, m.type))
    return TransformSettings(
        custom_fields=custom,  # DEAL-1 custom mappings
        # CON-3: identities span every CRM, so one connection asking for valid emails only applies to all
        valid_email_only=sf.valid_email_only or dy.valid_email_only,
        dynamics_entities=(dy.contact_entity, "lead" if dy.contact_entity == "contact" else "contact"),  # TOP-1
        stages=StageSettings(pipelines=mappings, dedicated_pipeline=sf.deals.dedicated_pipeline),  # DEAL-2..5
        new_contact_type=sf.new_contact_type,  # CON-5
        inclusion_list=tuple(sf.inclusion_list) if sf.inclusion_list is not None else None,  # CON-7
        dynamics_lifecycle_stage=dy.lifecycle_stage,  # CON-9
        closed_won_sets_customer=sf.deals.closed_won_sets_customer,  # DEAL-7
    )
